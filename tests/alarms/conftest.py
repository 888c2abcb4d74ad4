"""Builders for the alarm tests: healthy 16-cell LFP modules, snapshots, and a driver
that feeds snapshots to the pure rules at chosen (fake) times. Nothing here sleeps."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
import types
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest

from gateway.bank import make_bank_aggregates
from gateway.model import (
    BankSnapshot,
    BmsStatus,
    BusStatus,
    LinkCounters,
    LinkState,
    ModuleReading,
    ModuleStatus,
    Telemetry,
    TempRole,
)

from plugins.alarms import rules
from plugins.alarms.settings import AlarmsSettings

WALL0 = 1_795_000_000.0
ROLES = (TempRole.CELL,) * 4 + (TempRole.MOSFET, TempRole.AMBIENT)
LINK = {ModuleStatus.OK: LinkState.ONLINE, ModuleStatus.STALE: LinkState.SUSPECT,
        ModuleStatus.OFFLINE: LinkState.OFFLINE, ModuleStatus.NEVER_SEEN: LinkState.NEVER_SEEN}


def module(position: int, *, now: float = 0.0, status: ModuleStatus = ModuleStatus.OK,
           cells: Sequence[int | None] | None = None, cell: tuple[int, int] | None = None,
           temps: Sequence[int | None] | None = None, current_ma: int | None = -5000,
           voltage_mv: int | None = None, soc: int | None = 700, soh: int | None = 960,
           bms: BmsStatus | None = None, bus: str = "b1", address: int | None = None,
           counters: LinkCounters | None = None, age_s: float = 1.0) -> ModuleReading:
    """A healthy module (3.300 V cells, 25-33 degC, discharging 5 A) unless told
    otherwise; ``cell=(n, mv)`` sets one cell."""
    values = list(cells) if cells is not None else [3300 + (i % 3) for i in range(16)]
    if cell is not None:
        values[cell[0] - 1] = cell[1]
    known = [v for v in values if v is not None]
    seen = status is not ModuleStatus.NEVER_SEEN
    return ModuleReading(
        bus=bus, address=position if address is None else address, position=position,
        status=status, link=LINK[status], updated_at=now - age_s if seen else None,
        telemetry=Telemetry(
            cell_mv=tuple(values), temp_dc=tuple(temps) if temps is not None
            else (250, 252, 251, 253, 330, 240), temp_roles=ROLES, current_ma=current_ma,
            voltage_mv=voltage_mv if voltage_mv is not None else sum(known),
            remaining_mah=70_000, full_mah=100_000, design_mah=100_000, cycles=10,
            soc_permille=soc, soh_permille=soh) if seen else None,
        bms=(bms or BmsStatus()) if seen else None,
        counters=counters or LinkCounters(frames_ok=100))


def bus(name: str = "b1", *, now: float = 0.0, connected: bool = True,
        cycle_age_s: float | None = 1.0) -> BusStatus:
    return BusStatus(name=name, port="socket://127.0.0.1:4001", connected=connected,
                     last_cycle_ms=800,
                     last_cycle_at=None if cycle_age_s is None else now - cycle_age_s)


def snapshot(modules: Iterable[ModuleReading], now: float, *,
             buses: Sequence[BusStatus] | None = None) -> BankSnapshot:
    mods = tuple(sorted(modules, key=lambda m: m.position))
    if buses is None:
        buses = tuple(bus(n, now=now) for n in sorted({m.bus for m in mods}))
    return BankSnapshot(seq=1, created_at=now, wall_time=WALL0 + now, modules=mods,
                        buses=tuple(buses), bank=make_bank_aggregates(mods))


class Driver:
    """Feeds snapshots to :func:`rules.evaluate` and keeps what came out."""

    def __init__(self, settings: AlarmsSettings | dict | None = None,
                 state: rules.AlarmState | None = None) -> None:
        self.settings = (settings if isinstance(settings, AlarmsSettings)
                         else AlarmsSettings.model_validate(settings or {}))
        self.state = state or rules.AlarmState()
        self.transitions: list[rules.Transition] = []

    def step(self, now: float, modules: Iterable[ModuleReading] | None = None, *,
             snap: BankSnapshot | None = None, buses: Sequence[BusStatus] | None = None
             ) -> list[rules.Transition]:
        if snap is None:
            snap = snapshot(modules or (), now, buses=buses)
        out = rules.evaluate(self.state, snap, now, self.settings)
        self.state = out.state
        self.transitions.extend(out.transitions)
        return list(out.transitions)

    def run(self, times: Iterable[float], make) -> list[rules.Transition]:
        """``step`` at each time with the modules ``make(t)`` returns."""
        out: list[rules.Transition] = []
        for t in times:
            out += self.step(t, make(t))
        return out

    @property
    def active(self) -> dict[tuple[str, int], rules.Alarm]:
        return {(a.kind, a.position): a for a in self.state.alarms}

    def of(self, action: rules.Action, kind: str | None = None) -> list[rules.Transition]:
        return [t for t in self.transitions
                if t.action is action and (kind is None or t.alarm.kind == kind)]


@pytest.fixture(scope="session")
def alarm_bank() -> types.SimpleNamespace:
    return types.SimpleNamespace(module=module, bus=bus, snapshot=snapshot, Driver=Driver,
                                 WALL0=WALL0, replace=dataclasses.replace)


def load_helpers() -> types.ModuleType:
    """tests/alarms/trapd.py (snmptrapd and gateway subprocess helpers), loaded by path."""
    name = "bms_gateway_alarm_e2e_helpers"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("trapd.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def e2e() -> types.ModuleType:
    return load_helpers()
