"""Vendor decodes -> gateway.model: units, signs, None for unknown, flags, raw bits."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from gateway.model import (
    BmsStatus,
    Condition,
    Fault,
    Identity,
    RawFlag,
    State,
    Telemetry,
    TempRole,
)
from plugins.rs485_bms.poller.normalize import merge_identity, normalize_status, normalize_telemetry
from plugins.rs485_bms.protocol import (
    Eg4Alarm,
    PaceAlarm,
    PaceSerial,
    PaceVersion,
    PylonAlarm,
    PylonManufacturerInfo,
    PylonSerial,
    SeplosAlarm,
    decode_info,
    get_profile,
    parse_frame,
)

VECTORS = {v["id"]: v for v in json.loads(
    (Path(__file__).resolve().parents[1] / "data/frames.json").read_text())}
C, F, S = Condition, Fault, State
CELL, MOSFET, AMBIENT, BOARD, OTHER = (TempRole.CELL, TempRole.MOSFET, TempRole.AMBIENT,
                                      TempRole.BOARD, TempRole.OTHER)


def _decoded(vector_id: str):
    v = VECTORS[vector_id]
    request = parse_frame(v["request"].encode()) if v["request"] else None
    answer = decode_info(get_profile(v["vendor_family"]), int(v["command_cid2"], 16),
                         parse_frame(v["response"].encode()),
                         all_packs=None if request is None else request.info == b"\xff")
    return answer.packs[0] if hasattr(answer, "packs") else answer


# ---------------------------------------------------------------------------- telemetry


def test_pace_classic_pack():
    t = normalize_telemetry(_decoded("pace25_jakiper_42_16s6t_discharge"))
    assert t.current_ma == -2250  # discharging: negative
    assert t.voltage_mv == 52429 and t.cell_mv[1] == 3272
    assert t.temp_dc == (241, 239, 239, 239, 265, 274)  # 0.1 K - 2730
    assert t.temp_roles == (CELL, CELL, CELL, CELL, MOSFET, AMBIENT)
    assert (t.remaining_mah, t.full_mah, t.design_mah, t.cycles) == (48190, 103460, 100000, 140)
    assert t.soc_permille == 466  # 48.19 / 103.46 = 46.58 %
    assert t.soh_permille == 1035  # 103.46 %: more than design on a new pack


def test_pace_tail_carries_soc_and_soh():
    pack = dataclasses.replace(_decoded("pace25_jakiper_42_16s6t_discharge"),
                               soc_pct=47, cum_charge_raw=0x4E204E20,
                               cum_discharge_raw=0x4E204E20, soh_pct=100, port_mv=52400,
                               port_current_10ma=-225)
    t = normalize_telemetry(pack)
    assert (t.soc_permille, t.soh_permille) == (470, 1000)


def test_pace_unknowns_are_none():
    pack = dataclasses.replace(_decoded("pace25_doc_rs485_42_adr2"),
                               temp_dk=(2980, None, 2700), full_10mah=0, design_10mah=0)
    t = normalize_telemetry(pack)
    assert t.temp_dc == (250, None, -30)
    assert t.temp_roles == (OTHER, OTHER, OTHER)  # only the 6-sensor layout is documented
    assert t.soc_permille is None and t.soh_permille is None
    assert t.full_mah == 0 and t.design_mah == 0  # reported as 0: kept


def test_computed_soc_is_capped_at_full():
    pack = dataclasses.replace(_decoded("pace25_doc_rs485_42_adr2"),
                               remaining_10mah=5100, full_10mah=5000)
    assert normalize_telemetry(pack).soc_permille == 1000


def test_pylontech_100ma_current_and_3_byte_capacities():
    t = normalize_telemetry(_decoded("pylon_us3000c_42_charging"))
    assert t.current_ma == 2300  # 0x0017 x 100 mA, charging: positive
    assert (t.remaining_mah, t.full_mah) == (50068, 74000)
    assert t.design_mah is None and t.soh_permille is None  # not reported: unknown
    assert t.soc_permille == 677
    assert t.temp_dc == (274, 259, 256, 256, 258)  # offset 2731
    assert t.temp_roles == (BOARD, CELL, CELL, CELL, CELL)
    discharging = normalize_telemetry(_decoded("pylon_us2000c_42_single"))
    assert discharging.current_ma == 0 and discharging.remaining_mah == 6415


def test_pylontech_six_sensors_add_a_mosfet():
    module = dataclasses.replace(_decoded("pylon_doc_v28_example"), temp_dk=(2981,) * 6)
    assert normalize_telemetry(module).temp_roles == (BOARD, CELL, CELL, CELL, CELL, MOSFET)


def test_seplos_10mv_and_permille_fields():
    t = normalize_telemetry(_decoded("seplos_16s_42_discharge"))
    assert t.current_ma == -6760 and t.voltage_mv == 52800
    assert (t.soc_permille, t.soh_permille) == (787, 1000)
    assert (t.remaining_mah, t.full_mah, t.design_mah) == (133900, 170000, 180000)
    assert t.temp_roles == (CELL, CELL, CELL, CELL, AMBIENT, MOSFET)
    bench = normalize_telemetry(_decoded("seplos_bench_42_missing_cells_neg_temp"))
    assert bench.temp_dc[2] == -500 and bench.cell_mv[7] == 0


def test_eg4():
    t = normalize_telemetry(_decoded("eg4_lifepower4_42_charging"))
    assert t.current_ma == 6690 and t.voltage_mv == 53970
    assert len(t.temp_dc) == 6 and t.temp_dc[4] == 270
    assert t.temp_roles == (CELL, CELL, CELL, CELL, AMBIENT, MOSFET)
    assert (t.soc_permille, t.soh_permille, t.design_mah) == (870, 980, None)


def test_daren_signed_decidegrees():
    analog = _decoded("daren_dr48100_42")
    t = normalize_telemetry(analog)
    assert t.temp_dc == (270, 260, 270, 260, 260, 260, 260)
    assert t.temp_roles == (AMBIENT, OTHER, MOSFET, CELL, CELL, CELL, CELL)
    assert (t.soc_permille, t.soh_permille, t.voltage_mv) == (670, 800, 53120)
    cold = normalize_telemetry(dataclasses.replace(analog, env_temp_dc=-105, mos_temp_dc=None,
                                                   soc_bp=6705, current_10ma=-150))
    assert cold.temp_dc[:3] == (-105, 260, None)
    assert cold.soc_permille == 671 and cold.current_ma == -1500


def test_telemetry_of_something_else_is_a_type_error():
    with pytest.raises(TypeError):
        normalize_telemetry(PaceVersion(version="x"))


# ---------------------------------------------------------------------------- status

PACE_OK = PaceAlarm(cell_alarm=(0,) * 16, temp_alarm=(0,) * 6, charge_current_alarm=0,
                    pack_voltage_alarm=0, discharge_current_alarm=0, protect1=0, protect2=0,
                    instruction_state=0, control_state=0, fault_state=0, balance1=0,
                    balance2=0, warn1=0, warn2=0)

W, P, FA, ST, RAW = "warnings", "protections", "faults", "states", "raw"
PACE_BITS = {
    "protect1": [(P, C.CELL_OVER_VOLTAGE), (P, C.CELL_UNDER_VOLTAGE),
                 (P, C.PACK_OVER_VOLTAGE), (P, C.PACK_UNDER_VOLTAGE),
                 (P, C.CHARGE_OVER_CURRENT), (P, C.DISCHARGE_OVER_CURRENT),
                 (P, C.SHORT_CIRCUIT), (P, C.CHARGER_OVER_VOLTAGE)],
    "protect2": [(P, C.CHARGE_HIGH_TEMP), (P, C.DISCHARGE_HIGH_TEMP), (P, C.CHARGE_LOW_TEMP),
                 (P, C.DISCHARGE_LOW_TEMP), (P, C.MOSFET_HIGH_TEMP),
                 (P, C.AMBIENT_HIGH_TEMP), (P, C.AMBIENT_LOW_TEMP), (ST, S.FULLY_CHARGED)],
    "instruction_state": [(RAW, None), (ST, S.CHARGE_FET_ON), (ST, S.DISCHARGE_FET_ON),
                          (RAW, None), (ST, S.CHARGER_REVERSED), (RAW, None), (RAW, None),
                          (RAW, None)],
    "control_state": [(RAW, None)] * 8,
    "fault_state": [(FA, F.CHARGE_CIRCUIT), (FA, F.DISCHARGE_CIRCUIT),
                    (FA, F.TEMPERATURE_SENSOR), (RAW, None), (FA, F.BATTERY),
                    (FA, F.SAMPLING_IC), (FA, F.CURRENT_LIMITER), (FA, F.HEATER)],
    "warn1": [(W, C.CELL_OVER_VOLTAGE), (W, C.CELL_UNDER_VOLTAGE), (W, C.PACK_OVER_VOLTAGE),
              (W, C.PACK_UNDER_VOLTAGE), (W, C.CHARGE_OVER_CURRENT),
              (W, C.DISCHARGE_OVER_CURRENT), (RAW, None), (RAW, None)],
    "warn2": [(W, C.CHARGE_HIGH_TEMP), (W, C.DISCHARGE_HIGH_TEMP), (W, C.CHARGE_LOW_TEMP),
              (W, C.DISCHARGE_LOW_TEMP), (W, C.AMBIENT_HIGH_TEMP), (W, C.AMBIENT_LOW_TEMP),
              (W, C.MOSFET_HIGH_TEMP), (W, C.LOW_CAPACITY)],
}
PACE_CASES = [(field, bit, *meaning) for field, meanings in PACE_BITS.items()
              for bit, meaning in enumerate(meanings)]


def _only(status: BmsStatus, category: str, flag) -> None:
    """``status`` holds exactly ``flag`` in ``category`` (or one raw flag) and nothing else."""
    empty = BmsStatus()
    for name in (W, P, FA, ST):
        assert getattr(status, name) == (flag if name == category else getattr(empty, name))
    assert (len(status.unclassified) == 1) == (category == RAW)


@pytest.mark.parametrize("field, bit, category, flag", PACE_CASES,
                         ids=[f"{f}-b{b}" for f, b, _, _ in PACE_CASES])
def test_pace_status_bit(field, bit, category, flag):
    status = normalize_status(dataclasses.replace(PACE_OK, **{field: 1 << bit}))
    _only(status, category, flag)
    if category == RAW:
        state_field = field in ("instruction_state", "control_state", "balance1", "balance2")
        assert status.unclassified == (RawFlag(field=field, bit=bit, alarm=not state_field),)


def test_pace_all_normal_vector():
    status = normalize_status(_decoded("pace25_jakiper_44_all_normal"))
    assert status.states == S.CHARGE_FET_ON | S.DISCHARGE_FET_ON
    assert status.warnings == status.protections == C.NONE and status.faults == F.NONE
    # bit 3 is "pack power supply" to PACE, "discharging" to another reading: kept raw
    assert status.unclassified == (RawFlag(field="instruction_state", bit=3, alarm=False),)
    assert status.balancing is None


def test_pace_balancing_without_guessing_the_cell():
    status = normalize_status(dataclasses.replace(PACE_OK, balance1=0x01, balance2=0x80))
    assert status.states == S.BALANCING and status.balancing is None
    assert status.unclassified == (RawFlag(field="balance1", bit=0, alarm=False),
                                   RawFlag(field="balance2", bit=7, alarm=False))


def test_pace_extra_status_bytes_are_kept_raw():
    status = normalize_status(dataclasses.replace(PACE_OK, extra_status=(0, 0x81, 0, 0, 0)))
    assert status.unclassified == (RawFlag(field="extra_status_2", bit=0),
                                   RawFlag(field="extra_status_2", bit=7))


@pytest.mark.parametrize("change, category, flag", [
    ({"cell_alarm": (0,) * 15 + (1,)}, W, C.CELL_UNDER_VOLTAGE),
    ({"cell_alarm": (2,) + (0,) * 15}, W, C.CELL_OVER_VOLTAGE),
    ({"temp_alarm": (0, 0, 0, 0, 2, 0)}, W, C.MOSFET_HIGH_TEMP),
    ({"temp_alarm": (0, 0, 0, 0, 0, 2)}, W, C.AMBIENT_HIGH_TEMP),
    ({"temp_alarm": (0, 0, 0, 0, 0, 1)}, W, C.AMBIENT_LOW_TEMP),
    ({"temp_alarm": (0, 0, 0, 0, 1, 0)}, RAW, None),  # MOSFET too cold: no such condition
    ({"temp_alarm": (0, 2, 0, 0, 0, 0)}, RAW, None),  # a cell sensor: charge or discharge?
    ({"pack_voltage_alarm": 1}, W, C.PACK_UNDER_VOLTAGE),
    ({"pack_voltage_alarm": 2}, W, C.PACK_OVER_VOLTAGE),
    ({"charge_current_alarm": 2}, W, C.CHARGE_OVER_CURRENT),
    ({"discharge_current_alarm": 2}, W, C.DISCHARGE_OVER_CURRENT),
    ({"discharge_current_alarm": 1}, RAW, None),
])
def test_pace_alarm_levels(change, category, flag):
    _only(normalize_status(dataclasses.replace(PACE_OK, **change)), category, flag)


def test_other_fault_and_user_defined_alarm_values_stay_raw():
    status = normalize_status(dataclasses.replace(PACE_OK, cell_alarm=(0xF0,) + (0,) * 15,
                                                  temp_alarm=(0x80, 0, 0, 0, 0, 0)))
    assert status.warnings == C.NONE
    assert status.unclassified == (*(RawFlag(field="cell_alarm_1", bit=b) for b in (4, 5, 6, 7)),
                                   RawFlag(field="temp_alarm_1", bit=7))


def test_pylontech_status():
    status = normalize_status(_decoded("pylon_us3000c_44_status"))
    assert status.states == S.CHARGE_FET_ON | S.DISCHARGE_FET_ON
    assert status.unclassified == (RawFlag(field="status2", bit=3, alarm=False),
                                   RawFlag(field="status3", bit=6, alarm=False))
    alarm = _decoded("pylon_us2000c_44_slave")
    assert isinstance(alarm, PylonAlarm)
    flagged = normalize_status(dataclasses.replace(
        alarm, status=(0b1111_0111, 0b0000_0111, 0b1010_1001, 0x01, 0x80, 0x04),
        temp_alarm=(2, 0, 0, 0, 0)))
    assert flagged.protections == (C.PACK_OVER_VOLTAGE | C.CELL_UNDER_VOLTAGE
                                   | C.CHARGE_OVER_CURRENT | C.DISCHARGE_OVER_CURRENT
                                   | C.DISCHARGE_HIGH_TEMP | C.CHARGE_HIGH_TEMP
                                   | C.PACK_UNDER_VOLTAGE)
    assert flagged.states == (S.CHARGE_FET_ON | S.DISCHARGE_FET_ON | S.FULLY_CHARGED
                              | S.HEATER_ON | S.CHARGING)
    assert flagged.faults == F.BATTERY
    assert flagged.unclassified == (RawFlag(field="temp_alarm_1", bit=1),  # the BMS board
                                    RawFlag(field="status2", bit=0, alarm=False),
                                    RawFlag(field="status3", bit=0, alarm=False),
                                    RawFlag(field="status6", bit=2))


SEPLOS_OK = _decoded("seplos_12pack_44_charging")
SEPLOS_BITS = {
    "alarm_event1": [(FA, F.VOLTAGE_SENSOR), (FA, F.TEMPERATURE_SENSOR),
                     (FA, F.CURRENT_SENSOR), (RAW, None), (RAW, None), (FA, F.CHARGE_CIRCUIT),
                     (FA, F.DISCHARGE_CIRCUIT), (FA, F.CURRENT_LIMITER)],
    "alarm_event2": [(W, C.CELL_OVER_VOLTAGE), (P, C.CELL_OVER_VOLTAGE),
                     (W, C.CELL_UNDER_VOLTAGE), (P, C.CELL_UNDER_VOLTAGE),
                     (W, C.PACK_OVER_VOLTAGE), (P, C.PACK_OVER_VOLTAGE),
                     (W, C.PACK_UNDER_VOLTAGE), (P, C.PACK_UNDER_VOLTAGE)],
    "alarm_event3": [(W, C.CHARGE_HIGH_TEMP), (P, C.CHARGE_HIGH_TEMP), (W, C.CHARGE_LOW_TEMP),
                     (P, C.CHARGE_LOW_TEMP), (W, C.DISCHARGE_HIGH_TEMP),
                     (P, C.DISCHARGE_HIGH_TEMP), (W, C.DISCHARGE_LOW_TEMP),
                     (P, C.DISCHARGE_LOW_TEMP)],
    "alarm_event4": [(W, C.AMBIENT_HIGH_TEMP), (P, C.AMBIENT_HIGH_TEMP),
                     (W, C.AMBIENT_LOW_TEMP), (P, C.AMBIENT_LOW_TEMP), (RAW, None),
                     (RAW, None), (ST, S.HEATER_ON), (RAW, None)],
    "alarm_event5": [(W, C.CHARGE_OVER_CURRENT), (P, C.CHARGE_OVER_CURRENT),
                     (W, C.DISCHARGE_OVER_CURRENT), (P, C.DISCHARGE_OVER_CURRENT),
                     (RAW, None), (P, C.SHORT_CIRCUIT), (RAW, None), (RAW, None)],
    "alarm_event6": [(RAW, None), (RAW, None), (W, C.LOW_CAPACITY), (P, C.LOW_CAPACITY),
                     (RAW, None), (FA, F.REVERSE_CONNECTION), (RAW, None), (RAW, None)],
    "on_off_state": [(ST, S.DISCHARGE_FET_ON), (ST, S.CHARGE_FET_ON),
                     (ST, S.CURRENT_LIMITER_ON), (ST, S.HEATER_ON)] + [(RAW, None)] * 4,
    "system_state": [(ST, S.DISCHARGING), (ST, S.CHARGING)] + [(RAW, None)] * 6,
    "disconnect1": [(RAW, None)] * 8,
    "alarm_event8": [(RAW, None)] * 8,
}
SEPLOS_CASES = [(field, bit, *meaning) for field, meanings in SEPLOS_BITS.items()
                for bit, meaning in enumerate(meanings)]


@pytest.mark.parametrize("field, bit, category, flag", SEPLOS_CASES,
                         ids=[f"{f}-b{b}" for f, b, _, _ in SEPLOS_CASES])
def test_seplos_status_bit(field, bit, category, flag):
    quiet = dataclasses.replace(SEPLOS_OK, on_off_state=0, system_state=0, reserved=(0,) * 6)
    _only(normalize_status(dataclasses.replace(quiet, **{field: 1 << bit})), category, flag)


def test_seplos_vectors():
    charging = normalize_status(SEPLOS_OK)
    assert charging.states == S.CHARGE_FET_ON | S.DISCHARGE_FET_ON | S.CHARGING
    assert charging.balancing == (False,) * 16
    assert charging.unclassified == (RawFlag(field="reserved_6", bit=1, alarm=False),)
    bench = normalize_status(_decoded("seplos_bench_44_alarms"))
    assert bench.warnings == C.CELL_UNDER_VOLTAGE | C.PACK_UNDER_VOLTAGE
    assert bench.protections == C.CELL_UNDER_VOLTAGE | C.DISCHARGE_LOW_TEMP
    assert bench.faults == F.TEMPERATURE_SENSOR
    assert RawFlag(field="temp_alarm_3", bit=0) in bench.unclassified  # a cell sensor
    assert RawFlag(field="system_state", bit=4, alarm=False) in bench.unclassified  # standby


def test_seplos_balancing_is_per_cell():
    status = normalize_status(dataclasses.replace(SEPLOS_OK, balance1=0x81, balance2=0x02))
    assert status.balancing == (True, False, False, False, False, False, False, True,
                                False, True, False, False, False, False, False, False)
    assert S.BALANCING in status.states
    assert normalize_status(dataclasses.replace(SEPLOS_OK, current_alarm=2)).unclassified[0] == (
        RawFlag(field="current_alarm", bit=1))


def test_eg4_events_are_kept_raw():
    status = normalize_status(_decoded("eg4_lifepower4_44"))
    assert status.unclassified == (RawFlag(field="fet_status", bit=0, alarm=False),
                                   RawFlag(field="fet_status", bit=1, alarm=False),
                                   RawFlag(field="system_status", bit=1, alarm=False))
    alarm = _decoded("eg4_lifepower4_44")
    assert isinstance(alarm, Eg4Alarm)
    hot = normalize_status(dataclasses.replace(alarm, temp_alarm=(0, 0, 0, 0, 2, 2),
                                               pack_voltage_alarm=2, fet_status=0,
                                               system_status=0, reserved=(1,)))
    assert hot.warnings == C.AMBIENT_HIGH_TEMP | C.MOSFET_HIGH_TEMP | C.PACK_OVER_VOLTAGE
    assert hot.unclassified == (RawFlag(field="reserved_1", bit=0, alarm=False),)


def test_daren_status_words_are_kept_raw():
    status = normalize_status(_decoded("daren_dr48100_42"))
    assert status.unclassified == tuple(RawFlag(field="fet_status", bit=b, alarm=False) for b in (0, 1, 5))
    assert status.states == S.NONE


def test_status_of_something_else_is_a_type_error():
    with pytest.raises(TypeError):
        normalize_status(PaceVersion(version="x"))


# ---------------------------------------------------------------------------- identity


def test_pace_identity():
    identity = merge_identity(_decoded("pace25_jakiper_c2_serial"),
                              merge_identity(_decoded("pace25_jakiper_c1_version")))
    assert identity == Identity(serial="1812101380309D", pack_serial=None,
                                firmware="P16S100A-1812-1.00")
    assert merge_identity(PaceSerial(bms_serial="")).serial is None


def test_pylontech_identity():
    identity = merge_identity(_decoded("pylon_us2000c_93_serial_slave"),
                              merge_identity(_decoded("pylon_us2000c_51_over_link")))
    assert identity == Identity(serial="HPTBH02240A01235", model="US2000C", firmware="1.7",
                                manufacturer="Pylon")
    assert merge_identity(PylonSerial(command_value=2, serial="")).serial is None
    assert merge_identity(PylonManufacturerInfo(device_name="", software_version=(2, 4),
                                                manufacturer="")) == Identity(firmware="2.4")


def test_seplos_identity_has_no_manufacturer():
    identity = merge_identity(_decoded("seplos_51_manufacturer"), Identity(serial="S1"))
    assert identity == Identity(serial="S1", model="1101-SP15", firmware="2.7")


def test_daren_identity():
    assert merge_identity(_decoded("daren_dr48100_51")) == Identity(
        model="T1_G HUANY04 16S100A", firmware="1.0.2")


def test_identity_of_something_else_is_a_type_error():
    with pytest.raises(TypeError):
        merge_identity(PACE_OK)


def test_model_types():
    assert isinstance(normalize_telemetry(_decoded("seplos_16s_42_discharge")), Telemetry)
    assert isinstance(normalize_status(SEPLOS_OK), BmsStatus)
    assert isinstance(SEPLOS_OK, SeplosAlarm)


@pytest.mark.parametrize("vector_id", [
    "pace25_jakiper_44_all_normal", "seplos_12pack_44_charging", "pylon_us2000c_44_slave",
    "pylon_us3000c_44_status", "eg4_lifepower4_44",
])
def test_healthy_packs_carry_no_alarm_type_raw_flags(vector_id):
    """State and configuration bits that healthy packs set are kept, but never marked as
    trouble: an 'unclassified BMS flag' alarm must come from an alarm-type field."""
    from plugins.rs485_bms.protocol import decode_info, get_profile, parse_frame

    frames = Path(__file__).resolve().parents[1] / "data/frames.json"
    vector = next(v for v in json.loads(frames.read_text()) if v["id"] == vector_id)
    frame = parse_frame(vector["response"].encode())
    answer = decode_info(get_profile(vector["vendor_family"]), 0x44, frame)
    status = normalize_status(answer.packs[0])
    assert not status.warnings and not status.protections and not status.faults
    assert [r for r in status.unclassified if r.alarm] == []
    if vector_id == "pace25_jakiper_44_all_normal":  # 0x0E: bit 3 is disputed, kept raw
        assert RawFlag(field="instruction_state", bit=3, alarm=False) in status.unclassified


def test_unknown_bits_in_fault_fields_are_alarm_type():
    block = dataclasses.replace(PACE_OK, fault_state=0x08)  # bit 3: "communication fault"
    assert normalize_status(block).unclassified == (RawFlag(field="fault_state", bit=3),)
