"""The frame: ``~`` VER ADR CID1 CID2 LENGTH INFO CHKSUM CR, all but SOI/EOI in hex ASCII.

:func:`encode_frame` writes upper-case hex; :func:`parse_frame` accepts either case and
checks, in this order (the order that tells real faults apart): hex digits only, a
complete header, LCHKSUM, exactly LENID characters before a 4-character CHKSUM (a frame
that stops right after its data is *truncated*, one with characters to spare has a
*length* error), then CHKSUM. It never interprets INFO: that is the decoders' job.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from plugins.rs485_bms.protocol.checksum import (
    MAX_LENID,
    encode_length,
    frame_checksum,
    length_checksum,
)
from plugins.rs485_bms.protocol.errors import (
    ChecksumError,
    LengthChecksumError,
    LengthError,
    NonHexError,
    TruncatedError,
)

SOI = b"~"
EOI = b"\r"
#: VER, ADR, CID1, CID2 and LENGTH, in characters.
HEADER_CHARS = 12
CHKSUM_CHARS = 4
#: ``~`` + header + CHKSUM + CR.
FRAME_OVERHEAD = 1 + HEADER_CHARS + CHKSUM_CHARS + 1
#: The longest legal frame on the wire, ``~`` and CR included.
MAX_FRAME_BYTES = FRAME_OVERHEAD + MAX_LENID
#: INFO is whole bytes, so at most 4094 of the 4095 LENID characters are usable.
MAX_INFO_BYTES = MAX_LENID // 2

_HEX_DIGITS = b"0123456789ABCDEFabcdef"


@dataclass(frozen=True, slots=True, kw_only=True)
class Frame:
    """One frame, request or answer. In an answer ``cid2`` holds the return code (RTN).

    ``raw`` is the frame as received (``~`` to CR); it is empty for frames we build and
    takes no part in comparisons.
    """

    ver: int
    adr: int
    cid1: int
    cid2: int
    info: bytes = b""
    raw: bytes = field(default=b"", compare=False, repr=False)

    @property
    def rtn(self) -> int:
        """The return code of an answer (the CID2 position)."""
        return self.cid2

    @property
    def wire(self) -> bytes:
        """The frame's bytes: as received, or as :func:`encode_frame` writes them."""
        return self.raw or encode_frame(self)


def encode_frame(frame: Frame) -> bytes:
    """The wire bytes of ``frame``: ``~``, upper-case hex, CHKSUM, CR."""
    for name in ("ver", "adr", "cid1", "cid2"):
        value = getattr(frame, name)
        if not 0 <= value <= 0xFF:
            raise ValueError(f"{name} {value} does not fit in a byte")
    if len(frame.info) > MAX_INFO_BYTES:
        raise ValueError(f"INFO of {len(frame.info)} bytes exceeds {MAX_INFO_BYTES}")
    lenid = 2 * len(frame.info)
    chars = (f"{frame.ver:02X}{frame.adr:02X}{frame.cid1:02X}{frame.cid2:02X}"
             f"{encode_length(lenid):04X}{frame.info.hex().upper()}").encode("ascii")
    return SOI + chars + f"{frame_checksum(chars):04X}".encode("ascii") + EOI


def expected_frame_bytes(head: bytes) -> int | None:
    """How many bytes the frame starting ``head`` (at its ``~``) has on the wire, ``~``
    and CR included, read from its LENGTH field; None while ``head`` is shorter than the
    header, is no frame header, or its LENGTH fails its own checksum (LCHKSUM). A hint
    for reading, never a check: the parser still checks the whole frame."""
    if len(head) < 1 + HEADER_CHARS or not head.startswith(SOI):
        return None
    field = head[9:1 + HEADER_CHARS]
    if field.translate(None, _HEX_DIGITS):
        return None
    length = int(field, 16)
    lenid = length & MAX_LENID
    if length >> 12 != length_checksum(lenid):
        return None
    return FRAME_OVERHEAD + lenid


def parse_frame(data: bytes) -> Frame:
    """Parse one frame, ``~`` to CR (the CR may be missing).

    Raises a :class:`~.errors.ProtocolError` subclass for anything a peer got wrong,
    and :class:`ValueError` if ``data`` does not start with ``~`` (a caller's bug: the
    reader and the decode command always hand over data starting at a ``~``).
    """
    data = bytes(data)
    if not data.startswith(SOI):
        raise ValueError("a frame starts with '~'")
    chars = data[1:-1] if data.endswith(EOI) else data[1:]
    stray = chars.translate(None, _HEX_DIGITS)
    if stray:
        raise NonHexError(raw=data, position=1 + chars.index(stray[:1]))
    if len(chars) < HEADER_CHARS:
        raise TruncatedError(f"frame ends inside its header after {len(chars)} characters",
                             raw=data)
    length = int(chars[8:12], 16)
    lenid = length & MAX_LENID
    wanted = length_checksum(lenid)
    if length >> 12 != wanted:
        raise LengthChecksumError(raw=data, lenid=lenid, expected=wanted, actual=length >> 12)
    if lenid % 2:
        raise LengthError(raw=data, expected=(lenid - 1, lenid + 1), actual=lenid,
                          unit="INFO characters (whole bytes)")
    available = len(chars) - HEADER_CHARS
    if available < lenid + CHKSUM_CHARS:
        missing = "no CHKSUM" if available == lenid else "ends early"
        raise TruncatedError(f"LENID announces {lenid} INFO characters + CHKSUM, "
                             f"{available} characters follow ({missing})", raw=data)
    if available > lenid + CHKSUM_CHARS:
        raise LengthError(raw=data, expected=(lenid + CHKSUM_CHARS,), actual=available,
                          unit="characters after LENGTH")
    body = chars[:-CHKSUM_CHARS]
    expected = frame_checksum(body)
    actual = int(chars[-CHKSUM_CHARS:], 16)
    if actual != expected:
        raise ChecksumError(raw=data, expected=expected, actual=actual)
    header = bytes.fromhex(body[:8].decode("ascii"))
    return Frame(ver=header[0], adr=header[1], cid1=header[2], cid2=header[3],
                 info=bytes.fromhex(body[HEADER_CHARS:].decode("ascii")), raw=data)
