"""What a peer can get wrong: one :class:`ProtocolError` base, one subclass per failure.

Every error carries the raw bytes of the frame it is about (``raw``), so that logs and
``bms-gateway decode`` can show exactly what arrived. Each class has two stable names:

* ``kind``: a short word for counters and log lines (``chksum``, ``truncated``, ...);
* ``code``: the name used in the JSON output of ``bms-gateway decode`` and in the test
  vectors (``chksum_mismatch``, ...).

A mistake in a request *we* build (an address out of range, INFO too long) is never a
``ProtocolError``: it is a :class:`ValueError`, because it is a bug on our side.
"""

from __future__ import annotations

from typing import ClassVar

#: Return codes (the CID2 position of an answer). The vendors' tables do not conflict:
#: where one vendor documents a code that another marks "reserved", the meaning is kept.
RTN_MEANINGS: dict[int, str] = {
    0x00: "normal",
    0x01: "VER error",
    0x02: "CHKSUM error",
    0x03: "LCHKSUM error",
    0x04: "CID2 invalid",
    0x05: "command format error",
    0x06: "invalid data",
    0x07: "no data",
    0x09: "operation or write error",
    0x90: "ADR error",
    0x91: "internal communication error",
    0xE1: "CID1 invalid",
    0xE2: "command execution failure",
    0xE3: "device fault",
    0xE4: "invalid permission",
}


def rtn_meaning(rtn: int) -> str:
    """The documented meaning of a return code, or a phrase saying it has none."""
    return RTN_MEANINGS.get(rtn, f"undocumented return code 0x{rtn:02X}")


class ProtocolError(Exception):
    """Base class: something a peer sent does not follow the protocol."""

    kind: ClassVar[str] = "protocol"
    code: ClassVar[str] = "protocol_error"

    def __init__(self, message: str, *, raw: bytes = b"") -> None:
        super().__init__(message)
        self.raw = bytes(raw)


class TruncatedError(ProtocolError):
    """The frame ended before its CHKSUM (or even before its header was complete).

    Real firmware does this: some answers put the CR straight after the data.
    """

    kind = "truncated"
    code = "truncated"


class InterruptedFrameError(ProtocolError):
    """A new ``~`` arrived before the CR of the frame being received."""

    kind = "interrupted"
    code = "interrupted"


class FrameTooLongError(ProtocolError):
    """No CR within the longest legal frame (18 + 4095 bytes); ``raw`` is that prefix."""

    kind = "overflow"
    code = "overflow"


class NonHexError(ProtocolError):
    """A character between ``~`` and CR that is not a hexadecimal digit."""

    kind = "non_hex"
    code = "non_hex"

    def __init__(self, *, raw: bytes, position: int) -> None:
        char = raw[position:position + 1]
        super().__init__(f"non-hex character {char!r} at offset {position}", raw=raw)
        self.position = position


class LengthChecksumError(ProtocolError):
    """The LCHKSUM nibble does not match LENID."""

    kind = "lchksum"
    code = "lchksum_mismatch"

    def __init__(self, *, raw: bytes, lenid: int, expected: int, actual: int) -> None:
        super().__init__(f"LCHKSUM is {actual:X}, LENID 0x{lenid:03X} needs {expected:X}",
                         raw=raw)
        self.expected = expected
        self.actual = actual


class ChecksumError(ProtocolError):
    """The CHKSUM field does not match the characters of the frame."""

    kind = "chksum"
    code = "chksum_mismatch"

    def __init__(self, *, raw: bytes, expected: int, actual: int) -> None:
        super().__init__(f"CHKSUM is {actual:04X}, the frame's characters give {expected:04X}",
                         raw=raw)
        self.expected = expected
        self.actual = actual


class LengthError(ProtocolError):
    """A length does not fit: LENID against the frame, or a payload against its layout.

    ``family`` and ``command`` are ``None`` for frame-level mismatches. ``expected``
    holds the length(s) in bytes (frame level: characters) that the layout implies; with
    ``at_least`` the data ended inside the layout and ``expected`` is a lower bound.
    """

    kind = "length"
    code = "length_mismatch"

    def __init__(self, *, raw: bytes, expected: tuple[int, ...], actual: int,
                 family: str | None = None, command: int = 0, at_least: bool = False,
                 unit: str = "bytes") -> None:
        where = "frame" if family is None else f"{family} 0x{command:02X} answer"
        wanted = ("at least " if at_least else "") + " or ".join(str(n) for n in expected)
        super().__init__(f"{where}: expected {wanted} {unit}, got {actual}", raw=raw)
        self.family = family
        self.command = command
        self.expected = expected
        self.at_least = at_least
        self.actual = actual


class LayoutError(ProtocolError):
    """The payload does not follow the family's layout, or fits it in several ways
    (``variants``: the tail lengths that fit, giving different values)."""

    kind = "layout"
    code = "layout_mismatch"

    def __init__(self, message: str, *, raw: bytes, family: str, command: int,
                 variants: tuple[int, ...] = ()) -> None:
        super().__init__(f"{family} 0x{command:02X} answer: {message}", raw=raw)
        self.family = family
        self.command = command
        self.variants = variants


class RtnError(ProtocolError):
    """The device answered with a return code other than 0 ("normal")."""

    kind = "rtn"
    code = "rtn_error"

    def __init__(self, *, raw: bytes, rtn: int) -> None:
        super().__init__(f"RTN 0x{rtn:02X}: {rtn_meaning(rtn)}", raw=raw)
        self.rtn = rtn
        self.meaning = rtn_meaning(rtn)


class AddressError(ProtocolError):
    """An answer from another ADR than the one asked (another pack, or a bus collision)."""

    kind = "address"
    code = "address_mismatch"

    def __init__(self, *, raw: bytes, expected: int, actual: int) -> None:
        super().__init__(f"answer from ADR 0x{actual:02X}, expected 0x{expected:02X}", raw=raw)
        self.expected = expected
        self.actual = actual


class CidError(ProtocolError):
    """An answer with another device type (CID1) than the request's."""

    kind = "cid"
    code = "cid_mismatch"

    def __init__(self, *, raw: bytes, expected: int, actual: int) -> None:
        super().__init__(f"answer with CID1 0x{actual:02X}, expected 0x{expected:02X}", raw=raw)
        self.expected = expected
        self.actual = actual
