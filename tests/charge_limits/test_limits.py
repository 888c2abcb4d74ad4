"""The pure core: snapshot + now + settings -> CVL, CCL, DCL with their causes."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings as hsettings
from hypothesis import strategies as st

from gateway.model import Condition, LimitCause, ModuleStatus
from plugins.charge_limits.limits import (
    CHARGE_PROTECTIONS,
    DISCHARGE_PROTECTIONS,
    make_charge_limits,
    taper,
)
from plugins.charge_limits.settings import ChargeLimitsSettings

from .builders import NOW, bank, healthy, module

DEFAULT = ChargeLimitsSettings()


def limits(snapshot, settings=DEFAULT, now=NOW):
    return make_charge_limits(snapshot, now, settings)


# ------------------------------------------------------------------ the manual's table ---

def test_a_healthy_bank_gets_the_manuals_figures():
    lim = limits(healthy(12))
    assert (lim.cvl.value, lim.cvl.cause, lim.cvl.reason) == (53_250, LimitCause.FLOAT,
                                                              "float 53.25 V")
    assert lim.ccl.value == 12 * 20_000  # 0.2 C of 12 x 100 Ah
    assert lim.dcl.value == 12 * 100_000  # 1 C
    assert lim.ccl.cause is lim.dcl.cause is LimitCause.CAPACITY
    assert lim.ccl.reason == "12 modules, 1200 Ah at 0.2 C"
    assert (lim.eod_mv, lim.cutoff_mv) == (40_500, 40_300)
    assert (lim.modules_counted, lim.modules_configured, lim.capacity_mah) == (12, 12, 1_200_000)
    assert (lim.module_ccl_ma, lim.rectifier_ma, lim.computed_at) == (20_000, None, NOW)


def test_equalise_sets_the_cvl():
    lim = limits(healthy(2), ChargeLimitsSettings(equalise=True))
    assert (lim.cvl.value, lim.cvl.cause, lim.cvl.reason) == (
        54_750, LimitCause.EQUALISE, "equalise 54.75 V")


def test_modules_not_live_count_zero():
    snap = bank(*(module(p) for p in range(1, 10)), module(10, status=ModuleStatus.OFFLINE),
                module(11, status=ModuleStatus.STALE),
                module(12, status=ModuleStatus.NEVER_SEEN))
    lim = limits(snap)
    assert lim.ccl.value == 9 * 20_000 and lim.dcl.value == 9 * 100_000
    assert lim.ccl.cause is LimitCause.MODULES_NOT_LIVE
    assert lim.ccl.reason == "9 of 12 live: 1 offline, 1 stale, 1 never seen"
    assert limits(healthy(12, live=9)).ccl.reason == "3 modules offline, 9 of 12 live"


def test_data_that_outlived_its_stale_age_counts_zero():
    m = dataclasses.replace(module(1), stale_after_s=5.0)
    snap = bank(m, module(2))
    assert limits(snap, now=NOW).ccl.value == 40_000
    later = limits(snap, now=NOW + 10)  # module 1's data is 11 s old: stale
    assert later.ccl.value == 20_000 and later.ccl.reason == "1 module stale, 1 of 2 live"


def test_an_ok_module_without_telemetry_counts_zero():
    lim = limits(bank(module(1), module(2, telemetry=False)))
    assert lim.ccl.value == 20_000 and "1 module without data" in lim.ccl.reason


def test_no_live_module_means_zero():
    lim = limits(healthy(3, live=0))
    assert lim.ccl.value == lim.dcl.value == 0
    assert lim.ccl.cause is LimitCause.NO_LIVE_MODULE
    assert lim.ccl.reason == "no module live (3 configured)"
    assert limits(bank()).ccl.reason == "no module configured"


def test_reported_design_capacity_or_the_configured_one():
    snap = bank(module(1, design_mah=200_000), module(2, design_mah=None), module(3, design_mah=0))
    assert limits(snap).capacity_mah == 400_000
    assert limits(snap).ccl.value == 80_000
    own = ChargeLimitsSettings(capacity_from_bms=False, module_capacity_ah=50)
    assert limits(snap, own).capacity_mah == 150_000
    assert limits(snap, own).module_ccl_ma == 10_000


# ------------------------------------------------------------------------- derating ------

@pytest.mark.parametrize("mv,factor", [(3300, 1000), (3450, 1000), (3500, 666), (3580, 133),
                                       (3600, 0), (3700, 0)])
def test_charge_taper_as_the_highest_cell_nears_over_voltage(mv, factor):
    snap = bank(module(1), module(2), module(3), module(4, high=(7, mv)))
    lim = limits(snap)
    assert lim.ccl.value == 80_000 * factor // 1000
    if factor < 1000:
        assert (lim.ccl.cause, lim.ccl.position, lim.ccl.index) == (
            LimitCause.CELL_VOLTAGE, 4, 7)
        assert lim.ccl.reason == f"cell 7 of module 4 at {mv / 1000:.3f} V"
    assert lim.dcl.value == 400_000  # a high cell does not limit the discharge


def test_discharge_taper_as_the_lowest_cell_nears_under_voltage():
    lim = limits(bank(module(1), module(2, low=(3, 2900))))
    assert lim.dcl.value == 200_000 * 500 // 1000
    assert lim.dcl.reason == "cell 3 of module 2 at 2.900 V"
    assert lim.ccl.value == 40_000


@pytest.mark.parametrize("dc,factor,cause,word", [
    (20, 200, LimitCause.COLD, "cold: 2.0 C"), (0, 0, LimitCause.COLD, "cold: 0.0 C"),
    (-50, 0, LimitCause.COLD, "cold: -5.0 C"), (100, 1000, LimitCause.CAPACITY, ""),
    (470, 600, LimitCause.HOT, "hot: 47.0 C"), (500, 0, LimitCause.HOT, "hot: 50.0 C"),
])
def test_charge_derates_in_the_cold_and_the_heat(dc, factor, cause, word):
    lim = limits(bank(module(1), module(2, cell_temp_dc=dc)))
    assert lim.ccl.value == 40_000 * factor // 1000
    assert lim.ccl.cause is cause
    if word:
        assert lim.ccl.reason == f"{word}, module 2 sensor 1"


def test_discharge_temperature_tapers():
    assert limits(bank(module(1, cell_temp_dc=-150))).dcl.value == 50_000
    assert limits(bank(module(1, cell_temp_dc=-150))).dcl.cause is LimitCause.COLD
    assert limits(bank(module(1, cell_temp_dc=575))).dcl.value == 50_000
    assert limits(bank(module(1, cell_temp_dc=20))).dcl.value == 100_000  # cold charge only


def test_only_cell_sensors_derate():
    m = module(1)
    hot_mosfet = dataclasses.replace(m, telemetry=dataclasses.replace(
        m.telemetry, temp_dc=(250,) * 4 + (700, -100)))
    assert limits(bank(hot_mosfet)).ccl.value == 20_000


def test_the_worst_module_sets_the_bank_limit_and_says_why():
    snap = bank(module(1, cell_temp_dc=50), module(2, high=(5, 3525)), module(3))
    lim = limits(snap)
    assert lim.ccl.value == 60_000 * 500 // 1000  # both at 500: the cell wins the tie
    assert (lim.ccl.cause, lim.ccl.position) == (LimitCause.CELL_VOLTAGE, 2)


@pytest.mark.parametrize("flag", [c for c in Condition if c.value and c & CHARGE_PROTECTIONS])
def test_a_charge_protection_stops_charging(flag):
    lim = limits(bank(module(1), module(2, protections=flag)))
    assert lim.ccl.value == 0 and lim.ccl.cause is LimitCause.PROTECTION
    assert lim.ccl.position == 2 and lim.ccl.reason.startswith("module 2 BMS protection: ")
    assert lim.dcl.value == (0 if flag & DISCHARGE_PROTECTIONS else 200_000)


def test_protection_reason_names_the_condition():
    lim = limits(bank(module(3, protections=Condition.CELL_UNDER_VOLTAGE)))
    assert lim.dcl.reason == "module 3 BMS protection: cell under voltage"
    assert lim.ccl.value == 20_000


def test_bank_maxima_cap_the_currents():
    s = ChargeLimitsSettings(charge_max_a=150, discharge_max_a=500)
    lim = limits(healthy(12), s)
    assert (lim.ccl.value, lim.ccl.cause, lim.ccl.reason) == (
        150_000, LimitCause.BANK_CAP, "bank maximum 150 A")
    assert lim.dcl.value == 500_000
    assert limits(healthy(12, live=6), s).ccl.value == 120_000  # below the cap: share


def test_rectifier_setting_is_carried():
    assert limits(healthy(2), ChargeLimitsSettings(rectifier_charge_a=240)).rectifier_ma == 240_000


def test_taper_rejects_an_empty_span():
    with pytest.raises(ValueError):
        taper(1, 5, 5)


# --------------------------------------------------------------------- properties --------

rates = st.sampled_from([0.1, 0.2, 0.5, 1.0])
statuses = st.sampled_from(list(ModuleStatus))
modules_st = st.lists(st.builds(
    lambda status, mv, low, temp, cap, prot: (status, mv, low, temp, cap, prot),
    statuses, st.integers(2500, 3800), st.integers(2500, 3800), st.integers(-400, 700),
    st.one_of(st.none(), st.integers(1, 400_000)),
    st.sampled_from([Condition.NONE, Condition.CELL_OVER_VOLTAGE, Condition.CELL_UNDER_VOLTAGE,
                     Condition.NONE, Condition.NONE])), max_size=16)


def build(specs):
    return bank(*(module(p, status=s, high=(2, mv), low=(9, low), cell_temp_dc=temp,
                         design_mah=cap, protections=prot)
                  for p, (s, mv, low, temp, cap, prot) in enumerate(specs, start=1)))


@given(modules_st, rates, st.one_of(st.none(), st.integers(1, 2000)))
@hsettings(max_examples=150, deadline=None)
def test_never_negative_never_above_the_configured_maxima(specs, rate, cap_a):
    s = ChargeLimitsSettings(charge_c_rate=rate, charge_max_a=cap_a, discharge_max_a=cap_a)
    snap = build(specs)
    lim = limits(snap, s)
    live_capacity = lim.capacity_mah
    for limit, rate_pm in ((lim.ccl, s.charge_rate_max_ppm),
                           (lim.dcl, s.discharge_rate_ppm)):
        assert limit.value >= 0
        assert limit.value <= live_capacity * rate_pm // 1_000_000
        if cap_a is not None:
            assert limit.value <= cap_a * 1000
        assert limit.reason
    assert lim.ccl.value <= live_capacity * s.charge_rate_ppm // 1_000_000
    assert lim.modules_counted <= lim.modules_configured == len(specs)


@given(modules_st)
@hsettings(max_examples=100, deadline=None)
def test_zero_under_protection(specs):
    snap = build(specs)
    lim = limits(snap)
    live = [m for m in snap.modules if m.status is ModuleStatus.OK]
    if any(m.bms.protections & CHARGE_PROTECTIONS for m in live):
        assert lim.ccl.value == 0 and lim.ccl.cause is LimitCause.PROTECTION
    if any(m.bms.protections & DISCHARGE_PROTECTIONS for m in live):
        assert lim.dcl.value == 0 and lim.dcl.cause is LimitCause.PROTECTION


@given(st.integers(1, 16), st.integers(0, 16), st.integers(0, 16), st.integers(2800, 3800),
       st.integers(-300, 600))
@hsettings(max_examples=150, deadline=None)
def test_monotone_in_live_modules(n, a, b, mv, temp):
    """Modules alike: more of them live never lowers a limit."""
    fewer, more = sorted((min(a, n), min(b, n)))
    def at(live):
        return limits(bank(*(module(p, status=ModuleStatus.OK if p <= live
                                    else ModuleStatus.OFFLINE, high=(4, mv), cell_temp_dc=temp)
                             for p in range(1, n + 1))))
    x, y = at(fewer), at(more)
    assert x.ccl.value <= y.ccl.value and x.dcl.value <= y.dcl.value


@given(st.integers(2500, 3800), st.integers(2500, 3800), st.integers(1, 12))
@hsettings(max_examples=150, deadline=None)
def test_monotone_in_cell_headroom(mv_a, mv_b, n):
    """A lower highest cell (more headroom to over-voltage) never lowers the CCL; a higher
    lowest cell never lowers the DCL."""
    lo, hi = sorted((mv_a, mv_b))
    def ccl(mv):
        return limits(bank(*(module(p, high=(7, mv) if p == 1 else None)
                             for p in range(1, n + 1)))).ccl.value
    def dcl(mv):
        return limits(bank(*(module(p, cell_mv=3300, low=(7, mv) if p == 1 else None)
                             for p in range(1, n + 1)))).dcl.value
    assert ccl(lo) >= ccl(hi)
    assert dcl(hi) >= dcl(lo)


@given(st.integers(-2730, 10000), st.integers(-2000, 2000), st.integers(1, 2000))
def test_taper_is_bounded_and_monotone(value, full, span):
    high = taper(value, full, full + span)
    low = taper(value, full, full - span)
    assert 0 <= high <= 1000 and 0 <= low <= 1000
    assert taper(value + 1, full, full + span) <= high
    assert taper(value + 1, full, full - span) >= low
