"""Fixtures of the modbus_tcp tests: a synthetic bank and an in-process server.

The bank: 12 modules x 16 cells x 6 temperature sensors on one bus, DIP addresses 2-13
at positions 1-12. Position 5 is stale, 8 offline, 11 never seen; the bank discharges
(negative current) while module 12 charges; module 3 reports a warning, a protection,
a fault, balancing cells and an unclassified flag; two alarms are active.

The server runs in its own event loop in a thread, over a Hub the test feeds; clients
(mbpoll, pysunspec2, raw sockets) talk to it across real TCP sockets on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import struct
import threading
import time
import types
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from gateway.hub import Hub
from gateway.model import (
    Alarm,
    BankSnapshot,
    BmsStatus,
    Condition,
    Fault,
    Identity,
    LinkCounters,
    LinkState,
    ModuleReading,
    ModuleStatus,
    RawFlag,
    Severity,
    State,
    Telemetry,
    TempRole,
)
from plugins.modbus_tcp.register_map import DeviceInfo
from plugins.modbus_tcp.server import ModbusTcpServer
from plugins.modbus_tcp.settings import ModbusTcpSettings

CELLS = 16
TEMP_ROLES = (TempRole.CELL,) * 4 + (TempRole.MOSFET, TempRole.AMBIENT)
STALE, OFFLINE, NEVER_SEEN = 5, 8, 11
TROUBLED = 3  #: the module with BMS warnings, protections, faults and balancing
CHARGING = 12
DEVICE = DeviceInfo(version="0.1.0", serial="site-7-bank-A", device_address=1)


def make_module(position: int, now: float, *, status: ModuleStatus = ModuleStatus.OK,
                age_s: float = 2.0, current_ma: int | None = None,
                bms: BmsStatus | None = None) -> ModuleReading:
    """One realistic module; values vary with the position so mix-ups show."""
    address = position + 1
    counters = LinkCounters(frames_ok=1000 + position, timeouts=position, checksum_errors=1)
    if status is ModuleStatus.NEVER_SEEN:
        return ModuleReading(bus="bus1", address=address, position=position, status=status,
                             counters=LinkCounters(timeouts=40))
    cells = tuple(3300 + (position * 7 + i * 3) % 41 for i in range(CELLS))
    temps = (231 + position, 236, 240 + position % 5, 228, 302 + position, -35 + position)
    soc = 600 + 25 * position
    full = 100_000 - 500 * position
    telemetry = Telemetry(
        cell_mv=cells, temp_dc=temps, temp_roles=TEMP_ROLES,
        current_ma=-(11_000 + 250 * position) if current_ma is None else current_ma,
        voltage_mv=sum(cells), remaining_mah=full * soc // 1000, full_mah=full,
        design_mah=100_000, cycles=150 + 11 * position, soc_permille=soc,
        soh_permille=1000 - 3 * position)
    link = {ModuleStatus.OK: LinkState.ONLINE, ModuleStatus.STALE: LinkState.SUSPECT,
            ModuleStatus.OFFLINE: LinkState.OFFLINE}[status]
    return ModuleReading(
        bus="bus1", address=address, position=position, status=status, link=link,
        updated_at=now - age_s, identity=Identity(serial=f"PK24{position:06d}"),
        telemetry=telemetry,
        bms=bms or BmsStatus(states=State.CHARGE_FET_ON | State.DISCHARGE_FET_ON
                             | State.DISCHARGING, balancing=(False,) * CELLS),
        counters=counters)


TROUBLED_BMS = BmsStatus(
    warnings=Condition.CELL_UNDER_VOLTAGE | Condition.LOW_CAPACITY,
    protections=Condition.DISCHARGE_OVER_CURRENT,
    faults=Fault.TEMPERATURE_SENSOR,
    states=State.CHARGE_FET_ON | State.BALANCING,
    balancing=tuple(i in (0, 5, 15) for i in range(CELLS)),
    unclassified=(RawFlag(field="status3", bit=6),),
)


def make_bank(now: float, **overrides: ModuleReading) -> list[ModuleReading]:
    """The 12-module bank at monotonic time ``now``; ``overrides`` replace modules by
    position (``m3=...``)."""
    modules = []
    for p in range(1, 13):
        if p == STALE:
            m = make_module(p, now, status=ModuleStatus.STALE, age_s=45.0)
        elif p == OFFLINE:
            m = make_module(p, now, status=ModuleStatus.OFFLINE, age_s=600.0)
        elif p == NEVER_SEEN:
            m = make_module(p, now, status=ModuleStatus.NEVER_SEEN)
        elif p == TROUBLED:
            m = make_module(p, now, bms=TROUBLED_BMS)
        elif p == CHARGING:
            m = make_module(p, now, current_ma=4_200)
        else:
            m = make_module(p, now)
        modules.append(overrides.get(f"m{p}", m))
    return modules


def make_alarms(now: float) -> tuple[Alarm, ...]:
    return (
        Alarm(seq=41, kind="comm_loss", severity=Severity.MAJOR, position=OFFLINE,
              raised_at=now - 500, raised_wall_time=1.7e9, text="module 8 not answering"),
        Alarm(seq=42, kind="cell_voltage_low", severity=Severity.WARNING, position=TROUBLED,
              sub_index=1, value=3001, threshold=3050, raised_at=now - 30,
              raised_wall_time=1.7e9, text="cell 1 of module 3 low"),
    )


class FixedAlarms:
    """A processor standing in for the alarm engine: puts a fixed alarm set on every
    snapshot."""

    def __init__(self, alarms: Sequence[Alarm] = ()) -> None:
        self.alarms = tuple(alarms)

    def process(self, snapshot: BankSnapshot, now: float):
        last = max((a.seq for a in self.alarms), default=snapshot.alarm_last_seq)
        return dataclasses.replace(snapshot, alarms=self.alarms, alarm_last_seq=last), ()


def make_hub(clock: Callable[[], float], alarms: Sequence[Alarm] = ()
             ) -> tuple[Hub, FixedAlarms]:
    hub = Hub(clock=clock, wall_clock=lambda: 1.7e9 + clock())
    processor = FixedAlarms(alarms)
    hub.add_processor(processor)
    return hub, processor


def make_snapshot(now: float, modules: Sequence[ModuleReading] | None = None,
                  alarms: Sequence[Alarm] | None = None) -> BankSnapshot:
    """The snapshot a hub publishes at monotonic time ``now`` (default bank and alarms)."""
    hub, _ = make_hub(lambda: now, make_alarms(now) if alarms is None else alarms)
    return hub.update("rs485_bms", modules=make_bank(now) if modules is None else modules)


@pytest.fixture
def snapshot(clock) -> BankSnapshot:
    """The default bank published at the ``clock`` fixture's time."""
    return make_snapshot(clock.now)


# ------------------------------------------------------------ the running server ------


class RunningServer:
    """A ModbusTcpServer on 127.0.0.1 in a thread's event loop, fed by the test."""

    def __init__(self, settings: ModbusTcpSettings, clock: Any) -> None:
        self.clock = clock
        self.loop = asyncio.new_event_loop()
        self.hub, self.alarms = make_hub(clock, make_alarms(clock.now))
        self.server = ModbusTcpServer(settings, self.hub, clock=clock, device=DEVICE)
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._task = self.call(lambda: self.loop.create_task(self.server.run()))
        asyncio.run_coroutine_threadsafe(
            asyncio.wait_for(self.server.started.wait(), 10), self.loop).result()

    def stop(self) -> None:
        """Stop the server and its loop; stopping twice is allowed."""
        if self.loop.is_closed():
            return

        async def cancel() -> None:
            assert self._task is not None
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        asyncio.run_coroutine_threadsafe(cancel(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` in the server's loop and return its result."""
        async def run() -> Any:
            return fn()
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def publish(self, modules: Sequence[ModuleReading] | None = None,
                alarms: Sequence[Alarm] | None = None) -> BankSnapshot:
        """Publish a snapshot (the default bank at the clock's time) through the hub and
        wait until the server serves it: the run loop packs the new tables in slices while
        requests are answered from the old ones (server.py, _render), so a request sent
        at once may still see the last."""
        def update() -> BankSnapshot:
            if alarms is not None:
                self.alarms.alarms = tuple(alarms)
            return self.hub.update(
                "rs485_bms", modules=make_bank(self.clock.now) if modules is None else modules)
        snapshot = self.call(update)
        deadline = time.monotonic() + 10
        while self.call(lambda: self.server.served_seq) != snapshot.seq:
            assert time.monotonic() < deadline, "the server never served the new snapshot"
            time.sleep(0.002)
        return snapshot

    @property
    def port(self) -> int:
        assert self.server.address is not None
        return self.server.address[1]

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


@pytest.fixture
def make_server(clock) -> Iterator[Callable[..., RunningServer]]:
    """Start servers (settings as keywords, port 0) sharing the ``clock`` fixture."""
    started: list[RunningServer] = []

    def make(**settings: Any) -> RunningServer:
        rs = RunningServer(ModbusTcpSettings(**{"port": 0, **settings}), clock)
        rs.start()
        started.append(rs)
        return rs

    yield make
    for rs in started:
        rs.stop()


@pytest.fixture
def server(make_server: Callable[..., RunningServer]) -> RunningServer:
    """A server with the default settings (bank unit 1), the default bank published."""
    rs = make_server()
    rs.publish()
    return rs


# ------------------------------------------------------------------ raw client ---------


def recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def transact(sock: socket.socket, unit: int, pdu: bytes, tid: int = 0x1234) -> tuple[int, bytes]:
    """Send one request ADU, return (unit, response PDU); checks the MBAP echo."""
    sock.sendall(struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu)
    head = recv_exact(sock, 7)
    rtid, proto, length, runit = struct.unpack(">HHHB", head)
    assert (rtid, proto) == (tid, 0)
    return runit, recv_exact(sock, length - 1)


def read_pdu(function: int, address: int, count: int) -> bytes:
    return struct.pack(">BHH", function, address, count)


def registers_of(pdu: bytes) -> tuple[int, ...]:
    assert pdu[1] == len(pdu) - 2, pdu
    return struct.unpack(f">{pdu[1] // 2}H", pdu[2:])


@pytest.fixture(scope="session")
def mb() -> types.SimpleNamespace:
    """This conftest's helpers for the test modules (``--import-mode=importlib`` does not
    let a test module import its conftest): ``mb.make_bank(...)``, ``mb.transact(...)``."""
    return types.SimpleNamespace(
        make_module=make_module, make_bank=make_bank, make_alarms=make_alarms,
        make_snapshot=make_snapshot, make_hub=make_hub, recv_exact=recv_exact,
        transact=transact, read_pdu=read_pdu, registers_of=registers_of,
        TROUBLED_BMS=TROUBLED_BMS, DEVICE=DEVICE, CELLS=CELLS, TEMP_ROLES=TEMP_ROLES,
        STALE=STALE, OFFLINE=OFFLINE, NEVER_SEEN=NEVER_SEEN, TROUBLED=TROUBLED,
        CHARGING=CHARGING)
