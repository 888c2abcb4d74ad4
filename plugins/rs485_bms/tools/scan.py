"""``bms-gateway scan``: who is on the bus, and what is wrong with it.

The diagnoses speak the module manual's troubleshooting table ("BMS cannot communicate
with dynamic ring"): the BMS address differs from the address queried, several modules
with one address, serial port setting, RS485 communication line sequence, physical
connection. A module that answers with an error code (RTN) is present: it is listed,
and the code says what it refused.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass, field
from typing import Any

import pydantic

from gateway.hub import Hub
from gateway.model import Identity

from plugins.rs485_bms.poller.dialect import Dialect
from plugins.rs485_bms.poller.link import ModuleLink
from plugins.rs485_bms.protocol import (
    PROFILES,
    AddressError,
    Frame,
    FrameReader,
    LayoutError,
    LengthError,
    ProtocolError,
    RtnError,
    rtn_meaning,
)
from plugins.rs485_bms.settings import BusSettings, parse_addresses
from plugins.rs485_bms.poller.source import BusPoller
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
GARBLED = ("chksum", "lchksum", "truncated", "non_hex", "length")
#: Identity fields listed for every responder: each is shown, or why it is missing.
IDENTITY_FIELDS = (("serial", "serial"), ("pack_serial", "pack serial"),
                   ("firmware", "firmware"), ("model", "model"))
ALWAYS_SHOWN = ("serial", "firmware")

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
            if f.garbled and not f.present:
                out.append(f"address {f.address}: garbled answers ({f.garbled}): two modules "
                           "probably share this DIP address, or the line is noisy")
            elif f.garbled:
                out.append(f"address {f.address}: answered, but {f.garbled} answers were "
                           "garbled (collision with a duplicate address or line noise)")
        if not self.responders() and not any(f.wrong_addresses for f in self.findings):
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
            answer, errors = await poller.ask(transport, link, d.request(d.ANALOG, link.address))
            for exc in errors:
                _note(finding, exc, analog=True)
            if answer is None:
                continue
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
    finally:
        await transport.close()
    return report


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
