"""Property tests of the time-to-EOD arithmetic: monotone in load and in remaining
capacity, None where unknown, never negative."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.model import BankState

from plugins.backup_time import estimator
from plugins.backup_time.estimator import Sample, Supply

supply = st.builds(Supply, remaining_mah=st.floats(0, 200_000), share=st.floats(0, 100_000))
supplies = st.lists(supply, min_size=1, max_size=16)
load = st.floats(1, 2_000_000)
limit = st.one_of(st.none(), st.floats(1_000, 500_000))
voltage_s = st.one_of(st.none(), st.floats(0, 1e7))


@given(supplies, load, load, limit, voltage_s)
def test_more_load_never_gives_more_time(sup, a, b, lim, v):
    lo, hi = sorted((a, b))
    t_lo = estimator.seconds_to_eod(sup, lo, module_limit_ma=lim, voltage_s=v)
    t_hi = estimator.seconds_to_eod(sup, hi, module_limit_ma=lim, voltage_s=v)
    assert (t_lo is None) == (t_hi is None)
    if t_lo is not None:
        assert t_hi[0] <= t_lo[0]


@given(supplies, st.data(), load, limit)
def test_more_remaining_capacity_never_gives_less_time(sup, data, i, lim):
    k = data.draw(st.integers(0, len(sup) - 1))
    extra = data.draw(st.floats(0, 100_000))
    more = list(sup)
    more[k] = Supply(sup[k].remaining_mah + extra, sup[k].share)
    before = estimator.seconds_to_eod(sup, i, module_limit_ma=lim)
    after = estimator.seconds_to_eod(more, i, module_limit_ma=lim)
    assert (before is None) == (after is None)
    if before is not None:
        assert after[0] >= before[0] - 1  # whole seconds, rounded down: 1 s of slack


@given(supplies, load, limit, voltage_s)
def test_never_negative_and_the_voltage_path_bounds_it(sup, i, lim, v):
    got = estimator.seconds_to_eod(sup, i, module_limit_ma=lim, voltage_s=v)
    if got is None:
        return
    seconds, why = got
    assert seconds >= 0
    assert why in (estimator.CAPACITY, estimator.MODULE, estimator.VOLTAGE)
    if v is not None:
        assert seconds <= v
    total = sum(s.remaining_mah for s in sup if s.share > 0)
    assert seconds <= total / i * 3600 + 1  # never more than all the charge at this load


@given(supplies, st.floats(-1e6, 0), limit)
def test_unknown_while_not_discharging(sup, i, lim):
    assert estimator.seconds_to_eod(sup, i, module_limit_ma=lim) is None


@given(st.lists(st.builds(Supply, remaining_mah=st.floats(0, 1e5), share=st.just(0.0)),
                min_size=1), load)
def test_unknown_when_no_module_carries_the_load(sup, i):
    assert estimator.seconds_to_eod(sup, i) is None


def test_capacity_path_is_remaining_over_load():
    sup = [Supply(50_000, 1), Supply(50_000, 1)]
    assert estimator.seconds_to_eod(sup, 50_000) == (7200, estimator.CAPACITY)


def test_the_weakest_module_drops_out_and_the_rest_cannot_carry_the_load():
    # two modules share 150 A; the weak one empties after 1 h, the other alone would
    # need 150 A > its 100 A limit: the bank ends there, not when all charge is used
    sup = [Supply(75_000, 1), Supply(200_000, 1)]
    got = estimator.seconds_to_eod(sup, 150_000, module_limit_ma=100_000)
    assert got == (3600, estimator.MODULE)
    assert estimator.seconds_to_eod(sup, 150_000) == (6600, estimator.CAPACITY)


@given(st.one_of(st.none(), st.floats(-1e6, 1e6)), st.one_of(st.none(), st.floats(0, 1e6)))
def test_time_to_full_is_none_or_never_negative(missing, charge):
    got = estimator.seconds_to_full(missing, charge)
    if missing is None or charge is None or not charge > 0:
        assert got is None
    else:
        assert got is not None and got >= 0


@pytest.mark.parametrize(("ma", "state"), [
    (None, None), (-2000, BankState.DISCHARGING), (-1999, BankState.IDLE),
    (0, BankState.IDLE), (1999, BankState.IDLE), (2000, BankState.FLOATING),
    (9999, BankState.FLOATING), (10_000, BankState.CHARGING)])
def test_classify_by_dead_band_and_float_band(ma, state):
    assert estimator.classify(ma, dead_band_ma=2000, floating_below_ma=10_000) is state


def test_mean_current_is_time_weighted_within_the_state():
    samples = [Sample(0, 10_000, None), Sample(100, -40_000, None), Sample(110, -20_000, None)]
    assert estimator.mean_current_ma(samples, 130, 300, since=100) == pytest.approx(
        (-40_000 * 10 - 20_000 * 20) / 30)
    assert estimator.mean_current_ma([], 10, 300) is None


def test_voltage_bound_only_on_a_falling_voltage():
    falling = [Sample(t, -40_000, 48_000 - 10 * t) for t in range(0, 200, 10)]
    fit = estimator.voltage_slope_mv_per_s(falling, since=0, min_span_s=60)
    assert fit is not None and fit[0] == pytest.approx(-10)
    assert estimator.voltage_bound_s(fit, 40_500, min_slope_mv_per_s=0.5) == pytest.approx(
        (46_100 - 40_500) / 10)
    flat = [Sample(t, -40_000, 52_000) for t in range(0, 200, 10)]
    assert estimator.voltage_bound_s(estimator.voltage_slope_mv_per_s(
        flat, since=0, min_span_s=60), 40_500, min_slope_mv_per_s=0.5) is None
    assert estimator.voltage_slope_mv_per_s(falling[:2], since=0, min_span_s=0) is None
