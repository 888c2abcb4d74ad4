"""The backup_time processor's pure core: ``step(state, snapshot, now, settings)``.

From each bank snapshot it keeps, between snapshots, what the figures need: the
debounced bank state and when it began, the bank current and voltage over the smoothing
window, the discharge under way and the finished discharge records, and each module's
daily cell-imbalance statistics. It returns the new state, the
:class:`~gateway.model.BackupEstimate` to put into the snapshot, and the on-battery /
back-on-mains events. No clock, no I/O: ``now`` (monotonic) and the snapshot's wall time
come in (docs/backup_time.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from gateway.model import (
    BackupEstimate,
    BankOnBattery,
    BankOnMains,
    BankSnapshot,
    BankState,
    DischargeRecord,
    Event,
    Location,
    ModuleImbalance,
    ModuleReading,
    ModuleStatus,
)

from plugins.backup_time import estimator
from plugins.backup_time.estimator import Sample, Supply
from plugins.backup_time.settings import BackupTimeSettings

DAY_S = 86_400
MAX_GAP_S = 60.0  #: a longer gap between snapshots is not integrated (no data, no charge)


@dataclass(frozen=True, slots=True)
class Discharge:
    """The on-battery event under way (or a candidate while its state is debounced)."""

    started_at: float  #: monotonic
    started_wall_time: float
    last_at: float
    last_wall_time: float
    last_current_ma: int  #: + = charging, as last seen
    last_power_mw: int | None  #: + = charging
    delivered_mas: float = 0.0  #: mA x s
    delivered_mws: float = 0.0  #: mW x s
    soc_start_permille: int | None = None
    soc_end_permille: int | None = None
    voltage_min_mv: int | None = None
    cell_min_mv: int | None = None
    cell_min_at: Location | None = None
    temp_max_dc: int | None = None
    eod_reached: bool = False


@dataclass(frozen=True, slots=True)
class DayStat:
    day: int  #: days since the epoch (UTC)
    total_mv: int
    count: int

    @property
    def mean_mv(self) -> int:
        return round(self.total_mv / self.count)


@dataclass(frozen=True, slots=True)
class BackupState:
    state: BankState | None = None  #: the debounced state
    since: float | None = None  #: monotonic time the state began
    since_wall_time: float | None = None
    pending: BankState | None = None  #: a different state, not yet held debounce_s
    pending_since: float | None = None
    pending_since_wall_time: float | None = None
    samples: tuple[Sample, ...] = ()  #: bank samples within the smoothing window
    discharge: Discharge | None = None  #: the on-battery event under way
    candidate: Discharge | None = None  #: a discharge while its state is pending
    records: tuple[DischargeRecord, ...] = ()
    record_last: int = 0
    trend: Mapping[int, tuple[DayStat, ...]] = field(default_factory=dict)
    restored_discharge: bool = False  #: ``discharge`` came from disk: continue or close it


@dataclass(frozen=True, slots=True)
class Outcome:
    state: BackupState
    estimate: BackupEstimate
    events: tuple[Event, ...]
    records_changed: bool  #: a record was added or an event began or ended: save now


def _live(snapshot: BankSnapshot) -> list[ModuleReading]:
    return [m for m in snapshot.modules
            if m.status is ModuleStatus.OK and m.telemetry is not None]


def _power_mw(live: list[ModuleReading]) -> int | None:
    """Bank power over the live modules, mW, + = charging; None if any is unknown."""
    total = 0
    for m in live:
        t = m.telemetry
        assert t is not None
        if t.voltage_mv is None or t.current_ma is None:
            return None
        total += t.voltage_mv * t.current_ma
    return round(total / 1000)


def _remaining(m: ModuleReading) -> float | None:
    t = m.telemetry
    assert t is not None
    if t.remaining_mah is not None:
        return max(0.0, float(t.remaining_mah))
    if t.soc_permille is not None and t.full_mah is not None:
        return max(0.0, t.full_mah * t.soc_permille / 1000)
    return None


def supplies(snapshot: BankSnapshot) -> list[Supply] | None:
    """The live modules' remaining charge and discharge shares (their measured discharge
    currents). None if a live module's remaining charge or current is unknown: the
    bank's figure would be made up."""
    out = []
    for m in _live(snapshot):
        rem = _remaining(m)
        current = m.telemetry.current_ma  # type: ignore[union-attr]
        if rem is None or current is None:
            return None
        out.append(Supply(remaining_mah=rem, share=max(0.0, -float(current))))
    return out or None


def _missing_mah(snapshot: BankSnapshot) -> float | None:
    live = _live(snapshot)
    if not live:
        return None
    missing = 0.0
    for m in live:
        t = m.telemetry
        assert t is not None
        rem = _remaining(m)
        if rem is None or t.full_mah is None:
            return None
        missing += max(0.0, t.full_mah - rem)
    return missing


def _observe(d: Discharge, snapshot: BankSnapshot, now: float, current_ma: int,
             power_mw: int | None, eod_mv: int, *, discharging: bool = True) -> Discharge:
    """``d`` carried forward to ``now``: charge and energy integrated (each sample holds
    until the next); the end SOC and the extremes follow only samples that discharge (not
    those of the debounce after the outage ended)."""
    dt = now - d.last_at
    mas, mws = d.delivered_mas, d.delivered_mws
    if 0 < dt <= MAX_GAP_S:
        mas += max(0, -d.last_current_ma) * dt
        if d.last_power_mw is not None:
            mws += max(0, -d.last_power_mw) * dt
    if not discharging:
        return replace(d, last_at=now, last_wall_time=snapshot.wall_time,
                       last_current_ma=current_ma, last_power_mw=power_mw,
                       delivered_mas=mas, delivered_mws=mws)
    b = snapshot.bank
    v_min = d.voltage_min_mv
    if b.voltage_mean_mv is not None and (v_min is None or b.voltage_mean_mv < v_min):
        v_min = b.voltage_mean_mv
    cell_min, cell_at = d.cell_min_mv, d.cell_min_at
    if b.cell_min_mv is not None and (cell_min is None or b.cell_min_mv < cell_min):
        cell_min, cell_at = b.cell_min_mv, b.cell_min_at
    t_max = d.temp_max_dc
    if b.temp_max_dc is not None and (t_max is None or b.temp_max_dc > t_max):
        t_max = b.temp_max_dc
    return replace(
        d, last_at=now, last_wall_time=snapshot.wall_time, last_current_ma=current_ma,
        last_power_mw=power_mw, delivered_mas=mas, delivered_mws=mws,
        soc_end_permille=b.soc_permille if b.soc_permille is not None else d.soc_end_permille,
        voltage_min_mv=v_min, cell_min_mv=cell_min, cell_min_at=cell_at, temp_max_dc=t_max,
        eod_reached=d.eod_reached or (b.voltage_mean_mv is not None
                                      and b.voltage_mean_mv <= eod_mv))


def _begin(snapshot: BankSnapshot, now: float, current_ma: int, power_mw: int | None,
           eod_mv: int) -> Discharge:
    d = Discharge(started_at=now, started_wall_time=snapshot.wall_time, last_at=now,
                  last_wall_time=snapshot.wall_time, last_current_ma=current_ma,
                  last_power_mw=power_mw, soc_start_permille=snapshot.bank.soc_permille)
    return _observe(d, snapshot, now, current_ma, power_mw, eod_mv)


def finish(d: Discharge, number: int, *, end_at: float, end_wall_time: float
           ) -> DischargeRecord:
    """The record of a discharge that ended at ``end_at``."""
    return DischargeRecord(
        number=number, started_wall_time=d.started_wall_time, ended_wall_time=end_wall_time,
        duration_s=max(0, round(end_at - d.started_at)),
        delivered_mah=round(d.delivered_mas / 3600), delivered_wh=round(d.delivered_mws / 3.6e6),
        soc_start_permille=d.soc_start_permille, soc_end_permille=d.soc_end_permille,
        voltage_min_mv=d.voltage_min_mv, cell_min_mv=d.cell_min_mv, cell_min_at=d.cell_min_at,
        temp_max_dc=d.temp_max_dc, eod_reached=d.eod_reached)


def _imbalance(m: ModuleReading) -> int | None:
    if m.status is not ModuleStatus.OK or m.telemetry is None:
        return None
    hi, lo = m.telemetry.cell_max_mv, m.telemetry.cell_min_mv
    return None if hi is None or lo is None else hi - lo


def _update_trend(trend: Mapping[int, tuple[DayStat, ...]], snapshot: BankSnapshot,
                  days_kept: int) -> dict[int, tuple[DayStat, ...]]:
    day = math.floor(snapshot.wall_time / DAY_S)
    out: dict[int, tuple[DayStat, ...]] = {}
    positions = {m.position for m in snapshot.modules}
    for m in snapshot.modules:
        stats = trend.get(m.position, ())
        mv = _imbalance(m)
        if mv is not None:
            if stats and stats[-1].day == day:
                last = stats[-1]
                stats = stats[:-1] + (DayStat(day, last.total_mv + mv, last.count + 1),)
            elif not stats or stats[-1].day < day:
                stats = stats + (DayStat(day, mv, 1),)
            # a clock set back (day earlier than the newest) adds nothing
        out[m.position] = tuple(s for s in stats if s.day > day - days_kept)
    # positions no longer configured keep their history until it ages out
    for p, stats in trend.items():
        if p not in positions:
            kept = tuple(s for s in stats if s.day > day - days_kept)
            if kept:
                out[p] = kept
    return out


def make_imbalance(trend: Mapping[int, tuple[DayStat, ...]], snapshot: BankSnapshot
                   ) -> tuple[ModuleImbalance, ...]:
    day = math.floor(snapshot.wall_time / DAY_S)
    out = []
    for m in snapshot.modules:
        stats = trend.get(m.position, ())
        today = stats[-1] if stats and stats[-1].day == day else None
        base = stats[0] if len(stats) >= 2 else None
        rise = None
        if today is not None and base is not None and base is not today:
            rise = today.mean_mv - base.mean_mv
        out.append(ModuleImbalance(
            position=m.position, imbalance_mv=_imbalance(m),
            today_mean_mv=None if today is None else today.mean_mv,
            baseline_mv=None if base is None else base.mean_mv, rise_mv=rise,
            days=len(stats)))
    return tuple(out)


def step(state: BackupState, snapshot: BankSnapshot, now: float,
         settings: BackupTimeSettings) -> Outcome:
    """One snapshot at monotonic time ``now``."""
    s = settings
    wall = snapshot.wall_time
    live = _live(snapshot)
    current = snapshot.bank.current_ma if live else None
    power = _power_mw(live) if live else None
    raw = estimator.classify(current, dead_band_ma=s.dead_band_ma,
                             floating_below_ma=s.floating_below_ma)
    events: list[Event] = []
    changed = False

    samples = state.samples
    if current is not None:
        samples = samples + (Sample(now, current, snapshot.bank.voltage_mean_mv),)
    horizon = now - s.smoothing_window_s
    keep = 0
    for i, smp in enumerate(samples):
        if smp.t <= horizon:
            keep = i  # the newest sample at or before the window's start still holds
    samples = samples[keep:]

    st, since, since_wall = state.state, state.since, state.since_wall_time
    pending, pending_since, pending_wall = (state.pending, state.pending_since,
                                            state.pending_since_wall_time)
    discharge, candidate = state.discharge, state.candidate
    records, record_last = state.records, state.record_last
    restored = state.restored_discharge

    # carry the discharge under way (and a candidate) forward with this snapshot
    if current is not None:
        if discharge is not None and not restored:
            discharge = _observe(discharge, snapshot, now, current, power, s.eod_mv,
                                 discharging=raw is BankState.DISCHARGING)
        if candidate is not None:
            candidate = _observe(candidate, snapshot, now, current, power, s.eod_mv)

    if raw is not None:
        if raw is st:
            pending = pending_since = pending_wall = None
            candidate = None
        else:
            if raw is not pending:
                pending, pending_since, pending_wall = raw, now, wall
                candidate = (_begin(snapshot, now, current, power, s.eod_mv)  # type: ignore[arg-type]
                             if raw is BankState.DISCHARGING else None)
            assert pending_since is not None and pending_wall is not None
            if now - pending_since >= s.debounce_s:
                # the new state is taken; it began when it was first seen
                old = st
                st, since, since_wall = pending, pending_since, pending_wall
                pending = None
                if restored and discharge is not None:
                    restored = False
                    if st is BankState.DISCHARGING:
                        # the outage went on across a restart: the same event continues
                        discharge = _observe(replace(discharge, last_at=now,
                                                     last_wall_time=wall),
                                             snapshot, now, current, power, s.eod_mv)  # type: ignore[arg-type]
                        since = now - max(0.0, wall - discharge.started_wall_time)
                        since_wall = discharge.started_wall_time
                        discharge = replace(discharge, started_at=since)
                        candidate = None
                    else:
                        record_last += 1
                        rec = finish(discharge, record_last,
                                     end_at=discharge.started_at + max(
                                         0.0, discharge.last_wall_time
                                         - discharge.started_wall_time),
                                     end_wall_time=discharge.last_wall_time)
                        records = (records + (rec,))[-s.records_kept:]
                        discharge = None
                        changed = True
                if st is BankState.DISCHARGING and discharge is None:
                    discharge = candidate
                    candidate = None
                    changed = True
                    events.append(BankOnBattery(since=since, since_wall_time=since_wall,
                                                estimate=BackupEstimate()))
                elif old is BankState.DISCHARGING and discharge is not None:
                    record_last += 1
                    rec = finish(discharge, record_last, end_at=since, end_wall_time=since_wall)
                    records = (records + (rec,))[-s.records_kept:]
                    discharge = None
                    changed = True
                    events.append(BankOnMains(at=since, wall_time=since_wall, record=rec,
                                              estimate=BackupEstimate()))
                pending_since = pending_wall = None
                candidate = None

    trend = _update_trend(state.trend, snapshot, s.trend_days)
    new = BackupState(state=st, since=since, since_wall_time=since_wall, pending=pending,
                      pending_since=pending_since, pending_since_wall_time=pending_wall,
                      samples=samples, discharge=discharge, candidate=candidate,
                      records=records, record_last=record_last, trend=trend,
                      restored_discharge=restored)
    estimate = make_estimate(new, snapshot, now, s)
    events = [replace(e, estimate=estimate) for e in events]
    return Outcome(new, estimate, tuple(events), changed)


def make_estimate(state: BackupState, snapshot: BankSnapshot, now: float,
                  settings: BackupTimeSettings) -> BackupEstimate:
    s = settings
    st = state.state if _live(snapshot) else None
    on_battery = st is BankState.DISCHARGING
    seconds_on = None
    if st is not None:
        seconds_on = max(0, math.floor(now - state.since)) if on_battery and \
            state.since is not None else 0
    discharge_ma = charge_ma = None
    to_eod = why = to_full = None
    if st is not None:
        mean = estimator.mean_current_ma(state.samples, now, s.smoothing_window_s,
                                         since=state.since)
        if on_battery and mean is not None and mean < 0:
            discharge_ma = round(-mean)
            sup = supplies(snapshot)
            v_s = None
            if state.since is not None:
                fit = estimator.voltage_slope_mv_per_s(
                    state.samples, since=state.since + s.settle_s,
                    min_span_s=min(s.smoothing_window_s / 2, 60.0))
                v_s = estimator.voltage_bound_s(fit, s.eod_mv,
                                                min_slope_mv_per_s=s.min_slope_mv_per_s)
            if sup is not None:
                got = estimator.seconds_to_eod(sup, -mean, module_limit_ma=s.module_limit_ma,
                                               voltage_s=v_s)
                if got is not None:
                    to_eod, why = got
        elif st is BankState.CHARGING and mean is not None and mean > 0:
            charge_ma = round(mean)
            to_full = estimator.seconds_to_full(_missing_mah(snapshot), mean)
    return BackupEstimate(
        state=st,
        on_battery_since=state.since if on_battery else None,
        on_battery_since_wall_time=state.since_wall_time if on_battery else None,
        seconds_on_battery=seconds_on, discharge_current_ma=discharge_ma,
        charge_current_ma=charge_ma, seconds_to_eod=to_eod, limited_by=why,
        seconds_to_full=to_full, records=state.records, record_last=state.record_last,
        imbalance=make_imbalance(state.trend, snapshot))
