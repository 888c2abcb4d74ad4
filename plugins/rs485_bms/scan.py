"""``bms-gateway scan``: who is on the bus, and what is wrong with it.

The diagnoses speak the module manual's troubleshooting table ("BMS cannot communicate
with the monitoring system"): address differs from the configured one, several modules
with one address, serial settings, RS485 line order, physical connection.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass, field

from gateway.hub import Hub

from plugins.rs485_bms.link import ModuleLink
from plugins.rs485_bms.protocol import PROFILES, Frame, FrameReader
from plugins.rs485_bms.settings import BusSettings, parse_addresses
from plugins.rs485_bms.source import BusPoller
from plugins.rs485_bms.transport import SerialTransport, TransportError

NO_ANSWER_HINTS = (
    "the serial settings differ from the modules' (baud rate, 8N1; PACE 9600, "
    "Pylontech 115200 unless DIP 1 is up, Seplos 9600 or 19200)",
    "the RS485 A/B lines are swapped (RJ45 pin 1/8 = B-, pin 2/7 = A+ on the module)",
    "the cable or the adapter is broken, or the modules' weak-current switch is off",
    "the modules' DIP addresses are outside the scanned range",
)


@dataclass
class Finding:
    address: int
    answered: bool = False
    identity: str = ""
    wrong_addresses: set[int] = field(default_factory=set)
    garbled: int = 0
    timeouts: int = 0


@dataclass
class ScanReport:
    findings: list[Finding]
    foreign_frames: int = 0
    foreign_bytes: int = 0

    def responders(self) -> list[Finding]:
        return [f for f in self.findings if f.answered]

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
            if f.garbled and not f.answered:
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


async def scan_bus(url: str, *, family: str, addresses: list[int], baud: int,
                   timeout_ms: int, listen_s: float) -> ScanReport:
    bus = BusSettings(name="scan", port=url, family=family, baud=baud, addresses=addresses,
                      timeout_ms=timeout_ms, retries=0, gap_ms=None)
    links = [ModuleLink(bus="scan", address=a, position=i + 1) for i, a in enumerate(addresses)]
    poller = BusPoller(bus, links, hub=Hub(), stale_after_s=60)
    findings = {a: Finding(a) for a in addresses}
    report = ScanReport(findings=list(findings.values()))
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
        for link in links:
            finding = findings[link.address]
            poller.on_error = lambda adr, err, f=finding: _note(f, adr, err)
            d = poller.dialect
            answer = await poller.transact(transport, link, d.request(d.ANALOG, link.address))
            finding.timeouts = link.counters.timeouts
            if answer is None:
                continue
            finding.answered = True
            ident = None
            for request, merge in d.identity_requests(link.address):
                got = await poller.transact(transport, link, request)
                if got is not None:
                    ident = merge(ident, got)
            if ident is not None:
                finding.identity = ", ".join(
                    f"{k} {v}" for k, v in (("serial", ident.serial),
                                            ("pack serial", ident.pack_serial),
                                            ("firmware", ident.firmware),
                                            ("model", ident.model)) if v)
    finally:
        await transport.close()
    return report


def _note(finding: Finding, answered_adr: int | None, kind: str) -> None:
    if kind == "address" and answered_adr is not None:
        finding.wrong_addresses.add(answered_adr)
    elif kind in ("chksum", "lchksum", "truncated", "non_hex", "length"):
        finding.garbled += 1


def run(args: argparse.Namespace) -> int:
    profile = PROFILES[args.family]
    try:
        addresses = parse_addresses(args.addresses)
        expected = parse_addresses(args.expect) if args.expect else None
        outside = [a for a in addresses + (expected or []) if a not in profile.addresses]
        if outside or not addresses:
            raise ValueError(f"{args.family} addresses are {profile.addresses.start}.."
                             f"{profile.addresses.stop - 1}; {outside or 'none'} given")
    except ValueError as exc:
        print(f"bms-gateway scan: {exc}", file=sys.stderr)
        return 2
    print(f"scanning {args.port} ({args.family}, {args.baud} Bd) addresses "
          f"{addresses[0]}..{addresses[-1]}", flush=True)
    try:
        report = asyncio.run(scan_bus(args.port, family=args.family, addresses=addresses,
                                      baud=args.baud, timeout_ms=args.timeout_ms,
                                      listen_s=args.listen_s))
    except TransportError as exc:
        print(f"bms-gateway scan: cannot use the port: {exc}", file=sys.stderr)
        return 1
    for f in report.responders():
        print(f"  address {f.address:2d}: answers" + (f"  ({f.identity})" if f.identity else ""))
    problems = report.diagnoses(expected)
    for line in problems:
        print(f"! {line}")
    n = len(report.responders())
    print(f"{n} module{'s' if n != 1 else ''} answered")
    return 0 if n and not problems else 1
