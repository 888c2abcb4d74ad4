"""The standard MIB views of the bank: ENTITY-MIB, ENTITY-SENSOR-MIB and UPS-MIB's battery
and alarm groups, so that an NMS sees cells, temperatures and the bank's battery status
without any vendor MIB. ``mibs/`` ships the RFC modules; docs/snmp.md lists what is served.

Pure: :func:`make_standard_variables` turns a snapshot and a :class:`ViewState` into the
sorted variables of the three MIBs; :func:`advance_state` computes the next state
(entLastChangeTime, upsAlarmTable ids and times) from the previous one and a snapshot.
Neither touches a socket or a clock. :class:`StandardViews` keeps the state between
two tables for the agent.

entPhysicalIndex is derived, never allocated, so it is the same across restarts and
whatever modules come and go (B = bmsBusIndex, A = the module's DIP address, S = the
sensor's position on the module)::

    1                       the gateway (chassis)
    1000 * B                bus B (container)
    1000000 * B + 1000 * A  the module at address A on bus B (module)
    ... + S                 its sensors: S = 1 pack voltage, 2 current, 3 SoC,
                            100 + n cell n voltage, 500 + n temperature sensor n

Trust rules: a sensor's value is served, with entPhySensorOperStatus ok(1), only while
its module's data is live (status OK at ``now``). A stale or offline module keeps its
entities, its sensors say unavailable(2) and have no entPhySensorValue: never an old
value beside ok. A sensor the BMS reports as failed (voltage, sampling IC, temperature
or current sensor fault) says nonoperational(3). A module that has not answered since
the agent started has no entities.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from gateway.hub import age_snapshot
from gateway.model import (
    BankSnapshot,
    BankState,
    Fault,
    ModuleReading,
    ModuleStatus,
)
from plugins.snmp_agent.oid_map import (
    OBJECT_OIDS,
    SYS_OBJECT_ID,
    ObjectType,
    Part,
    Syntax,
    Variable,
    encode_text,
    timestamp_ticks,
)

MIB2 = (1, 3, 6, 1, 2, 1)
UPS_MIB_OID = MIB2 + (33,)  #: upsMIB
ENTITY_MIB_OID = MIB2 + (47,)  #: entityMIB
ENTITY_SENSOR_MIB_OID = MIB2 + (99,)  #: entitySensorMIB
_PHYSICAL = ENTITY_MIB_OID + (1, 1, 1, 1)  #: entPhysicalEntry
_SENSOR = ENTITY_SENSOR_MIB_OID + (1, 1, 1)  #: entPhySensorEntry
_BATTERY = UPS_MIB_OID + (1, 2)  #: upsBattery
_ALARM = UPS_MIB_OID + (1, 6)  #: upsAlarm
WELL_KNOWN_ALARMS = _ALARM + (3,)  #: upsWellKnownAlarms
ZERO_DOT_ZERO = (0, 0)

_I32 = 2**31 - 1
_U32 = 2**32

OBJECT_TYPES: dict[str, ObjectType] = {}
"""Every object of the standard MIBs the agent serves, by MIB name."""


def _define(name: str, oid: tuple[int, ...], syntax: Syntax, column: bool,
            low: int | None = None, high: int | None = None) -> ObjectType:
    if syntax in (Syntax.COUNTER32, Syntax.GAUGE32, Syntax.TIMETICKS):
        low, high = 0, _U32 - 1
    obj = ObjectType(name, oid, syntax, column, low, high)
    assert name not in OBJECT_TYPES
    OBJECT_TYPES[name] = obj
    return obj


I, S, G, T, O = (Syntax.INTEGER, Syntax.OCTET_STRING, Syntax.GAUGE32, Syntax.TIMETICKS,
                 Syntax.OBJECT_IDENTIFIER)

# ENTITY-MIB (RFC 6933) entPhysicalTable, INDEX { entPhysicalIndex }.
PHYS_DESCR = _define("entPhysicalDescr", _PHYSICAL + (2,), S, True, 0, 255)
PHYS_VENDOR_TYPE = _define("entPhysicalVendorType", _PHYSICAL + (3,), O, True)
PHYS_CONTAINED_IN = _define("entPhysicalContainedIn", _PHYSICAL + (4,), I, True, 0, _I32)
PHYS_CLASS = _define("entPhysicalClass", _PHYSICAL + (5,), I, True, 1, 14)
PHYS_PARENT_REL_POS = _define("entPhysicalParentRelPos", _PHYSICAL + (6,), I, True, -1, _I32)
PHYS_NAME = _define("entPhysicalName", _PHYSICAL + (7,), S, True, 0, 255)
PHYS_HARDWARE_REV = _define("entPhysicalHardwareRev", _PHYSICAL + (8,), S, True, 0, 255)
PHYS_FIRMWARE_REV = _define("entPhysicalFirmwareRev", _PHYSICAL + (9,), S, True, 0, 255)
PHYS_SOFTWARE_REV = _define("entPhysicalSoftwareRev", _PHYSICAL + (10,), S, True, 0, 255)
PHYS_SERIAL_NUM = _define("entPhysicalSerialNum", _PHYSICAL + (11,), S, True, 0, 32)
PHYS_MFG_NAME = _define("entPhysicalMfgName", _PHYSICAL + (12,), S, True, 0, 255)
PHYS_MODEL_NAME = _define("entPhysicalModelName", _PHYSICAL + (13,), S, True, 0, 255)
PHYS_ALIAS = _define("entPhysicalAlias", _PHYSICAL + (14,), S, True, 0, 32)
PHYS_ASSET_ID = _define("entPhysicalAssetID", _PHYSICAL + (15,), S, True, 0, 32)
PHYS_IS_FRU = _define("entPhysicalIsFRU", _PHYSICAL + (16,), I, True, 1, 2)
PHYS_UUID = _define("entPhysicalUUID", _PHYSICAL + (19,), S, True, 0, 16)
ENT_LAST_CHANGE_TIME = _define("entLastChangeTime", ENTITY_MIB_OID + (1, 4, 1), T, False)

# ENTITY-SENSOR-MIB (RFC 3433) entPhySensorTable, INDEX { entPhysicalIndex }.
SENSOR_TYPE = _define("entPhySensorType", _SENSOR + (1,), I, True, 1, 12)
SENSOR_SCALE = _define("entPhySensorScale", _SENSOR + (2,), I, True, 1, 17)
SENSOR_PRECISION = _define("entPhySensorPrecision", _SENSOR + (3,), I, True, -8, 9)
SENSOR_VALUE = _define("entPhySensorValue", _SENSOR + (4,), I, True, -1_000_000_000,
                       1_000_000_000)
SENSOR_OPER_STATUS = _define("entPhySensorOperStatus", _SENSOR + (5,), I, True, 1, 3)
SENSOR_UNITS_DISPLAY = _define("entPhySensorUnitsDisplay", _SENSOR + (6,), S, True, 0, 255)
SENSOR_VALUE_TIMESTAMP = _define("entPhySensorValueTimeStamp", _SENSOR + (7,), T, True)
SENSOR_VALUE_UPDATE_RATE = _define("entPhySensorValueUpdateRate", _SENSOR + (8,), G, True)

# UPS-MIB (RFC 1628) battery group and alarm group.
UPS_BATTERY_STATUS = _define("upsBatteryStatus", _BATTERY + (1,), I, False, 1, 4)
UPS_SECONDS_ON_BATTERY = _define("upsSecondsOnBattery", _BATTERY + (2,), I, False, 0, _I32)
UPS_MINUTES_REMAINING = _define("upsEstimatedMinutesRemaining", _BATTERY + (3,), I, False,
                                1, _I32)
UPS_CHARGE_REMAINING = _define("upsEstimatedChargeRemaining", _BATTERY + (4,), I, False,
                               0, 100)
UPS_BATTERY_VOLTAGE = _define("upsBatteryVoltage", _BATTERY + (5,), I, False, 0, _I32)
UPS_BATTERY_CURRENT = _define("upsBatteryCurrent", _BATTERY + (6,), I, False, -_I32 - 1, _I32)
UPS_BATTERY_TEMPERATURE = _define("upsBatteryTemperature", _BATTERY + (7,), I, False,
                                  -_I32 - 1, _I32)
UPS_ALARMS_PRESENT = _define("upsAlarmsPresent", _ALARM + (1,), G, False)
UPS_ALARM_DESCR = _define("upsAlarmDescr", _ALARM + (2, 1, 2), O, True)
UPS_ALARM_TIME = _define("upsAlarmTime", _ALARM + (2, 1, 3), T, True)

del I, S, G, T, O

SERVED_OBJECT_OIDS: frozenset[tuple[int, ...]] = OBJECT_OIDS | frozenset(
    o.oid for o in OBJECT_TYPES.values())
"""OIDs of every implemented object, BMS-GATEWAY-MIB's and the standard MIBs' (for the
noSuchObject / noSuchInstance choice of a GET)."""

# IANAPhysicalClass, EntitySensorDataType, EntitySensorDataScale, EntitySensorStatus.
CLASS_CHASSIS, CLASS_CONTAINER, CLASS_SENSOR, CLASS_MODULE = 3, 5, 8, 9
TYPE_OTHER, TYPE_VOLTS_DC, TYPE_AMPERES, TYPE_CELSIUS = 1, 4, 5, 8
SCALE_UNITS = 9
STATUS_OK, STATUS_UNAVAILABLE, STATUS_NONOPERATIONAL = 1, 2, 3
_TRUE, _FALSE = 1, 2  # TruthValue

# upsBatteryStatus
BATTERY_UNKNOWN, BATTERY_NORMAL, BATTERY_LOW, BATTERY_DEPLETED = 1, 2, 3, 4

# The sensor positions S of a module (see the module docstring).
SENSOR_PACK_VOLTAGE, SENSOR_CURRENT, SENSOR_SOC = 1, 2, 3
SENSOR_CELL_BASE, SENSOR_TEMP_BASE = 100, 500
MAX_CELLS = MAX_TEMPS = 255

ON_BATTERY_MA = 1000
"""The bank counts as on battery (upsAlarmOnBattery) while its current is a discharge of
more than this (mA): below it, a rectifier that carries the load shows only the
measurement noise of the modules' shunts."""


def chassis_index() -> int:
    return 1


def bus_index(bus: int) -> int:
    """entPhysicalIndex of bus container ``bus`` (bmsBusIndex 1..255)."""
    return 1000 * bus


def module_index(bus: int, address: int) -> int:
    """entPhysicalIndex of the module at DIP ``address`` (0..255) on bus ``bus``."""
    return 1_000_000 * bus + 1000 * address


# ------------------------------------------------------------------ UPS alarms -------

UPS_ALARM_BATTERY_BAD = WELL_KNOWN_ALARMS + (1,)
UPS_ALARM_ON_BATTERY = WELL_KNOWN_ALARMS + (2,)
UPS_ALARM_LOW_BATTERY = WELL_KNOWN_ALARMS + (3,)
UPS_ALARM_DEPLETED_BATTERY = WELL_KNOWN_ALARMS + (4,)
UPS_ALARM_TEMP_BAD = WELL_KNOWN_ALARMS + (5,)
UPS_ALARM_GENERAL_FAULT = WELL_KNOWN_ALARMS + (18,)
UPS_ALARM_COMMUNICATIONS_LOST = WELL_KNOWN_ALARMS + (20,)

_KIND_ALARMS: dict[str, tuple[int, ...]] = {
    "soh_low": UPS_ALARM_BATTERY_BAD,
    "fault_battery": UPS_ALARM_BATTERY_BAD,
    "bank_voltage_low": UPS_ALARM_LOW_BATTERY,
    "bank_soc_low": UPS_ALARM_LOW_BATTERY,
    "bank_voltage_eod": UPS_ALARM_DEPLETED_BATTERY,
    "module_offline": UPS_ALARM_COMMUNICATIONS_LOST,
    "bus_down": UPS_ALARM_COMMUNICATIONS_LOST,
}


def ups_alarm_of(kind: str) -> tuple[int, ...] | None:
    """The well-known UPS-MIB alarm an alarm engine kind stands for, or None.

    Every temperature threshold and every BMS temperature warning or protection is
    upsAlarmTempBad; every other BMS fault is upsAlarmGeneralFault."""
    found = _KIND_ALARMS.get(kind)
    if found is not None:
        return found
    if kind.endswith(("_temp_high", "_temp_low")) or (
            kind.startswith(("warn_", "protect_")) and kind.endswith("_temp")):
        return UPS_ALARM_TEMP_BAD
    if kind.startswith("fault_"):
        return UPS_ALARM_GENERAL_FAULT
    return None


def on_battery(snapshot: BankSnapshot) -> bool | None:
    """True while the bank discharges; None without live data. The backup_time
    processor's debounced bank state where it runs, else the bank current against
    :data:`ON_BATTERY_MA`."""
    backup = snapshot.backup
    if backup is not None:
        return None if backup.state is None else backup.state is BankState.DISCHARGING
    current = snapshot.bank.current_ma
    return None if current is None else current < -ON_BATTERY_MA


def active_ups_alarms(snapshot: BankSnapshot) -> dict[tuple[int, ...], float | None]:
    """The UPS-MIB alarm conditions in effect: well-known alarm OID -> monotonic time the
    condition began (the oldest engine alarm behind it), None when only this snapshot
    shows it (upsAlarmOnBattery)."""
    out: dict[tuple[int, ...], float | None] = {}
    for a in snapshot.alarms:
        oid = ups_alarm_of(a.kind)
        if oid is not None:
            began = out.get(oid)
            out[oid] = a.raised_at if began is None else min(began, a.raised_at)
    if on_battery(snapshot):
        out.setdefault(UPS_ALARM_ON_BATTERY, None)
    return out


# ------------------------------------------------------------------ backup time ------


def backup_time(snapshot: BankSnapshot) -> tuple[int | None, int | None]:
    """(upsSecondsOnBattery, upsEstimatedMinutesRemaining) of ``snapshot``, None where
    unknown: the backup_time processor's figures (``snapshot.backup``; minutes to EOD
    rounded down, known only while the bank discharges). Without that processor only
    the one known case is served: 0 seconds on battery while the bank is not
    discharging (RFC 1628)."""
    backup = snapshot.backup
    if backup is not None:
        return backup.seconds_on_battery, backup.minutes_to_eod
    return (0 if on_battery(snapshot) is False else None), None


# ------------------------------------------------------------------ the state --------


@dataclass(frozen=True, slots=True)
class Entity:
    """One entPhysicalEntry's static columns."""

    index: int
    descr: str
    contained_in: int
    cls: int
    parent_rel_pos: int
    name: str
    vendor_type: tuple[int, ...] = ZERO_DOT_ZERO
    firmware: str = ""
    software: str = ""
    serial: str = ""
    mfg_name: str = ""
    model_name: str = ""
    is_fru: bool = False


@dataclass(frozen=True, slots=True)
class ViewState:
    """What the standard views remember from one table to the next."""

    entities: tuple[Entity, ...] = ()
    last_change_at: float | None = None  #: monotonic time of the last entity change
    #: well-known alarm OID -> (upsAlarmId, monotonic time the condition was detected)
    ups_alarms: Mapping[tuple[int, ...], tuple[int, float]] = field(default_factory=dict)
    last_alarm_id: int = 0


def _module_sensors(m: ModuleReading, index: int, where: str) -> list[Entity]:
    label = f"module {m.position}"
    out = [Entity(index + SENSOR_PACK_VOLTAGE, f"pack voltage, {where}", index, CLASS_SENSOR,
                  SENSOR_PACK_VOLTAGE, f"{label} voltage"),
           Entity(index + SENSOR_CURRENT, f"pack current (+ charging), {where}", index,
                  CLASS_SENSOR, SENSOR_CURRENT, f"{label} current"),
           Entity(index + SENSOR_SOC, f"state of charge, {where}", index, CLASS_SENSOR,
                  SENSOR_SOC, f"{label} SoC")]
    t = m.telemetry
    if t is None:
        return out
    for n in range(1, min(len(t.cell_mv), MAX_CELLS) + 1):
        s = SENSOR_CELL_BASE + n
        out.append(Entity(index + s, f"cell {n} voltage, {where}", index, CLASS_SENSOR, s,
                          f"{label} cell {n}"))
    for n in range(1, min(len(t.temp_dc), MAX_TEMPS) + 1):
        s = SENSOR_TEMP_BASE + n
        role = t.temp_roles[n - 1].name.lower() if n <= len(t.temp_roles) else "other"
        out.append(Entity(index + s, f"temperature {n} ({role}), {where}", index,
                          CLASS_SENSOR, s, f"{label} temp {n} {role}"))
    return out


def _placed(snapshot: BankSnapshot, bus_numbers: Mapping[str, int]
            ) -> list[tuple[int, int, ModuleReading]]:
    """(bus number, module index, module) of every module that has entities (numbered
    bus, address 0..255, answered since start; the first position wins a duplicate),
    sorted by index."""
    out = []
    seen: set[int] = set()
    for m in snapshot.modules:
        n = bus_numbers.get(m.bus)
        if (n is None or not 1 <= n <= 255 or not 0 <= m.address <= 255
                or m.status is ModuleStatus.NEVER_SEEN):
            continue
        index = module_index(n, m.address)
        if index not in seen:
            seen.add(index)
            out.append((n, index, m))
    out.sort(key=lambda placed: placed[1])  # bus numbers need not follow module order
    return out


def make_entities(snapshot: BankSnapshot | None, *, bus_numbers: Mapping[str, int],
                  gateway_name: str, software_version: str) -> tuple[Entity, ...]:
    """The entPhysicalTable rows for ``snapshot``, sorted by entPhysicalIndex."""
    out = _fixed_entities(snapshot, bus_numbers=bus_numbers, gateway_name=gateway_name,
                          software_version=software_version)
    if snapshot is not None:
        for n, index, m in _placed(snapshot, bus_numbers):
            out.extend(module_entities(n, index, m))
    out.sort(key=lambda e: e.index)
    return tuple(out)


def _fixed_entities(snapshot: BankSnapshot | None, *, bus_numbers: Mapping[str, int],
                    gateway_name: str, software_version: str) -> list[Entity]:
    """The chassis and the buses' containers."""
    out = [Entity(chassis_index(), f"bms-gateway {software_version}: RS485 gateway for a "
                  "48 V LiFePO4 battery bank", 0, CLASS_CHASSIS, -1, gateway_name,
                  vendor_type=SYS_OBJECT_ID, software=software_version,
                  model_name="bms-gateway")]
    if snapshot is not None:
        names = {b.name for b in snapshot.buses} | {m.bus for m in snapshot.modules}
        for name in sorted(names):
            n = bus_numbers.get(name)
            if n is not None and 1 <= n <= 255:
                out.append(Entity(bus_index(n), f"RS485 bus {name}", chassis_index(),
                                  CLASS_CONTAINER, n, f"bus {name}"))
    return out


def module_entities(n: int, index: int, m: ModuleReading) -> list[Entity]:
    """One module's entity (on bus number ``n``, entPhysicalIndex ``index``) and its
    sensors."""
    ident = m.identity
    where = f"module {m.position} ({m.bus} address {m.address})"
    model = ident.model if ident is not None and ident.model else None
    return [Entity(index, f"{model or 'battery module'}, {where}", bus_index(n), CLASS_MODULE,
                   m.address, f"module {m.position}",
                   firmware=(ident.firmware or "") if ident else "",
                   serial=(ident.serial or "") if ident else "",
                   mfg_name=(ident.manufacturer or "") if ident else "",
                   model_name=model or "", is_fru=True),
            *_module_sensors(m, index, where)]


def module_entities_key(n: int, index: int, m: ModuleReading) -> tuple:
    """What :func:`module_entities` depends on: equal keys, equal entities."""
    t = m.telemetry
    shape = None if t is None else (min(len(t.cell_mv), MAX_CELLS),
                                    t.temp_roles[:min(len(t.temp_dc), MAX_TEMPS)],
                                    min(len(t.temp_dc), MAX_TEMPS))
    return (n, index, m.position, m.bus, m.address, m.identity, shape)


def advance_state(state: ViewState, entities: tuple[Entity, ...],
                  snapshot: BankSnapshot | None, *, now: float, started_at: float
                  ) -> ViewState:
    """The state after seeing ``entities`` and ``snapshot`` at ``now``.

    entLastChangeTime moves when any entPhysicalTable row appears, goes or changes;
    the first table after start does not count as a change (RFC 6933: 0 when nothing
    changed since the agent started). upsAlarmTable: a condition that enters gets the
    next upsAlarmId (from 1, wrapping to the first free id) and keeps it while it lasts.
    """
    last_change = state.last_change_at
    if state.entities and entities != state.entities:
        last_change = now
    current = active_ups_alarms(snapshot) if snapshot is not None else {}
    kept = {oid: v for oid, v in state.ups_alarms.items() if oid in current}
    last_id = state.last_alarm_id
    used = {i for i, _ in kept.values()}
    for oid in sorted(current):
        if oid in kept:
            continue
        last_id = last_id + 1 if last_id < _I32 else 1
        while last_id in used:
            last_id = last_id + 1 if last_id < _I32 else 1
        used.add(last_id)
        began = current[oid]
        # an alarm raised before the agent started reads 0 (RFC 1628 upsAlarmTime)
        kept[oid] = (last_id, now if began is None else max(began, started_at))
    return ViewState(entities=entities, last_change_at=last_change, ups_alarms=kept,
                     last_alarm_id=last_id)


# ------------------------------------------------------------------ the views --------


class _Column:
    """Collects one column's variables (the table is column-major)."""

    __slots__ = ("obj", "items")

    def __init__(self, obj: ObjectType) -> None:
        self.obj = obj
        self.items: list[Variable] = []

    def put(self, index: int, value: int | str | bytes | tuple[int, ...] | None) -> None:
        obj = self.obj
        if value is None:
            return
        if obj.syntax is Syntax.OCTET_STRING:
            if isinstance(value, str):
                value = encode_text(value, obj.high if obj.high is not None else 255)
        elif obj.syntax is not Syntax.OBJECT_IDENTIFIER:
            assert isinstance(value, int)
            if not obj.low <= value <= obj.high:  # type: ignore[operator]
                return
        self.items.append(Variable(obj.oid + (index,), obj.syntax, value))  # type: ignore[arg-type]


def make_physical_variables(entities: Sequence[Entity]) -> list[Variable]:
    """entPhysicalTable for ``entities`` (sorted by index), sorted by OID."""
    cols = [_Column(o) for o in (PHYS_DESCR, PHYS_VENDOR_TYPE, PHYS_CONTAINED_IN, PHYS_CLASS,
                                 PHYS_PARENT_REL_POS, PHYS_NAME, PHYS_HARDWARE_REV,
                                 PHYS_FIRMWARE_REV, PHYS_SOFTWARE_REV, PHYS_SERIAL_NUM,
                                 PHYS_MFG_NAME, PHYS_MODEL_NAME, PHYS_ALIAS, PHYS_ASSET_ID,
                                 PHYS_IS_FRU, PHYS_UUID)]
    for e in entities:
        i = e.index
        for col, value in zip(cols, (e.descr, e.vendor_type, e.contained_in, e.cls,
                                     e.parent_rel_pos, e.name, "", e.firmware, e.software,
                                     e.serial, e.mfg_name, e.model_name, "", "",
                                     _TRUE if e.is_fru else _FALSE, b"")):
            col.put(i, value)
    return [v for col in cols for v in col.items]


# (type, scale, precision, units display) of each kind of sensor: values in the model's
# fixed units, read by an NMS as value * 10^-precision in the units of the type
_VOLTS = (TYPE_VOLTS_DC, SCALE_UNITS, 3, "V")  # mV
_AMPS = (TYPE_AMPERES, SCALE_UNITS, 3, "A")  # mA
_CELSIUS = (TYPE_CELSIUS, SCALE_UNITS, 1, "C")  # 0.1 degC
_PERCENT = (TYPE_OTHER, SCALE_UNITS, 1, "%")  # per mille
_VOLTAGE_FAULTS = Fault.VOLTAGE_SENSOR | Fault.SAMPLING_IC


@dataclass(frozen=True, slots=True)
class Reading:
    """One sensor's entPhySensorEntry."""

    index: int
    kind: tuple[int, int, int, str]
    value: int | None  #: served only with status ok
    status: int
    updated_at: float | None


def make_readings(snapshot: BankSnapshot, bus_numbers: Mapping[str, int], now: float
                  ) -> list[Reading]:
    """Every sensor of every module that has entities, sorted by entPhysicalIndex."""
    return [r for _, index, m in _placed(snapshot, bus_numbers)
            for r in module_readings(m, index, now)]


def module_readings(m: ModuleReading, index: int, now: float) -> list[Reading]:
    """The sensors of one module (entPhysicalIndex ``index``), sorted by index."""
    out: list[Reading] = []
    live = m.status_at(now) is ModuleStatus.OK
    t = m.telemetry
    faults = m.bms.faults if m.bms is not None else Fault.NONE
    at = m.updated_at

    def put(s: int, kind: tuple[int, int, int, str], value: int | None,
            failed: Fault, *, index: int = index, live: bool = live,
            faults: Fault = faults, at: float | None = at) -> None:
        if not live:
            out.append(Reading(index + s, kind, None, STATUS_UNAVAILABLE, at))
        elif faults & failed:
            out.append(Reading(index + s, kind, None, STATUS_NONOPERATIONAL, at))
        elif value is None or not -1_000_000_000 <= value <= 1_000_000_000:
            out.append(Reading(index + s, kind, None, STATUS_UNAVAILABLE, at))
        else:
            out.append(Reading(index + s, kind, value, STATUS_OK, at))

    put(SENSOR_PACK_VOLTAGE, _VOLTS, t.voltage_mv if t else None, _VOLTAGE_FAULTS)
    put(SENSOR_CURRENT, _AMPS, t.current_ma if t else None, Fault.CURRENT_SENSOR)
    put(SENSOR_SOC, _PERCENT, t.soc_permille if t else None, Fault.NONE)
    if t is None:
        return out
    for n, mv in enumerate(t.cell_mv[:MAX_CELLS], start=1):
        put(SENSOR_CELL_BASE + n, _VOLTS, mv, _VOLTAGE_FAULTS)
    for n, dc in enumerate(t.temp_dc[:MAX_TEMPS], start=1):
        put(SENSOR_TEMP_BASE + n, _CELSIUS, dc, Fault.TEMPERATURE_SENSOR)
    return out


#: the entPhySensorTable columns that follow the reading, and those fixed by the sensor
SENSOR_DYNAMIC = (SENSOR_VALUE, SENSOR_OPER_STATUS, SENSOR_VALUE_TIMESTAMP)
SENSOR_ALL = (SENSOR_TYPE, SENSOR_SCALE, SENSOR_PRECISION, SENSOR_VALUE, SENSOR_OPER_STATUS,
              SENSOR_UNITS_DISPLAY, SENSOR_VALUE_TIMESTAMP, SENSOR_VALUE_UPDATE_RATE)
SENSOR_STATIC = tuple(o for o in SENSOR_ALL if o not in SENSOR_DYNAMIC)


def make_sensor_variables(readings: Iterable[Reading], *, started_at: float,
                          columns: Sequence[ObjectType] = SENSOR_ALL) -> list[Variable]:
    """entPhySensorTable for ``readings`` (sorted by index), sorted by OID; only
    ``columns`` (in OID order) when given."""
    cols = {o.oid: _Column(o) for o in columns}
    none = _Column(SENSOR_TYPE)  # a column not asked for: filled, never returned
    c_type, c_scale, c_prec, c_value, c_status, c_units, c_stamp, c_rate = (
        cols.get(o.oid, none) for o in SENSOR_ALL)
    static = SENSOR_STATIC[0].oid in cols
    dynamic = SENSOR_DYNAMIC[0].oid in cols
    for r in readings:
        i = r.index
        if static:
            kind, scale, precision, units = r.kind
            c_type.put(i, kind)
            c_scale.put(i, scale)
            c_prec.put(i, precision)
            c_units.put(i, units)
            c_rate.put(i, 0)  # 0: the agent does not know the update rate (RFC 3433)
        if dynamic:
            c_value.put(i, r.value)
            c_status.put(i, r.status)
            c_stamp.put(i, 0 if r.updated_at is None
                        else timestamp_ticks(r.updated_at, started_at))
    return [v for col in cols.values() for v in col.items]


def _round_div(value: int, divisor: int) -> int:
    """``value / divisor`` rounded half away from zero, in integers."""
    q = (abs(value) + divisor // 2) // divisor
    return q if value >= 0 else -q


def battery_status(snapshot: BankSnapshot, *, thresholds_known: bool) -> int:
    """upsBatteryStatus from the alarm engine's bank_voltage_eod / bank_voltage_low alarms
    (their thresholds, delays and hysteresis are the alarm settings'); unknown without
    live data or when those alarm rules do not run."""
    if not thresholds_known or snapshot.bank.modules_online == 0:
        return BATTERY_UNKNOWN
    kinds = {a.kind for a in snapshot.alarms}
    if "bank_voltage_eod" in kinds:
        return BATTERY_DEPLETED
    if "bank_voltage_low" in kinds:
        return BATTERY_LOW
    return BATTERY_NORMAL


def make_ups_variables(snapshot: BankSnapshot | None, state: ViewState, *, started_at: float,
                       thresholds_known: bool) -> list[Variable]:
    """UPS-MIB upsBattery and upsAlarm groups for the bank, sorted by OID."""
    out: list[Variable] = []

    def put(obj: ObjectType, value: int | None) -> None:
        col = _Column(obj)
        col.put(0, value)
        out.extend(col.items)

    if snapshot is not None:
        b = snapshot.bank
        seconds, minutes = backup_time(snapshot)
        put(UPS_BATTERY_STATUS, battery_status(snapshot, thresholds_known=thresholds_known))
        put(UPS_SECONDS_ON_BATTERY, seconds)
        put(UPS_MINUTES_REMAINING, minutes)
        put(UPS_CHARGE_REMAINING, None if b.soc_permille is None
            else _round_div(b.soc_permille, 10))
        put(UPS_BATTERY_VOLTAGE, None if b.voltage_mean_mv is None
            else _round_div(b.voltage_mean_mv, 100))
        put(UPS_BATTERY_CURRENT, None if b.current_ma is None else _round_div(b.current_ma, 100))
        put(UPS_BATTERY_TEMPERATURE, None if b.temp_max_dc is None
            else _round_div(b.temp_max_dc, 10))
    put(UPS_ALARMS_PRESENT, len(state.ups_alarms))
    rows = sorted(state.ups_alarms.items(), key=lambda kv: kv[1][0])
    descr, time = _Column(UPS_ALARM_DESCR), _Column(UPS_ALARM_TIME)
    for oid, (alarm_id, at) in rows:
        descr.put(alarm_id, oid)
        time.put(alarm_id, timestamp_ticks(at, started_at))
    return out + descr.items + time.items


def make_standard_variables(snapshot: BankSnapshot | None, state: ViewState, *, now: float,
                            started_at: float, bus_numbers: Mapping[str, int],
                            thresholds_known: bool,
                            physical: list[Variable] | None = None) -> list[Variable]:
    """UPS-MIB, ENTITY-MIB and ENTITY-SENSOR-MIB variables, sorted by OID, for
    ``snapshot`` (aged to ``now``) and the ``state`` that :func:`advance_state` made from
    it. ``physical``: :func:`make_physical_variables` of ``state.entities``, if at hand."""
    readings = [] if snapshot is None else make_readings(snapshot, bus_numbers, now)
    change = (0 if state.last_change_at is None
              else timestamp_ticks(state.last_change_at, started_at))
    if physical is None:
        physical = make_physical_variables(state.entities)
    return (make_ups_variables(snapshot, state, started_at=started_at,
                               thresholds_known=thresholds_known)
            + physical
            + [Variable(ENT_LAST_CHANGE_TIME.oid + (0,), Syntax.TIMETICKS, change)]
            + make_sensor_variables(readings, started_at=started_at))


class StandardViews:
    """The standard views with their state, for the agent: one call per OID table.

    ``thresholds_known``: the alarm engine runs the bank_voltage_low and
    bank_voltage_eod rules, so upsBatteryStatus can say normal, low or depleted."""

    def __init__(self, *, software_version: str, thresholds_known: bool) -> None:
        self.software_version = software_version
        self.thresholds_known = thresholds_known
        self.state = ViewState()
        self._physical: tuple[tuple[Entity, ...], list[Variable]] | None = None
        self._sensors: dict[int, tuple[ModuleReading, float, list[Variable]]] = {}
        self._sensor_static: dict[int, tuple[tuple, float, list[Variable]]] = {}
        self._module_entities: dict[int, tuple[tuple, list[Entity]]] = {}
        self._entities_made: tuple[list[Entity], list[list[Entity]],
                                   tuple[Entity, ...]] | None = None

    def variables(self, snapshot: BankSnapshot | None, *, now: float, started_at: float,
                  bus_numbers: Mapping[str, int], gateway_name: str) -> list[Variable]:
        if snapshot is not None:
            snapshot = age_snapshot(snapshot, now)
        entities = make_entities(snapshot, bus_numbers=bus_numbers, gateway_name=gateway_name,
                                 software_version=self.software_version)
        self.state = advance_state(self.state, entities, snapshot, now=now,
                                   started_at=started_at)
        if self._physical is None or self._physical[0] != entities:
            self._physical = (entities, make_physical_variables(entities))
        return make_standard_variables(snapshot, self.state, now=now, started_at=started_at,
                                       bus_numbers=bus_numbers,
                                       thresholds_known=self.thresholds_known,
                                       physical=self._physical[1])


    def parts(self, snapshot: BankSnapshot | None, *, now: float, started_at: float,
              bus_numbers: Mapping[str, int], gateway_name: str) -> list[Part]:
        """:meth:`variables` as parts for the agent's table keeper: the UPS group, the
        entity table (the same list while the entities stay), entLastChangeTime, and per
        module two parts of sensors: the columns fixed by the sensor (kept while the
        module's shape stays) and those that follow the reading (kept while the module
        reads the same)."""
        return [p for chunk in self.iter_parts(snapshot, now=now, started_at=started_at,
                                               bus_numbers=bus_numbers,
                                               gateway_name=gateway_name) for p in chunk]

    def iter_parts(self, snapshot: BankSnapshot | None, *, now: float, started_at: float,
                   bus_numbers: Mapping[str, int], gateway_name: str
                   ) -> Iterator[list[Part]]:
        """:meth:`parts` in chunks: the head, then one chunk per module, so that the
        agent can let requests in between (the work is pure until the last chunk)."""
        if snapshot is not None:
            snapshot = age_snapshot(snapshot, now)
        placed = [] if snapshot is None else _placed(snapshot, bus_numbers)
        entities = self._entities(snapshot, placed, bus_numbers, gateway_name)
        self.state = advance_state(self.state, entities, snapshot, now=now,
                                   started_at=started_at)
        if self._physical is None or self._physical[0] is not entities:
            self._physical = (entities, make_physical_variables(entities))
        change = (0 if self.state.last_change_at is None
                  else timestamp_ticks(self.state.last_change_at, started_at))
        yield [
            ("ups", make_ups_variables(snapshot, self.state, started_at=started_at,
                                       thresholds_known=self.thresholds_known)),
            ("entities", self._physical[1]),
            ("entity-change", [Variable(ENT_LAST_CHANGE_TIME.oid + (0,), Syntax.TIMETICKS,
                                        change)]),
        ]
        kept: dict[int, tuple[ModuleReading, float, list[Variable]]] = {}
        kept_static: dict[int, tuple[tuple, float, list[Variable]]] = {}
        for n, index, m in placed:
            cached = self._sensors.get(index)
            shape = module_entities_key(n, index, m)
            fixed = self._sensor_static.get(index)
            readings = None
            if fixed is None or fixed[0] != shape or fixed[1] != started_at:
                readings = module_readings(m, index, now)
                fixed = (shape, started_at, make_sensor_variables(
                    readings, started_at=started_at, columns=SENSOR_STATIC))
            if cached is None or cached[1] != started_at or cached[0] != m:
                readings = readings or module_readings(m, index, now)
                cached = (m, started_at, make_sensor_variables(
                    readings, started_at=started_at, columns=SENSOR_DYNAMIC))
            kept[index], kept_static[index] = cached, fixed
            yield [(("sensor-kinds", index), fixed[2]), (("sensors", index), cached[2])]
        self._sensors, self._sensor_static = kept, kept_static

    def _entities(self, snapshot: BankSnapshot | None,
                  placed: list[tuple[int, int, ModuleReading]], bus_numbers: Mapping[str, int],
                  gateway_name: str) -> tuple[Entity, ...]:
        """:func:`make_entities` for :meth:`parts`, kept between snapshots: a module's
        entities are made again only when what they show changed (identity, cell and
        sensor count, place), and the same tuple is returned while nothing did, so that
        neither the entity table nor entLastChangeTime is touched by a mere reading."""
        fixed = _fixed_entities(snapshot, bus_numbers=bus_numbers, gateway_name=gateway_name,
                                software_version=self.software_version)
        lists: list[list[Entity]] = []
        kept: dict[int, tuple[tuple, list[Entity]]] = {}
        for n, index, m in placed:
            key = module_entities_key(n, index, m)
            cached = self._module_entities.get(index)
            if cached is None or cached[0] != key:
                cached = (key, module_entities(n, index, m))
            kept[index] = cached
            lists.append(cached[1])
        self._module_entities = kept
        previous = self._entities_made
        if (previous is not None and previous[0] == fixed and len(previous[1]) == len(lists)
                and all(a is b for a, b in zip(previous[1], lists))):
            return previous[2]
        entities = tuple(sorted((*fixed, *(e for es in lists for e in es)),
                                key=lambda e: e.index))
        self._entities_made = (fixed, lists, entities)
        return entities


def insert_standard(table: list[Variable], standard: list[Variable]) -> list[Variable]:
    """``table`` (sorted, from oid_map) with ``standard`` placed where its OIDs sort:
    after the system and snmp groups, before the enterprise subtree."""
    if not standard:
        return table
    first = standard[0].oid
    at = next((i for i, v in enumerate(table) if v.oid > first), len(table))
    return table[:at] + standard + table[at:]
