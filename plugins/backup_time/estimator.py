"""Backup time, the pure arithmetic: bank state from current, smoothing, time to EOD and
time to full. No clock, no I/O; every time is passed in (docs/backup_time.md).

Units follow :mod:`gateway.model`: mA, mAh, mV, seconds. A result that cannot be known
is ``None``, never 0 and never a made-up figure; a figure that is known is never negative.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.model import BankState

CAPACITY = "capacity"  #: the live modules' remaining charge at the present load
MODULE = "module"  #: the modules left after the weakest cut off cannot carry the load
VOLTAGE = "voltage"  #: the bank voltage's trend reaches the EOD voltage first


def classify(current_ma: int | None, *, dead_band_ma: int, floating_below_ma: int
             ) -> BankState | None:
    """The bank state a bank current suggests, before debouncing.

    ``current_ma`` <= -dead band: discharging; inside the dead band: idle; from the dead
    band up to ``floating_below_ma``: floating (the trickle a rectifier in float feeds a
    full bank); above: charging. None when the current is unknown.
    """
    if current_ma is None:
        return None
    if current_ma <= -dead_band_ma:
        return BankState.DISCHARGING
    if current_ma < dead_band_ma:
        return BankState.IDLE
    if current_ma < floating_below_ma:
        return BankState.FLOATING
    return BankState.CHARGING


@dataclass(frozen=True, slots=True)
class Sample:
    """The bank at one time, as the smoothing and the voltage trend need it."""

    t: float  #: monotonic seconds
    current_ma: int  #: + = charging
    voltage_mv: int | None  #: mean bank voltage


def mean_current_ma(samples: Sequence[Sample], now: float, window_s: float,
                    since: float | None = None) -> float | None:
    """Time-weighted mean bank current over the last ``window_s`` (and not before
    ``since``): each sample holds until the next one, the last one until ``now``.
    None without a sample in the window."""
    start = now - window_s if since is None else max(now - window_s, since)
    total = 0.0
    weight = 0.0
    for i, s in enumerate(samples):
        end = samples[i + 1].t if i + 1 < len(samples) else now
        lo, hi = max(s.t, start), min(end, now)
        if hi > lo:
            total += s.current_ma * (hi - lo)
            weight += hi - lo
    if weight <= 0:
        inside = [s.current_ma for s in samples if start <= s.t <= now]
        return float(inside[-1]) if inside else None
    return total / weight


def voltage_slope_mv_per_s(samples: Sequence[Sample], *, since: float,
                           min_span_s: float) -> tuple[float, float] | None:
    """Least-squares line through the samples' voltages from ``since``: (slope in mV/s,
    fitted voltage at the last sample). None with fewer than 3 samples or a span shorter
    than ``min_span_s``."""
    pts = [(s.t, s.voltage_mv) for s in samples if s.t >= since and s.voltage_mv is not None]
    if len(pts) < 3 or pts[-1][0] - pts[0][0] < min_span_s:
        return None
    n = len(pts)
    mt = sum(t for t, _ in pts) / n
    mv = sum(v for _, v in pts) / n
    stt = sum((t - mt) ** 2 for t, _ in pts)
    if stt <= 0:
        return None
    slope = sum((t - mt) * (v - mv) for t, v in pts) / stt
    return slope, mv + slope * (pts[-1][0] - mt)


def voltage_bound_s(slope_fit: tuple[float, float] | None, eod_mv: int, *,
                    min_slope_mv_per_s: float) -> float | None:
    """Seconds until the fitted bank voltage reaches ``eod_mv`` on its present slope;
    None while the voltage does not fall faster than ``min_slope_mv_per_s`` (LFP's flat
    middle: a line through it says nothing about the knee); 0 at or below EOD."""
    if slope_fit is None:
        return None
    slope, fitted = slope_fit
    if fitted <= eod_mv:
        return 0.0
    if slope >= -min_slope_mv_per_s:
        return None
    return (fitted - eod_mv) / -slope


@dataclass(frozen=True, slots=True)
class Supply:
    """One live module as the estimate sees it."""

    remaining_mah: float  #: >= 0
    share: float  #: its part of the bank's discharge current, >= 0 (any scale)


def seconds_to_empty(supplies: Sequence[Supply], discharge_ma: float, *,
                     module_limit_ma: float | None = None) -> tuple[float, str] | None:
    """Seconds until the modules cannot carry a steady ``discharge_ma`` any more.

    The modules carry the load in proportion to their shares (the split measured now).
    When one is empty its low-voltage protection takes it off the bank and the others
    carry its share, again in proportion. The bank ends when no module is left
    (``"capacity"``) or when the modules left could carry the load only above
    ``module_limit_ma`` each (``"module"``: their over-current protection would trip).
    None for a load that is not a discharge, or with no module that carries any.
    """
    if not discharge_ma > 0:
        return None
    active = [[s.remaining_mah, s.share] for s in supplies if s.share > 0]
    if not active:
        return None
    t_h = 0.0
    for _ in range(len(active) + 1):  # each round takes at least one module off
        active = [a for a in active if a[0] > 0]
        if not active:
            break
        if module_limit_ma is not None and len(active) * module_limit_ma < discharge_ma:
            return t_h * 3600, MODULE
        total = sum(a[1] for a in active)
        rates = [discharge_ma * a[1] / total for a in active]
        lasts = [a[0] / r if r > 0 else math.inf for a, r in zip(active, rates)]
        dt = min(lasts)
        if dt == math.inf:  # shares too small to carry anything: nothing delivers
            break
        t_h += dt
        for a, r, last in zip(active, rates, lasts):
            a[0] = 0.0 if last <= dt else a[0] - r * dt
    return t_h * 3600, CAPACITY


def seconds_to_eod(supplies: Sequence[Supply], discharge_ma: float, *,
                   module_limit_ma: float | None = None,
                   voltage_s: float | None = None) -> tuple[int, str] | None:
    """The time to end of discharge at the present load: the earlier of the capacity
    path (:func:`seconds_to_empty`) and the voltage path (``voltage_s``), whole seconds
    rounded down, with the bound that decided it. None where the capacity path is
    unknown: the voltage trend alone is not an estimate."""
    empty = seconds_to_empty(supplies, discharge_ma, module_limit_ma=module_limit_ma)
    if empty is None:
        return None
    seconds, why = empty
    if voltage_s is not None and voltage_s < seconds:
        seconds, why = voltage_s, VOLTAGE
    return max(0, math.floor(seconds)), why


def seconds_to_full(missing_mah: float | None, charge_ma: float | None) -> int | None:
    """Seconds to put ``missing_mah`` back at a steady ``charge_ma``: a lower bound, the
    rectifier tapers its current near full. None unless charging and the gap is known."""
    if missing_mah is None or charge_ma is None or not charge_ma > 0:
        return None
    return max(0, math.floor(max(0.0, missing_mah) / charge_ma * 3600))
