"""The cell_imbalance_rising alarm rule reads the trend the backup_time processor puts
into the snapshot: raised after its delay when the rise passes the raise level, cleared
with hysteresis, frozen (unknown) without the trend."""

from __future__ import annotations

import dataclasses

from gateway.model import BackupEstimate, ModuleImbalance

from plugins.alarms import rules
from plugins.alarms.rules import Action, AlarmState
from plugins.alarms.settings import AlarmsSettings

from tests.backup_time.bank_snapshots import pack, reading, snapshot_of


def snap(t: float, rise: int | None, *, with_trend: bool = True):
    s = snapshot_of([reading(1, pack(0), t=t)], t)
    if not with_trend:
        return s
    trend = ModuleImbalance(position=1, imbalance_mv=30, today_mean_mv=30,
                            baseline_mv=None if rise is None else 30 - rise, rise_mv=rise,
                            days=5)
    return dataclasses.replace(s, backup=BackupEstimate(imbalance=(trend,)))


def run(settings, steps):
    state = AlarmState()
    out = []
    for t, sn in steps:
        o = rules.evaluate(state, sn, t, settings)
        state = o.state
        out += [(t, tr.action, tr.alarm) for tr in o.transitions
                if tr.alarm.kind == "cell_imbalance_rising"]
    return out


def test_raised_after_the_delay_and_cleared_below_the_clear_level():
    s = AlarmsSettings()
    steps = [(0, snap(0, 25)), (1800, snap(1800, 25)), (3600, snap(3600, 25)),
             (4000, snap(4000, 15)), (8000, snap(8000, 9)), (11_600, snap(11_600, 9))]
    (raised, cleared) = run(s, steps)
    assert raised[:2] == (3600, Action.RAISED)
    a = raised[2]
    assert (a.position, a.value, a.threshold, a.severity.name) == (1, 25, 20, "MINOR")
    assert a.text == "module 1 cell imbalance up 25 mV in 4 d, now 30 mV, limit 20 mV"
    assert cleared[:2] == (11_600, Action.CLEARED)


def test_unknown_without_the_trend_raises_nothing():
    s = AlarmsSettings(cell_imbalance_rising={"raise_delay_s": 0})
    assert run(s, [(0, snap(0, None)), (10, snap(10, None, with_trend=False))]) == []
    assert run(s, [(0, snap(0, 40))])[0][1] is Action.RAISED
