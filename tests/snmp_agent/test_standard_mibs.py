"""The standard views: ENTITY-MIB, ENTITY-SENSOR-MIB and UPS-MIB, pure and against net-snmp."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess

import pytest

from gateway.model import (
    Alarm,
    BankSnapshot,
    Fault,
    Identity,
    ModuleStatus,
    Severity,
)
from plugins.snmp_agent import standard_mibs as sm
from plugins.snmp_agent.oid_map import Syntax, Variable

STD_MIBS = ["-m", "ENTITY-SENSOR-MIB:UPS-MIB", "-M", "+{mibs}"]
BUSES = {"bank1": 1, "bank2": 2}


def std_args(bank) -> list[str]:
    return [a.format(mibs=bank.MIBS) for a in STD_MIBS]


def views(snapshot: BankSnapshot | None, *, now: float, state: sm.ViewState | None = None,
          thresholds_known: bool = True) -> tuple[sm.ViewState, dict[tuple[int, ...], object]]:
    entities = sm.make_entities(snapshot, bus_numbers=BUSES, gateway_name="gw",
                                software_version="0.1.0")
    state = sm.advance_state(state or sm.ViewState(), entities, snapshot, now=now,
                             started_at=990.0)
    variables = sm.make_standard_variables(snapshot, state, now=now, started_at=990.0,
                                           bus_numbers=BUSES, thresholds_known=thresholds_known)
    assert [v.oid for v in variables] == sorted(v.oid for v in variables)
    return state, {v.oid: v.value for v in variables}


def col(obj: sm.ObjectType, index: int) -> tuple[int, ...]:
    return obj.oid + (index,)


def scalar(obj: sm.ObjectType) -> tuple[int, ...]:
    return obj.oid + (0,)


# ------------------------------------------------------------------ indices --------


def test_entity_indices_derive_from_bus_address_and_sensor_position(bank_snapshot, bank):
    _, vals = views(bank_snapshot, now=bank.T0)
    classes = {oid[-1]: v for oid, v in vals.items() if oid[:-1] == sm.PHYS_CLASS.oid}
    assert classes[1] == sm.CLASS_CHASSIS
    assert classes[1000] == classes[2000] == sm.CLASS_CONTAINER
    assert classes[1_003_000] == sm.CLASS_MODULE  # bus 1, address 3
    assert classes[2_003_000] == sm.CLASS_MODULE  # module 11: bus 2, address 3
    assert 2_004_000 not in classes  # module 12 never answered: no entity
    assert vals[col(sm.PHYS_CONTAINED_IN, 1_003_000)] == 1000
    assert vals[col(sm.PHYS_CONTAINED_IN, 1_003_107)] == 1_003_000
    assert vals[col(sm.PHYS_NAME, 1_003_107)] == b"module 3 cell 7"
    assert vals[col(sm.PHYS_NAME, 1_002_505)] == b"module 2 temp 5 mosfet"
    assert vals[col(sm.PHYS_SERIAL_NUM, 1_002_000)] == b"PACE0002"
    assert vals[col(sm.PHYS_FIRMWARE_REV, 1_002_000)] == b"V2.5"
    assert vals[col(sm.PHYS_MODEL_NAME, 1_002_000)] == b"LFP48-100"
    assert vals[col(sm.PHYS_IS_FRU, 1_002_000)] == 1 and vals[col(sm.PHYS_IS_FRU, 1)] == 2
    sensors = [oid[-1] for oid in vals if oid[:-1] == sm.SENSOR_TYPE.oid]
    assert len(sensors) == 11 * (3 + 16 + 6)  # eleven modules have answered


def test_the_tables_are_sorted_whatever_the_bus_numbering(bank, bank_snapshot):
    numbers = {"bank1": 2, "bank2": 1}
    entities = sm.make_entities(bank_snapshot, bus_numbers=numbers, gateway_name="gw",
                                software_version="0.1.0")
    state = sm.advance_state(sm.ViewState(), entities, bank_snapshot, now=bank.T0,
                             started_at=990.0)
    oids = [v.oid for v in sm.make_standard_variables(
        bank_snapshot, state, now=bank.T0, started_at=990.0, bus_numbers=numbers,
        thresholds_known=True)]
    assert oids == sorted(set(oids))
    assert col(sm.PHYS_NAME, 1_001_000) in oids  # module 9: bus 1 now


def test_indices_stay_when_modules_come_and_go(bank, bank_snapshot):
    _, full = views(bank_snapshot, now=bank.T0)
    fewer = dataclasses.replace(bank_snapshot, modules=bank_snapshot.modules[3:])
    _, part = views(fewer, now=bank.T0)
    names = {oid: v for oid, v in full.items() if oid[:-1] == sm.PHYS_NAME.oid}
    kept = {oid: v for oid, v in part.items() if oid[:-1] == sm.PHYS_NAME.oid}
    assert kept.items() <= names.items()  # nothing renumbered
    assert col(sm.PHYS_NAME, 1_001_000) not in kept


# ------------------------------------------------------------------ sensors --------


def test_sensor_type_scale_precision_render_the_units(bank, bank_snapshot):
    _, vals = views(bank_snapshot, now=bank.T0)
    m2 = bank_snapshot.module(2)
    for index, kind, prec, units, value in (
            (1_002_001, sm.TYPE_VOLTS_DC, 3, b"V", m2.telemetry.voltage_mv),
            (1_002_002, sm.TYPE_AMPERES, 3, b"A", m2.telemetry.current_ma),
            (1_002_003, sm.TYPE_OTHER, 1, b"%", m2.telemetry.soc_permille),
            (1_002_101, sm.TYPE_VOLTS_DC, 3, b"V", m2.telemetry.cell_mv[0]),
            (1_002_501, sm.TYPE_CELSIUS, 1, b"C", -85)):
        assert vals[col(sm.SENSOR_TYPE, index)] == kind
        assert vals[col(sm.SENSOR_SCALE, index)] == sm.SCALE_UNITS
        assert vals[col(sm.SENSOR_PRECISION, index)] == prec
        assert vals[col(sm.SENSOR_UNITS_DISPLAY, index)] == units
        assert vals[col(sm.SENSOR_VALUE, index)] == value
        assert vals[col(sm.SENSOR_OPER_STATUS, index)] == sm.STATUS_OK


def test_stale_and_offline_sensors_are_unavailable_without_a_value(bank, bank_snapshot):
    _, vals = views(bank_snapshot, now=bank.T0)
    for module in (1_005_000, 2_001_000):  # module 5 stale, module 9 offline
        for s in (1, 2, 3, 101, 116, 501, 506):
            assert vals[col(sm.SENSOR_OPER_STATUS, module + s)] == sm.STATUS_UNAVAILABLE
            assert col(sm.SENSOR_VALUE, module + s) not in vals
            assert col(sm.SENSOR_TYPE, module + s) in vals


def test_an_unreadable_cell_is_unavailable_and_a_failed_sensor_nonoperational(
        bank, bank_snapshot):
    _, vals = views(bank_snapshot, now=bank.T0)
    assert vals[col(sm.SENSOR_OPER_STATUS, 1_003_108)] == sm.STATUS_UNAVAILABLE  # None
    assert col(sm.SENSOR_VALUE, 1_003_108) not in vals
    # module 7 reports a sampling-IC fault: its voltages are not to be trusted
    assert vals[col(sm.SENSOR_OPER_STATUS, 1_007_101)] == sm.STATUS_NONOPERATIONAL
    assert vals[col(sm.SENSOR_OPER_STATUS, 1_007_001)] == sm.STATUS_NONOPERATIONAL
    assert col(sm.SENSOR_VALUE, 1_007_101) not in vals
    assert vals[col(sm.SENSOR_OPER_STATUS, 1_007_501)] == sm.STATUS_OK  # temperatures are


def test_a_module_turns_unavailable_once_its_data_outlives_the_stale_age(bank, bank_snapshot):
    m1 = dataclasses.replace(bank_snapshot.module(1), updated_at=bank.T0, stale_after_s=10.0)
    snap = dataclasses.replace(bank_snapshot, modules=(m1,) + bank_snapshot.modules[1:])
    _, before = views(snap, now=bank.T0 + 10.0)
    assert before[col(sm.SENSOR_OPER_STATUS, 1_001_101)] == sm.STATUS_OK
    _, after = views(snap, now=bank.T0 + 10.5)  # the same snapshot, a moment later
    assert after[col(sm.SENSOR_OPER_STATUS, 1_001_101)] == sm.STATUS_UNAVAILABLE
    assert col(sm.SENSOR_VALUE, 1_001_101) not in after


# ------------------------------------------------------------- last change ---------


def test_ent_last_change_time_moves_when_a_module_appears_or_goes(bank, bank_snapshot):
    first = dataclasses.replace(bank_snapshot, modules=bank_snapshot.modules[1:])
    state, vals = views(first, now=bank.T0)
    assert vals[scalar(sm.ENT_LAST_CHANGE_TIME)] == 0  # as it was at start
    state, vals = views(first, now=bank.T0 + 5, state=state)
    assert vals[scalar(sm.ENT_LAST_CHANGE_TIME)] == 0  # nothing changed
    # a stale module keeps its entities: no change
    state, vals = views(bank_snapshot, now=bank.T0 + 7, state=state)
    assert vals[scalar(sm.ENT_LAST_CHANGE_TIME)] == (bank.T0 + 7 - 990.0) * 100  # appeared
    state, vals = views(bank_snapshot, now=bank.T0 + 9, state=state)
    assert vals[scalar(sm.ENT_LAST_CHANGE_TIME)] == 1700
    state, vals = views(first, now=bank.T0 + 20, state=state)
    assert vals[scalar(sm.ENT_LAST_CHANGE_TIME)] == 3000  # went
    new_fw = dataclasses.replace(first.modules[0], identity=Identity(firmware="V2.6"))
    state, vals = views(dataclasses.replace(first, modules=(new_fw,) + first.modules[1:]),
                        now=bank.T0 + 21, state=state)
    assert vals[scalar(sm.ENT_LAST_CHANGE_TIME)] == 3100  # a row changed


# ------------------------------------------------------------------ UPS-MIB --------


def alarm(seq: int, kind: str, raised_at: float) -> Alarm:
    return Alarm(seq=seq, kind=kind, severity=Severity.MAJOR, raised_at=raised_at,
                 raised_wall_time=raised_at, text=kind)


@pytest.mark.parametrize(("kinds", "status"), [
    ((), sm.BATTERY_NORMAL),
    (("bank_voltage_low",), sm.BATTERY_LOW),
    (("bank_voltage_low", "bank_voltage_eod"), sm.BATTERY_DEPLETED),
])
def test_battery_status_follows_the_bank_voltage_alarms(bank, bank_snapshot, kinds, status):
    snap = dataclasses.replace(bank_snapshot, alarms=tuple(
        alarm(i, k, bank.T0) for i, k in enumerate(kinds, start=1)))
    _, vals = views(snap, now=bank.T0)
    assert vals[scalar(sm.UPS_BATTERY_STATUS)] == status
    _, vals = views(snap, now=bank.T0, thresholds_known=False)
    assert vals[scalar(sm.UPS_BATTERY_STATUS)] == sm.BATTERY_UNKNOWN


def test_battery_scalars_are_the_bank_aggregates_in_rfc_1628_units(bank, bank_snapshot):
    _, vals = views(bank_snapshot, now=bank.T0)
    b = bank_snapshot.bank
    assert vals[scalar(sm.UPS_BATTERY_VOLTAGE)] == (b.voltage_mean_mv + 50) // 100
    assert vals[scalar(sm.UPS_CHARGE_REMAINING)] == (b.soc_permille + 5) // 10
    assert vals[scalar(sm.UPS_BATTERY_TEMPERATURE)] == (b.temp_max_dc + 5) // 10
    current = vals[scalar(sm.UPS_BATTERY_CURRENT)]
    assert abs(current * 100 - b.current_ma) <= 50 and (current > 0) == (b.current_ma > 0)
    # the backup_time processor's figures (the fixture's estimate: on battery)
    assert vals[scalar(sm.UPS_SECONDS_ON_BATTERY)] == bank.BACKUP.seconds_on_battery
    assert vals[scalar(sm.UPS_MINUTES_REMAINING)] == bank.BACKUP.minutes_to_eod
    _, vals = views(dataclasses.replace(bank_snapshot, backup=None), now=bank.T0)
    assert vals[scalar(sm.UPS_SECONDS_ON_BATTERY)] == 0  # charging: not on battery
    assert scalar(sm.UPS_MINUTES_REMAINING) not in vals  # no estimate: absent


def test_rounding_is_half_away_from_zero():
    assert [sm._round_div(v, 100) for v in (-150, -149, -50, -49, 49, 50, 149, 150)] == [
        -2, -1, -1, 0, 0, 1, 1, 2]


def test_on_battery_seconds_are_unknown_and_the_alarm_is_raised(bank, bank_snapshot):
    snap = dataclasses.replace(bank_snapshot, bank=dataclasses.replace(
        bank_snapshot.bank, current_ma=-25_000), alarms=(), backup=None)  # no processor
    state, vals = views(snap, now=bank.T0)
    assert scalar(sm.UPS_SECONDS_ON_BATTERY) not in vals
    assert vals[col(sm.UPS_ALARM_DESCR, 1)] == sm.UPS_ALARM_ON_BATTERY
    assert vals[col(sm.UPS_ALARM_TIME, 1)] == (bank.T0 - 990.0) * 100
    assert sm.backup_time(snap) == (None, None)
    idle = dataclasses.replace(snap, bank=dataclasses.replace(snap.bank, current_ma=-900))
    assert sm.backup_time(idle) == (0, None) and not sm.on_battery(idle)


def test_the_backup_time_estimate_gives_seconds_on_battery_and_minutes_remaining(
        bank, bank_snapshot):
    """With the backup_time processor's figures in the snapshot, UPS-MIB serves them:
    minutes to EOD rounded down, and its debounced state decides 'on battery'."""
    from gateway.model import BackupEstimate, BankState

    on = dataclasses.replace(bank_snapshot, alarms=(), backup=BackupEstimate(
        state=BankState.DISCHARGING, seconds_on_battery=95, seconds_to_eod=4 * 3600 + 59))
    assert sm.backup_time(on) == (95, 240) and sm.on_battery(on)
    state, vals = views(on, now=bank.T0)
    assert vals[scalar(sm.UPS_SECONDS_ON_BATTERY)] == 95
    assert vals[scalar(sm.UPS_MINUTES_REMAINING)] == 240
    assert vals[col(sm.UPS_ALARM_DESCR, 1)] == sm.UPS_ALARM_ON_BATTERY
    charging = dataclasses.replace(on, backup=BackupEstimate(
        state=BankState.CHARGING, seconds_on_battery=0, seconds_to_full=1800))
    assert sm.backup_time(charging) == (0, None) and not sm.on_battery(charging)
    state, vals = views(charging, now=bank.T0)
    assert scalar(sm.UPS_MINUTES_REMAINING) not in vals  # unknown: not made up
    unknown = dataclasses.replace(on, backup=BackupEstimate())
    assert sm.backup_time(unknown) == (None, None) and sm.on_battery(unknown) is None


def test_ups_alarm_rows_get_ids_from_1_and_keep_them(bank, bank_snapshot):
    base = dataclasses.replace(bank_snapshot, alarms=(), backup=None)  # charging
    state, vals = views(base, now=bank.T0)
    assert vals[scalar(sm.UPS_ALARMS_PRESENT)] == 0
    a1 = alarm(20, "bank_voltage_low", bank.T0 + 1)
    a2 = alarm(21, "discharge_temp_high", bank.T0 + 2)
    a3 = alarm(22, "ambient_temp_low", bank.T0 + 3)
    state, vals = views(dataclasses.replace(base, alarms=(a1,)), now=bank.T0 + 1, state=state)
    state, vals = views(dataclasses.replace(base, alarms=(a1, a2, a3)), now=bank.T0 + 3,
                        state=state)
    assert vals[scalar(sm.UPS_ALARMS_PRESENT)] == 2  # two temperature alarms: one condition
    assert vals[col(sm.UPS_ALARM_DESCR, 1)] == sm.UPS_ALARM_LOW_BATTERY
    assert vals[col(sm.UPS_ALARM_DESCR, 2)] == sm.UPS_ALARM_TEMP_BAD
    assert vals[col(sm.UPS_ALARM_TIME, 2)] == (bank.T0 + 2 - 990.0) * 100
    state, vals = views(dataclasses.replace(base, alarms=(a2,)), now=bank.T0 + 4, state=state)
    assert vals[scalar(sm.UPS_ALARMS_PRESENT)] == 1 and col(sm.UPS_ALARM_DESCR, 1) not in vals
    state, vals = views(dataclasses.replace(base, alarms=(a1, a2)), now=bank.T0 + 5,
                        state=state)
    assert vals[col(sm.UPS_ALARM_DESCR, 3)] == sm.UPS_ALARM_LOW_BATTERY  # a new id


@pytest.mark.parametrize(("kind", "ups"), [
    ("soh_low", sm.UPS_ALARM_BATTERY_BAD), ("fault_battery", sm.UPS_ALARM_BATTERY_BAD),
    ("bank_voltage_low", sm.UPS_ALARM_LOW_BATTERY), ("bank_soc_low", sm.UPS_ALARM_LOW_BATTERY),
    ("bank_voltage_eod", sm.UPS_ALARM_DEPLETED_BATTERY),
    ("charge_temp_high", sm.UPS_ALARM_TEMP_BAD), ("mosfet_temp_low", sm.UPS_ALARM_TEMP_BAD),
    ("warn_mosfet_high_temp", sm.UPS_ALARM_TEMP_BAD),
    ("protect_discharge_low_temp", sm.UPS_ALARM_TEMP_BAD),
    ("fault_sampling_ic", sm.UPS_ALARM_GENERAL_FAULT),
    ("module_offline", sm.UPS_ALARM_COMMUNICATIONS_LOST),
    ("bus_down", sm.UPS_ALARM_COMMUNICATIONS_LOST),
    ("cell_voltage_high", None), ("module_stale", None), ("warn_cell_over_voltage", None),
])
def test_alarm_kinds_map_to_well_known_ups_alarms(kind, ups):
    assert sm.ups_alarm_of(kind) == ups


def test_alarm_kinds_named_here_are_the_alarm_engines():
    """The mapping names kinds as strings (the agent may not import the alarms plugin):
    every kind it names exists in the alarm catalog."""
    from plugins.alarms import catalog

    known = set(catalog.THRESHOLDS) | set(catalog.COMM) | {
        catalog.fault_kind(f) for f in Fault if f.value and f.value & (f.value - 1) == 0}
    assert set(sm._KIND_ALARMS) <= known


def test_before_the_first_snapshot_only_the_chassis_is_served():
    _, vals = views(None, now=1000.0)
    assert {oid[-1] for oid in vals if oid[:-1] == sm.PHYS_CLASS.oid} == {1}
    assert vals[scalar(sm.UPS_ALARMS_PRESENT)] == 0
    assert scalar(sm.UPS_BATTERY_STATUS) not in vals


def test_insert_standard_keeps_the_table_sorted():
    table = [Variable((1, 3, 6, 1, 2, 1, 1, 1, 0), Syntax.INTEGER, 1),
             Variable((1, 3, 6, 1, 4, 1, 1), Syntax.INTEGER, 2)]
    std = [Variable(sm.UPS_ALARMS_PRESENT.oid + (0,), Syntax.GAUGE32, 0)]
    assert [v.value for v in sm.insert_standard(table, std)] == [1, 0, 2]


# ------------------------------------------------------------- MIB agreement -------

MIB_FILES = ("ENTITY-MIB", "ENTITY-SENSOR-MIB", "UPS-MIB", "IANA-ENTITY-MIB", "UUID-TC-MIB")
#: What smilint -l 4 reports on the modules exactly as the RFCs published them; the
#: findings are the RFCs' own (RFC 1628 predates the SMIv2 rules libsmi checks).
_NO_GROUP = " must be contained in at least one conformance group"
KNOWN_LINT = {
    "UPS-MIB": {
        "macro `TEXTUAL-CONVENTION' has not been imported from module `SNMPv2-TC'",
        "named number `battery(4)' illegal in sub-type",
        "named number `normal(2)' illegal in sub-type",
        "node `upsBatteryCurrent'" + _NO_GROUP,
        "node `upsBatteryTemperature'" + _NO_GROUP,
        "node `upsBatteryVoltage'" + _NO_GROUP,
        "node `upsBypassCurrent'" + _NO_GROUP,
        "node `upsBypassPower'" + _NO_GROUP,
        "node `upsConfigHighVoltageTransferPoint'" + _NO_GROUP,
        "node `upsConfigLowVoltageTransferPoint'" + _NO_GROUP,
        "node `upsInputCurrent'" + _NO_GROUP,
        "node `upsInputTruePower'" + _NO_GROUP,
        "notification `upsTrapAlarmEntryAdded'" + _NO_GROUP,
        "notification `upsTrapAlarmEntryRemoved'" + _NO_GROUP,
        "notification `upsTrapOnBattery'" + _NO_GROUP,
        "notification `upsTrapTestCompleted'" + _NO_GROUP,
        "object `upsAlarmId' of notification `upsTrapAlarmEntryAdded'"
        " must not be `not-accessible'",
        "object `upsAlarmId' of notification `upsTrapAlarmEntryRemoved'"
        " must not be `not-accessible'",
        "range limit exceeds underlying basetype",
        "revision for last update is missing",
    },
}


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: 'make test' installs the Debian packages")
    return path


@pytest.mark.parametrize("module", MIB_FILES)
def test_smilint_finds_only_what_the_rfc_text_has(bank, module):
    out = subprocess.run([tool("smilint"), "-l", "4", "-s", str(bank.MIBS / f"{module}.txt")],
                         capture_output=True, text=True,
                         env={**os.environ, "SMIPATH": str(bank.MIBS)})
    found = {re.sub(r"^.*?\[\d\] (warning: )?", "", line)
             for line in (out.stdout + out.stderr).splitlines() if line}
    assert found == KNOWN_LINT.get(module, set())


def translate(bank, names: list[str]) -> dict[str, tuple[str, str]]:
    """name -> (numeric OID, SYNTAX clause) as net-snmp reads our MIB files."""
    mods = ["-m", "ENTITY-SENSOR-MIB:UPS-MIB", "-M", f"+{bank.MIBS}"]
    proc = subprocess.run([tool("snmptranslate"), *mods, "-On", *names], capture_output=True,
                          text=True, check=True)
    assert proc.stderr == ""
    oids = [line for line in proc.stdout.splitlines() if line]
    proc = subprocess.run([tool("snmptranslate"), *mods, "-Td", *names], capture_output=True,
                          text=True, check=True)
    syntaxes = re.findall(r"^  SYNTAX\t(.*?) ?$", proc.stdout, re.M)
    assert len(oids) == len(syntaxes) == len(names)
    return {n.split("::")[1]: (o, s) for n, o, s in zip(names, oids, syntaxes)}


_MODULE_OF = {"ent": "ENTITY-MIB", "entPhySensor": "ENTITY-SENSOR-MIB", "ups": "UPS-MIB"}


def module_of(name: str) -> str:
    if name.startswith("entPhySensor"):
        return "ENTITY-SENSOR-MIB"
    return "ENTITY-MIB" if name.startswith("ent") else "UPS-MIB"


def test_every_served_object_is_the_mibs_oid_and_syntax(bank):
    names = [f"{module_of(n)}::{n}" for n in sm.OBJECT_TYPES]
    mib = translate(bank, names)
    base = {Syntax.GAUGE32: ("Gauge32", "Unsigned32"), Syntax.TIMETICKS: ("TimeTicks",),
            Syntax.OBJECT_IDENTIFIER: ("OBJECT IDENTIFIER",),
            Syntax.OCTET_STRING: ("OCTET STRING",), Syntax.INTEGER: ("INTEGER", "Integer32")}
    for name, obj in sm.OBJECT_TYPES.items():
        oid, syntax = mib[name]
        assert oid == "." + ".".join(map(str, obj.oid)), name
        assert syntax.startswith(base[obj.syntax]), (name, syntax)
        if obj.syntax in (Syntax.INTEGER, Syntax.OCTET_STRING):
            numbers = [int(n) for n in re.findall(r"-?\d+", syntax.split(" ", 1)[-1])
                       if syntax != "Integer32"] or [-(2**31), 2**31 - 1]
            assert (obj.low, obj.high) == (min(numbers), max(numbers)), (name, syntax)


def test_well_known_alarm_oids_are_the_mibs(bank):
    names = ["upsAlarmBatteryBad", "upsAlarmOnBattery", "upsAlarmLowBattery",
             "upsAlarmDepletedBattery", "upsAlarmTempBad", "upsAlarmGeneralFault",
             "upsAlarmCommunicationsLost"]
    proc = subprocess.run([tool("snmptranslate"), "-m", "UPS-MIB", "-M", f"+{bank.MIBS}",
                           "-On", *(f"UPS-MIB::{n}" for n in names)],
                          capture_output=True, text=True, check=True)
    assert [line for line in proc.stdout.splitlines() if line] == [
        "." + ".".join(map(str, oid)) for oid in (
            sm.UPS_ALARM_BATTERY_BAD, sm.UPS_ALARM_ON_BATTERY, sm.UPS_ALARM_LOW_BATTERY,
            sm.UPS_ALARM_DEPLETED_BATTERY, sm.UPS_ALARM_TEMP_BAD, sm.UPS_ALARM_GENERAL_FAULT,
            sm.UPS_ALARM_COMMUNICATIONS_LOST)]


# ------------------------------------------------------------- net-snmp e2e --------


def clean(stderr: str) -> list[str]:
    """stderr of a net-snmp tool without the note of its first run in a fresh HOME."""
    return [x for x in stderr.splitlines() if not x.startswith("Created directory: ")]


def table_rows(snmp, bank, agent, table: str) -> dict[str, dict[str, str]]:
    proc = snmp("snmptable", "-Cf", "|", "-Ci", *std_args(bank), *bank.v2c_args(agent), table)
    assert clean(proc.stderr) == []
    out = proc.stdout.splitlines()
    header = out[2].split("|")
    return {r.split("|")[0]: dict(zip(header, r.split("|"))) for r in out[3:]}


@pytest.mark.e2e
def test_snmptable_of_ent_physical_table(v2c_agent, snmp, bank):
    rows = table_rows(snmp, bank, v2c_agent, "ENTITY-MIB::entPhysicalTable")
    assert len(rows) == 1 + 2 + 11 * (1 + 3 + 16 + 6)
    assert rows["1"]["entPhysicalClass"] == "chassis"
    assert rows["1"]["entPhysicalName"] == "site-42-gw"
    assert rows["2000"]["entPhysicalName"] == "bus bank2"
    m = rows["1004000"]
    assert (m["entPhysicalClass"], m["entPhysicalContainedIn"], m["entPhysicalSerialNum"],
            m["entPhysicalFirmwareRev"], m["entPhysicalModelName"], m["entPhysicalMfgName"]) == (
        "module", "1000", "PACE0004", "V2.5", "LFP48-100", "")  # module 4: no manufacturer
    assert rows["1004116"]["entPhysicalName"] == "module 4 cell 16"
    assert rows["1004116"]["entPhysicalContainedIn"] == "1004000"


@pytest.mark.e2e
def test_snmptable_of_ent_phy_sensor_table(v2c_agent, snmp, bank):
    rows = table_rows(snmp, bank, v2c_agent, "ENTITY-SENSOR-MIB::entPhySensorTable")
    assert len(rows) == 11 * (3 + 16 + 6)
    cell = rows["1002101"]
    assert [cell[c] for c in ("entPhySensorType", "entPhySensorScale", "entPhySensorPrecision",
                              "entPhySensorOperStatus", "entPhySensorUnitsDisplay")] == [
        "voltsDC", "units", "3", "ok", "V"]
    assert cell["entPhySensorValue"] == str(bank.make_module(
        2, "bank1", 2, status=ModuleStatus.OK, now=bank.T0).telemetry.cell_mv[0])
    assert rows["1002501"]["entPhySensorType"] == "celsius"
    assert rows["1002501"]["entPhySensorValue"] == "-85"
    assert rows["1001002"]["entPhySensorType"] == "amperes"
    assert rows["1001002"]["entPhySensorValue"] == "-1375"
    assert rows["1001003"]["entPhySensorType"] == "other"
    assert rows["1005101"]["entPhySensorOperStatus"] == "unavailable"  # stale module 5
    assert rows["1005101"]["entPhySensorValue"] == "?"
    assert rows["2001101"]["entPhySensorOperStatus"] == "unavailable"  # offline module 9


@pytest.mark.e2e
def test_snmpwalk_of_ups_battery_by_name(v2c_agent, snmp, bank):
    proc = snmp("snmpwalk", *std_args(bank), *bank.v2c_args(v2c_agent), "UPS-MIB::upsBattery")
    assert clean(proc.stderr) == []
    lines = proc.stdout.splitlines()
    assert lines[0] == "UPS-MIB::upsBatteryStatus.0 = INTEGER: unknown(1)"  # no alarm rules
    assert "UPS-MIB::upsSecondsOnBattery.0 = INTEGER: 600 seconds" in lines  # the estimate
    assert "UPS-MIB::upsEstimatedMinutesRemaining.0 = INTEGER: 420 minutes" in lines
    assert any(re.fullmatch(r"UPS-MIB::upsBatteryVoltage\.0 = INTEGER: \d{3} 0\.1 Volt DC", x)
               for x in lines)
    proc = snmp("snmpwalk", *std_args(bank), *bank.v2c_args(v2c_agent), "UPS-MIB::upsAlarm")
    assert proc.stdout.splitlines() == [
        "UPS-MIB::upsAlarmsPresent.0 = Gauge32: 2",
        "UPS-MIB::upsAlarmDescr.1 = OID: UPS-MIB::upsAlarmOnBattery",  # the estimate's state
        "UPS-MIB::upsAlarmDescr.2 = OID: UPS-MIB::upsAlarmCommunicationsLost",
        "UPS-MIB::upsAlarmTime.1 = Timeticks: (0) 0:00:00.00",  # both before the start
        "UPS-MIB::upsAlarmTime.2 = Timeticks: (0) 0:00:00.00",
    ]


@pytest.mark.e2e
def test_a_stale_module_turns_unavailable_within_one_poll_cycle(snmp, bank):
    """The real agent: a module whose data outlives its stale age reads unavailable at
    the next request, before any new snapshot arrives."""
    agent = bank.RunningAgent({"v2c": {"community": bank.COMMUNITY}}).start()
    try:
        modules = bank.make_modules(agent.clock.now)
        modules[0] = dataclasses.replace(modules[0], updated_at=agent.clock.now,
                                         stale_after_s=5.0)
        agent.publish(modules, bank.make_buses(agent.clock.now))
        oid = "ENTITY-SENSOR-MIB::entPhySensorOperStatus.1001101"
        value = "ENTITY-SENSOR-MIB::entPhySensorValue.1001101"
        get = ["snmpget", "-Oqv", *std_args(bank), *bank.v2c_args(agent), oid, value]
        assert snmp(*get).stdout.splitlines()[0] == "ok"
        agent.clock.now += 6.0  # one poll cycle without an answer from module 1
        assert snmp(*get).stdout.splitlines() == ["unavailable", "No Such Instance currently "
                                                  "exists at this OID"]
    finally:
        agent.stop()


@pytest.mark.parametrize(("alarms", "known"), [
    ({}, True),
    ({"bank_voltage_eod": {"enabled": False}}, False),
    (None, False),
])
def test_battery_status_is_known_only_while_the_alarm_rules_run(alarms, known):
    from gateway.app import GatewayContext
    from gateway.cli import config_models
    from gateway.config import config_from_mapping
    from gateway.hub import Hub
    from gateway.plugins import make_plugin_manager
    from plugins.snmp_agent.agent import battery_thresholds_known

    pm, _ = make_plugin_manager()
    data = {"snmp_agent": {"port": 0}} | ({"alarms": alarms} if alarms is not None else {})
    config = config_from_mapping(data, config_models(pm))
    assert battery_thresholds_known(GatewayContext(config=config, hub=Hub())) is known
