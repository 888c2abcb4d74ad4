"""One conversation on a half-duplex bus: at most one request outstanding (sans-IO).

The caller owns the clock and the port::

    wire = session.send(request, now=clock(), timeout_s=0.5)   # write these bytes
    events = session.receive(data, now=clock())                  # for each chunk read
    events = session.poll(now=clock())                           # when nothing arrives

Events, in order: :class:`Answer` (the matching answer, RTN 0), :class:`ResponseTimeout`,
or a :class:`~.errors.ProtocolError` value: garbled frames from the reader, an
:class:`~.errors.RtnError` (which ends the transaction: the device did answer), and
:class:`~.errors.AddressError` / :class:`~.errors.CidError` for answers from another ADR
or device type (dropped, counted as ``wrong_address``; the request stays outstanding).

An answer carrying ADR 00 to a request for another address is paired with that request
when it has the request's VER and CID1 and arrives before the deadline: the RS232
console port of PACE packs (and PbmsTools' settings traffic) answers with ADR 00
whatever the module's DIP address (bms-protocol.md 7.2, Tertiush/bmspace#37). Such an
answer ends the transaction like any other and is counted (``adr0_answers``); the
:class:`Answer` says so (``adr0``). An ADR-00 answer with another VER or CID1 is an
:class:`~.errors.AddressError` as before.

Skipped silently and counted: Seplos intra-pack records (0x5A in the RTN position: a
Seplos master polling its slaves on the same wires), our own request echoed back by the
adapter, and frames that arrive while nothing is outstanding (late answers).
"""

from __future__ import annotations

from dataclasses import dataclass

from plugins.rs485_bms.protocol.errors import (
    RTN_MEANINGS,
    AddressError,
    ChecksumError,
    CidError,
    LengthChecksumError,
    ProtocolError,
    RtnError,
)
from plugins.rs485_bms.protocol.frame import Frame, encode_frame
from plugins.rs485_bms.protocol.reader import FrameReader

#: The ADR an RS232 console port puts in every answer, whatever the module's address.
CONSOLE_ADR = 0x00
#: The value in the RTN position of a Seplos slave's answer to its master's 0x5A poll.
INTRA_PACK_RTN = 0x5A
FIRST_COMMAND_CID2 = 0x40  #: YD/T 1363.3 command codes start here; return codes stay below


def is_foreign_request(frame: Frame) -> bool:
    """True for a request, not an answer: its CID2 is a command code and no documented
    return code (another master polling the same wires, bms-protocol.md 1.4 step 4). An
    undocumented return code of 0x40 or more is taken for a request too: the transaction
    then ends in a timeout rather than a wrong error."""
    return frame.cid2 >= FIRST_COMMAND_CID2 and frame.cid2 not in RTN_MEANINGS


def pairs_as_console_answer(request: Frame, answer: Frame) -> bool:
    """True if ``answer`` carries ADR 00 where ``request`` asked another address, with the
    request's VER and CID1: the answer of an RS232 console port, which ignores the ADR
    (the caller checks that it is the request in flight and within its deadline)."""
    return (answer.adr == CONSOLE_ADR != request.adr and answer.ver == request.ver
            and answer.cid1 == request.cid1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """The answer (RTN 0) to ``request``."""

    request: Frame
    frame: Frame
    adr0: bool = False  #: the answer carried ADR 00, not the request's ADR (RS232 console)


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseTimeout:
    """No matching answer to ``request`` before its deadline."""

    request: Frame


SessionEvent = Answer | ResponseTimeout | ProtocolError


@dataclass(slots=True, kw_only=True)
class SessionCounters:
    """Monotonic counters; the first eight and ``adr0_answers`` mirror
    ``gateway.model.LinkCounters``."""

    frames_ok: int = 0
    timeouts: int = 0
    checksum_errors: int = 0  #: bad CHKSUM or LCHKSUM
    format_errors: int = 0  #: truncated, interrupted, too long, non-hex, length mismatch
    rtn_errors: int = 0
    wrong_address: int = 0  #: answers from another ADR or CID1
    garbage_bytes: int = 0
    intra_pack: int = 0  #: Seplos 0x5A records skipped
    echoes: int = 0  #: our own request read back
    unsolicited: int = 0  #: frames while nothing was outstanding
    foreign_requests: int = 0  #: requests another master sent on the same wires
    adr0_answers: int = 0  #: answers with ADR 00 paired with the request in flight


class Session:
    """Request/answer matching with a deadline. Never raises on anything a peer sends."""

    def __init__(self) -> None:
        self.reader = FrameReader()
        self.counters = SessionCounters()
        self.outstanding: Frame | None = None
        self.deadline: float | None = None

    def send(self, request: Frame, *, now: float, timeout_s: float) -> bytes:
        """Start a transaction; returns the bytes to write.

        Raises :class:`RuntimeError` while another request is outstanding and
        :class:`ValueError` for a non-positive timeout (both are caller bugs).
        """
        if self.outstanding is not None:
            raise RuntimeError("a request is still outstanding")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, not {timeout_s}")
        wire = encode_frame(request)
        self.outstanding = request
        self.deadline = now + timeout_s
        return wire

    def cancel(self) -> None:
        """Forget the outstanding request (the caller gave up on it)."""
        self.outstanding = None
        self.deadline = None

    def poll(self, *, now: float) -> list[SessionEvent]:
        """Check the deadline: a partial frame becomes truncated, then the timeout."""
        if self.outstanding is None or self.deadline is None or now < self.deadline:
            return []
        events: list[SessionEvent] = []
        for item in self.reader.flush():
            events.extend(self._handle(item))
        events.append(ResponseTimeout(request=self.outstanding))
        self.counters.timeouts += 1
        self.cancel()
        return events

    def receive(self, data: bytes, *, now: float) -> list[SessionEvent]:
        """Feed bytes read at time ``now``; a deadline already past is reported first."""
        events = self.poll(now=now)
        for item in self.reader.feed(data):
            events.extend(self._handle(item))
        self.counters.garbage_bytes += self.reader.take_garbage()
        return events

    def _handle(self, item: Frame | ProtocolError) -> list[SessionEvent]:
        c = self.counters
        if isinstance(item, ProtocolError):
            if isinstance(item, ChecksumError | LengthChecksumError):
                c.checksum_errors += 1
            else:
                c.format_errors += 1
            return [item]
        request = self.outstanding
        if item.cid2 == INTRA_PACK_RTN:
            c.intra_pack += 1
            return []
        if request is not None and item == request:
            c.echoes += 1
            return []
        if is_foreign_request(item):  # outstanding request or not
            c.foreign_requests += 1
            return []
        if request is None:
            c.unsolicited += 1
            return []
        adr0 = pairs_as_console_answer(request, item)
        if item.adr != request.adr and not adr0:
            c.wrong_address += 1
            return [AddressError(raw=item.wire, expected=request.adr, actual=item.adr)]
        if item.cid1 != request.cid1:
            c.wrong_address += 1
            return [CidError(raw=item.wire, expected=request.cid1, actual=item.cid1)]
        self.cancel()
        if adr0:
            c.adr0_answers += 1
        if item.rtn != 0:
            c.rtn_errors += 1
            return [RtnError(raw=item.wire, rtn=item.rtn)]
        c.frames_ok += 1
        return [Answer(request=request, frame=item, adr0=adr0)]
