"""A mains failure in the simulator's bank physics, seen by the pure core: on-battery
detection, the time-to-EOD estimate against the simulated truth, the discharge record.

The truth is the simulator's own answer: the same bank with the outage never ending,
run until the mean bank voltage (the figure the bank_voltage_eod alarm watches) falls to
the 40.5 V EOD. Tolerance: 2 % of the true remaining time, at least 2 minutes."""

from __future__ import annotations

from gateway.model import BankOnBattery, BankOnMains, BankState

from plugins.backup_time.settings import BackupTimeSettings
from plugins.backup_time.tracker import BackupState, step
from plugins.rs485_bms.sim.physics import Outage, SimBank, SimPack

from tests.backup_time.bank_snapshots import WALL0, sim_snapshot

POLL_S = 5.0
OUT_AT, OUT_UNTIL, LOAD_MA = 300.0, 300.0 + 2 * 3600, 120_000


def packs():
    return [SimPack(a, seed=1) for a in range(1, 13)]


def true_seconds_to_eod(at: float) -> float:
    bank = SimBank(packs(), outages=[Outage(OUT_AT, None, LOAD_MA)])
    t = at
    while sim_snapshot(bank, t).bank.voltage_mean_mv > 40_500:
        t += 10
    return t - at


def test_mains_failure_on_battery_estimate_and_record():
    settings = BackupTimeSettings()
    bank = SimBank(packs(), outages=[Outage(OUT_AT, OUT_UNTIL, LOAD_MA)])
    state = BackupState()
    events = []
    estimates = {}
    t, seq = 0.0, 0
    while t <= OUT_UNTIL + 120:
        seq += 1
        out = step(state, sim_snapshot(bank, t, seq), t, settings)
        state = out.state
        events += [(t, e) for e in out.events]
        estimates[t] = out.estimate
        t += POLL_S

    # before the outage the rectifier charges every pack: all currents positive
    before = sim_snapshot(bank, OUT_AT - 10)
    assert all(m.telemetry.current_ma > 0 for m in before.modules)
    assert estimates[OUT_AT - 10].state is BankState.CHARGING
    assert estimates[OUT_AT - 10].seconds_to_full is not None
    during = sim_snapshot(bank, OUT_AT + 600)
    assert all(m.telemetry.current_ma < 0 for m in during.modules)
    assert abs(during.bank.current_ma + LOAD_MA) <= 12 * 10  # 10 mA steps on the wire

    # on battery: detected after the debounce, dated from the outage's start
    (t_on, on), (t_off, off) = events
    assert isinstance(on, BankOnBattery) and on.since == OUT_AT
    assert OUT_AT + settings.debounce_s <= t_on <= OUT_AT + settings.debounce_s + POLL_S
    e = estimates[OUT_AT + 1800]
    assert e.state is BankState.DISCHARGING and e.seconds_on_battery == 1800
    assert e.discharge_current_ma == LOAD_MA or abs(e.discharge_current_ma - LOAD_MA) <= 120

    # the estimate against the simulated truth
    for at in (OUT_AT + 600, OUT_AT + 3600):
        est = estimates[at].seconds_to_eod
        truth = true_seconds_to_eod(at)
        assert est is not None
        assert abs(est - truth) <= max(120, 0.02 * truth), (at, est, truth)

    # back on mains: the record of the outage
    assert isinstance(off, BankOnMains) and off.at == OUT_UNTIL
    r = off.record
    assert r.number == 1 and r.duration_s == OUT_UNTIL - OUT_AT
    assert r.started_wall_time == WALL0 + OUT_AT and r.ended_wall_time == WALL0 + OUT_UNTIL
    assert abs(r.delivered_mah - LOAD_MA * 2) <= 1000  # 120 A for 2 h = 240 Ah, +-1 Ah
    assert 240 * 48 <= r.delivered_wh <= 240 * 54
    assert r.soc_start_permille > r.soc_end_permille
    assert r.eod_reached is False and r.cell_min_at is not None
    after = estimates[OUT_UNTIL + 120]
    assert after.state is BankState.CHARGING and after.seconds_to_eod is None
    assert after.records == (r,) and after.seconds_on_battery == 0
