"""The charge_limits registers of the bank block and the SunSpec 802 limit points."""

from __future__ import annotations

import dataclasses

from gateway.model import LimitCause, ModuleStatus
from plugins.charge_limits.limits import make_charge_limits
from plugins.charge_limits.settings import ChargeLimitsSettings
from plugins.modbus_tcp import register_map as rm
from plugins.modbus_tcp import sunspec
from plugins.modbus_tcp.fields import decode_value

STALE_AFTER = 60.0


def with_limits(snapshot, now, **settings):
    lim = make_charge_limits(snapshot, now, ChargeLimitsSettings(**settings))
    return dataclasses.replace(snapshot, charge_limits=lim)


def decoded(layout, values, start=0):
    return {f.name: decode_value(f, values[start + layout.offsets[f.name]:])
            for f in layout.fields}


def bank(snapshot, now):
    image = rm.make_image(snapshot, now, stale_after_s=STALE_AFTER)
    return decoded(rm.BANK_BLOCK, image.bank_unit[0].values)


def model_802(snapshot, now):
    image = rm.make_image(snapshot, now, stale_after_s=STALE_AFTER)
    return decoded(sunspec.MODEL_802, image.bank_unit[-1].values, sunspec.MODEL_802_START)


def test_bank_block_serves_the_limits_and_their_causes(snapshot, clock, mb):
    snap = with_limits(snapshot, clock.now, rectifier_charge_a=240)
    lim = snap.charge_limits
    f = bank(snap, clock.now)
    # the fixture bank: 9 of 12 live (5 stale, 8 offline, 11 never seen); module 3
    # reports a discharge over-current protection
    assert lim.ccl.cause is LimitCause.MODULES_NOT_LIVE
    assert (f["ccl_ma"], f["ccl_cause"], f["ccl_cause_position"], f["ccl_cause_index"]) == (
        lim.ccl.value, 2, 0, 0)
    assert f["ccl_ma"] == lim.capacity_mah * 200 // 1000 and lim.modules_counted == 9
    assert (f["dcl_ma"], f["dcl_cause"], f["dcl_cause_position"]) == (0, 7, mb.TROUBLED)
    assert (f["cvl_mv"], f["cvl_cause"], f["cutoff_mv"], f["eod_mv"]) == (
        53_250, LimitCause.FLOAT, 40_300, 40_500)
    assert (f["limits_modules_counted"], f["rectifier_charge_ma"]) == (9, 240_000)


def test_limits_are_not_implemented_without_the_plugin(snapshot, clock):
    f = bank(snapshot, clock.now)
    for field in rm.LIMIT_FIELDS:
        assert f[field.name] is None, field.name
    p = model_802(snapshot, clock.now)
    assert (p["AChaMax"], p["ADisChaMax"], p["VMax"], p["VMin"]) == (None,) * 4


def test_current_limits_read_zero_while_the_data_is_not_fresh(snapshot, clock):
    snap = with_limits(snapshot, clock.now)
    later = clock.now + 10 * STALE_AFTER  # no new snapshot since: everything is stale
    f = bank(snap, later)
    assert f["bank_status"] == rm.BankStatus.STALE
    assert (f["ccl_ma"], f["ccl_cause"], f["dcl_ma"], f["dcl_cause"]) == (
        0, LimitCause.NOT_FRESH, 0, LimitCause.NOT_FRESH)
    assert f["cvl_mv"] == 53_250  # a configured value, not a live one
    p = model_802(snap, later)
    assert (p["AChaMax"], p["ADisChaMax"], p["VMax"]) == (0, 0, 5325)


def test_current_limits_read_zero_with_no_live_module(clock, mb):
    offline = [mb.make_module(p, clock.now, status=ModuleStatus.OFFLINE) for p in (1, 2)]
    snap = with_limits(mb.make_snapshot(clock.now, modules=offline), clock.now)
    f = bank(snap, clock.now)
    assert f["bank_status"] == rm.BankStatus.NO_LIVE_MODULES
    assert (f["ccl_ma"], f["ccl_cause"], f["limits_modules_counted"]) == (
        0, LimitCause.NO_LIVE_MODULE, 0)


def test_sunspec_802_limit_points(snapshot, clock):
    snap = with_limits(snapshot, clock.now, equalise=True)
    lim = snap.charge_limits
    p = model_802(snap, clock.now)
    assert p["AChaMax"] == lim.ccl.value // 1000 and p["AMax_SF"] == 0
    assert p["ADisChaMax"] == 0  # module 3's discharge protection
    assert (p["VMax"], p["VMin"], p["V_SF"]) == (5475, 4030, -2)  # equalise, cut-off


def test_sunspec_current_limits_round_down(clock, mb):
    snap = mb.make_snapshot(clock.now, modules=[mb.make_module(1, clock.now)])
    snap = with_limits(snap, clock.now, charge_c_rate=0.2049)
    assert snap.charge_limits.ccl.value == 20_490
    assert model_802(snap, clock.now)["AChaMax"] == 20
