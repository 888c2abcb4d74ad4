"""The bank simulator: the device side of the protocol, over TCP or a pseudo-terminal.

Structure (sans-IO core, thin servers):

* :class:`BankSimulator.respond` is pure: a request frame and the simulator time in,
  a list of :class:`Emission` out (what bytes, after how long, and whether the
  connection drops). Packs answer their own address like a cascaded bank; the lowest
  address (pack #1, the master) also answers INFO = FF for the whole bank, with the
  blocks of the packs it heard from (a silent slave is left out and the pack count
  says so; a slave's ``all_zero`` and ``flags`` change its own block).
* The servers feed incoming bytes to the codec's reader and release each answer at
  the wire speed of the configured baud rate (10 bits per byte for 8N1), after the
  request's own wire time and the BMS turnaround, so a poller sees real-bus timing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import errno
import logging
import os
import random
import signal
import sys
import time
import tty
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from plugins.rs485_bms.sim.encoder import SimEncoder, make_sim_encoder
from plugins.rs485_bms.sim.physics import PackState, SimBank, SimPack
from plugins.rs485_bms.sim.replay import ReplayBank, ReplayError, load_replay
from plugins.rs485_bms.protocol import PROFILES, Frame, parse_frame
from plugins.rs485_bms.sim.scenario import FaultKind, Scenario, load_scenario
from plugins.rs485_bms.protocol.families import ANALOG, STATUS, Family

log = logging.getLogger(__name__)

BITS_PER_BYTE = 10
RTN_CHKSUM = 0x02  #: the return code of a pack that received a request with a bad CHKSUM
FOREIGN_PERIOD_S = 0.2  #: how often a foreign master polls (fault foreign_master)
DIP_ADDRESSES = range(0, 16)  #: a pack's address comes from 4 DIP switches


@dataclass(frozen=True, slots=True)
class Emission:
    delay_s: float  #: after the end of the request, before the first byte
    data: bytes
    drop: bool = False  #: close the connection after sending (transport_drop)


@dataclass(frozen=True, slots=True, kw_only=True)
class PackView:
    """One pack as an answer shows it at one moment: its state and its injected faults."""

    state: PackState
    flags: dict[str, int]  #: raw 0x44 status fields set by ``flags`` steps
    all_zero: bool  #: an ``all_zero`` step is active


class BankSimulator:
    def __init__(self, *, family: Family | str, addresses: list[int], baud: int = 9600,
                 turnaround_ms: int = 25, seed: int = 1, scenario: Scenario | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 replay: ReplayBank | None = None) -> None:
        if baud <= 0:
            raise ValueError(f"baud must be positive, not {baud}")
        if turnaround_ms < 0:
            raise ValueError(f"turnaround_ms must not be negative, not {turnaround_ms}")
        self.family = Family(family)
        self.addresses = sorted(addresses)
        self.baud = baud
        self.turnaround_s = turnaround_ms / 1000
        self.scenario = scenario or Scenario()
        self.clock = clock
        self.started = clock()
        self.packs = {a: SimPack(a, seed=seed) for a in self.addresses}
        #: the packs in parallel: they share the bank current (physics.py)
        self.bank = SimBank(list(self.packs.values()), outages=self.scenario.outages())
        self.encoder: SimEncoder = make_sim_encoder(self.family)
        self.scenario.check(self.family, self.addresses)
        self._rnd = random.Random(seed)
        self.requests = 0
        self.bad_requests = 0
        #: the pack states of the last analog answer per address (what the wire carried)
        self.sent: dict[int, PackState] = {}
        #: answer from a recording instead of the simulated packs (``--replay``)
        self.replay = replay

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
        if self.replay is not None:
            return [Emission(r.delay_s, r.data) for r in self.replay.respond(request)]
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
        reflection = [s for s in steps if s.fault is FaultKind.REFLECTION]
        if reflection and self._hit(request.wire, max(s.rate for s in reflection)):
            # the request reached the pack garbled: it answers "CHKSUM error"
            frame = Frame(ver=self.encoder.profile.ver, adr=request.adr,
                          cid1=self.encoder.profile.cid1, cid2=RTN_CHKSUM).wire
            return [Emission(self.turnaround_s, self._line_faults(frame, steps))]
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
        return [Emission(delay, self._line_faults(frame, steps))]

    def _hit(self, data: bytes, rate: float) -> bool:
        """Whether at least one of ``data``'s bytes is hit at ``rate`` per byte."""
        return any(self._rnd.random() < rate for _ in data)

    def _line_faults(self, frame: bytes, steps: list) -> bytes:
        """What the line does to an answer on its way: bit errors, another baud rate."""
        for step in steps:
            if step.fault in (FaultKind.NOISE, FaultKind.REFLECTION):
                frame = _flip_bits(frame, step.rate, self._rnd)
        for step in steps:
            if step.fault is FaultKind.WRONG_BAUD and step.baud != self.baud:
                frame = _resample(frame, sent_baud=step.baud, line_baud=self.baud)
        return frame

    def _answer(self, request: Frame, t: float, *, all_packs: bool,
                answer_adr: int | None = None, record: bool = True) -> bytes:
        if all_packs and request.cid2 in (ANALOG, STATUS):
            return self._bank_answer(request, t, answer_adr=answer_adr, record=record)
        addresses = self.addresses if all_packs else [request.adr]
        views = [self._view(a, t, request.cid2) for a in addresses]
        if request.cid2 == ANALOG and answer_adr is None and record:
            self.sent.update(zip(addresses, (v.state for v in views)))
        return self.encoder.answer(
            request, states=[v.state for v in views], flags=views[0].flags,
            all_zero=views[0].all_zero, all_packs=all_packs,
            identities=[self.identity(a) for a in addresses], answer_adr=answer_adr)

    def _bank_answer(self, request: Frame, t: float, *, answer_adr: int | None,
                     record: bool) -> bytes:
        """The master's FF answer to 0x42/0x44: INFOFLAG, the number of packs it heard
        from, then their blocks in address order. A silent slave is left out; each
        slave's ``all_zero`` and ``flags`` change only its own block."""
        head = b""
        blocks = []
        for a in self.addresses:
            steps = self.scenario.active(t, a, request.cid2)
            if a != self.master and any(s.fault is FaultKind.SILENCE for s in steps):
                continue
            view = self._view(a, t, request.cid2)
            if request.cid2 == ANALOG and answer_adr is None and record:
                self.sent[a] = view.state
            # each block is encoded on its own, as its pack sent it to the master, and the
            # master concatenates them: an all-zero block may have a layout of its own
            # (Pylontech P=2 next to P=4 blocks), which one multi-pack payload cannot hold
            one = parse_frame(self.encoder.answer(
                request, states=[view.state], flags=view.flags, all_zero=view.all_zero,
                all_packs=True, identities=[self.identity(a)]))
            head = one.info[:1]
            blocks.append(one.info[2:])
        frame = Frame(ver=self.encoder.profile.ver,
                      adr=request.adr if answer_adr is None else answer_adr,
                      cid1=self.encoder.profile.cid1, cid2=0,
                      info=head + bytes([len(blocks)]) + b"".join(blocks))
        return frame.wire

    def _view(self, adr: int, t: float, cid2: int) -> PackView:
        override = {}
        flags: dict[str, int] = {}
        zero = False
        cell_temp_dc: int | None = None
        for step in self.scenario.active(t, adr, cid2):
            if step.fault is FaultKind.CELL_RAMP:
                override[step.cell] = step.ramp_mv(t)
            elif step.fault is FaultKind.CELL_TEMP:
                cell_temp_dc = round(step.degc * 10)
            elif step.fault is FaultKind.FLAGS:
                flags.update(step.flags)
            elif step.fault is FaultKind.ALL_ZERO:
                zero = True
        state = self.bank.state(adr, t, cell_override=override)
        if cell_temp_dc is not None:  # the first four sensors are the cells' in every family
            state = dataclasses.replace(state, temp_dc=(cell_temp_dc,) * 4 + state.temp_dc[4:])
        return PackView(state=state, flags=flags, all_zero=zero)

    def foreign_request(self) -> bytes:
        """A request another master sends on the bus (to the last pack)."""
        return self.encoder.foreign_request(self.addresses[-1])

    def identity(self, adr: int) -> dict[str, str]:
        return {"serial": f"SIM{self.family.value[:2].upper()}{adr:02d}2411{adr * 7919 % 10000:04d}",
                "firmware": "P16S100A-SIM-1.00", "model": f"SIM-{self.family.value}"}

    # ------------------------------------------------------------------ serving -----
    async def _serve_stream(self, read: Callable[[], Awaitable[bytes]],
                            write: Callable[[bytes], Awaitable[None]]) -> bool:
        """Answer requests on one byte stream until it closes (False) or a
        ``transport_drop`` step ends it (True)."""
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
                    return False
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
                            return True
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
                        link: str | None = None) -> None:
        """Serve on a new pseudo-terminal; after a ``transport_drop``, on another one.

        A drop closes the pseudo-terminal (the poller's port fails as if the adapter
        were unplugged) until the drop's ``until_s``; then a new one is opened and
        ``on_ready`` is called again with its path, which may have another number.
        ``link``, if given, is kept a symlink to the current pseudo-terminal and is
        absent while it is gone, so a poller configured with ``link`` finds the new one.
        Returns when a drop without ``until_s`` begins.
        """
        while await self._serve_one_pty(on_ready, link):
            back = self.scenario.transport_back_at(self.t())
            if back is None:
                log.info("transport_drop without until_s: the pseudo-terminal stays closed")
                return
            await asyncio.sleep(max(0.0, back - self.t()))

    async def _serve_one_pty(self, on_ready: Callable[[str], Awaitable[None]] | None,
                             link: str | None) -> bool:
        """Serve one pseudo-terminal; True if a ``transport_drop`` closed it."""
        loop = asyncio.get_running_loop()
        master, slave = os.openpty()
        try:
            tty.setraw(slave)
            path = os.ttyname(slave)
            os.set_blocking(master, False)
            queue: asyncio.Queue[bytes] = asyncio.Queue()

            def readable() -> None:
                try:
                    queue.put_nowait(os.read(master, 4096))
                except OSError:
                    queue.put_nowait(b"")

            async def write(b: bytes) -> None:
                view = memoryview(b)
                while view:
                    try:
                        n = os.write(master, view)
                    except BlockingIOError:
                        await asyncio.sleep(0.001)
                        continue
                    view = view[n:]

            loop.add_reader(master, readable)
            try:
                if link is not None:
                    _point_link(link, path)
                if on_ready is not None:
                    await on_ready(path)
                return await self._serve_stream(queue.get, write)
            finally:
                loop.remove_reader(master)
                if link is not None:
                    _remove_link(link, path)
        finally:
            # the simulator's own slave descriptor keeps the master readable while no
            # poller has the port open; closing the master hangs up the poller's side
            os.close(master)
            os.close(slave)


def bank_addresses(family: Family | str, packs: int, first_address: int) -> list[int]:
    """The DIP addresses of ``packs`` packs from ``first_address``; ValueError saying
    which option to change if they do not fit the family's addresses."""
    name = Family(family).value
    allowed = PROFILES[name].addresses
    lo = max(allowed.start, DIP_ADDRESSES.start)
    hi = min(allowed.stop, DIP_ADDRESSES.stop) - 1
    if packs > hi - lo + 1:
        raise ValueError(f"{name} packs have addresses {lo}..{hi}: at most {hi - lo + 1} "
                         f"packs, so use --packs {hi - lo + 1} or fewer")
    if first_address < lo:
        raise ValueError(f"{name} addresses start at {lo}: use --first-address {lo} "
                         "or higher")
    last = first_address + packs - 1
    if last > hi:
        best = hi - packs + 1
        raise ValueError(f"{packs} packs from address {first_address} go past address "
                         f"{hi}: {packs} packs need --first-address {best}"
                         + (" or lower" if best > lo else ""))
    return list(range(first_address, last + 1))


def _point_link(link: str, target: str) -> None:
    """Make ``link`` a symlink to ``target`` in one step; never replace another file."""
    if os.path.lexists(link) and not os.path.islink(link):
        raise FileExistsError(errno.EEXIST, "exists and is not a symlink", link)
    tmp = f"{link}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, link)


def _remove_link(link: str, target: str) -> None:
    """Remove ``link`` if it still points at ``target``."""
    with contextlib.suppress(OSError):
        if os.readlink(link) == target:
            os.unlink(link)


def _other_hex(b: int) -> int:
    return ord("A") if b != ord("A") else ord("B")


def _flip_bits(data: bytes, rate: float, rnd: random.Random) -> bytes:
    """Line noise: each byte, with probability ``rate``, has one random bit flipped."""
    return bytes(b ^ (1 << rnd.randrange(8)) if rnd.random() < rate else b for b in data)


def _resample(data: bytes, *, sent_baud: int, line_baud: int) -> bytes:
    """The bytes a UART at ``line_baud`` reads from ``data`` sent at ``sent_baud`` (8N1).

    The sender's bit stream (start bit 0, 8 data bits LSB first, stop bit 1, idle 1) is
    sampled like a receiver does: a falling edge starts a byte, each bit is read in the
    middle of its own (receiver) bit time, and after the stop bit it waits for the next
    falling edge."""
    bits: list[int] = []
    for b in data:
        bits += [0, *((b >> i) & 1 for i in range(8)), 1]
    sent, line = 1 / sent_baud, 1 / line_baud

    def level(t: float) -> int:
        i = int(t / sent)
        return bits[i] if 0 <= i < len(bits) else 1

    out = bytearray()
    step = min(sent, line) / 8
    t, end = 0.0, len(bits) * sent
    while t < end:
        if level(t) == 1 or level(t + line / 2) == 1:  # idle, or a glitch, not a start bit
            t += step
            continue
        out.append(sum(level(t + line * (1.5 + i)) << i for i in range(8)))
        t += line * 9.5  # the middle of the stop bit: look for the next start from there
    return bytes(out)


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
    """``bms-gateway simulate``: 2 for a usage error, 78 for a bad scenario file."""
    from gateway.config import ConfigError

    replaying = _replay_simulator(args) if args.replay else None
    if isinstance(replaying, int):
        return replaying
    try:
        addresses = (replaying.addresses if replaying is not None
                     else bank_addresses(args.family, args.packs, args.first_address))
    except ValueError as exc:
        print(f"bms-gateway simulate: {exc}", file=sys.stderr)
        return 2
    if args.pty_link is not None and not args.pty:
        print("bms-gateway simulate: --pty-link goes with --pty", file=sys.stderr)
        return 2
    try:
        scenario = load_scenario(args.scenario) if args.scenario else None
        if scenario is not None:
            scenario.check(Family(args.family), addresses)
    except ConfigError as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        return 78
    except ValueError as exc:
        print(f"{args.scenario}: {exc}", file=sys.stderr)
        return 78
    sim = replaying or BankSimulator(family=args.family, addresses=addresses, baud=args.baud,
                                     turnaround_ms=args.turnaround_ms, seed=args.seed,
                                     scenario=scenario)

    async def main() -> None:
        # SIGINT and SIGTERM end the simulator (the pty is closed and its link removed),
        # also when it was started with SIGINT ignored, as a shell starts `simulate &`
        main_task = asyncio.current_task()
        assert main_task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, main_task.cancel)
        if args.pty:
            async def ready(path: str) -> None:
                print(path, flush=True)  # again after each transport_drop
            await sim.serve_pty(on_ready=ready, link=args.pty_link)
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
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass
    except BrokenPipeError:
        raise  # stdout's reader went away: the command line ends quietly
    except OSError as exc:
        print(f"bms-gateway simulate: {exc}", file=sys.stderr)
        return 1
    return 0


def _replay_simulator(args: argparse.Namespace) -> BankSimulator | int:
    """``--replay FILE...``: the bank that plays the recording back, or the exit status
    (2 for options that contradict it, 1 for an unreadable file, 78 for no capture)."""
    if args.scenario:
        print("bms-gateway simulate: --replay plays a recording: it takes no --scenario",
              file=sys.stderr)
        return 2
    try:
        bank, capture = load_replay(args.replay)
    except OSError as exc:
        print(f"bms-gateway simulate: {exc}", file=sys.stderr)
        return 1
    except ReplayError as exc:
        print(f"bms-gateway simulate: {' '.join(args.replay)}: {exc}", file=sys.stderr)
        return 78
    for problem in capture.problems:
        print(problem, file=sys.stderr)
    log.info("replaying %d exchanges of bus %s (%s, %d Bd) at addresses %s",
             bank.exchanges, bank.header.bus, bank.family, bank.baud,
             ", ".join(map(str, bank.addresses)))
    return BankSimulator(family=bank.family, addresses=bank.addresses, baud=bank.baud,
                         turnaround_ms=0, replay=bank)
