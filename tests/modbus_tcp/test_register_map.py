"""The register map as a pure function: snapshot + now -> registers (no sockets)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.model import (
    Alarm,
    BmsStatus,
    Condition,
    Fault,
    ModuleStatus,
    Severity,
    State,
    Telemetry,
)
from plugins.modbus_tcp import register_map as rm
from plugins.modbus_tcp.fields import SENTINELS, Field, decode_value, encode_value

REPO = Path(__file__).resolve().parents[2]
LOCK = Path(__file__).parent / "data" / "register_map.json"
STALE_AFTER = 60.0


def image_of(snapshot, now, **kw):
    return rm.make_image(snapshot, now, stale_after_s=kw.pop("stale_after_s", STALE_AFTER), **kw)


def block_at(image, start):
    return next(b for b in image.bank_unit if b.start == start)


def fields_of(layout, values):
    """Decode every field of ``layout`` from a block's registers."""
    return {f.name: decode_value(f, values[layout.offsets[f.name]:]) for f in layout.fields}


def bank_fields(image):
    return fields_of(rm.BANK_BLOCK, block_at(image, 0).values)


def module_fields(image, position):
    return fields_of(rm.MODULE_BLOCK, block_at(image, rm.module_block_start(position)).values)


MEASUREMENTS = [f.name for f in rm.MODULE_BLOCK.fields
                if f.name not in ("status", "data_age_s", "position", "bus_address", "serial",
                                  "alarms_active", "alarm_worst_severity", *rm.COUNTERS)]


# ---------------------------------------------------------------- bank block ---------

def test_bank_block_serves_the_snapshot_aggregates(snapshot, clock, mb):
    b = snapshot.bank
    f = bank_fields(image_of(snapshot, clock.now))
    assert f["map_version"] == rm.MAP_VERSION
    assert (f["module_slots"], f["module_block_base"], f["module_block_stride"],
            f["module_block_length"]) == (64, 1000, 200, rm.MODULE_BLOCK.length)
    assert f["bank_status"] == rm.BankStatus.OK
    assert (f["snapshot_seq"], f["snapshot_age_s"]) == (snapshot.seq, 0)
    assert (f["modules_configured"], f["modules_live"]) == (12, 9)
    assert b.current_ma < 0 and f["current_ma"] == b.current_ma  # discharging: negative
    assert (f["voltage_mean_mv"], f["voltage_min_mv"], f["voltage_max_mv"]) == (
        b.voltage_mean_mv, b.voltage_min_mv, b.voltage_max_mv)
    assert (f["soc_permille"], f["soh_min_permille"]) == (b.soc_permille, b.soh_min_permille)
    assert (f["remaining_mah"], f["full_mah"]) == (b.remaining_mah, b.full_mah)
    assert (f["cell_min_mv"], f["cell_min_position"], f["cell_min_index"]) == (
        b.cell_min_mv, b.cell_min_at.position, b.cell_min_at.index)
    assert (f["cell_max_mv"], f["cell_max_position"], f["cell_max_index"]) == (
        b.cell_max_mv, b.cell_max_at.position, b.cell_max_at.index)
    assert (f["temp_min_dc"], f["temp_min_position"], f["temp_min_index"]) == (
        b.temp_min_dc, b.temp_min_at.position, b.temp_min_at.index)
    assert (f["temp_max_dc"], f["temp_max_position"], f["temp_max_index"]) == (
        b.temp_max_dc, b.temp_max_at.position, b.temp_max_at.index)
    live = [m for m in snapshot.modules if m.status is ModuleStatus.OK]
    power = sum(m.telemetry.voltage_mv * m.telemetry.current_ma for m in live) / 1e6
    assert power < 0 and f["power_w"] == round(power)


def test_bank_block_alarm_summary_and_bitmaps(snapshot, clock, mb):
    f = bank_fields(image_of(snapshot, clock.now))
    assert f["alarms_active"] == 2
    assert (f["alarms_critical"], f["alarms_major"], f["alarms_minor"], f["alarms_warning"],
            f["alarms_indeterminate"]) == (0, 1, 0, 1, 0)
    assert f["alarm_worst_severity"] == Severity.MAJOR
    assert f["alarm_last_seq"] == 42
    bit = lambda *positions: sum(1 << (p - 1) for p in positions)  # noqa: E731
    assert f["modules_not_live_1_16"] == bit(mb.STALE, mb.OFFLINE, mb.NEVER_SEEN)
    assert f["modules_alarm_1_16"] == bit(mb.OFFLINE, mb.TROUBLED)
    assert f["modules_major_1_16"] == bit(mb.OFFLINE)
    assert f["modules_warning_1_16"] == bit(mb.TROUBLED)
    assert f["modules_critical_1_16"] == f["modules_minor_1_16"] == 0
    assert f["modules_protection_1_16"] == f["modules_fault_1_16"] == bit(mb.TROUBLED)
    for prefix in ("modules_not_live", "modules_alarm", "modules_fault"):
        assert f[f"{prefix}_17_32"] == f[f"{prefix}_33_48"] == f[f"{prefix}_49_64"] == 0
    assert f["modules_alarmed"] == snapshot.bank.modules_alarmed == 2
    assert f["bank_warnings_bits_0_15"] == Condition.CELL_UNDER_VOLTAGE | Condition.LOW_CAPACITY
    assert f["bank_protections_bits_0_15"] == Condition.DISCHARGE_OVER_CURRENT
    assert f["bank_faults_bits_0_15"] == Fault.TEMPERATURE_SENSOR
    assert f["bank_warnings_bits_16_31"] == 0


def test_worst_severity_ranks_critical_over_all(clock, mb):
    def alarm(seq, severity, position=0):
        return Alarm(seq=seq, kind="k", severity=severity, position=position, raised_at=0,
                     raised_wall_time=0, text="")
    for alarms, worst in [
        ((), Severity.CLEARED),
        ((alarm(1, Severity.INDETERMINATE), alarm(2, Severity.WARNING)), Severity.WARNING),
        ((alarm(1, Severity.MINOR), alarm(2, Severity.MAJOR)), Severity.MAJOR),
        ((alarm(1, Severity.CRITICAL), alarm(2, Severity.WARNING)), Severity.CRITICAL),
        ((alarm(1, Severity.INDETERMINATE, position=64),), Severity.INDETERMINATE),
    ]:
        snap = mb.make_snapshot(clock.now, alarms=alarms)
        f = bank_fields(image_of(snap, clock.now))
        assert f["alarm_worst_severity"] == worst
    assert f["modules_alarm_49_64"] == 1 << 15  # position 64


# -------------------------------------------------------------- module blocks --------

def test_live_module_block_equals_its_reading(snapshot, clock, mb):
    m = snapshot.module(1)
    t = m.telemetry
    f = module_fields(image_of(snapshot, clock.now), 1)
    assert (f["status"], f["data_age_s"], f["position"], f["bus_address"]) == (1, 2, 1, 2)
    assert t.current_ma < 0 and f["current_ma"] == t.current_ma
    for name in ("voltage_mv", "soc_permille", "soh_permille", "remaining_mah", "full_mah",
                 "design_mah", "cycles", "cell_min_mv", "cell_max_mv"):
        assert f[name] == getattr(t, name), name
    assert (f["cell_count"], f["temp_count"]) == (16, 6)
    assert [f[f"cell_{i}_mv"] for i in range(1, 17)] == list(t.cell_mv)
    assert [f[f"cell_{i}_mv"] for i in range(17, 33)] == [None] * 16
    assert [f[f"temp_{i}_dc"] for i in range(1, 7)] == list(t.temp_dc)
    assert [f[f"temp_{i}_role"] for i in range(1, 7)] == [r.value for r in mb.TEMP_ROLES]
    assert f["temp_7_dc"] is None and f["temp_7_role"] is None
    assert f["states_bits_0_15"] == State.CHARGE_FET_ON | State.DISCHARGE_FET_ON | State.DISCHARGING
    assert f["warnings_bits_0_15"] == f["protections_bits_0_15"] == f["faults_bits_0_15"] == 0
    assert (f["bms_summary"], f["unclassified_count"], f["balancing_cells_1_16"]) == (0, 0, 0)
    assert (f["frames_ok"], f["timeouts"], f["checksum_errors"]) == (1001, 1, 1)
    assert f["serial"] == "PK24000001"
    assert (f["alarms_active"], f["alarm_worst_severity"]) == (0, Severity.CLEARED)


def test_charging_module_current_is_positive(snapshot, clock, mb):
    f = module_fields(image_of(snapshot, clock.now), mb.CHARGING)
    assert f["current_ma"] == 4_200
    block = block_at(image_of(snapshot, clock.now), rm.module_block_start(mb.CHARGING))
    off = rm.MODULE_BLOCK.offsets["current_ma"]
    assert block.values[off:off + 2] == (0x0000, 0x1068)  # high word first


def test_negative_int32_is_big_endian_twos_complement(snapshot, clock):
    block = block_at(image_of(snapshot, clock.now), rm.module_block_start(1))
    off = rm.MODULE_BLOCK.offsets["current_ma"]
    assert block.values[off:off + 2] == (0xFFFF, (-11_250) & 0xFFFF)


def test_bms_flags_named_bits_and_summary(snapshot, clock, mb):
    f = module_fields(image_of(snapshot, clock.now), mb.TROUBLED)
    assert f["warnings_bits_0_15"] == (1 << 1) | (1 << 14)  # CELL_UNDER_VOLTAGE, LOW_CAPACITY
    assert f["protections_bits_0_15"] == 1 << 5  # DISCHARGE_OVER_CURRENT
    assert f["faults_bits_0_15"] == 1 << 1  # TEMPERATURE_SENSOR
    assert f["states_bits_0_15"] == (1 << 0) | (1 << 7)
    assert f["bms_summary"] == 0b1111  # unclassified, warning, protection, fault
    assert f["unclassified_count"] == 1
    assert (f["balancing_cells_1_16"], f["balancing_cells_17_32"]) == (
        (1 << 0) | (1 << 5) | (1 << 15), 0)
    assert (f["alarms_active"], f["alarm_worst_severity"]) == (1, Severity.WARNING)
    bits = rm.MODULE_BLOCK.field("warnings_bits_0_15").bits
    assert (bits[1], bits[14]) == ("CELL_UNDER_VOLTAGE", "LOW_CAPACITY")
    assert rm.MODULE_BLOCK.field("faults_bits_0_15").bits[:6] == (
        "VOLTAGE_SENSOR", "TEMPERATURE_SENSOR", "CHARGE_CIRCUIT", "DISCHARGE_CIRCUIT",
        "BATTERY", "SAMPLING_IC")


@pytest.mark.parametrize("which,status,age", [("STALE", 2, 45), ("OFFLINE", 3, 600),
                                              ("NEVER_SEEN", 4, None)])
def test_not_live_module_reads_sentinels_with_status_and_age(snapshot, clock, mb, which,
                                                             status, age):
    position = getattr(mb, which)
    f = module_fields(image_of(snapshot, clock.now), position)
    assert (f["status"], f["data_age_s"], f["position"]) == (status, age, position)
    assert [n for n in MEASUREMENTS if f[n] is not None] == []
    assert f["timeouts"] == (40 if which == "NEVER_SEEN" else position)  # counters stay
    assert f["bus_address"] == position + 1


def test_not_live_module_registers_are_the_sunspec_sentinels(snapshot, clock, mb):
    block = block_at(image_of(snapshot, clock.now), rm.module_block_start(mb.OFFLINE))
    o = rm.MODULE_BLOCK.offsets
    assert block.values[o["voltage_mv"]] == 0xFFFF
    assert block.values[o["current_ma"]:o["current_ma"] + 2] == (0x8000, 0x0000)
    assert block.values[o["remaining_mah"]:o["remaining_mah"] + 2] == (0xFFFF, 0xFFFF)
    assert block.values[o["temp_1_dc"]] == 0x8000
    assert block.values[o["warnings_bits_0_15"]] == 0xFFFF


def test_bank_flags_are_unknown_not_none_while_no_module_is_live(snapshot, clock):
    f = bank_fields(image_of(snapshot, clock.now))
    assert f["bank_faults_bits_0_15"] is not None and f["modules_fault_1_16"] is not None
    later = bank_fields(image_of(snapshot, clock.now + 10 * STALE_AFTER))  # all stale
    assert later["modules_live"] == 0
    for name in ("bank_warnings_bits_0_15", "bank_protections_bits_0_15",
                 "bank_faults_bits_0_15", "modules_protection_1_16", "modules_fault_1_16"):
        assert later[name] is None, name  # the sentinel: unknown, not "no fault"


def test_serial_is_served_whatever_the_status(snapshot, clock, mb):
    assert module_fields(image_of(snapshot, clock.now), mb.OFFLINE)["serial"] == "PK24000008"
    assert module_fields(image_of(snapshot, clock.now), mb.NEVER_SEEN)["serial"] is None


def test_the_sources_stale_age_applies_too_as_on_snmp(snapshot, clock):
    m = snapshot.module(1)
    aged = dataclasses.replace(snapshot, modules=(
        dataclasses.replace(m, stale_after_s=30.0),) + snapshot.modules[1:])
    later = m.updated_at + 40.0  # past the source's 30 s, within this server's 60 s
    assert module_fields(image_of(aged, later), 1)["status"] == ModuleStatus.STALE
    assert module_fields(image_of(snapshot, later), 1)["status"] == ModuleStatus.OK


def test_live_data_older_than_stale_after_is_served_stale(snapshot, clock):
    """A south side that stopped publishing must not leave frozen values looking live."""
    fresh = image_of(snapshot, clock.now + STALE_AFTER - 2.5)
    assert module_fields(fresh, 1)["status"] == ModuleStatus.OK
    assert bank_fields(fresh)["bank_status"] == rm.BankStatus.OK
    later = clock.now + STALE_AFTER - 1
    old = image_of(snapshot, later)
    f = module_fields(old, 1)
    assert f["status"] == ModuleStatus.STALE and f["data_age_s"] == STALE_AFTER + 1
    assert all(f[name] is None for name in MEASUREMENTS)
    b = bank_fields(old)
    assert b["bank_status"] == rm.BankStatus.STALE
    assert b["snapshot_age_s"] == STALE_AFTER - 1
    assert b["current_ma"] is None and b["soc_permille"] is None and b["cell_min_mv"] is None
    assert b["modules_live"] == 0 and b["modules_not_live_1_16"] == 0x0FFF
    assert b["alarms_active"] == 2  # alarms are not measurements


def test_an_old_snapshot_alone_makes_the_bank_stale(clock, mb):
    snap = mb.make_snapshot(clock.now, modules=[mb.make_module(1, clock.now),
                                                mb.make_module(2, clock.now,
                                                               status=ModuleStatus.OFFLINE)])
    assert bank_fields(image_of(snap, clock.now))["bank_status"] == rm.BankStatus.OK
    assert bank_fields(image_of(snap, clock.now + 61))["bank_status"] == rm.BankStatus.STALE


@pytest.mark.parametrize("statuses", [
    (ModuleStatus.OFFLINE,) * 12,
    (ModuleStatus.STALE,) * 6 + (ModuleStatus.OFFLINE,) * 6,
    (ModuleStatus.NEVER_SEEN,) * 12,
    (),
])
def test_a_bank_with_no_live_module_is_not_ok(clock, mb, statuses):
    """After a total bus loss nothing is flowing: bank_status must not read 1, and a
    SCADA alarming on it sees the loss (it read 1 in map version 1)."""
    modules = [mb.make_module(p, clock.now, status=s) for p, s in enumerate(statuses, 1)]
    b = bank_fields(image_of(mb.make_snapshot(clock.now, modules=modules), clock.now))
    assert b["bank_status"] == rm.BankStatus.NO_LIVE_MODULES == 3
    assert b["modules_live"] in (0, None)
    assert b["current_ma"] is None and b["voltage_mean_mv"] is None


def test_live_module_without_update_time_is_not_trusted(clock, mb):
    m = dataclasses.replace(mb.make_module(1, clock.now), updated_at=None)
    f = module_fields(image_of(mb.make_snapshot(clock.now, modules=[m]), clock.now), 1)
    assert f["status"] == ModuleStatus.STALE and f["voltage_mv"] is None


def test_unconfigured_positions_read_status_0(snapshot, clock):
    image = image_of(snapshot, clock.now)
    for p in (13, 40, 64):
        f = module_fields(image, p)
        assert (f["status"], f["position"], f["alarms_active"]) == (0, p, 0)
        assert f["data_age_s"] is None and f["bus_address"] is None and f["frames_ok"] is None
        assert all(f[name] is None for name in MEASUREMENTS)


def test_without_a_snapshot_the_map_is_there_and_says_no_data():
    image = rm.make_image(None, 5.0, stale_after_s=STALE_AFTER)
    b = bank_fields(image)
    assert (b["map_version"], b["bank_status"]) == (rm.MAP_VERSION, rm.BankStatus.NO_DATA)
    assert b["snapshot_seq"] is None and b["modules_configured"] is None
    assert module_fields(image, 1)["status"] == 0
    assert [b.start for b in image.bank_unit] == [0, *range(1000, 13800, 200), 40000]


def test_module_addresses_depend_only_on_position(snapshot, clock, mb):
    """Module 7's block is the same registers at the same address whether the other
    modules exist, come in another order, or are offline."""
    full = block_at(image_of(snapshot, clock.now), 2200)
    alone = mb.make_snapshot(clock.now, modules=[snapshot.module(7)], alarms=())
    assert block_at(image_of(alone, clock.now), 2200) == full
    shuffled = mb.make_snapshot(clock.now, modules=list(reversed(snapshot.modules)))
    assert block_at(image_of(shuffled, clock.now), 2200) == full
    offline = [dataclasses.replace(m, status=ModuleStatus.OFFLINE) if m.position != 7 else m
               for m in snapshot.modules]
    image = image_of(mb.make_snapshot(clock.now, modules=offline), clock.now)
    assert block_at(image, 2200) == full
    assert module_fields(image, 6)["status"] == ModuleStatus.OFFLINE
    assert rm.module_block_start(7) == 2200


def test_positions_outside_the_map_are_left_out(clock, mb):
    far = dataclasses.replace(mb.make_module(1, clock.now), position=65, address=9)
    image = image_of(mb.make_snapshot(clock.now, modules=[mb.make_module(2, clock.now), far]),
                     clock.now)
    assert bank_fields(image)["modules_live"] == 1
    with pytest.raises(ValueError):
        rm.module_block_start(65)


def test_values_that_do_not_fit_read_as_the_sentinel(clock, mb):
    m = mb.make_module(1, clock.now)
    odd = dataclasses.replace(m, telemetry=dataclasses.replace(
        m.telemetry, voltage_mv=70_000, cycles=65_535, temp_dc=(-32_768, 32_767, None),
        cell_mv=(3300, None, -1), current_ma=-(2**31)))
    f = module_fields(image_of(mb.make_snapshot(clock.now, modules=[odd]), clock.now), 1)
    assert f["voltage_mv"] is None and f["cycles"] is None and f["current_ma"] is None
    assert (f["temp_1_dc"], f["temp_2_dc"], f["temp_3_dc"]) == (None, 32_767, None)
    assert (f["cell_1_mv"], f["cell_2_mv"], f["cell_3_mv"]) == (3300, None, None)
    assert f["cell_count"] == 3


def test_more_cells_than_slots_fill_the_slots(clock, mb):
    m = mb.make_module(1, clock.now)
    many = dataclasses.replace(m, telemetry=dataclasses.replace(
        m.telemetry, cell_mv=tuple(3000 + i for i in range(40))),
        bms=BmsStatus(balancing=tuple(i % 2 == 1 for i in range(40))))
    f = module_fields(image_of(mb.make_snapshot(clock.now, modules=[many]), clock.now), 1)
    assert f["cell_count"] == 40 and f["cell_32_mv"] == 3031
    assert (f["balancing_cells_1_16"], f["balancing_cells_17_32"]) == (0xAAAA, 0xAAAA)


def test_unknown_balancing_reads_sentinel(clock, mb):
    m = dataclasses.replace(mb.make_module(1, clock.now), bms=BmsStatus())
    f = module_fields(image_of(mb.make_snapshot(clock.now, modules=[m]), clock.now), 1)
    assert f["balancing_cells_1_16"] is None and f["bms_summary"] == 0


def test_missing_telemetry_block_reads_sentinels(clock, mb):
    m = dataclasses.replace(mb.make_module(1, clock.now), telemetry=Telemetry(), bms=None)
    f = module_fields(image_of(mb.make_snapshot(clock.now, modules=[m]), clock.now), 1)
    assert f["status"] == ModuleStatus.OK
    assert f["voltage_mv"] is None and f["cell_count"] == 0 and f["warnings_bits_0_15"] is None
    bank = bank_fields(image_of(mb.make_snapshot(clock.now, modules=[m]), clock.now))
    assert bank["power_w"] is None


def test_module_units_carry_the_bank_block_and_their_module_at_1000(snapshot, clock):
    image = image_of(snapshot, clock.now)
    assert set(image.module_units) == set(range(1, 65))
    bank, module = image.module_units[3]
    assert bank == block_at(image, 0)
    assert module.start == 1000 and module.values == block_at(image, 1400).values


def test_same_input_same_image(snapshot, clock):
    assert image_of(snapshot, clock.now) == image_of(snapshot, clock.now)


# ----------------------------------------------------------------- reads ---------------

@pytest.mark.parametrize("address,count,expected", [
    (0, 0, rm.ExceptionCode.ILLEGAL_DATA_VALUE),
    (0, 126, rm.ExceptionCode.ILLEGAL_DATA_VALUE),
    (rm.BANK_BLOCK.length, 1, rm.ExceptionCode.ILLEGAL_DATA_ADDRESS),  # just past the bank block
    (rm.BANK_BLOCK.length - 4, 5, rm.ExceptionCode.ILLEGAL_DATA_ADDRESS),  # crosses its end
    (999, 2, rm.ExceptionCode.ILLEGAL_DATA_ADDRESS),  # starts before a module block
    (1000 + rm.MODULE_BLOCK.length - 1, 2, rm.ExceptionCode.ILLEGAL_DATA_ADDRESS),  # crosses
    (13600 + rm.MODULE_BLOCK.length, 1, rm.ExceptionCode.ILLEGAL_DATA_ADDRESS),  # module 64's
    (40135, 2, rm.ExceptionCode.ILLEGAL_DATA_ADDRESS),
    (65535, 1, rm.ExceptionCode.ILLEGAL_DATA_ADDRESS),
])
def test_reads_outside_blocks_or_bad_quantities_are_refused(snapshot, clock, address, count,
                                                            expected):
    assert rm.read_registers(image_of(snapshot, clock.now).bank_unit, address, count) == expected


def test_reads_inside_a_block_slice_it(snapshot, clock):
    image = image_of(snapshot, clock.now)
    bank = block_at(image, 0).values
    assert rm.read_registers(image.bank_unit, 0, 125) == bank[:125]
    assert rm.read_registers(image.bank_unit, 125, len(bank) - 125) == bank[125:]
    assert rm.read_registers(image.bank_unit, 1005, 125) == block_at(image, 1000).values[5:130]
    last = 13600 + rm.MODULE_BLOCK.length - 1
    assert rm.read_registers(image.bank_unit, last, 1) == block_at(image, 13600).values[-1:]
    assert rm.read_registers(image.bank_unit, 40000, 2) == (0x5375, 0x6E53)


# ----------------------------------------------------------------- encoding --------------

@given(st.sampled_from(["uint16", "int16", "uint32", "int32", "enum16", "sunssf"]),
       st.one_of(st.none(), st.integers(-(2**33), 2**33)))
def test_encode_decode_round_trip_or_sentinel(kind, value):
    f = Field("x", kind)
    regs = encode_value(f, value)
    assert len(regs) == f.length and all(0 <= r <= 0xFFFF for r in regs)
    back = decode_value(f, regs)
    assert back == value or (back is None and (value is None or regs == encode_value(f, None)))
    if back is None:
        joined = regs[0] if f.length == 1 else regs[0] << 16 | regs[1]
        assert joined == SENTINELS[kind]


@given(st.one_of(st.none(), st.text(max_size=40)))
def test_strings_are_nul_padded_ascii(text):
    f = Field("s", "string", size=4)
    regs = encode_value(f, text)
    assert len(regs) == 4
    raw = b"".join(r.to_bytes(2, "big") for r in regs)
    expected = (text or "").encode("ascii", "replace")[:8]
    assert raw.rstrip(b"\0") == expected.rstrip(b"\0")


def test_layout_rejects_duplicates_and_unknown_names():
    with pytest.raises(ValueError):
        rm.Layout("x", [Field("a", "uint16"), Field("a", "int16")])
    with pytest.raises(ValueError):
        rm.Layout("x", [Field("a", "float32")])
    with pytest.raises(KeyError):
        rm.BANK_BLOCK.pack({"no_such_register": 1})


# ------------------------------------------------------- contract and documentation ------

def test_register_map_contract_is_locked():
    """Every register's address, name, type and scale is a public contract. If this
    fails on purpose: bump MAP_VERSION, then regenerate the lock and the docs with
    `python -m plugins.modbus_tcp.register_map --json > tests/modbus_tcp/data/register_map.json`
    and `... --markdown > docs/register_map.md`."""
    assert json.loads(LOCK.read_text()) == rm.contract()


#: sha256 of the contract (less map_version) of every released MAP_VERSION. A layout that
#: changes without a new MAP_VERSION fails below; a new version adds its line here.
RELEASED_LAYOUTS = {
    1: "4caae8652275d4e03898216a5bee1175f9027dba88218336042cba2927ca8b1a",
    2: "d7a3ca229513901932ed4967e5bdceb7fe438c9e3daca8ba61bbb4366b00e40d",
    3: "0c6b44abec511651179beff2ee8b6086955041eb6a42501fe77d5b480847502d",
    4: "1510a1b63d33f68226d2ac4aafcfcf25c0827dcb51c824ba8496139f0ce17bcf",
    5: "2df5bd2db6ad0ff9273e5178a4b9bd0857c028e5f5e1bbeea3499a78445e1d77",
}


def test_a_changed_layout_needs_a_new_map_version():
    contract = rm.contract()
    contract.pop("map_version")
    digest = hashlib.sha256(json.dumps(contract, sort_keys=True).encode()).hexdigest()
    assert RELEASED_LAYOUTS.get(rm.MAP_VERSION) == digest, (
        f"the register layout changed: bump MAP_VERSION (now {rm.MAP_VERSION}) and record "
        f"{digest} for the new version in RELEASED_LAYOUTS")


def test_lock_has_the_version_it_describes():
    lock = json.loads(LOCK.read_text())
    assert lock["map_version"] == rm.MAP_VERSION
    names = [r["name"] for r in lock["bank_block"]["registers"]]
    assert names[0] == "map_version" and lock["bank_block"]["start"] == 0


def test_docs_register_map_is_generated_from_the_code():
    """docs/register_map.md is generated; regenerate it with
    `python -m plugins.modbus_tcp.register_map --markdown > docs/register_map.md`."""
    assert (REPO / "docs" / "register_map.md").read_text() == rm.render_markdown()


def test_docs_name_every_register_and_flag():
    md = rm.render_markdown()
    for layout in (rm.BANK_BLOCK, rm.MODULE_BLOCK):
        for f in layout.fields:
            assert f"`{f.name}`" in md, f.name
    for flag in (*Condition, *Fault, *State):
        assert f"`{flag.name}`" in md, flag.name
    assert "ERR blinks 6x" in md and "high word first" in md


@pytest.mark.e2e
def test_generator_command_prints_the_docs_and_the_lock():
    run = lambda *a: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "plugins.modbus_tcp.register_map", *a], capture_output=True,
        text=True, check=True, cwd=REPO).stdout
    assert run("--markdown") == rm.render_markdown()
    assert json.loads(run("--json")) == rm.contract()


def test_module_block_serves_the_led_view_and_nothing_for_a_stale_module(snapshot, clock, mb):
    """The LED view (gateway.leds) at the end of the module block, map version 3."""
    from gateway.leds import LedState

    f = module_fields(image_of(snapshot, clock.now), mb.TROUBLED)
    # discharging (negative current), a protection (ALM orange steady), a temperature
    # sensor fault (ERR steady, 2 flashes), SOC 67.5 %: three lights, none flashing
    assert (f["led_run"], f["led_alm"], f["led_err"]) == (
        LedState.FAST_FLASH, LedState.STEADY, LedState.STEADY)
    assert [f[f"led_soc_{i}"] for i in range(1, 5)] == [
        LedState.STEADY, LedState.STEADY, LedState.STEADY, LedState.OFF]
    assert f["led_err_codes"] == 0b10
    stale = module_fields(image_of(snapshot, clock.now), mb.STALE)
    for name in ("led_run", "led_alm", "led_err", "led_soc_1", "led_err_codes"):
        assert stale[name] is None, name
