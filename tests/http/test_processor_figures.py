"""The charge_limits and backup_time processors' figures on /metrics and /api/v1/bank:
served from the snapshot like every other value, unknown left out, never an old limit."""

from __future__ import annotations

import dataclasses

from gateway.model import BackupEstimate, BankState, ChargeLimits, Limit, LimitCause
from plugins.http.metrics import iter_samples, make_metric_families
from plugins.http.page_model import make_bank_document

LIMITS = ChargeLimits(
    computed_at=0.0, cvl=Limit(value=53_250, cause=LimitCause.FLOAT, reason="float"),
    ccl=Limit(value=180_000, cause=LimitCause.MODULES_NOT_LIVE,
              reason="3 modules offline, 9 of 12 live"),
    dcl=Limit(value=900_000, cause=LimitCause.CAPACITY, reason="1.0 C of 900 Ah"),
    eod_mv=40_500, cutoff_mv=40_300, modules_counted=9, modules_configured=12,
    capacity_mah=900_000, module_ccl_ma=20_000, rectifier_ma=240_000)
BACKUP = BackupEstimate(state=BankState.DISCHARGING, seconds_on_battery=95,
                        seconds_to_eod=14_460, limited_by="capacity", record_last=3)


def samples(snapshot, now):
    fams = make_metric_families(snapshot, now, health={}, name="g", version="1")
    return {(n, tuple(sorted(lab.items()))): v for n, lab, v in iter_samples(fams)}


def test_limits_and_backup_figures_in_base_units(snapshot):
    snap = dataclasses.replace(snapshot, charge_limits=LIMITS, backup=BACKUP)
    s = samples(snap, snap.created_at)
    assert s[("bms_charge_voltage_limit_volts", ())] == 53.25
    assert s[("bms_charge_current_limit_amperes", ())] == 180.0
    assert s[("bms_discharge_current_limit_amperes", ())] == 900.0
    assert s[("bms_limit_cause", (("limit", "ccl"),))] == LimitCause.MODULES_NOT_LIVE
    assert s[("bms_bank_on_battery", ())] == 1
    assert s[("bms_bank_on_battery_seconds", ())] == 95
    assert s[("bms_bank_time_to_eod_seconds", ())] == 14_460
    assert s[("bms_bank_discharges_total", ())] == 3
    assert ("bms_bank_time_to_full_seconds", ()) not in s  # unknown while discharging


def test_without_the_processors_nothing_is_made_up(snapshot):
    s = samples(snapshot, snapshot.created_at)
    assert not [k for k in s if k[0].startswith(("bms_charge", "bms_discharge_current",
                                                  "bms_limit", "bms_bank_on_battery",
                                                  "bms_bank_time_to"))]
    doc = make_bank_document(snapshot, snapshot.created_at, gateway={})
    assert doc["charge_limits"] is None and doc["backup"] is None


def test_the_json_bank_document_carries_limits_with_reasons_and_the_backup_estimate(snapshot):
    snap = dataclasses.replace(snapshot, charge_limits=LIMITS, backup=BACKUP)
    doc = make_bank_document(snap, snap.created_at, gateway={})
    assert doc["charge_limits"]["ccl"] == {
        "ma": 180_000, "cause": "modules_not_live", "reason": "3 modules offline, 9 of 12 live",
        "position": None, "index": None}
    assert doc["charge_limits"]["cvl"]["mv"] == 53_250
    assert doc["backup"]["state"] == "discharging"
    assert doc["backup"]["seconds_to_eod"] == 14_460 and doc["backup"]["seconds_to_full"] is None


def test_limits_from_a_snapshot_gone_stale_read_zero_and_are_not_exported(snapshot):
    """The hub stopped publishing: a module's data outlived its stale age since."""
    modules = tuple(dataclasses.replace(m, stale_after_s=10.0) if m.status.name == "OK" else m
                    for m in snapshot.modules)
    snap = dataclasses.replace(snapshot, modules=modules, charge_limits=LIMITS)
    later = max(m.updated_at for m in modules if m.updated_at is not None) + 60
    doc = make_bank_document(snap, later, gateway={})
    assert doc["charge_limits"]["ccl"]["ma"] == 0
    assert doc["charge_limits"]["ccl"]["cause"] == "not_fresh"
    assert doc["charge_limits"]["cvl"]["mv"] == 53_250  # the configured voltage stands
    assert ("bms_charge_current_limit_amperes", ()) not in samples(snap, later)
