"""The live charge and discharge limits, pure: ``make_charge_limits(snapshot, now, settings)``.

No clock, no I/O, no state: the same snapshot, time and settings always give the same
limits. docs/charge_limits.md states every formula; in short, for the live modules L
(status ok at ``now``, with telemetry) and their capacities C_i::

    CCL = min(charge_max, floor(charge_rate    x sum(C_i) x min_i f_charge_i))
    DCL = min(discharge_max, floor(discharge_rate x sum(C_i) x min_i f_discharge_i))

where each factor f (per mille, 0..1000) is the smallest of the module's tapers: the
highest cell against the charge cell taper (the lowest cell against the discharge one),
the coldest and the hottest cell sensor against the temperature tapers, and 0 while its
BMS reports a protection that stops charging (discharging). Modules offline, stale or
never seen count zero capacity. In a parallel bank the current divides roughly by
capacity, so the bank may take only as much as lets its most restricted module stay
within its own limit: hence the minimum factor times the whole live capacity.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gateway.model import (
    BankSnapshot,
    ChargeLimits,
    Condition,
    Limit,
    LimitCause,
    ModuleReading,
    ModuleStatus,
    TempRole,
)

from plugins.charge_limits.settings import ChargeLimitsSettings, CellTaper, TempTaper

FULL = 1000  #: a factor of 1000 per mille: no derating
PPM = 1_000_000  #: C-rates are in parts per million of C

#: BMS protections that stop charging / discharging: the limit is zero while a live module
#: reports one. Short circuit and the MOSFET and ambient temperature protections cut both.
_BOTH = (Condition.SHORT_CIRCUIT | Condition.MOSFET_HIGH_TEMP | Condition.AMBIENT_HIGH_TEMP
         | Condition.AMBIENT_LOW_TEMP)
CHARGE_PROTECTIONS = (Condition.CELL_OVER_VOLTAGE | Condition.PACK_OVER_VOLTAGE
                      | Condition.CHARGE_OVER_CURRENT | Condition.CHARGE_HIGH_TEMP
                      | Condition.CHARGE_LOW_TEMP | Condition.CHARGER_OVER_VOLTAGE | _BOTH)
DISCHARGE_PROTECTIONS = (Condition.CELL_UNDER_VOLTAGE | Condition.PACK_UNDER_VOLTAGE
                         | Condition.DISCHARGE_OVER_CURRENT | Condition.DISCHARGE_HIGH_TEMP
                         | Condition.DISCHARGE_LOW_TEMP | Condition.LOW_CAPACITY | _BOTH)

#: Which derating wins a tie of factors (most telling first).
_PRIORITY = {LimitCause.PROTECTION: 0, LimitCause.CELL_VOLTAGE: 1, LimitCause.COLD: 2,
             LimitCause.HOT: 2}


def taper(value: int, full: int, zero: int) -> int:
    """The factor (per mille) of a linear taper: 1000 at or before ``full``, 0 at or
    beyond ``zero``, linear between, rounded down. ``zero`` above ``full`` derates high
    values, below it low values."""
    if full == zero:
        raise ValueError("a taper needs full != zero")
    if zero > full:
        if value <= full:
            return FULL
        if value >= zero:
            return 0
        return (zero - value) * FULL // (zero - full)
    if value >= full:
        return FULL
    if value <= zero:
        return 0
    return (value - zero) * FULL // (full - zero)


@dataclass(frozen=True, slots=True)
class Derating:
    """One module's factor and what set it."""

    factor: int
    cause: LimitCause
    reason: str
    position: int
    index: int

    def key(self) -> tuple[int, int, int, int]:
        return (self.factor, _PRIORITY[self.cause], self.position, self.index)


def module_capacity_mah(m: ModuleReading, settings: ChargeLimitsSettings) -> int:
    """The capacity a live module counts with: the design capacity its BMS reports (when
    ``capacity_from_bms`` and it reports a positive one), otherwise the configured one."""
    t = m.telemetry
    if settings.capacity_from_bms and t is not None and t.design_mah is not None \
            and t.design_mah > 0:
        return t.design_mah
    return settings.module_capacity_mah


def _extreme(values: Iterable[tuple[int, int | None]], high: bool) -> tuple[int, int] | None:
    best: tuple[int, int] | None = None
    for i, v in values:
        if v is not None and (best is None or (v > best[1] if high else v < best[1])):
            best = (i, v)
    return best


def _words(flags: Condition) -> str:
    return ", ".join(c.name.lower().replace("_", " ") for c in Condition
                     if c.value and c.value & (c.value - 1) == 0 and c in flags)


def _mv(mv: int) -> str:
    return f"{mv / 1000:.3f} V"


def _dc(dc: int) -> str:
    return f"{dc / 10:.1f} C"


def _deratings(m: ModuleReading, *, cell: CellTaper, high_cell: bool, cold: TempTaper,
               hot: TempTaper, protections: Condition) -> list[Derating]:
    """The deratings of one live module in one direction."""
    p = m.position
    out: list[Derating] = []
    b = m.bms
    if b is not None and b.protections & protections:
        out.append(Derating(0, LimitCause.PROTECTION,
                            f"module {p} BMS protection: {_words(b.protections & protections)}",
                            p, 0))
    t = m.telemetry
    assert t is not None
    worst = _extreme(enumerate(t.cell_mv, start=1), high_cell)
    if worst is not None:
        i, mv = worst
        f = taper(mv, round(cell.full_v * 1000), round(cell.zero_v * 1000))
        out.append(Derating(f, LimitCause.CELL_VOLTAGE, f"cell {i} of module {p} at {_mv(mv)}",
                            p, i))
    sensors = [(i, dc) for i, (dc, role) in enumerate(zip(t.temp_dc, t.temp_roles), start=1)
               if role is TempRole.CELL]
    for taper_, cause, high, word in ((cold, LimitCause.COLD, False, "cold"),
                                      (hot, LimitCause.HOT, True, "hot")):
        worst = _extreme(sensors, high)
        if worst is not None:
            i, dc = worst
            f = taper(dc, round(taper_.full_degc * 10), round(taper_.zero_degc * 10))
            out.append(Derating(f, cause, f"{word}: {_dc(dc)}, module {p} sensor {i}", p, i))
    return out


def _not_live_reason(counts: dict[str, int], live: int, configured: int) -> str:
    """E.g. "3 modules offline, 9 of 12 live"; with several kinds "9 of 12 live: 1
    offline, 1 stale, 1 never seen" (short enough for a 64-octet reason)."""
    kinds = [(what, n) for what, n in counts.items() if n]
    if len(kinds) == 1:
        what, n = kinds[0]
        return f"{n} module{'' if n == 1 else 's'} {what}, {live} of {configured} live"
    return f"{live} of {configured} live: " + ", ".join(f"{n} {what}" for what, n in kinds)


def _current_limit(live: list[ModuleReading], capacity_mah: int, rate_ppm: int,
                   max_ma: int | None, deratings: list[Derating], *, counts: dict[str, int],
                   configured: int, rate_c: float) -> Limit:
    if not live:
        reason = ("no module configured" if configured == 0 else
                  f"no module live ({configured} configured)")
        return Limit(value=0, cause=LimitCause.NO_LIVE_MODULE, reason=reason)
    base = capacity_mah * rate_ppm // PPM
    worst = min(deratings, key=Derating.key, default=None)
    if worst is not None and worst.factor < FULL:
        limit = Limit(value=base * worst.factor // FULL, cause=worst.cause, reason=worst.reason,
                      position=worst.position, index=worst.index)
    elif any(counts.values()):
        limit = Limit(value=base, cause=LimitCause.MODULES_NOT_LIVE,
                      reason=_not_live_reason(counts, len(live), configured))
    else:
        limit = Limit(value=base, cause=LimitCause.CAPACITY,
                      reason=f"{len(live)} module{'' if len(live) == 1 else 's'}, "
                      f"{capacity_mah / 1000:g} Ah at {rate_c:g} C")
    if max_ma is not None and max_ma < limit.value:
        limit = Limit(value=max_ma, cause=LimitCause.BANK_CAP,
                      reason=f"bank maximum {max_ma / 1000:g} A")
    return limit


def _ma(amps: float | None) -> int | None:
    return None if amps is None else round(amps * 1000)


def make_charge_limits(snapshot: BankSnapshot, now: float,
                       settings: ChargeLimitsSettings) -> ChargeLimits:
    """The limits for ``snapshot`` at monotonic time ``now``."""
    s = settings
    live: list[ModuleReading] = []
    counts = {"offline": 0, "stale": 0, "never seen": 0, "without data": 0}
    for m in snapshot.modules:
        status = m.status_at(now)
        if status is ModuleStatus.OK and m.telemetry is not None:
            live.append(m)
        elif status is ModuleStatus.STALE:
            counts["stale"] += 1
        elif status is ModuleStatus.OK:
            counts["without data"] += 1
        elif status is ModuleStatus.NEVER_SEEN:
            counts["never seen"] += 1
        else:
            counts["offline"] += 1
    capacity = sum(module_capacity_mah(m, s) for m in live)
    charge = [d for m in live for d in _deratings(
        m, cell=s.charge_cell_taper, high_cell=True, cold=s.charge_cold_taper,
        hot=s.charge_hot_taper, protections=CHARGE_PROTECTIONS)]
    discharge = [d for m in live for d in _deratings(
        m, cell=s.discharge_cell_taper, high_cell=False, cold=s.discharge_cold_taper,
        hot=s.discharge_hot_taper, protections=DISCHARGE_PROTECTIONS)]
    configured = len(snapshot.modules)
    ccl = _current_limit(live, capacity, s.charge_rate_ppm, _ma(s.charge_max_a), charge,
                         counts=counts, configured=configured, rate_c=s.charge_c_rate)
    dcl = _current_limit(live, capacity, s.discharge_rate_ppm, _ma(s.discharge_max_a),
                         discharge, counts=counts, configured=configured,
                         rate_c=s.discharge_c_rate_max)
    if s.equalise:
        cvl = Limit(value=round(s.equalise_v * 1000), cause=LimitCause.EQUALISE,
                    reason=f"equalise {s.equalise_v:.2f} V")
    else:
        cvl = Limit(value=round(s.float_v * 1000), cause=LimitCause.FLOAT,
                    reason=f"float {s.float_v:.2f} V")
    return ChargeLimits(
        computed_at=now, cvl=cvl, ccl=ccl, dcl=dcl, eod_mv=round(s.eod_v * 1000),
        cutoff_mv=round(s.cutoff_v * 1000), modules_counted=len(live),
        modules_configured=configured, capacity_mah=capacity,
        module_ccl_ma=s.module_capacity_mah * s.charge_rate_ppm // PPM,
        rectifier_ma=_ma(s.rectifier_charge_a))
