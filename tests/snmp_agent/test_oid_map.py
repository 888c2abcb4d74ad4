"""oid_map: snapshot + now -> sorted OID table. Pure: injected time, no sockets."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.model import (
    BankSnapshot,
    BmsStatus,
    Condition,
    Fault,
    ModuleStatus,
    Severity,
    State,
    Telemetry,
)
from plugins.snmp_agent import oid_map as om
from plugins.snmp_agent.oid_map import BankOptions, Syntax, SystemInfo

T0 = 1000.0  # the bank fixture's clock start (checked below)
OPTS = BankOptions(software_version="1.2.3", started_at=T0 - 10.0)
NUMBERS = {"bank1": 1, "bank2": 2}


def test_clock_matches_the_bank_fixture(bank):
    assert bank.T0 == T0


def table(snapshot, now=T0, options=OPTS, numbers=NUMBERS):
    rows = om.make_bank_variables(snapshot, now=now, bus_numbers=numbers, options=options)
    return {v.oid: (v.syntax, v.value) for v in rows}, rows


def value(tbl, obj, *index):
    return tbl.get(obj.oid + (index or (0,)))


def col(obj, bus, address, *rest):
    return obj.oid + (bus, address, *rest)


def test_sorted_and_unique(bank_snapshot):
    _, rows = table(bank_snapshot)
    oids = [v.oid for v in rows]
    assert oids == sorted(oids)
    assert len(set(oids)) == len(oids)
    assert all(oid[: len(om.BMS_MIB_OID)] == om.BMS_MIB_OID for oid in oids)


def test_every_variable_is_an_instance_of_a_defined_object(bank_snapshot):
    _, rows = table(bank_snapshot)
    by_oid = {o.oid: o for o in om.OBJECT_TYPES.values()}
    for v in rows:
        obj = next(by_oid[v.oid[:k]] for k in range(len(v.oid) - 1, 0, -1) if v.oid[:k] in by_oid)
        assert v.syntax is obj.syntax, obj.name
        if obj.column:
            assert len(v.oid) > len(obj.oid) + 0
        else:
            assert v.oid == obj.oid + (0,)


def test_module_values_scale_and_sign(bank_snapshot):
    tbl, _ = table(bank_snapshot)
    m1 = bank_snapshot.module(1)
    t = m1.telemetry
    assert tbl[col(om.MOD_VOLTAGE, 1, 1)] == (Syntax.INTEGER, t.voltage_mv)
    assert t.current_ma < 0  # module 1 discharges: the sign is served as is
    assert tbl[col(om.MOD_CURRENT, 1, 1)] == (Syntax.INTEGER, t.current_ma)
    assert tbl[col(om.MOD_CURRENT, 1, 2)] == (Syntax.INTEGER, bank_snapshot.module(2)
                                             .telemetry.current_ma)
    assert tbl[col(om.MOD_SOC, 1, 1)] == (Syntax.INTEGER, 801)
    assert tbl[col(om.MOD_SOH, 1, 1)] == (Syntax.INTEGER, 979)
    assert tbl[col(om.MOD_REMAINING, 1, 1)] == (Syntax.INTEGER, 81_000)
    assert tbl[col(om.MOD_FULL, 1, 1)] == (Syntax.INTEGER, 98_100)
    assert tbl[col(om.MOD_DESIGN, 1, 1)] == (Syntax.INTEGER, 100_000)
    assert tbl[col(om.MOD_CYCLES, 1, 1)] == (Syntax.GAUGE32, 121)
    assert tbl[col(om.MOD_CELL_COUNT, 1, 1)] == (Syntax.GAUGE32, 16)
    assert tbl[col(om.MOD_CELL_MIN, 1, 1)] == (Syntax.INTEGER, t.cell_min_mv)
    assert tbl[col(om.MOD_CELL_MAX, 1, 1)] == (Syntax.INTEGER, t.cell_max_mv)
    assert tbl[col(om.MOD_TEMP_COUNT, 1, 1)] == (Syntax.GAUGE32, 6)
    assert tbl[col(om.MOD_TEMP_MIN, 1, 2)] == (Syntax.INTEGER, -85)  # below zero
    assert tbl[col(om.MOD_POSITION, 2, 2)] == (Syntax.INTEGER, 10)
    assert tbl[col(om.MOD_SERIAL, 1, 1)] == (Syntax.OCTET_STRING, b"PACE0001")
    assert tbl[col(om.MOD_DATA_AGE, 1, 1)] == (Syntax.GAUGE32, 2)
    for i, mv in enumerate(t.cell_mv, start=1):
        assert tbl[col(om.CELL_VOLTAGE, 1, 1, i)] == (Syntax.INTEGER, mv)
    for i, dc in enumerate(bank_snapshot.module(2).telemetry.temp_dc, start=1):
        assert tbl[col(om.TEMP_VALUE, 1, 2, i)] == (Syntax.INTEGER, dc)
    assert tbl[col(om.TEMP_VALUE, 1, 2, 1)] == (Syntax.INTEGER, -85)
    assert tbl[col(om.TEMP_ROLE, 1, 1, 5)] == (Syntax.INTEGER, 2)  # mosfet
    assert tbl[col(om.TEMP_ROLE, 1, 1, 6)] == (Syntax.INTEGER, 3)  # ambient
    assert tbl[col(om.CELL_BALANCING, 1, 1, 3)] == (Syntax.INTEGER, 1)  # true
    assert tbl[col(om.CELL_BALANCING, 1, 1, 1)] == (Syntax.INTEGER, 2)  # false


def test_unknown_values_are_absent_never_zero(bank_snapshot):
    tbl, _ = table(bank_snapshot)
    assert col(om.CELL_VOLTAGE, 1, 3, 8) not in tbl  # module 3's unreadable cell
    assert col(om.CELL_VOLTAGE, 1, 3, 9) in tbl
    assert col(om.MOD_MANUFACTURER, 1, 4) not in tbl  # module 4 reports none
    assert not any(oid[: len(om.CELL_BALANCING.oid) + 2] == col(om.CELL_BALANCING, 1, 8)
                   for oid in tbl)  # module 8 does not report balancing
    alarm_11 = om.ALARM_VALUE.oid + (11,)
    assert alarm_11 not in tbl and om.ALARM_THRESHOLD.oid + (11,) not in tbl


def test_stale_offline_never_seen(bank_snapshot):
    tbl, _ = table(bank_snapshot)
    measurement_cols = (om.MOD_VOLTAGE, om.MOD_CURRENT, om.MOD_SOC, om.MOD_CELL_MIN,
                        om.MOD_WARNINGS, om.MOD_STATES, om.MOD_TEMP_MAX)
    for bus, addr, status in ((1, 5, 2), (2, 1, 3)):  # stale module 5, offline module 9
        assert tbl[col(om.MOD_STATUS, bus, addr)] == (Syntax.INTEGER, status)
        assert col(om.MOD_DATA_AGE, bus, addr) in tbl
        assert col(om.MOD_SERIAL, bus, addr) in tbl
        assert col(om.MOD_COUNTERS[1], bus, addr) in tbl  # timeouts
        for obj in measurement_cols:
            assert col(obj, bus, addr) not in tbl, obj.name
        assert not rows_of(tbl, _CELLS, bus, addr)
        assert not rows_of(tbl, _TEMPS, bus, addr)
    assert tbl[col(om.MOD_DATA_AGE, 1, 5)] == (Syntax.GAUGE32, 45)
    assert tbl[col(om.MOD_DATA_AGE, 2, 1)] == (Syntax.GAUGE32, 300)
    assert tbl[col(om.MOD_LINK_STATE, 1, 5)] == (Syntax.INTEGER, 3)  # suspect
    assert tbl[col(om.MOD_LINK_STATE, 2, 1)] == (Syntax.INTEGER, 4)  # offline
    # never seen (module 12 = bank2 address 4): status, link, position, counters only
    never = {oid for oid in tbl if len(oid) == len(om.MOD_STATUS.oid) + 2
             and oid[-2:] == (2, 4) and oid[: len(_MODULES)] == _MODULES}
    names = {o.name for o in om.OBJECT_TYPES.values() if o.oid + (2, 4) in never}
    assert names == {"bmsModulePosition", "bmsModuleStatus", "bmsModuleLinkState",
                     *(o.name for o in om.MOD_COUNTERS)}
    assert tbl[col(om.MOD_STATUS, 2, 4)] == (Syntax.INTEGER, 4)
    assert tbl[col(om.MOD_COUNTERS[1], 2, 4)] == (Syntax.COUNTER32, 52)  # timeouts


def rows_of(tbl, entry, bus, address):
    """Instances of any column of a table ``entry`` extending the module index."""
    n = len(entry)
    return [o for o in tbl if o[:n] == entry and o[n + 1:n + 3] == (bus, address)]


def test_live_modules_have_cell_and_temperature_rows(bank_snapshot):
    tbl, _ = table(bank_snapshot)
    assert len(rows_of(tbl, _CELLS, 1, 1)) == 32  # 16 voltages + 16 balancing flags
    assert len(rows_of(tbl, _TEMPS, 1, 1)) == 12  # 6 values + 6 roles


_CELLS = om.CELL_VOLTAGE.oid[:-1]
_TEMPS = om.TEMP_VALUE.oid[:-1]
_MODULES = om.MOD_STATUS.oid[:-1]


def test_serve_stale_serves_a_stale_modules_values_with_its_status(bank_snapshot):
    tbl, _ = table(bank_snapshot, options=dataclasses.replace(OPTS, serve_stale=True))
    m5 = bank_snapshot.module(5)
    assert tbl[col(om.MOD_VOLTAGE, 1, 5)] == (Syntax.INTEGER, m5.telemetry.voltage_mv)
    assert tbl[col(om.MOD_STATUS, 1, 5)] == (Syntax.INTEGER, 2)
    assert col(om.CELL_VOLTAGE, 1, 5, 16) in tbl
    assert col(om.MOD_VOLTAGE, 2, 1) not in tbl  # offline: never


def test_bank_scalars(bank_snapshot):
    tbl, _ = table(bank_snapshot)
    b = bank_snapshot.bank
    assert b.current_ma is not None and b.modules_online == 9
    assert value(tbl, om.BANK_CURRENT) == (Syntax.INTEGER, b.current_ma)
    assert value(tbl, om.BANK_VOLTAGE_MEAN) == (Syntax.INTEGER, b.voltage_mean_mv)
    assert value(tbl, om.BANK_SOC) == (Syntax.INTEGER, b.soc_permille)
    assert value(tbl, om.BANK_FULL) == (Syntax.INTEGER, b.full_mah)
    assert value(tbl, om.BANK_CELL_MAX) == (Syntax.INTEGER, b.cell_max_mv)
    assert value(tbl, om.BANK_CELL_MAX_MODULE) == (Syntax.INTEGER, b.cell_max_at.position)
    assert value(tbl, om.BANK_CELL_MAX_CELL) == (Syntax.INTEGER, b.cell_max_at.index)
    assert value(tbl, om.BANK_TEMP_MIN) == (Syntax.INTEGER, -85)
    assert value(tbl, om.BANK_TEMP_MIN_MODULE) == (Syntax.INTEGER, 2)
    assert value(tbl, om.BANK_TEMP_MIN_SENSOR) == (Syntax.INTEGER, 1)
    assert value(tbl, om.BANK_MODULES_CONFIGURED) == (Syntax.GAUGE32, 12)
    assert value(tbl, om.BANK_MODULES_ONLINE) == (Syntax.GAUGE32, 9)
    assert value(tbl, om.BANK_WORST_STATUS) == (Syntax.INTEGER, 4)  # a never-seen module
    assert value(tbl, om.BANK_WORST_SEVERITY) == (Syntax.INTEGER, 3)  # critical
    assert value(tbl, om.BANK_ACTIVE_ALARMS) == (Syntax.GAUGE32, 2)
    assert value(tbl, om.ALARM_LAST_SEQ) == (Syntax.GAUGE32, 13)


def test_gateway_scalars_and_bus_table(bank_snapshot):
    tbl, _ = table(bank_snapshot, now=T0 + 0.9)
    assert value(tbl, om.GW_SOFTWARE_VERSION) == (Syntax.OCTET_STRING, b"1.2.3")
    assert value(tbl, om.GW_UPTIME) == (Syntax.TIMETICKS, 1090)  # started 10.9 s before
    assert value(tbl, om.GW_POLL_CYCLE_TIME) == (Syntax.GAUGE32, 2210)
    assert value(tbl, om.GW_LAST_CYCLE_AGE) == (Syntax.GAUGE32, 4)  # oldest bus: 4.15 s
    assert value(tbl, om.GW_COUNTERS[0]) == (Syntax.COUNTER32, (5000 + 2 * 2**31 + 5) % 2**32)
    assert value(tbl, om.GW_COUNTERS[1]) == (Syntax.COUNTER32, 412)
    assert value(tbl, om.GW_RECONNECTS) == (Syntax.COUNTER32, 1)
    assert tbl[om.BUS_NAME.oid + (2,)] == (Syntax.OCTET_STRING, b"bank2")
    assert tbl[om.BUS_CONNECTED.oid + (1,)] == (Syntax.INTEGER, 1)
    assert tbl[om.BUS_LAST_CYCLE_AGE.oid + (2,)] == (Syntax.GAUGE32, 4)
    assert tbl[om.BUS_CYCLES.oid + (1,)] == (Syntax.COUNTER32, 321)
    assert tbl[om.BUS_COUNTERS[7].oid + (1,)] == (Syntax.COUNTER32, 77)  # garbage bytes


def test_a_bus_without_a_complete_cycle_ages_from_the_start(bank_snapshot):
    stuck = dataclasses.replace(bank_snapshot.buses[1], last_cycle_at=None, last_cycle_ms=None)
    snap = dataclasses.replace(bank_snapshot, buses=(bank_snapshot.buses[0], stuck))
    tbl, _ = table(snap, now=T0 + 50.0)
    assert value(tbl, om.GW_LAST_CYCLE_AGE) == (Syntax.GAUGE32, 60)  # started at T0 - 10
    assert om.BUS_LAST_CYCLE_AGE.oid + (2,) not in tbl  # the bus's own age is unknown


def test_live_data_past_its_stale_age_is_served_stale_even_if_the_hub_stopped(bank_snapshot):
    m = bank_snapshot.module(1)
    assert m.status is ModuleStatus.OK
    snap = dataclasses.replace(bank_snapshot, modules=(
        dataclasses.replace(m, stale_after_s=30.0),) + bank_snapshot.modules[1:])
    tbl, _ = table(snap)
    assert tbl[col(om.MOD_STATUS, 1, 1)] == (Syntax.INTEGER, int(ModuleStatus.OK))
    assert col(om.MOD_VOLTAGE, 1, 1) in tbl
    current = value(tbl, om.BANK_CURRENT)[1]
    later = m.updated_at + 31.0  # the hub published nothing since
    tbl, _ = table(snap, now=later)
    assert tbl[col(om.MOD_STATUS, 1, 1)] == (Syntax.INTEGER, int(ModuleStatus.STALE))
    assert col(om.MOD_VOLTAGE, 1, 1) not in tbl
    assert value(tbl, om.BANK_CURRENT)[1] == current - m.telemetry.current_ma
    assert value(tbl, om.BANK_MODULES_ONLINE) == (Syntax.GAUGE32, 8)


def test_ages_follow_the_injected_clock(bank_snapshot):
    later, _ = table(bank_snapshot, now=T0 + 60.0)
    assert later[col(om.MOD_DATA_AGE, 1, 1)] == (Syntax.GAUGE32, 62)
    assert value(later, om.GW_UPTIME) == (Syntax.TIMETICKS, 7000)


def test_flags_as_bits(bank_snapshot):
    tbl, _ = table(bank_snapshot)
    # module 1: cellOverVoltage(0) + lowCapacity(14)
    assert tbl[col(om.MOD_WARNINGS, 1, 1)] == (Syntax.OCTET_STRING, bytes((0x80, 0x02)))
    assert tbl[col(om.MOD_WARNINGS, 1, 2)] == (Syntax.OCTET_STRING, b"\x00\x00")
    # module 6: chargeOverCurrent(4)
    assert tbl[col(om.MOD_PROTECTIONS, 1, 6)] == (Syntax.OCTET_STRING, bytes((0x08, 0)))
    # module 7: samplingIc(5) + reverseConnection(6)
    assert tbl[col(om.MOD_FAULTS, 1, 7)] == (Syntax.OCTET_STRING, bytes((0x06, 0)))
    # module 1 discharges: chargeFetOn(0) dischargeFetOn(1) discharging(3)
    assert tbl[col(om.MOD_STATES, 1, 1)] == (Syntax.OCTET_STRING, bytes((0xD0, 0)))
    assert tbl[col(om.MOD_UNCLASSIFIED, 2, 2)] == (Syntax.OCTET_STRING, b"alarm_state:5")
    assert tbl[col(om.MOD_UNCLASSIFIED, 1, 1)] == (Syntax.OCTET_STRING, b"")


@pytest.mark.parametrize(("flags", "named", "expected"), [
    (0, 16, b"\x00\x00"),
    (1, 16, b"\x80\x00"),
    (1 << 15, 16, b"\x00\x01"),
    (1 << 10, 11, b"\x00\x20"),
    (1 << 17, 16, b"\x00\x00\x40"),  # a bit beyond the named ones is kept
])
def test_encode_bits(flags, named, expected):
    assert om.encode_bits(flags, named) == expected


def test_encode_text_cuts_on_character_boundaries():
    assert om.encode_text("abc", 32) == b"abc"
    assert om.encode_text("x" * 40, 32) == b"x" * 29 + b"..."
    cut = om.encode_text("é" * 40, 32)
    assert len(cut) <= 32 and cut.endswith(b"...")
    cut.decode("utf-8")  # still valid UTF-8


def test_date_and_time(bank):
    assert om.encode_date_and_time(0.0) == bytes((7, 178, 1, 1, 0, 0, 0, 0, 43, 0, 0))
    raw = om.encode_date_and_time(bank.WALL0 + 0.35)
    assert raw[:2] == (2026).to_bytes(2, "big") and raw[7] == 3 and raw[8:] == b"+\x00\x00"


def test_alarm_rows(bank_snapshot, bank):
    tbl, _ = table(bank_snapshot)
    a = bank.ALARMS[0]
    assert tbl[om.ALARM_KIND.oid + (7,)] == (Syntax.OCTET_STRING, b"cell_voltage_high")
    assert tbl[om.ALARM_SEVERITY.oid + (7,)] == (Syntax.INTEGER, int(Severity.MAJOR))
    assert tbl[om.ALARM_MODULE.oid + (7,)] == (Syntax.INTEGER, 1)
    assert tbl[om.ALARM_SUB_INDEX.oid + (7,)] == (Syntax.INTEGER, 4)
    assert tbl[om.ALARM_VALUE.oid + (7,)] == (Syntax.INTEGER, 3651)
    assert tbl[om.ALARM_THRESHOLD.oid + (7,)] == (Syntax.INTEGER, 3650)
    assert tbl[om.ALARM_RAISED_AT.oid + (7,)] == (
        Syntax.OCTET_STRING, om.encode_date_and_time(a.raised_wall_time))
    assert tbl[om.ALARM_RAISED_TIME.oid + (7,)] == (Syntax.TIMETICKS, 0)  # before the start
    text = tbl[om.ALARM_TEXT.oid + (11,)][1]
    assert len(text) == 64 and text.endswith(b"...")
    started_earlier = dataclasses.replace(OPTS, started_at=T0 - 100.0)
    tbl, _ = table(bank_snapshot, options=started_earlier)
    assert tbl[om.ALARM_RAISED_TIME.oid + (7,)] == (Syntax.TIMETICKS, 8000)


def test_out_of_range_values_are_left_out(bank_snapshot):
    m = bank_snapshot.module(1)
    bad = dataclasses.replace(m, telemetry=dataclasses.replace(
        m.telemetry, soc_permille=1001, voltage_mv=-5, cycles=-3,
        cell_mv=(3300, 2_000_000) + m.telemetry.cell_mv[2:]))
    snap = dataclasses.replace(bank_snapshot, modules=(bad,) + bank_snapshot.modules[1:])
    tbl, _ = table(snap)
    assert col(om.MOD_SOC, 1, 1) not in tbl
    assert col(om.MOD_VOLTAGE, 1, 1) not in tbl
    assert col(om.CELL_VOLTAGE, 1, 1, 2) not in tbl
    assert tbl[col(om.CELL_VOLTAGE, 1, 1, 1)] == (Syntax.INTEGER, 3300)
    assert col(om.MOD_CYCLES, 1, 1) not in tbl  # a negative count is garbage, not 0


def test_before_the_first_snapshot_only_the_gateway_speaks():
    rows = om.make_bank_variables(None, now=T0, bus_numbers={}, options=OPTS)
    assert [v.oid for v in rows] == [om.GW_SOFTWARE_VERSION.oid + (0,), om.GW_UPTIME.oid + (0,)]


def test_bus_numbers_are_sticky(bank_snapshot):
    first = om.assign_bus_numbers({}, bank_snapshot)
    assert first == {"bank1": 1, "bank2": 2}
    only_bank2 = dataclasses.replace(
        bank_snapshot, buses=bank_snapshot.buses[1:],
        modules=tuple(m for m in bank_snapshot.modules if m.bus == "bank2"))
    assert om.assign_bus_numbers(first, only_bank2) == first
    assert om.assign_bus_numbers({}, only_bank2) == {"bank2": 1}
    extra = dataclasses.replace(bank_snapshot, buses=bank_snapshot.buses + (
        dataclasses.replace(bank_snapshot.buses[0], name="bank0"),))
    assert om.assign_bus_numbers(first, extra) == {"bank1": 1, "bank2": 2, "bank0": 3}
    pinned = om.assign_bus_numbers({"bank2": 7}, bank_snapshot)
    assert pinned == {"bank2": 7, "bank1": 8}


def test_duplicate_address_keeps_the_first_position(bank_snapshot, bank):
    dup = bank.make_module(13, "bank1", 1, status=ModuleStatus.OK, now=T0)
    snap = dataclasses.replace(bank_snapshot, modules=bank_snapshot.modules + (dup,))
    tbl, rows = table(snap)
    assert tbl[col(om.MOD_POSITION, 1, 1)] == (Syntax.INTEGER, 1)
    assert len({v.oid for v in rows}) == len(rows)


def test_system_variables():
    rows = om.make_system_variables(
        SystemInfo(descr="d", name="n", location="l", contact="c"), now=T0 + 5,
        started_at=T0, counters={"in_pkts": 2**32 + 3, "in_asn_parse_errs": 4})
    tbl = {v.oid: (v.syntax, v.value) for v in rows}
    assert [v.oid for v in rows] == sorted(v.oid for v in rows)
    assert tbl[(1, 3, 6, 1, 2, 1, 1, 2, 0)] == (Syntax.OBJECT_IDENTIFIER, om.SYS_OBJECT_ID)
    assert om.SYS_OBJECT_ID == (1, 3, 6, 1, 4, 1, 32473, 1, 1)
    assert tbl[(1, 3, 6, 1, 2, 1, 1, 3, 0)] == (Syntax.TIMETICKS, 500)
    assert tbl[(1, 3, 6, 1, 2, 1, 1, 5, 0)] == (Syntax.OCTET_STRING, b"n")
    assert tbl[(1, 3, 6, 1, 2, 1, 11, 1, 0)] == (Syntax.COUNTER32, 3)
    assert tbl[(1, 3, 6, 1, 2, 1, 11, 6, 0)] == (Syntax.COUNTER32, 4)
    assert tbl[(1, 3, 6, 1, 2, 1, 11, 30, 0)] == (Syntax.INTEGER, 2)


def test_worst_severity_order():
    assert om.worst_severity([]) is Severity.CLEARED
    assert om.worst_severity([Severity.WARNING, Severity.MINOR]) is Severity.MINOR
    assert om.worst_severity([Severity.INDETERMINATE, Severity.WARNING]) is Severity.WARNING
    assert om.worst_severity([Severity.MAJOR, Severity.CRITICAL]) is Severity.CRITICAL


def test_a_module_without_blocks_serves_its_envelope_only(bank):
    snap = BankSnapshot(seq=1, created_at=T0, wall_time=bank.WALL0,
                        buses=tuple(bank.make_buses(T0)),
                        modules=(dataclasses.replace(
                            bank.make_module(1, "bank1", 1, status=ModuleStatus.OK, now=T0),
                            telemetry=Telemetry(), bms=BmsStatus()),))
    tbl, _ = table(snap)
    assert col(om.MOD_VOLTAGE, 1, 1) not in tbl
    assert tbl[col(om.MOD_CELL_COUNT, 1, 1)] == (Syntax.GAUGE32, 0)
    assert tbl[col(om.MOD_FAULTS, 1, 1)] == (Syntax.OCTET_STRING, b"\x00\x00")
    assert len(om.encode_bits(int(Condition(0)), len(Condition))) == 2
    assert len(Fault) == 11 and len(State) == 10


def test_module_rows_serve_the_led_view_only_while_live(bank_snapshot):
    """bmsModuleLed* (gateway.leds): module 7 discharges with a sampling IC fault and a
    reverse connection, module 6 charges under a protection, module 5 is stale."""
    tbl, _ = table(bank_snapshot)
    steady, slow, fast, flash1hz, off = 2, 3, 4, 5, 1
    v = lambda obj, address: tbl.get(col(obj, 1, address), (None, None))[1]  # noqa: E731
    assert (v(om.MOD_LED_RUN, 7), v(om.MOD_LED_ALM, 7), v(om.MOD_LED_ERR, 7)) == (
        fast, off, steady)
    assert v(om.MOD_LED_ERR_CODES, 7) == b"6"
    assert [v(o, 7) for o in om.MOD_LED_SOC] == [steady] * 4  # 80.7 %, not charging
    assert (v(om.MOD_LED_RUN, 6), v(om.MOD_LED_ALM, 6), v(om.MOD_LED_ERR, 6)) == (
        slow, steady, off)
    assert [v(o, 6) for o in om.MOD_LED_SOC] == [steady, steady, steady, slow]
    assert v(om.MOD_LED_ERR_CODES, 6) == b""
    assert v(om.MOD_LED_ALM, 1) == flash1hz  # a warning
    for obj in (om.MOD_LED_RUN, om.MOD_LED_ALM, om.MOD_LED_ERR, *om.MOD_LED_SOC,
                om.MOD_LED_ERR_CODES):
        assert col(obj, 1, 5) not in tbl  # stale: unknown, absent
