"""``bms-gateway scan``: who is on the bus, and what is wrong with it.

The diagnoses speak the module manual's troubleshooting table ("BMS cannot communicate
with dynamic ring"): the BMS address differs from the address queried, several modules
with one address, serial port setting, RS485 communication line sequence, physical
connection. A module that answers with an error code (RTN) is present: it is listed,
and the code says what it refused.

Garbled or unreadable answers are not all alike, and their remedies differ. An address
whose answer was garbled (or where bytes came but no frame) is asked ``SAMPLES`` more
times, and everything that arrives in each answer window is kept (:class:`LineEvidence`):

* ``duplicate_address``: two modules answer at one address. Evidence: an answer window
  holding two frame starts with this address's header (overlapping SOIs, a second
  answer), good answers of two different shapes, or the *same* characters garbled in
  most answers (two answers overlaid the same way each time: their data differ where
  the two modules' values differ);
* ``line_noise``: bad checksums or broken characters from one address, at different
  places each time, good answers in between: that module's cable or plug, interference;
* ``reflections``: the same at several addresses, or modules answering RTN 02/03 (our
  request reached them garbled): the line itself, e.g. a missing or misplaced terminator;
* ``wrong_baud``: bytes answer each request but never the start of an answer (``~`` and
  this address's header): the modules send at another baud rate (the serial port
  setting).

Each finding carries its counts and a sample of what arrived.
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import sys
from dataclasses import dataclass, field
from typing import Any

import pydantic

from gateway.hub import Hub
from gateway.model import Identity

from plugins.rs485_bms.poller.dialect import Dialect
from plugins.rs485_bms.poller.link import ModuleLink
from plugins.rs485_bms.protocol import (
    MAX_FRAME_BYTES,
    PROFILES,
    AddressError,
    ChecksumError,
    Frame,
    FrameReader,
    LayoutError,
    LengthChecksumError,
    LengthError,
    ProtocolError,
    RtnError,
    encode_frame,
    rtn_meaning,
)
from plugins.rs485_bms.settings import BusSettings, parse_addresses
from plugins.rs485_bms.poller.source import BusPoller, wire_time_s
from plugins.rs485_bms.poller.transport import SerialTransport, TransportError

#: The manual's causes for "BMS cannot communicate", with its remedies, as they apply
#: when nothing answers at all.
NO_ANSWER_HINTS = (
    "the communication serial port setting is incorrect (the manual: set the correct "
    "serial port configuration according to the communication protocol; baud rate and "
    "8N1: PACE 9600, Pylontech 115200 unless DIP 1 is up, Seplos 9600 or 19200), or the "
    "modules speak another protocol family than the one scanned (--family)",
    "the RS485 communication line sequence is incorrect, A and B swapped (the manual: "
    "connect the communication line correctly as described in the installation manual; "
    "its text puts RJ45 pin 1, white-orange, 'positive' on RS485-A and pin 2, orange, "
    "'negative' on RS485-B, while its wiring figure labels white-orange PIN2/7 and orange "
    "PIN1/8)",
    "abnormal physical connection (the manual: check that the physical connection of the "
    "communication circuit is normal): cable, adapter, or a BMS that is not activated "
    "(its weak current switch)",
    "the modules' DIP addresses are outside the scanned range",
)

#: What an error answer to the analog request says, by RTN (others: its meaning only).
WRONG_FAMILY = "the wrong family is chosen (--family)"
RTN_CAUSES = {
    0x01: "it expects another protocol version: " + WRONG_FAMILY,
    0x02: "our request reached it garbled: line noise, or a second talker on the bus",
    0x03: "our request reached it garbled: line noise, or a second talker on the bus",
    0x04: "the command is not supported by this firmware, or " + WRONG_FAMILY,
    0x05: "it does not accept the request's format: " + WRONG_FAMILY,
    0x06: "it does not accept the request's data: " + WRONG_FAMILY,
    0xE1: "it is another device type: " + WRONG_FAMILY,
}
GARBLED = ("chksum", "lchksum", "truncated", "non_hex", "length", "interrupted", "overflow")
#: Identity fields listed for every responder: each is shown, or why it is missing.
IDENTITY_FIELDS = (("serial", "serial"), ("pack_serial", "pack serial"),
                   ("firmware", "firmware"), ("model", "model"))
ALWAYS_SHOWN = ("serial", "firmware")

#: More analog requests to an address whose first answer was garbled or unreadable.
SAMPLES = 6
#: Return codes of a module that received our request garbled (CHKSUM, LCHKSUM error).
RTN_GARBLED_REQUEST = (0x02, 0x03)
_HEX = b"0123456789ABCDEFabcdef"
SHOWN_SAMPLES = 2  #: raw answers quoted per finding
SHOWN_CHARS = 48


class Verdict(enum.StrEnum):
    """What garbled or unreadable answers at one address point to."""

    DUPLICATE_ADDRESS = "duplicate_address"
    LINE_NOISE = "line_noise"
    REFLECTIONS = "reflections"
    WRONG_BAUD = "wrong_baud"


#: The manual's cause and remedy for each verdict ("BMS cannot communicate with dynamic
#: ring"), and what to check beyond it.
VERDICT_HINTS = {
    Verdict.DUPLICATE_ADDRESS: (
        "two modules answer at this address. The manual: when multiple units are connected "
        "in parallel, they cannot communicate normally; different addresses need to be set, "
        "and the dialing address of each product should be reset (detect and reset the BMS "
        "dialing address; the address is read only at power-up)"),
    Verdict.LINE_NOISE: (
        "line noise on this module's connection, not a second module (its damage falls at "
        "different places each time, and no answer came twice). The manual: check "
        "that the physical connection of the communication circuit is normal (the cable and "
        "RJ45 plugs to this module, power cables running alongside)"),
    Verdict.REFLECTIONS: (
        "the line itself garbles traffic (several modules, or our requests reach them "
        "garbled): reflections on a badly terminated line, a missing or misplaced "
        "terminator (120 ohm at both ends of the RS485 line only; the manual does not "
        "mention it), long stubs, or too high a baud rate. The manual: connect the "
        "communication line correctly as described in the installation manual, and check "
        "that the physical connection of the communication circuit is normal"),
    Verdict.WRONG_BAUD: (
        "bytes answer each request but never a frame: the modules send at another baud "
        "rate. The manual: the communication serial port setting is incorrect; set the "
        "correct serial port configuration according to the communication protocol (8N1; "
        "PACE 9600, some 19200; Pylontech 115200 unless DIP 1 is up; Seplos 9600 or 19200)"),
}


def _show(raw: bytes) -> str:
    """A received frame or run of bytes for a diagnosis line, cut to a readable length."""
    raw = raw.rstrip(b"\r")
    cut = raw[:SHOWN_CHARS]
    text = "".join(chr(b) if 0x21 <= b < 0x7F else f"\\x{b:02x}" for b in cut)
    return text + ("..." if len(raw) > SHOWN_CHARS else "")


@dataclass
class LineEvidence:
    """Everything that arrived in answer windows at one address (pure: fed bytes)."""

    windows: int = 0  #: answer windows seen
    good: int = 0  #: well-formed answers with RTN 0 that decoded
    checksum: int = 0  #: answers with a bad CHKSUM or LCHKSUM
    malformed: int = 0  #: non-hex, truncated, interrupted, wrong length
    two_starts: int = 0  #: windows holding two frame starts with this address's header
    junk: int = 0  #: windows where bytes arrived but no frame start at all
    junk_bytes: int = 0
    rtn_garbled: int = 0  #: RTN 02/03 answers: our request reached the module garbled
    silent: int = 0  #: windows where nothing arrived
    #: (INFO bytes, cells, design capacity) of the good answers: one module has one shape
    shapes: set[tuple[int, int, int]] = field(default_factory=set)
    damaged: list[frozenset[int]] = field(default_factory=list)  #: non-hex positions
    shown: list[bytes] = field(default_factory=list)

    @property
    def garbled(self) -> int:
        return self.checksum + self.malformed

    def add(self, data: bytes, request: Frame, dialect: Dialect) -> None:
        """Take in the bytes of one answer window to ``request``."""
        self.windows += 1
        if not data:
            self.silent += 1
            return
        header = encode_frame(request)[:7]  # '~' VER ADR CID1: an answer starts the same
        if data.count(header) >= 2:
            self.two_starts += 1
            self._show(data)
        if header not in data:  # not even the start of an answer from this address
            self.junk += 1
            self.junk_bytes += len(data)
            self._show(data)
            return
        reader = FrameReader()
        for item in reader.feed(data) + reader.flush():
            if isinstance(item, ProtocolError):
                if not item.raw.startswith(b"~"):
                    continue
                if isinstance(item, ChecksumError | LengthChecksumError):
                    self.checksum += 1
                else:
                    self.malformed += 1
                body = item.raw[1:].rstrip(b"\r")
                self.damaged.append(frozenset(i for i, c in enumerate(body) if c not in _HEX))
                self._show(item.raw)
            elif item.adr != request.adr or item.cid1 != request.cid1:
                continue  # another module (a wrong DIP address is diagnosed elsewhere)
            elif item.rtn in RTN_GARBLED_REQUEST:
                self.rtn_garbled += 1
            elif item.rtn == 0:
                try:
                    decoded = dialect.decode(request, item)
                except ProtocolError:
                    continue  # does not fit the family: diagnosed elsewhere
                self.good += 1
                tels = [t for t in dialect.telemetry(decoded) if t is not None]
                if tels:  # an all-zero answer has no shape to compare
                    self.shapes.add((len(item.info), len(tels[0].cell_mv),
                                     tels[0].design_mah or 0))

    def _show(self, raw: bytes) -> None:
        if len(self.shown) < SHOWN_SAMPLES:
            self.shown.append(raw)

    def repeated_damage(self) -> list[int]:
        """Character positions broken in at least two thirds (and two) of the garbled
        answers: the same place each time, as when two answers overlay."""
        if self.garbled < 3:
            return []
        need = max(2, -(-2 * self.garbled // 3))
        counts: dict[int, int] = {}
        for positions in self.damaged:
            for i in positions:
                counts[i] = counts.get(i, 0) + 1
        return sorted(i for i, n in counts.items() if n >= need)

    def verdict(self) -> Verdict | None:
        """What this address's answers point to (None: nothing wrong was seen)."""
        if self.two_starts or len(self.shapes) > 1 or self.repeated_damage():
            return Verdict.DUPLICATE_ADDRESS
        if self.junk and not self.garbled and not self.good:
            return Verdict.WRONG_BAUD
        if self.garbled or self.junk or self.rtn_garbled:
            return Verdict.LINE_NOISE
        return None

    def describe(self) -> str:
        """The counts and samples behind the verdict, in words."""
        parts = [f"{self.windows} answer windows: {self.good} good"]
        if self.garbled:
            parts.append(f"{self.garbled} garbled ({self.checksum} bad CHKSUM/LCHKSUM, "
                         f"{self.malformed} broken characters or length)")
        if self.rtn_garbled:
            parts.append(f"{self.rtn_garbled} RTN 02/03 (our request reached it garbled)")
        if self.junk:
            parts.append(f"{self.junk} with {self.junk_bytes} bytes but never the start of "
                         "an answer")
        if self.silent:
            parts.append(f"{self.silent} silent")
        seen = []
        if self.two_starts:
            seen.append(f"{self.two_starts} windows held two frame starts of this address "
                        "(overlapping answers)")
        if len(self.shapes) > 1:
            seen.append(f"good answers of {len(self.shapes)} different shapes")
        repeated = self.repeated_damage()
        if repeated:
            seen.append(f"the same {len(repeated)} characters garbled in most answers")
        elif self.garbled:
            seen.append("the damage at different places each time")
        if self.garbled and not self.two_starts:
            seen.append("no window held two answers")
        text = "; ".join(parts) + (f"; {', '.join(seen)}" if seen else "")
        if self.shown:
            text += "; e.g. " + " | ".join(_show(raw) for raw in self.shown)
        return text


#: Option of each BusSettings field that scan fills from its arguments.
OPTIONS = {"port": "--port", "addresses": "--addresses", "baud": "--baud",
           "timeout_ms": "--timeout-ms"}


@dataclass
class Finding:
    address: int
    answered: bool = False  #: its analog answer decoded
    rtn: int | None = None  #: it answered the analog request with this error code
    misfit: str = ""  #: its analog answer does not fit the family's layout: how
    identity: str = ""
    wrong_addresses: set[int] = field(default_factory=set)
    garbled: int = 0
    unreadable: bool = False  #: bytes arrived in answer to the first request, no frame
    evidence: LineEvidence | None = None  #: the answer windows sampled when in doubt
    verdict: Verdict | None = None  #: what the evidence points to (see ScanReport.judge)

    @property
    def present(self) -> bool:
        """A module answered at this address, if only with an error code."""
        return self.answered or self.rtn is not None or bool(self.misfit)

    def describe(self) -> str:
        if self.rtn is not None:
            return f"answers with an error: RTN 0x{self.rtn:02X} ({rtn_meaning(self.rtn)})"
        if self.misfit:
            return "answers, but not in the scanned family's layout"
        return "answers" + (f"  ({self.identity})" if self.identity else "")


@dataclass
class ScanReport:
    findings: list[Finding]
    family: str = ""
    foreign_frames: int = 0
    foreign_bytes: int = 0

    def responders(self) -> list[Finding]:
        return [f for f in self.findings if f.present]

    def judge(self) -> None:
        """Give each finding with evidence its verdict: line noise at several addresses,
        or requests reaching modules garbled, is the line itself (reflections)."""
        for f in self.findings:
            f.verdict = f.evidence.verdict() if f.evidence is not None else None
        noisy = [f for f in self.findings if f.verdict is Verdict.LINE_NOISE]
        if len(noisy) >= 2 or any(f.evidence.rtn_garbled for f in noisy if f.evidence):
            for f in noisy:
                f.verdict = Verdict.REFLECTIONS

    def diagnoses(self, expected: list[int] | None = None) -> list[str]:
        out: list[str] = []
        if self.foreign_frames:
            out.append(f"another master is polling this bus ({self.foreign_frames} frames heard "
                       "before we sent anything): two masters on half-duplex RS485 collide; "
                       "use the master's host port with mode: master, or stop the other poller")
        for f in self.findings:
            for other in sorted(f.wrong_addresses):
                out.append(f"asked address {f.address}, a module answered as address {other}: "
                           f"its DIP address differs from the configured one (set it, then "
                           "reset the module: the address is read only at power-up)")
            if f.rtn is not None:
                out.append(f"address {f.address}: the module answered the analog request "
                           f"(0x42) with RTN 0x{f.rtn:02X} ({rtn_meaning(f.rtn)}): "
                           + RTN_CAUSES.get(f.rtn, "it refused the request"))
            elif f.misfit:
                out.append(f"address {f.address}: the module answered, but its analog answer "
                           f"does not fit the {self.family} layout ({f.misfit}): "
                           f"{WRONG_FAMILY}, or its firmware sends a layout the gateway "
                           "does not know")
            if f.verdict is not None and f.evidence is not None:
                out.append(f"address {f.address}: {f.verdict.value}: {f.evidence.describe()}: "
                           + VERDICT_HINTS[f.verdict])
        baud = [f.address for f in self.findings if f.verdict is Verdict.WRONG_BAUD]
        if (not self.responders() and not baud
                and not any(f.wrong_addresses for f in self.findings)):
            out.append("no module answered at all. Possible causes: "
                       + "; ".join(NO_ANSWER_HINTS))
        if expected:
            missing = sorted(set(expected) - {f.address for f in self.responders()})
            if missing:
                out.append("configured but not answering: "
                           + ", ".join(str(a) for a in missing))
        return out


class _ScanPoller(BusPoller):
    """The bus poller, keeping every bad answer of the current transaction as it is:
    scan names the RTN a module refused a command with and the layout an answer missed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.errors: list[ProtocolError] = []

    def _protocol_error(self, link: ModuleLink | None, request: Frame, exc: ProtocolError
                        ) -> bool:
        self.errors.append(exc)
        return super()._protocol_error(link, request, exc)

    async def ask(self, transport: SerialTransport, link: ModuleLink, request: Frame
                  ) -> tuple[Any | None, list[ProtocolError]]:
        self.errors = []
        answer = await self.transact(transport, link, request)
        return answer, self.errors


def bus_settings(url: str, *, family: str, addresses: list[int], baud: int,
                 timeout_ms: int) -> BusSettings:
    """The scan's bus; raises pydantic.ValidationError for a bad argument."""
    return BusSettings(name="scan", port=url, family=family, baud=baud, addresses=addresses,
                       timeout_ms=timeout_ms, retries=0, gap_ms=None)


async def scan_bus(url: str, *, family: str, addresses: list[int], baud: int,
                   timeout_ms: int, listen_s: float) -> ScanReport:
    bus = bus_settings(url, family=family, addresses=addresses, baud=baud,
                       timeout_ms=timeout_ms)
    links = [ModuleLink(bus="scan", address=a, position=i + 1) for i, a in enumerate(addresses)]
    poller = _ScanPoller(bus, links, hub=Hub(), stale_after_s=60)
    findings = {a: Finding(a) for a in addresses}
    report = ScanReport(findings=list(findings.values()), family=family)
    transport = SerialTransport(url, baud=baud)
    await transport.open()
    try:
        # listen first: a bus where someone else is master must not get a second one
        reader = FrameReader()
        loop = asyncio.get_running_loop()
        end = loop.time() + listen_s
        while (wait := end - loop.time()) > 0:
            data = await transport.read(wait)
            report.foreign_bytes += len(data)
            report.foreign_frames += sum(1 for item in reader.feed(data)
                                         if isinstance(item, Frame))
        if report.foreign_frames:
            return report
        d = poller.dialect
        for link in links:
            finding = findings[link.address]
            request = d.request(d.ANALOG, link.address)
            garbage = poller.state.counters.garbage_bytes
            answer, errors = await poller.ask(transport, link, request)
            for exc in errors:
                _note(finding, exc, analog=True)
            finding.unreadable = poller.state.counters.garbage_bytes > garbage and not errors
            if answer is not None:
                await _read_identity(poller, transport, link, finding, family)
            if finding.garbled or finding.unreadable or finding.rtn in RTN_GARBLED_REQUEST:
                finding.evidence = await _sample(transport, bus, request, d)
    finally:
        await transport.close()
    report.judge()
    return report


async def _read_identity(poller: _ScanPoller, transport: SerialTransport, link: ModuleLink,
                         finding: Finding, family: str) -> None:
    """The identity commands of a module whose analog answer decoded."""
    d = poller.dialect
    finding.answered = True
    ident = None
    missing: dict[int, str] = {}
    for request, merge in d.identity_requests(link.address):
        got, errors = await poller.ask(transport, link, request)
        for exc in errors:
            _note(finding, exc, analog=False)
        if got is not None:
            ident = merge(ident, got)
        else:
            missing[request.cid2] = _why_not(request.cid2, errors, family)
    finding.identity = _identity_text(d, ident, missing)


async def _sample(transport: SerialTransport, bus: BusSettings, request: Frame,
                  dialect: Dialect) -> LineEvidence:
    """Ask ``request`` ``SAMPLES`` times and keep all that arrives in each answer window:
    up to the timeout for the first byte, then until the line has been quiet for the
    byte timeout (so that a second answer, from a second module, is caught too)."""
    evidence = LineEvidence()
    loop = asyncio.get_running_loop()
    wire = encode_frame(request)
    quiet = bus.byte_timeout_ms / 1000
    for _ in range(SAMPLES):
        await transport.discard_input()
        await transport.write(wire)
        first = loop.time() + wire_time_s(len(wire), bus.baud) + bus.effective_timeout_ms / 1000
        give_up = first + wire_time_s(MAX_FRAME_BYTES, bus.baud) + quiet
        data = bytearray()
        while (wait := (first if not data else min(give_up, loop.time() + quiet))
               - loop.time()) > 0:
            chunk = await transport.read(wait)
            if not chunk:
                break
            data += chunk
        evidence.add(bytes(data), request, dialect)
        await asyncio.sleep(bus.effective_gap_ms / 1000)
    return evidence


def _note(finding: Finding, exc: ProtocolError, *, analog: bool) -> None:
    if isinstance(exc, AddressError):
        finding.wrong_addresses.add(exc.actual)
    elif isinstance(exc, RtnError):
        if analog:
            finding.rtn = exc.rtn
    elif _misfit(exc):
        if analog:
            finding.misfit = str(exc)
    elif exc.kind in GARBLED:
        finding.garbled += 1


def _misfit(exc: ProtocolError) -> bool:
    """A well-formed answer whose payload does not fit the family's layout."""
    return isinstance(exc, LayoutError) or (isinstance(exc, LengthError)
                                            and exc.family is not None)


def _why_not(cid2: int, errors: list[ProtocolError], family: str) -> str:
    """Why an identity command gave nothing."""
    for exc in errors:
        if isinstance(exc, RtnError):
            why = f"0x{cid2:02X} refused with RTN 0x{exc.rtn:02X} ({exc.meaning})"
            return why + (": not supported by this firmware" if exc.rtn == 0x04 else "")
        if _misfit(exc):
            return f"the answer to 0x{cid2:02X} does not fit the {family} layout"
    if any(exc.kind in GARBLED for exc in errors):
        return f"the answer to 0x{cid2:02X} was garbled"
    return f"no answer to 0x{cid2:02X}"


def _identity_text(d: Dialect, ident: Identity | None, missing: dict[int, str]) -> str:
    parts = []
    for name, label in IDENTITY_FIELDS:
        value = getattr(ident, name) if ident is not None else None
        if value:
            parts.append(f"{label} {value}")
        elif name in ALWAYS_SHOWN:
            commands = d.identity_commands(name)
            why = [missing[c] for c in commands if c in missing]
            if not commands:
                parts.append(f"{label}: not reported by {d.family.value}")
            elif why:
                parts.append(f"{label}: " + "; ".join(why))
            else:
                parts.append(f"{label}: empty in the answer")
    return ", ".join(parts)


def _usage_problem(exc: pydantic.ValidationError) -> str:
    """One line naming the scan options a BusSettings validation error is about."""
    problems = []
    for err in exc.errors():
        message = err["msg"].removeprefix("Value error, ")
        loc = err["loc"]
        option = OPTIONS.get(str(loc[0])) if loc else None
        problems.append(f"{option} {err['input']}: {message}" if option else message)
    return "; ".join(problems)


def run(args: argparse.Namespace) -> int:
    profile = PROFILES[args.family]
    try:
        addresses = parse_addresses(args.addresses)
        expected = parse_addresses(args.expect) if args.expect else None
        lowest = max(1, profile.addresses.start)  # 0 is a stand-alone pack, never polled
        outside = [a for a in addresses + (expected or [])
                   if a < lowest or a not in profile.addresses]
        if outside or not addresses:
            raise ValueError(f"{args.family} addresses are {lowest}.."
                             f"{profile.addresses.stop - 1}; {outside or 'none'} given")
        if not args.listen_s >= 0:
            raise ValueError(f"--listen-s {args.listen_s}: must be 0 or more")
        bus_settings(args.port, family=args.family, addresses=addresses, baud=args.baud,
                     timeout_ms=args.timeout_ms)
    except pydantic.ValidationError as exc:
        print(f"bms-gateway scan: {_usage_problem(exc)}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"bms-gateway scan: {exc}", file=sys.stderr)
        return 2
    print(f"scanning {args.port} ({args.family}, {args.baud} Bd) addresses "
          f"{args.addresses}", flush=True)
    try:
        report = asyncio.run(scan_bus(args.port, family=args.family, addresses=addresses,
                                      baud=args.baud, timeout_ms=args.timeout_ms,
                                      listen_s=args.listen_s))
    except TransportError as exc:
        print(f"bms-gateway scan: cannot use the port: {exc}", file=sys.stderr)
        return 1
    for f in report.responders():
        print(f"  address {f.address:2d}: {f.describe()}")
    problems = report.diagnoses(expected)
    for line in problems:
        print(f"! {line}")
    n = len(report.responders())
    print(f"{n} module{'s' if n != 1 else ''} answered")
    return 0 if n and not problems else 1
