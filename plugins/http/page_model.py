"""The JSON documents of the HTTP API: a pure view of a bank snapshot at ``now``.

Field names are stable (docs/http.md documents the schema, version :data:`SCHEMA`).
Numbers are the model's fixed-unit integers with the unit in the name (``voltage_mv``,
``current_ma``, ``temp_dc`` = 0.1 degC, ``soc_permille``), the same numbers SNMP and
Modbus serve; ``null`` means unknown. Every module carries its ``status`` (quality) and
``age_s``; its measurements, BMS flags and LED view are ``null`` unless the status is
``ok``. Ages are seconds at ``now`` on the gateway's monotonic clock, times of day are
UTC ISO 8601.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from typing import Any

from gateway.hub import age_snapshot
from gateway.leds import FAULT_CODE_TEXT, LedView, make_led_view
from gateway.model import (
    Alarm,
    BackupEstimate,
    BankSnapshot,
    BmsStatus,
    BusStatus,
    ChargeLimits,
    Limit,
    LimitCause,
    LinkCounters,
    Location,
    ModuleReading,
    ModuleStatus,
    Telemetry,
)

SCHEMA = 1

COUNTERS = ("frames_ok", "timeouts", "checksum_errors", "format_errors", "rtn_errors",
            "wrong_address", "no_data", "garbage_bytes")


def iso(wall_time: float | None) -> str | None:
    if wall_time is None:
        return None
    dt = datetime.datetime.fromtimestamp(wall_time, tz=datetime.timezone.utc)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _age(now: float, then: float | None) -> float | None:
    return None if then is None else round(max(0.0, now - then), 3)


def _names(flags: Iterable[Any]) -> list[str]:
    return [f.name.lower() for f in flags if f.value]


def _first_index(values: Sequence[int | None], target: int | None) -> int | None:
    if target is None:
        return None
    return next(i for i, v in enumerate(values, start=1) if v == target)


def counters_document(c: LinkCounters) -> dict[str, int]:
    return {k: getattr(c, k) for k in COUNTERS}


def telemetry_document(t: Telemetry) -> dict[str, Any]:
    temps = [v for v in t.temp_dc if v is not None]
    return {
        "voltage_mv": t.voltage_mv,
        "current_ma": t.current_ma,
        "soc_permille": t.soc_permille,
        "soh_permille": t.soh_permille,
        "remaining_mah": t.remaining_mah,
        "full_mah": t.full_mah,
        "design_mah": t.design_mah,
        "cycles": t.cycles,
        "cell_mv": list(t.cell_mv),
        "cell_min_mv": t.cell_min_mv,
        "cell_min_cell": _first_index(t.cell_mv, t.cell_min_mv),
        "cell_max_mv": t.cell_max_mv,
        "cell_max_cell": _first_index(t.cell_mv, t.cell_max_mv),
        "temps": [{"sensor": i, "temp_dc": v,
                   "role": t.temp_roles[i - 1].name.lower() if i <= len(t.temp_roles) else None}
                  for i, v in enumerate(t.temp_dc, start=1)],
        "temp_min_dc": min(temps) if temps else None,
        "temp_max_dc": max(temps) if temps else None,
    }


def bms_document(b: BmsStatus) -> dict[str, Any]:
    return {
        "warnings": _names(b.warnings),
        "protections": _names(b.protections),
        "faults": _names(b.faults),
        "states": _names(b.states),
        "balancing": None if b.balancing is None else list(b.balancing),
        "unclassified": [f"{f.field}:{f.bit}" for f in b.unclassified],
    }


def leds_document(v: LedView) -> dict[str, Any]:
    name = lambda s: None if s is None else s.name.lower()  # noqa: E731
    return {
        "run": name(v.run),
        "alm": name(v.alm),
        "alm_colour": v.alm_colour,
        "err": name(v.err),
        "soc": None if v.soc is None else [name(s) for s in v.soc],
        "mode": None if v.mode is None else v.mode.value,
        "fault_codes": list(v.fault_codes),
        "fault_texts": [FAULT_CODE_TEXT[c] for c in v.fault_codes],
        "buzzer_beeps": v.buzzer_beeps,
    }


def alarm_document(a: Alarm, now: float) -> dict[str, Any]:
    return {
        "seq": a.seq,
        "kind": a.kind,
        "severity": a.severity.name.lower(),
        "position": a.position,
        "sub_index": a.sub_index,
        "value": a.value,
        "threshold": a.threshold,
        "raised_time": iso(a.raised_wall_time),
        "age_s": _age(now, a.raised_at),
        "text": a.text,
    }


def module_document(m: ModuleReading, now: float, alarms: Sequence[Alarm] = ()) -> dict[str, Any]:
    """One module. ``m`` is taken as the snapshot aged to ``now`` says it is."""
    live = m.status is ModuleStatus.OK
    ident = m.identity
    leds = make_led_view(m, now) if live else None
    return {
        "position": m.position,
        "bus": m.bus,
        "address": m.address,
        "status": m.status.name.lower(),
        "link": m.link.value,
        "age_s": _age(now, m.updated_at),
        "stale_after_s": m.stale_after_s,
        "identity": None if ident is None else {
            "serial": ident.serial, "pack_serial": ident.pack_serial, "model": ident.model,
            "firmware": ident.firmware, "manufacturer": ident.manufacturer},
        "telemetry": telemetry_document(m.telemetry) if live and m.telemetry else None,
        "bms": bms_document(m.bms) if live and m.bms else None,
        "leds": None if leds is None else leds_document(leds),
        "alarms": [a.seq for a in alarms if a.position == m.position],
        "counters": counters_document(m.counters),
    }


def bus_document(b: BusStatus, now: float) -> dict[str, Any]:
    return {
        "name": b.name,
        "port": b.port,
        "connected": b.connected,
        "last_cycle_ms": b.last_cycle_ms,
        "last_cycle_age_s": _age(now, b.last_cycle_at),
        "cycles": b.cycles,
        "reconnects": b.reconnects,
        "counters": counters_document(b.counters),
    }


def bank_figures(snap: BankSnapshot) -> dict[str, Any]:
    b = snap.bank
    def loc(at: Location | None) -> dict[str, int] | None:
        return None if at is None else {"position": at.position, "index": at.index}

    return {
        "quality": "live" if b.modules_online else "no_live_module",
        "current_ma": b.current_ma,
        "voltage_min_mv": b.voltage_min_mv,
        "voltage_max_mv": b.voltage_max_mv,
        "voltage_mean_mv": b.voltage_mean_mv,
        "soc_permille": b.soc_permille,
        "soh_min_permille": b.soh_min_permille,
        "remaining_mah": b.remaining_mah,
        "full_mah": b.full_mah,
        "cell_min_mv": b.cell_min_mv,
        "cell_min_at": loc(b.cell_min_at),
        "cell_max_mv": b.cell_max_mv,
        "cell_max_at": loc(b.cell_max_at),
        "temp_min_dc": b.temp_min_dc,
        "temp_min_at": loc(b.temp_min_at),
        "temp_max_dc": b.temp_max_dc,
        "temp_max_at": loc(b.temp_max_at),
        "modules_configured": b.modules_configured,
        "modules_online": b.modules_online,
        "modules_alarmed": b.modules_alarmed,
    }


def _limit_document(limit: Limit, unit: str) -> dict[str, Any]:
    return {unit: limit.value, "cause": limit.cause.name.lower(), "reason": limit.reason,
            "position": limit.position or None, "index": limit.index or None}


def limits_document(lim: ChargeLimits | None, fresh: bool) -> dict[str, Any] | None:
    """The charge_limits processor's CVL, CCL and DCL (docs/charge_limits.md). From a
    snapshot gone stale since, the current limits read 0 with cause ``not_fresh``, as
    SNMP and Modbus serve them: a controller following them stops."""
    if lim is None:
        return None
    ccl, dcl = lim.ccl, lim.dcl
    if not fresh:
        ccl = dcl = Limit(value=0, cause=LimitCause.NOT_FRESH, reason="bank data not fresh")
    return {"cvl": _limit_document(lim.cvl, "mv"), "ccl": _limit_document(ccl, "ma"),
            "dcl": _limit_document(dcl, "ma"), "cutoff_mv": lim.cutoff_mv,
            "eod_mv": lim.eod_mv, "modules_counted": lim.modules_counted if fresh else 0,
            "modules_configured": lim.modules_configured, "rectifier_ma": lim.rectifier_ma}


def backup_document(e: BackupEstimate | None) -> dict[str, Any] | None:
    """The backup_time processor's figures (docs/backup_time.md); null where unknown."""
    if e is None:
        return None
    return {
        "state": None if e.state is None else e.state.name.lower(),
        "on_battery_since": None if e.on_battery_since_wall_time is None
        else iso(e.on_battery_since_wall_time),
        "seconds_on_battery": e.seconds_on_battery, "seconds_to_eod": e.seconds_to_eod,
        "limited_by": e.limited_by, "seconds_to_full": e.seconds_to_full,
        "discharge_current_ma": e.discharge_current_ma, "record_last": e.record_last,
        "records": [{"number": r.number, "start": iso(r.started_wall_time),
                     "end": iso(r.ended_wall_time), "duration_s": r.duration_s,
                     "delivered_mah": r.delivered_mah, "delivered_wh": r.delivered_wh,
                     "soc_start_permille": r.soc_start_permille,
                     "soc_end_permille": r.soc_end_permille,
                     "voltage_min_mv": r.voltage_min_mv, "cell_min_mv": r.cell_min_mv,
                     "temp_max_dc": r.temp_max_dc, "eod_reached": r.eod_reached}
                    for r in e.records],
    }


def gateway_document(name: str, version: str, refresh_s: float) -> dict[str, Any]:
    return {"name": name, "version": version, "refresh_s": refresh_s}


def make_bank_document(snapshot: BankSnapshot | None, now: float, *,
                       gateway: dict[str, Any]) -> dict[str, Any]:
    """``/api/v1/bank``: the whole bank (every module in full) at ``now``."""
    if snapshot is None:
        return {"schema": SCHEMA, "gateway": gateway, "snapshot": None, "bank": None,
                "buses": [], "modules": [], "alarms": []}
    snap = age_snapshot(snapshot, now)
    return {
        "schema": SCHEMA,
        "gateway": gateway,
        "snapshot": {"seq": snap.seq, "age_s": _age(now, snap.created_at),
                     "time": iso(snap.wall_time), "alarm_last_seq": snap.alarm_last_seq},
        "bank": bank_figures(snap),
        "charge_limits": limits_document(snap.charge_limits, fresh=snap is snapshot),
        "backup": backup_document(snap.backup),
        "buses": [bus_document(b, now) for b in snap.buses],
        "modules": [module_document(m, now, snap.alarms) for m in snap.modules],
        "alarms": [alarm_document(a, now) for a in snap.alarms],
    }


def make_module_document(snapshot: BankSnapshot | None, now: float,
                         position: int) -> dict[str, Any] | None:
    """``/api/v1/modules/{position}``; None when no module has that position."""
    if snapshot is None:
        return None
    snap = age_snapshot(snapshot, now)
    m = snap.module(position)
    if m is None:
        return None
    return {"schema": SCHEMA, **module_document(m, now, snap.alarms)}


def make_alarms_document(snapshot: BankSnapshot | None, now: float) -> dict[str, Any]:
    """``/api/v1/alarms``: the active alarm table."""
    alarms = snapshot.alarms if snapshot is not None else ()
    return {"schema": SCHEMA,
            "alarm_last_seq": snapshot.alarm_last_seq if snapshot is not None else 0,
            "alarms": [alarm_document(a, now) for a in alarms]}
