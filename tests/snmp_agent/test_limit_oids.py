"""oid_map: the bmsLimits scalars from the snapshot's charge limits."""

from __future__ import annotations

import dataclasses

from gateway.model import LimitCause
from plugins.charge_limits.limits import make_charge_limits
from plugins.charge_limits.settings import ChargeLimitsSettings
from plugins.snmp_agent import oid_map as om
from plugins.snmp_agent.oid_map import BankOptions

T0 = 1000.0
OPTS = BankOptions(software_version="1.2.3", started_at=T0 - 10.0)
NUMBERS = {"bank1": 1, "bank2": 2}
LIMIT_OBJECTS = [o for o in om.OBJECT_TYPES.values() if o.oid[:len(om._LIMITS)] == om._LIMITS]


def table(snapshot, now=T0):
    rows = om.make_bank_variables(snapshot, now=now, bus_numbers=NUMBERS, options=OPTS)
    return {v.oid: v.value for v in rows}


def get(tbl, obj):
    return tbl.get(obj.oid + (0,))


def with_limits(snapshot, **settings):
    lim = make_charge_limits(snapshot, snapshot.created_at, ChargeLimitsSettings(**settings))
    return dataclasses.replace(snapshot, charge_limits=lim)


def test_limits_and_reasons_are_served(bank_snapshot):
    snap = with_limits(bank_snapshot, rectifier_charge_a=100)
    lim = snap.charge_limits
    tbl = table(snap, now=snap.created_at)
    assert get(tbl, om.LIMIT_CHARGE_VOLTAGE) == 53_250
    assert get(tbl, om.LIMIT_CHARGE_VOLTAGE_CAUSE) == LimitCause.FLOAT
    assert get(tbl, om.LIMIT_CHARGE_CURRENT) == lim.ccl.value
    assert get(tbl, om.LIMIT_CHARGE_CURRENT_CAUSE) == lim.ccl.cause
    assert get(tbl, om.LIMIT_CHARGE_CURRENT_REASON) == lim.ccl.reason.encode()
    assert get(tbl, om.LIMIT_CHARGE_CURRENT_MODULE) == lim.ccl.position
    assert get(tbl, om.LIMIT_DISCHARGE_CURRENT) == lim.dcl.value
    assert get(tbl, om.LIMIT_DISCHARGE_CURRENT_REASON) == lim.dcl.reason.encode()
    assert (get(tbl, om.LIMIT_CUTOFF_VOLTAGE), get(tbl, om.LIMIT_EOD_VOLTAGE)) == (40_300, 40_500)
    assert get(tbl, om.LIMIT_MODULES_COUNTED) == lim.modules_counted
    assert get(tbl, om.LIMIT_RECTIFIER_CURRENT) == 100_000


def test_absent_without_the_plugin_and_rectifier_absent_when_not_configured(bank_snapshot):
    assert bank_snapshot.charge_limits is not None  # the fixture's hub computes them
    bank_snapshot = dataclasses.replace(bank_snapshot, charge_limits=None)
    tbl = table(bank_snapshot, now=bank_snapshot.created_at)
    assert [o.name for o in LIMIT_OBJECTS if get(tbl, o) is not None] == []
    tbl = table(with_limits(bank_snapshot), now=bank_snapshot.created_at)
    missing = [o.name for o in LIMIT_OBJECTS if get(tbl, o) is None]
    assert missing == ["bmsLimitRectifierCurrent"]


def test_a_stalled_hub_serves_zero_current_limits_not_the_old_ones(bank_snapshot):
    """The SNMP side's guard is the source's stale age (as for every module value)."""
    snap = with_limits(dataclasses.replace(bank_snapshot, modules=tuple(
        dataclasses.replace(m, stale_after_s=30.0) for m in bank_snapshot.modules)))
    assert snap.charge_limits.dcl.value > 0
    tbl = table(snap, now=snap.created_at + 3600)  # the modules' data outlived its age
    assert get(tbl, om.LIMIT_CHARGE_CURRENT) == get(tbl, om.LIMIT_DISCHARGE_CURRENT) == 0
    assert get(tbl, om.LIMIT_CHARGE_CURRENT_CAUSE) == LimitCause.NOT_FRESH
    assert get(tbl, om.LIMIT_CHARGE_CURRENT_REASON) == b"bank data not fresh"
    assert get(tbl, om.LIMIT_MODULES_COUNTED) == 0
    assert get(tbl, om.LIMIT_CHARGE_VOLTAGE) == 53_250


def test_long_reasons_are_cut_at_64_octets(bank_snapshot):
    snap = with_limits(bank_snapshot)
    long = dataclasses.replace(snap.charge_limits.ccl, reason="x" * 80)
    snap = dataclasses.replace(snap, charge_limits=dataclasses.replace(
        snap.charge_limits, ccl=long))
    value = get(table(snap, now=snap.created_at), om.LIMIT_CHARGE_CURRENT_REASON)
    assert len(value) == 64 and value.endswith(b"...")


def test_the_mib_cause_enumeration_is_the_model_enum():
    from .test_mib import camel, smidump

    td = smidump("BMS-GATEWAY-MIB")["typedefs"]["BmsLimitCause"]
    named = {k: int(v["number"]) for k, v in td.items()
             if isinstance(v, dict) and v.get("nodetype") == "namednumber"}
    assert named == {camel(c.name): int(c) for c in LimitCause}
