"""The pure view: a snapshot (and the time) as MQTT topics and JSON payloads.

No I/O and no clock of its own: the caller passes ``now`` (monotonic, the clock the
snapshot was made with). The layout, under ``<prefix>/<site>`` (docs/mqtt.md):

* ``status`` - ``online`` / ``offline`` (retained; ``offline`` is also the last will)
* ``bank/state`` - the bank aggregates (retained JSON)
* ``<bus>/<address>/state`` - one module: status, age, and every value with its own age
  and quality (retained JSON). A module whose data is not live carries no values: its
  old values are never published as current.
* ``<bus>/<address>/availability`` - ``online`` while the module's data is live, else
  ``offline`` (retained)
* ``alarms/event`` - one message per alarm raised or cleared (QoS 1, not retained)
* ``alarms/active`` - the active alarm table (retained JSON)
* ``health`` - the gateway's health figures (retained JSON)

Values are integers in the model's fixed units with the unit in the key (``voltage_mv``,
``temp_dc`` = 0.1 degC, ``soc_permille``): exactly the numbers SNMP and Modbus serve.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.health import Figure
from gateway.hub import age_snapshot
from gateway.model import (
    Alarm,
    AlarmCleared,
    AlarmRaised,
    BackupEstimate,
    BankAggregates,
    BankSnapshot,
    ChargeLimits,
    Event,
    Limit,
    Location,
    ModuleReading,
    ModuleStatus,
)

Kind = Literal["event", "state"]
ONLINE = "online"
OFFLINE = "offline"
STATUS_NAMES = {ModuleStatus.OK: "ok", ModuleStatus.STALE: "stale",
                ModuleStatus.OFFLINE: "offline", ModuleStatus.NEVER_SEEN: "never_seen"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """One MQTT publication. ``kind`` says which bound of the queue it counts against:
    events are kept longest, state messages are a history."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    kind: Kind = "state"


def iso_time(wall_time: float) -> str:
    dt = datetime.datetime.fromtimestamp(wall_time, tz=datetime.timezone.utc)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True, slots=True)
class Layout:
    """Topic names under ``<prefix>/<site>``."""

    prefix: str
    site: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.site}"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def bank(self) -> str:
        return f"{self.base}/bank/state"

    @property
    def events(self) -> str:
        return f"{self.base}/alarms/event"

    @property
    def active_alarms(self) -> str:
        return f"{self.base}/alarms/active"

    @property
    def health(self) -> str:
        return f"{self.base}/health"

    def module(self, m: ModuleReading) -> str:
        return f"{self.base}/{m.bus}/{m.address}"

    def module_state(self, m: ModuleReading) -> str:
        return f"{self.module(m)}/state"

    def module_availability(self, m: ModuleReading) -> str:
        return f"{self.module(m)}/availability"


# ------------------------------------------------------------------ module values ---

def module_values(m: ModuleReading) -> dict[str, Any]:
    """The module's values (integers in fixed units; lists for cells and sensors;
    ``None`` = unknown). Empty unless the data is live."""
    if m.status is not ModuleStatus.OK or m.telemetry is None:
        return {}
    t = m.telemetry
    values: dict[str, Any] = {
        "voltage_mv": t.voltage_mv, "current_ma": t.current_ma,
        "soc_permille": t.soc_permille, "soh_permille": t.soh_permille,
        "remaining_mah": t.remaining_mah, "full_mah": t.full_mah,
        "design_mah": t.design_mah, "cycles": t.cycles,
        "cell_min_mv": t.cell_min_mv, "cell_max_mv": t.cell_max_mv,
        "cell_mv": list(t.cell_mv), "temp_dc": list(t.temp_dc),
        "temp_roles": [r.name.lower() for r in t.temp_roles],
    }
    if m.bms is not None:
        values["warnings"] = _flag_names(m.bms.warnings)
        values["protections"] = _flag_names(m.bms.protections)
        values["faults"] = _flag_names(m.bms.faults)
        values["states"] = _flag_names(m.bms.states)
    return values


def _flag_names(flags) -> list[str]:
    return [f.name.lower() for f in type(flags) if f.value and f in flags and f.name]


def _quality(value: Any) -> str:
    if value is None or (isinstance(value, list) and value and all(v is None for v in value)):
        return "unknown"
    return "ok"


def module_state(m: ModuleReading, snapshot: BankSnapshot, now: float) -> dict[str, Any]:
    """The JSON state message of module ``m`` (already aged to ``now``)."""
    age = m.age_s(now)
    wall_now = snapshot.wall_time + (now - snapshot.created_at)
    values = module_values(m)
    return {
        "time": iso_time(wall_now),
        "bus": m.bus, "address": m.address, "position": m.position,
        "status": STATUS_NAMES[m.status],
        "link": m.link.value,
        "age_s": None if age is None else round(age, 3),
        "updated_time": None if age is None else iso_time(wall_now - age),
        "values": {k: {"value": v, "age_s": round(age, 3) if age is not None else None,
                       "quality": _quality(v)} for k, v in values.items()},
    }


def _location(loc: Location | None) -> dict[str, int] | None:
    return None if loc is None else {"module": loc.position, "index": loc.index}


def bank_values(b: BankAggregates) -> dict[str, Any]:
    return {
        "current_ma": b.current_ma, "voltage_min_mv": b.voltage_min_mv,
        "voltage_max_mv": b.voltage_max_mv, "voltage_mean_mv": b.voltage_mean_mv,
        "cell_min_mv": b.cell_min_mv, "cell_min_at": _location(b.cell_min_at),
        "cell_max_mv": b.cell_max_mv, "cell_max_at": _location(b.cell_max_at),
        "temp_min_dc": b.temp_min_dc, "temp_min_at": _location(b.temp_min_at),
        "temp_max_dc": b.temp_max_dc, "temp_max_at": _location(b.temp_max_at),
        "soc_permille": b.soc_permille, "soh_min_permille": b.soh_min_permille,
        "remaining_mah": b.remaining_mah, "full_mah": b.full_mah,
        "modules_configured": b.modules_configured, "modules_online": b.modules_online,
        "modules_alarmed": b.modules_alarmed,
    }


def _limit(limit: Limit, unit: str) -> dict[str, Any]:
    return {unit: limit.value, "cause": limit.cause.name.lower(), "reason": limit.reason}


def limits_values(lim: ChargeLimits | None) -> dict[str, Any] | None:
    """The charge_limits processor's CVL, CCL and DCL (docs/charge_limits.md)."""
    if lim is None:
        return None
    return {"cvl": _limit(lim.cvl, "mv"), "ccl": _limit(lim.ccl, "ma"),
            "dcl": _limit(lim.dcl, "ma"), "cutoff_mv": lim.cutoff_mv, "eod_mv": lim.eod_mv,
            "modules_counted": lim.modules_counted}


def backup_values(e: BackupEstimate | None) -> dict[str, Any] | None:
    """The backup_time processor's figures (docs/backup_time.md); null where unknown."""
    if e is None:
        return None
    return {"state": None if e.state is None else e.state.name.lower(),
            "seconds_on_battery": e.seconds_on_battery, "seconds_to_eod": e.seconds_to_eod,
            "seconds_to_full": e.seconds_to_full, "limited_by": e.limited_by,
            "record_last": e.record_last}


def bank_state(snapshot: BankSnapshot, now: float) -> dict[str, Any]:
    wall_now = snapshot.wall_time + (now - snapshot.created_at)
    return {"time": iso_time(wall_now), **bank_values(snapshot.bank),
            "alarms_active": len(snapshot.alarms), "alarm_last_seq": snapshot.alarm_last_seq,
            "charge_limits": limits_values(snapshot.charge_limits),
            "backup": backup_values(snapshot.backup)}


# ------------------------------------------------------------------------ alarms ---

def alarm_fields(a: Alarm) -> dict[str, Any]:
    return {"seq": a.seq, "kind": a.kind, "severity": a.severity.name.lower(),
            "module": a.position, "sub_index": a.sub_index, "value": a.value,
            "threshold": a.threshold, "text": a.text,
            "raised_time": iso_time(a.raised_wall_time), "raised_ts": a.raised_wall_time}


def event_message(layout: Layout, event: Event) -> Message | None:
    """An alarm raised or cleared as a QoS 1 event; its time is when it happened. None
    for the hub's other events (bank on battery / on mains), which this plugin does not
    publish."""
    if not isinstance(event, AlarmRaised | AlarmCleared):
        return None
    if isinstance(event, AlarmRaised):
        data = {"event": "raised", "time": iso_time(event.alarm.raised_wall_time),
                "ts": event.alarm.raised_wall_time, **alarm_fields(event.alarm)}
    else:
        data = {"event": "cleared", "time": iso_time(event.cleared_wall_time),
                "ts": event.cleared_wall_time, **alarm_fields(event.alarm),
                "clear_seq": event.clear_seq}
    return Message(topic=layout.events, payload=encode(data), qos=1, kind="event")


def active_alarms(layout: Layout, snapshot: BankSnapshot) -> Message:
    return Message(topic=layout.active_alarms, qos=1, retain=True, payload=encode({
        "alarm_last_seq": snapshot.alarm_last_seq,
        "alarms": [alarm_fields(a) for a in snapshot.alarms]}))


# ------------------------------------------------------------------------ health ---

def health_message(layout: Layout, figures: Mapping[str, Iterable[Figure]],
                   snapshot: BankSnapshot | None, wall_time: float, qos: int = 0) -> Message:
    data: dict[str, Any] = {"time": iso_time(wall_time), "figures": {
        source: [{"name": f.name, "value": f.value, "kind": f.kind,
                  **({"labels": dict(f.labels)} if f.labels else {})} for f in figs]
        for source, figs in figures.items()}}
    if snapshot is not None:
        data["buses"] = [{"name": b.name, "connected": b.connected, "cycles": b.cycles,
                          "last_cycle_ms": b.last_cycle_ms, "reconnects": b.reconnects,
                          "timeouts": b.counters.timeouts,
                          "frames_ok": b.counters.frames_ok} for b in snapshot.buses]
    return Message(topic=layout.health, payload=encode(data), qos=qos, retain=True)


# ----------------------------------------------------------------------- planner ---

@dataclass(slots=True)
class _Sent:
    status: Any = None  #: a module's ModuleStatus; the bank's live positions
    values: Any = None
    updated_at: float | None = None
    at: float | None = None


@dataclass
class Planner:
    """Decides what to publish for each snapshot: per module, a state message when its
    status changed (at once), or when a new poll brought data and ``min_interval_s``
    passed since the last one - a poll with the very same values only after
    ``unchanged_interval_s``. The same rule applies to the bank message. Availability
    follows each module's status; the active alarm table goes out when it changes."""

    layout: Layout
    min_interval_s: float = 0.0
    unchanged_interval_s: float = 60.0
    state_qos: int = 0
    _modules: dict[tuple[str, int], _Sent] = field(default_factory=dict)
    _bank: _Sent = field(default_factory=_Sent)
    _alarm_seq: int | None = None

    def _due(self, sent: _Sent, status: Any, values: Any,
             updated_at: float | None, now: float) -> bool:
        if sent.at is None or status != sent.status:
            return True
        if now - sent.at < self.min_interval_s:
            return False
        if values != sent.values:
            return True
        if updated_at == sent.updated_at and updated_at is not None:
            return False  # no new poll: nothing new to say
        return now - sent.at >= self.unchanged_interval_s

    def plan(self, snapshot: BankSnapshot, now: float) -> list[Message]:
        snapshot = age_snapshot(snapshot, now)
        out: list[Message] = []
        for m in snapshot.modules:
            sent = self._modules.setdefault((m.bus, m.address), _Sent())
            values = module_values(m)
            if not self._due(sent, m.status, values, m.updated_at, now):
                continue
            if sent.status is None or (sent.status is ModuleStatus.OK) != m.is_live:
                out.append(Message(topic=self.layout.module_availability(m), qos=1,
                                   retain=True, payload=(ONLINE if m.is_live else OFFLINE)
                                   .encode()))
            out.append(Message(topic=self.layout.module_state(m), retain=True,
                               qos=self.state_qos,
                               payload=encode(module_state(m, snapshot, now))))
            sent.status, sent.values, sent.updated_at, sent.at = (
                m.status, values, m.updated_at, now)
        bank = bank_values(snapshot.bank)
        newest = max((m.updated_at for m in snapshot.modules if m.updated_at is not None),
                     default=None)
        # which modules count in the aggregates is the bank's status: a module going
        # stale changes the figures at once, whatever min_interval_s says
        live = tuple(m.position for m in snapshot.modules if m.is_live)
        if self._due(self._bank, live, bank, newest, now):
            out.append(Message(topic=self.layout.bank, retain=True, qos=self.state_qos,
                               payload=encode(bank_state(snapshot, now))))
            self._bank.status, self._bank.values, self._bank.updated_at, self._bank.at = (
                live, bank, newest, now)
        if snapshot.alarm_last_seq != self._alarm_seq:
            out.append(active_alarms(self.layout, snapshot))
            self._alarm_seq = snapshot.alarm_last_seq
        return out
