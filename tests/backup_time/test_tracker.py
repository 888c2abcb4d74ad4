"""The pure core over snapshots: debounced bank state, on-battery time, None where
unknown, discharge records, the imbalance trend, and the state file across a restart."""

from __future__ import annotations

import json

import pytest

from gateway.model import BankOnBattery, BankOnMains, BankState, ModuleStatus

from plugins.backup_time import store
from plugins.backup_time.settings import BackupTimeSettings
from plugins.backup_time.tracker import BackupState, step

from tests.backup_time.bank_snapshots import WALL0, pack, reading, snapshot_of

S = BackupTimeSettings(debounce_s=10, smoothing_window_s=60)


def snap(t: float, *currents: int, status=ModuleStatus.OK, **kw):
    mods = [reading(i + 1, pack(c, **kw), t=t, status=status) for i, c in enumerate(currents)]
    return snapshot_of(mods, t)


def run(state, snaps):
    outs = []
    for sn in snaps:
        out = step(state, sn, sn.created_at, S)
        state = out.state
        outs.append(out)
    return state, outs


def test_state_is_taken_after_the_debounce_and_dates_from_its_start():
    state, outs = run(BackupState(), [snap(t, 20_000, 20_000) for t in range(0, 20)])
    assert [o.estimate.state for o in outs[:10]] == [None] * 10  # not yet held 10 s
    assert outs[10].estimate.state is BankState.CHARGING
    state, outs = run(state, [snap(t, -20_000, -20_000) for t in range(20, 40)])
    assert outs[9].estimate.state is BankState.CHARGING
    e = outs[10].estimate
    assert e.state is BankState.DISCHARGING and e.on_battery_since == 20
    assert e.seconds_on_battery == 10 and isinstance(outs[10].events[0], BankOnBattery)
    assert outs[-1].estimate.seconds_on_battery == 19


def test_a_short_dip_is_no_outage():
    state, _ = run(BackupState(), [snap(t, 20_000) for t in range(0, 15)])
    state, outs = run(state, [snap(t, -20_000) for t in range(15, 20)]
                      + [snap(t, 20_000) for t in range(20, 40)])
    assert all(o.estimate.state is BankState.CHARGING and not o.events for o in outs)
    assert state.records == () and state.discharge is None


@pytest.mark.parametrize(("currents", "state"), [
    ((500, -500), BankState.IDLE), ((1500, 1500), BankState.FLOATING),
    ((-1500, 0), BankState.IDLE)])
def test_dead_band_and_float_band(currents, state):
    _, outs = run(BackupState(), [snap(t, *currents) for t in range(0, 12)])
    e = outs[-1].estimate
    assert e.state is state and e.seconds_on_battery == 0
    assert e.seconds_to_eod is None and e.seconds_to_full is None


def test_unknown_with_no_live_module():
    state, _ = run(BackupState(), [snap(t, -30_000) for t in range(0, 15)])
    out = step(state, snap(15, -30_000, status=ModuleStatus.OFFLINE), 15, S)
    e = out.estimate
    assert e.state is None and e.seconds_on_battery is None and e.seconds_to_eod is None
    assert out.state.discharge is not None  # the outage is not over for lack of data


def test_time_to_eod_and_to_full():
    _, outs = run(BackupState(), [snap(t, -25_000, -25_000, soc=500) for t in range(0, 30)])
    e = outs[-1].estimate
    # 2 x 50 Ah at 50 A: two hours
    assert e.seconds_to_eod == 7200 and e.limited_by == "capacity"
    assert e.discharge_current_ma == 50_000 and e.minutes_to_eod == 120
    _, outs = run(BackupState(), [snap(t, 25_000, 25_000, soc=500) for t in range(0, 30)])
    e = outs[-1].estimate
    assert e.state is BankState.CHARGING and e.seconds_to_full == 7200
    assert e.seconds_to_eod is None


def test_discharge_record_end_to_end_of_the_core():
    state, _ = run(BackupState(), [snap(t, 20_000, 20_000) for t in range(0, 20)])
    # 100 s at -36 A in total, cells sagging, one cell lower, warmer
    low = (3300,) * 5 + (3100,) + (3300,) * 10
    state, outs = run(state, [snap(t, -18_000, -18_000, soc=800 - (t - 20) // 10,
                                   cells=low if t == 50 else (3250,) * 16, temp=300)
                              for t in range(20, 120)])
    state, outs = run(state, [snap(t, 20_000, 20_000, soc=790) for t in range(120, 140)])
    (ev,) = [e for o in outs for e in o.events]
    assert isinstance(ev, BankOnMains)
    r = ev.record
    assert r.number == 1 and state.record_last == 1 and state.records == (r,)
    assert r.duration_s == 100 and r.started_wall_time == WALL0 + 20
    assert r.ended_wall_time == WALL0 + 120
    assert r.delivered_mah == 1000  # 36 A x 100 s
    assert r.delivered_wh == pytest.approx(36 * 52.0 * 100 / 3600, abs=1)
    assert r.soc_start_permille == 800 and r.soc_end_permille == 791
    assert r.cell_min_mv == 3100 and (r.cell_min_at.position, r.cell_min_at.index) == (1, 6)
    assert r.temp_max_dc == 300 and r.eod_reached is False
    assert r.voltage_min_mv == 16 * 3250
    assert outs[-1].estimate.records == (r,) and outs[-1].estimate.state is BankState.CHARGING


def test_eod_reached_and_records_kept():
    s = BackupTimeSettings(debounce_s=0, records_kept=2)
    state = BackupState()
    for k in range(3):
        for t in range(k * 100, k * 100 + 50):
            state = step(state, snap(t, -30_000, voltage_mv=40_400), t, s).state
        for t in range(k * 100 + 50, k * 100 + 100):
            state = step(state, snap(t, 30_000), t, s).state
    assert [r.number for r in state.records] == [2, 3] and state.record_last == 3
    assert all(r.eod_reached for r in state.records)


def test_imbalance_now_and_its_rise_over_days():
    state = BackupState()
    for day, spread in enumerate((10, 12, 30)):
        for k in range(3):
            t = day * 86_400 + k * 60.0
            cells = (3300,) * 15 + (3300 + spread,)
            state = step(state, snap(t, 0, cells=cells), t, S).state
    out = step(state, snap(2 * 86_400 + 500, 0, cells=(3300,) * 15 + (3330,)),
               2 * 86_400 + 500, S)
    (m,) = out.estimate.imbalance
    assert (m.imbalance_mv, m.today_mean_mv, m.baseline_mv, m.rise_mv, m.days) == (
        30, 30, 10, 20, 3)
    offline = step(out.state, snap(2 * 86_400 + 600, 0, status=ModuleStatus.OFFLINE),
                   2 * 86_400 + 600, S)
    assert offline.estimate.imbalance[0].imbalance_mv is None
    assert offline.estimate.imbalance[0].rise_mv == 20


def test_state_file_survives_a_restart_and_an_outage_goes_on(tmp_path):
    state, _ = run(BackupState(), [snap(t, 20_000) for t in range(0, 20)])
    state, _ = run(state, [snap(t, -20_000) for t in range(20, 100)])
    assert state.discharge is not None
    store.save(tmp_path, store.dump(state))
    data = json.loads((tmp_path / store.FILE_NAME).read_text())
    assert data["version"] == store.VERSION and not list(tmp_path.glob("*.tmp"))
    # the process restarts 30 s later: its monotonic clock starts at 5000
    restored = store.load_state(tmp_path, now=5000, wall_time=WALL0 + 130)
    assert restored.restored_discharge
    base = 5000 - 130
    state2, outs = run(restored, [snapshot_of([reading(1, pack(-20_000), t=base + t)],
                                              base + t, wall0=WALL0 - base)
                                  for t in range(130, 145)])
    e = outs[-1].estimate
    assert e.state is BankState.DISCHARGING and not any(o.events for o in outs)
    assert e.on_battery_since_wall_time == WALL0 + 20 and e.seconds_on_battery == 124
    # a restart after the outage ended: the record is closed at the last time seen
    store.save(tmp_path, store.dump(state))
    restored = store.load_state(tmp_path, now=9000, wall_time=WALL0 + 4000)
    state3, _ = run(restored, [snapshot_of([reading(1, pack(20_000), t=9000 + t)], 9000 + t)
                               for t in range(0, 15)])
    (r,) = state3.records
    assert r.duration_s == 79 and r.ended_wall_time == WALL0 + 99 and state3.discharge is None


def test_an_unreadable_state_file_is_ignored(tmp_path):
    (tmp_path / store.FILE_NAME).write_text("{not json")
    assert store.load_state(tmp_path, now=0, wall_time=WALL0) == BackupState()
    (tmp_path / store.FILE_NAME).write_text('{"version": 99}')
    assert store.load_state(tmp_path, now=0, wall_time=WALL0) == BackupState()
