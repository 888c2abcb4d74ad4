"""The bank simulator: the device side of the protocol, over TCP or a pseudo-terminal.

Structure (sans-IO core, thin servers):

* :class:`BankSimulator.respond` is pure: a request frame and the simulator time in,
  a list of :class:`Emission` out (what bytes, after how long, and whether the
  connection drops). Packs answer their own address like a cascaded bank; the lowest
  address (pack #1, the master) also answers INFO = FF for the whole bank.
* The servers feed incoming bytes to the codec's reader and release each answer at
  the wire speed of the configured baud rate (10 bits per byte for 8N1), after the
  request's own wire time and the BMS turnaround, so a poller sees real-bus timing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import sys
import time
import tty
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from plugins.rs485_bms.dialect import SimEncoder, make_sim_encoder
from plugins.rs485_bms.physics import PackState, SimPack
from plugins.rs485_bms.protocol import Frame
from plugins.rs485_bms.scenario import FaultKind, Scenario, load_scenario
from plugins.rs485_bms.settings import Family

log = logging.getLogger(__name__)

BITS_PER_BYTE = 10
FOREIGN_PERIOD_S = 0.2  #: how often a foreign master polls (fault foreign_master)


@dataclass(frozen=True, slots=True)
class Emission:
    delay_s: float  #: after the end of the request, before the first byte
    data: bytes
    drop: bool = False  #: close the connection after sending (transport_drop)


class BankSimulator:
    def __init__(self, *, family: Family | str, addresses: list[int], baud: int = 9600,
                 turnaround_ms: int = 25, seed: int = 1, scenario: Scenario | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.family = Family(family)
        self.addresses = sorted(addresses)
        self.baud = baud
        self.turnaround_s = turnaround_ms / 1000
        self.scenario = scenario or Scenario()
        self.clock = clock
        self.started = clock()
        self.packs = {a: SimPack(a, seed=seed) for a in self.addresses}
        self.encoder: SimEncoder = make_sim_encoder(self.family)
        check_scenario(self.scenario, self.family)
        self._rnd = random.Random(seed)
        self.requests = 0
        self.bad_requests = 0
        #: the pack states of the last analog answer per address (what the wire carried)
        self.sent: dict[int, PackState] = {}

    @property
    def master(self) -> int:
        return self.addresses[0]

    def byte_time(self) -> float:
        return BITS_PER_BYTE / self.baud

    def t(self) -> float:
        return self.clock() - self.started

    # ----------------------------------------------------------------- pure core ---
    def respond(self, request: Frame, t: float) -> list[Emission]:
        """What the bus carries in answer to one valid request frame."""
        self.requests += 1
        adr, cid2, info = request.adr, request.cid2, request.info
        if any(s.fault is FaultKind.TRANSPORT_DROP for s in self.scenario.active(t)):
            return [Emission(0.0, b"", drop=True)]
        all_packs = info[:1] == b"\xff" and adr == self.master
        if all_packs:
            responders = [self.master]
        elif adr in self.packs:
            responders = [adr]
        else:
            return []
        steps = self.scenario.active(t, responders[0], cid2)
        if any(s.fault is FaultKind.SILENCE for s in steps):
            return []
        frame = self._answer(request, t, all_packs=all_packs)
        delay = self.turnaround_s
        for step in steps:
            kind = step.fault
            if kind in (FaultKind.DELAY, FaultKind.LATE):
                delay += step.delay_ms / 1000
            elif kind is FaultKind.WRONG_ADDRESS:
                frame = self._answer(request, t, all_packs=all_packs,
                                     answer_adr=step.wrong_address)
            elif kind is FaultKind.CORRUPT and len(frame) > 3:
                i = self._rnd.randrange(1, len(frame) - 1)
                frame = frame[:i] + bytes([_other_hex(frame[i])]) + frame[i + 1:]
            elif kind is FaultKind.TRUNCATE:
                # stop before the checksum, as some firmwares do: CR right after the data
                frame = frame[:-5] + b"\r"
            elif kind is FaultKind.DUPLICATE_ADDRESS:
                twin = self._answer(request, t + 37.0, all_packs=all_packs, record=False)
                frame = _collide(frame, twin)
        return [Emission(delay, frame)]

    def _answer(self, request: Frame, t: float, *, all_packs: bool,
                answer_adr: int | None = None, record: bool = True) -> bytes:
        adr = request.adr
        states = []
        flags: dict[str, int] = {}
        zero = False
        for a in (self.addresses if all_packs else [adr]):
            override = {}
            for step in self.scenario.active(t, a):
                if step.fault is FaultKind.CELL_RAMP:
                    override[step.cell] = step.ramp_mv(t)
                elif step.fault is FaultKind.FLAGS and not all_packs:
                    flags.update(step.flags)
                elif step.fault is FaultKind.ALL_ZERO and not all_packs:
                    zero = True
            states.append(self.packs[a].state(t, cell_override=override))
            if request.cid2 == 0x42 and answer_adr is None and record:
                self.sent[a] = states[-1]
        return self.encoder.answer(
            request, states=states, flags=flags, all_zero=zero, all_packs=all_packs,
            identities=[self.identity(a) for a in (self.addresses if all_packs else [adr])],
            answer_adr=answer_adr)

    def foreign_request(self) -> bytes:
        """A request another master sends on the bus (to the last pack)."""
        return self.encoder.foreign_request(self.addresses[-1])

    def identity(self, adr: int) -> dict[str, str]:
        return {"serial": f"SIM{self.family.value[:2].upper()}{adr:02d}2411{adr * 7919 % 10000:04d}",
                "firmware": "P16S100A-SIM-1.00", "model": f"SIM-{self.family.value}"}

    # ------------------------------------------------------------------ serving -----
    async def _serve_stream(self, read: Callable[[], Awaitable[bytes]],
                            write: Callable[[bytes], Awaitable[None]]) -> None:
        """Answer requests on one byte stream until it closes or a drop is injected."""
        reader = self.encoder.reader()
        bt = self.byte_time()
        loop = asyncio.get_running_loop()
        pending_read: asyncio.Future[bytes] | None = None
        try:
            while True:
                if pending_read is None:
                    pending_read = asyncio.ensure_future(read())
                done, _ = await asyncio.wait({pending_read}, timeout=FOREIGN_PERIOD_S)
                if not done:
                    if any(st.fault is FaultKind.FOREIGN_MASTER for st in self.scenario.active(self.t())):
                        await _paced_write(loop, write, self.foreign_request(), bt)
                    continue
                data, pending_read = pending_read.result(), None
                if not data:
                    return
                arrived = loop.time()
                for item in reader.feed(data):
                    request = self.encoder.parse_request(item)
                    if request is None:
                        self.bad_requests += 1
                        continue
                    # a TCP converter hands the request over at once; on the RS485 pair it
                    # still takes its own wire time before the pack can start answering
                    start = max(arrived, loop.time()) + len(request.wire) * bt
                    for em in self.respond(request, self.t()):
                        if em.drop:
                            return
                        await _sleep_until(loop, start + em.delay_s)
                        await _paced_write(loop, write, em.data, bt)
                        start = loop.time()
        finally:
            if pending_read is not None:
                pending_read.cancel()

    async def serve_tcp(self, host: str, port: int, *,
                        on_listening: Callable[[int], Awaitable[None]] | None = None) -> None:
        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            async def write(b: bytes) -> None:
                w.write(b)
                await w.drain()
            try:
                await self._serve_stream(lambda: r.read(4096), write)
            except (ConnectionError, OSError):
                pass
            finally:
                w.close()
                with contextlib.suppress(ConnectionError, OSError):
                    await w.wait_closed()

        server = await asyncio.start_server(handle, host, port)
        bound = server.sockets[0].getsockname()[1]
        async with server:
            if on_listening is not None:
                await on_listening(bound)
            await server.serve_forever()

    async def serve_pty(self, *, on_ready: Callable[[str], Awaitable[None]] | None = None,
                        ) -> None:
        """Serve on a new pseudo-terminal until a transport_drop closes it."""
        loop = asyncio.get_running_loop()
        master, slave = os.openpty()
        tty.setraw(slave)
        path = os.ttyname(slave)
        os.set_blocking(master, False)
        queue: asyncio.Queue[bytes] = asyncio.Queue()

        def readable() -> None:
            try:
                queue.put_nowait(os.read(master, 4096))
            except OSError:
                queue.put_nowait(b"")

        loop.add_reader(master, readable)

        async def write(b: bytes) -> None:
            view = memoryview(b)
            while view:
                try:
                    n = os.write(master, view)
                except BlockingIOError:
                    await asyncio.sleep(0.001)
                    continue
                view = view[n:]
        try:
            if on_ready is not None:
                await on_ready(path)
            await self._serve_stream(queue.get, write)
        finally:
            loop.remove_reader(master)
            os.close(master)
            os.close(slave)


def check_scenario(scenario: Scenario, family: Family) -> None:
    """Raise ValueError if a ``flags`` step names a status field the family lacks."""
    fields = make_sim_encoder(family).status_fields()
    for i, step in enumerate(scenario.steps):
        unknown = sorted(set(step.flags) - fields)
        if unknown:
            raise ValueError(f"steps.{i}.flags: {', '.join(unknown)} is not a "
                             f"{Family(family).value} status field (known: "
                             f"{', '.join(sorted(fields))})")


def _other_hex(b: int) -> int:
    return ord("A") if b != ord("A") else ord("B")


def _collide(a: bytes, b: bytes) -> bytes:
    """Two transmitters on one pair: where they differ the receiver sees garbage."""
    n = max(len(a), len(b))
    a, b = a.ljust(n, b"\xff"), b.ljust(n, b"\xff")
    return bytes(x & y for x, y in zip(a, b))


async def _sleep_until(loop: asyncio.AbstractEventLoop, when: float) -> None:
    delay = when - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)


async def _paced_write(loop: asyncio.AbstractEventLoop, write, data: bytes, bt: float) -> None:
    """Release ``data`` at wire speed: each chunk no earlier than its bytes' due time."""
    start = loop.time()
    chunk = max(1, int(0.004 / bt))  # about 4 ms of bytes per write
    for i in range(0, len(data), chunk):
        await _sleep_until(loop, start + i * bt)
        await write(data[i:i + chunk])
    await _sleep_until(loop, start + len(data) * bt)


def run_command(args: argparse.Namespace) -> int:
    """``bms-gateway simulate``."""
    from gateway.config import ConfigError

    try:
        scenario = load_scenario(args.scenario) if args.scenario else None
        if scenario is not None:
            check_scenario(scenario, Family(args.family))
    except ConfigError as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        return 78
    except ValueError as exc:
        print(f"{args.scenario}: {exc}", file=sys.stderr)
        return 78
    addresses = list(range(args.first_address, args.first_address + args.packs))
    if addresses[-1] > 15:
        print(f"bms-gateway simulate: {args.packs} packs from address {args.first_address} "
              "go past address 15", file=sys.stderr)
        return 2
    sim = BankSimulator(family=args.family, addresses=addresses, baud=args.baud,
                        turnaround_ms=args.turnaround_ms, seed=args.seed, scenario=scenario)

    async def main() -> None:
        if args.pty:
            async def ready(path: str) -> None:
                print(path, flush=True)
            await sim.serve_pty(on_ready=ready)
            return
        url = args.listen
        if not url.startswith("tcp://") or ":" not in url[6:]:
            raise SystemExit(f"bms-gateway simulate: --listen wants tcp://HOST:PORT, not {url!r}")
        host, _, port = url[6:].rpartition(":")

        async def listening(bound: int) -> None:
            print(f"tcp://{host}:{bound}", flush=True)
            log.info("simulated %d-pack %s bank on tcp://%s:%d", len(addresses),
                     sim.family.value, host, bound)
        await sim.serve_tcp(host, int(port), on_listening=listening)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"bms-gateway simulate: {exc}", file=sys.stderr)
        return 1
    return 0

