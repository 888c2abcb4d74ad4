"""rectifier_above_ccl: the configured rectifier charge current against the live CCL."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.model import (
    BankSnapshot,
    BmsStatus,
    ModuleReading,
    ModuleStatus,
    Severity,
    Telemetry,
    TempRole,
)
from plugins.alarms import catalog, rules
from plugins.alarms.settings import AlarmsSettings
from plugins.charge_limits.limits import make_charge_limits
from plugins.charge_limits.settings import ChargeLimitsSettings

KIND = "rectifier_above_ccl"
NOW = 1000.0


def module(p: int, *, status=ModuleStatus.OK, high_mv: int = 3300) -> ModuleReading:
    cells = (high_mv,) + (3300,) * 15
    t = Telemetry(cell_mv=cells, temp_dc=(250,) * 4, temp_roles=(TempRole.CELL,) * 4,
                  voltage_mv=sum(cells), current_ma=10_000, design_mah=100_000)
    return ModuleReading(bus="bus1", address=p, position=p, status=status, updated_at=NOW,
                         telemetry=t, bms=BmsStatus())


def snapshot(live: int, *, n: int = 12, rectifier_a: float | None = 240, high_mv: int = 3300,
             limits: bool = True) -> BankSnapshot:
    mods = tuple(module(p, status=ModuleStatus.OK if p <= live else ModuleStatus.OFFLINE,
                        high_mv=high_mv if p == 1 else 3300) for p in range(1, n + 1))
    snap = BankSnapshot(seq=1, created_at=NOW, wall_time=1.7e9, modules=mods)
    if limits:
        lim = make_charge_limits(snap, NOW, ChargeLimitsSettings(rectifier_charge_a=rectifier_a))
        snap = dataclasses.replace(snap, charge_limits=lim)
    return snap


FAST = AlarmsSettings(rectifier_above_ccl={"raise_delay_s": 0, "clear_delay_s": 0},
                      module_offline={"enabled": False})


def run(snapshots, settings=FAST):
    state, out = rules.AlarmState(), []
    for i, snap in enumerate(snapshots):
        outcome = rules.evaluate(state, snap, NOW + i, settings)
        state = outcome.state
        out.extend(t for t in outcome.transitions if t.alarm.kind == KIND)
    return state, out


def test_the_kind_is_in_the_catalog_as_a_bank_alarm_in_milliamperes():
    kind = catalog.KINDS[KIND]
    assert (kind.scope, kind.unit) == (catalog.Scope.BANK, "mA")
    assert AlarmsSettings().rectifier_above_ccl.level is Severity.MAJOR


def test_raised_when_modules_drop_out_and_cleared_when_they_return():
    state, ts = run([snapshot(12), snapshot(9), snapshot(9), snapshot(12)])
    assert [t.action for t in ts] == [rules.Action.RAISED, rules.Action.CLEARED]
    raised, cleared = ts
    a = raised.alarm
    assert a.text == "rectifier set for 12 modules, 9 on line (CCL 180.0 A)"
    assert (a.position, a.value, a.threshold, a.severity) == (0, 240_000, 180_000,
                                                             Severity.MAJOR)
    assert cleared.alarm.text == "rectifier 240 A within CCL 240.0 A"
    assert not state.alarms


def test_a_derating_names_its_reason():
    _, ts = run([snapshot(12, high_mv=3580)])
    assert ts[0].alarm.text == "rectifier 240 A above CCL 31.9 A: cell 1 of module 1 at 3.580 V"


def test_equal_is_not_above():
    _, ts = run([snapshot(12, rectifier_a=240.0)])
    assert ts == []


def test_the_raise_delay_applies():
    slow = AlarmsSettings(rectifier_above_ccl={"raise_delay_s": 10},
                          module_offline={"enabled": False})
    _, ts = run([snapshot(9)] * 5, slow)
    assert ts == []
    _, ts = run([snapshot(9)] * 12, slow)
    assert [t.action for t in ts] == [rules.Action.RAISED]


@pytest.mark.parametrize("later", [
    snapshot(12, rectifier_a=None),  # the operator removed the setting
    snapshot(9, limits=False),  # the charge_limits plugin is off
])
def test_clears_when_the_rule_no_longer_applies(later):
    state, ts = run([snapshot(9), later])
    assert [t.action for t in ts] == [rules.Action.RAISED, rules.Action.CLEARED]
    assert "no longer applies" in ts[1].alarm.text


def test_frozen_while_no_module_is_live():
    state, ts = run([snapshot(9), snapshot(0), snapshot(0)])
    assert [t.action for t in ts] == [rules.Action.RAISED]
    assert len(state.alarms) == 1
    _, quiet = run([snapshot(0)])
    assert quiet == []


def test_disabled():
    off = AlarmsSettings(rectifier_above_ccl={"enabled": False})
    assert run([snapshot(9)], off)[1] == []


def test_quiet_while_the_first_poll_cycle_is_still_finding_the_modules():
    """At start the modules not yet seen count zero in the CCL; the rule waits for them
    as the module_offline rule does (never_seen_after_s), so a start raises nothing."""
    def starting(seen: int) -> BankSnapshot:
        snap = snapshot(12)
        mods = tuple(m if m.position <= seen else dataclasses.replace(
            m, status=ModuleStatus.NEVER_SEEN, telemetry=None, updated_at=None)
            for m in snap.modules)
        snap = dataclasses.replace(snap, modules=mods, charge_limits=None)
        lim = make_charge_limits(snap, NOW, ChargeLimitsSettings(rectifier_charge_a=240))
        return dataclasses.replace(snap, charge_limits=lim)
    _, ts = run([starting(3), starting(8), starting(12)])
    assert ts == []
    late = AlarmsSettings(rectifier_above_ccl={"raise_delay_s": 0},
                          module_offline={"enabled": False}, never_seen_after_s=1)
    _, ts = run([starting(3), starting(8), starting(8)], late)
    assert [t.action for t in ts] == [rules.Action.RAISED]  # past the grace: it counts
