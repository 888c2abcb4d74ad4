"""Fixtures of the http tests: a synthetic bank snapshot.

12 modules x 16 cells x 6 sensors on two buses. Position 3 discharges with a warning,
a protection and a sampling IC fault (the ERR light flashes 6 times), 5 is stale,
8 offline, 11 never seen, 12 charges; two alarms are active.
"""

from __future__ import annotations

import dataclasses

import pytest

from gateway.bank import make_bank_aggregates
from gateway.hub import Hub
from gateway.model import (
    Alarm,
    BankSnapshot,
    BmsStatus,
    BusStatus,
    Condition,
    Fault,
    Identity,
    LinkCounters,
    LinkState,
    ModuleReading,
    ModuleStatus,
    Severity,
    State,
    Telemetry,
    TempRole,
)

T0 = 1000.0
WALL0 = 1_760_000_000.0
CELLS = 16
ROLES = (TempRole.CELL,) * 4 + (TempRole.MOSFET, TempRole.AMBIENT)
FAULTED, STALE, OFFLINE, NEVER_SEEN, CHARGING = 3, 5, 8, 11, 12


def make_module(position: int, now: float = T0, *, status=ModuleStatus.OK) -> ModuleReading:
    bus, address = ("rack-a", position) if position <= 6 else ("rack-b", position - 6)
    if status is ModuleStatus.NEVER_SEEN:
        return ModuleReading(bus=bus, address=address, position=position, status=status,
                             counters=LinkCounters(timeouts=30))
    cells = tuple(3290 + (position * 5 + i * 3) % 29 for i in range(CELLS))
    current = 4_250 if position == CHARGING else -(9_000 + 125 * position)
    bms = BmsStatus(states=State.CHARGE_FET_ON | State.DISCHARGE_FET_ON,
                    balancing=tuple(i == 4 for i in range(CELLS)))
    if position == FAULTED:
        bms = BmsStatus(warnings=Condition.LOW_CAPACITY,
                        protections=Condition.CELL_OVER_VOLTAGE, faults=Fault.SAMPLING_IC,
                        states=State.DISCHARGE_FET_ON)
    age = {ModuleStatus.OK: 1.5, ModuleStatus.STALE: 50.0, ModuleStatus.OFFLINE: 400.0}[status]
    link = {ModuleStatus.OK: LinkState.ONLINE, ModuleStatus.STALE: LinkState.SUSPECT,
            ModuleStatus.OFFLINE: LinkState.OFFLINE}[status]
    return ModuleReading(
        bus=bus, address=address, position=position, status=status, link=link,
        updated_at=now - age, stale_after_s=30.0 if status is ModuleStatus.OK else None,
        identity=Identity(serial=f"PK{position:04d}", firmware="V2.5"),
        telemetry=Telemetry(cell_mv=cells, temp_dc=(221 + position, 224, -15, 230, 301, 187),
                            temp_roles=ROLES, current_ma=current, voltage_mv=sum(cells),
                            remaining_mah=60_000 + 1000 * position, full_mah=98_000,
                            design_mah=100_000, cycles=200 + position,
                            soc_permille=600 + 10 * position, soh_permille=990 - position),
        bms=bms,
        counters=LinkCounters(frames_ok=500 + position, timeouts=position, checksum_errors=1))


def make_snapshot(now: float = T0) -> BankSnapshot:
    status = {STALE: ModuleStatus.STALE, OFFLINE: ModuleStatus.OFFLINE,
              NEVER_SEEN: ModuleStatus.NEVER_SEEN}
    modules = tuple(make_module(p, now, status=status.get(p, ModuleStatus.OK))
                    for p in range(1, 13))
    alarms = (
        Alarm(seq=7, kind="fault_sampling_ic", severity=Severity.CRITICAL, position=FAULTED,
              raised_at=now - 20, raised_wall_time=WALL0 - 20,
              text="module 3 BMS fault: sampling IC communication failure (ERR 6x)"),
        Alarm(seq=9, kind="module_offline", severity=Severity.MAJOR, position=OFFLINE,
              raised_at=now - 300, raised_wall_time=WALL0 - 300, text="module 8 offline"),
    )
    buses = (
        BusStatus(name="rack-a", port="/dev/ttyUSB0", connected=True, last_cycle_ms=1800,
                  last_cycle_at=now - 1.0, cycles=120, reconnects=1,
                  counters=LinkCounters(frames_ok=3000, timeouts=7, checksum_errors=2)),
        BusStatus(name="rack-b", port="socket://10.0.0.5:4001", connected=False, cycles=80),
    )
    return BankSnapshot(seq=55, created_at=now, wall_time=WALL0, modules=modules,
                        buses=buses, alarms=alarms, alarm_last_seq=9,
                        bank=make_bank_aggregates(modules,
                                                  alarmed_positions=(a.position for a in alarms)))


@pytest.fixture
def snapshot() -> BankSnapshot:
    return make_snapshot()


class _Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class _Alarms:
    """A processor that puts the synthetic alarm table into every snapshot."""

    def __init__(self, alarms, last_seq) -> None:
        self.alarms, self.last_seq = alarms, last_seq

    def process(self, snapshot, now):
        return dataclasses.replace(snapshot, alarms=self.alarms,
                                   alarm_last_seq=self.last_seq), ()


def make_hub(clock) -> Hub:
    """A hub that published the synthetic bank through its public API."""
    snap = make_snapshot(clock.now)
    hub = Hub(clock=clock, wall_clock=lambda: WALL0)
    hub.add_processor(_Alarms(snap.alarms, snap.alarm_last_seq))
    hub.update("test", modules=snap.modules, buses=snap.buses)
    return hub


@pytest.fixture
def hub(clock) -> Hub:
    return make_hub(clock)


def replace_module(snap: BankSnapshot, position: int, **changes) -> BankSnapshot:
    modules = tuple(dataclasses.replace(m, **changes) if m.position == position else m
                    for m in snap.modules)
    return dataclasses.replace(snap, modules=modules)


@pytest.fixture
def bank():
    """This module: the synthetic bank's constants and builders, for the tests."""
    import sys

    return sys.modules[__name__]
