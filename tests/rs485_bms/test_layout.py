"""The layout engine behind every family: what it refuses to decode and to encode."""

from __future__ import annotations

import dataclasses

import pytest

from plugins.rs485_bms.protocol import (
    EG4_LIFEPOWER4,
    PACE_V25,
    PYLONTECH,
    SEPLOS_V2,
    Eg4Alarm,
    Frame,
    LayoutError,
    LengthError,
    PackAnswer,
    PaceAlarm,
    PacePack,
    PaceSerial,
    ProtocolVersion,
    PylonManagement,
    PylonManufacturerInfo,
    PylonModule,
    SeplosPack,
    decode_info,
    describe,
    encode_info,
)
from plugins.rs485_bms.protocol.layout import (
    Cursor,
    Num,
    Short,
    Tail,
    Text,
    Unknown,
    read_layout,
)

PACK = PacePack(cell_mv=(3300,) * 4, temp_dk=(2980, 0x7FFF, None), current_10ma=-225,
                pack_mv=13200, remaining_10mah=5000, user_defined_p=3, full_10mah=10000,
                cycles=7, design_10mah=10000)


def _frame(info: bytes, ver: int = 0x25) -> Frame:
    return Frame(ver=ver, adr=1, cid1=0x46, cid2=0, info=info)


def _single(pack) -> PackAnswer:
    return PackAnswer(infoflag=0, command_value=1, packs=(pack,))


def test_not_fitted_sensor_is_none_both_ways():
    info = encode_info(_single(PACK))
    assert b"\x80\x00" in info
    assert decode_info(PACE_V25, 0x42, _frame(info)).packs[0].temp_dk == (2980, 0x7FFF, None)
    assert describe(_single(PACK))["temps_c"][2] is None


@pytest.mark.parametrize("tail, length", [
    ({}, 0), ({"soc_pct": 50}, 1),
    ({"soc_pct": 50, "cum_charge_raw": 1, "cum_discharge_raw": 2, "soh_pct": 99,
      "port_mv": 53000, "port_current_10ma": -5}, 14),
    ({"soc_pct": 50, "cum_charge_raw": 1, "cum_discharge_raw": 2, "soh_pct": 99,
      "port_mv": 53000, "port_current_10ma": -5, "summary_remaining_10mah": 9,
      "summary_full_10mah": 10}, 22),
])
def test_pace_tails(tail, length):
    pack = dataclasses.replace(PACK, **tail)
    info = encode_info(_single(pack))
    assert len(info) == len(encode_info(_single(PACK))) + length
    assert decode_info(PACE_V25, 0x42, _frame(info)).packs[0] == pack
    view = describe(_single(pack))
    assert ("soc_pct" in view) == bool(tail) and ("soc_pct_calc" in view) == (not tail)


@pytest.mark.parametrize("tail, message", [
    ({"soh_pct": 99}, "prefix"),
    ({"soc_pct": 50, "cum_charge_raw": 1}, "5 bytes is not one of"),
])
def test_tail_must_be_a_documented_prefix(tail, message):
    with pytest.raises(ValueError, match=message):
        encode_info(_single(dataclasses.replace(PACK, **tail)))


def test_tail_lengths_must_be_field_boundaries():
    with pytest.raises(ValueError, match="boundaries"):
        Tail((Num("a", 1), Num("b", 2)), lengths=(0, 2))


def test_single_pack_with_an_undocumented_tail_length():
    info = encode_info(_single(PACK)) + b"\x00\x00"
    with pytest.raises(LengthError) as caught:
        decode_info(PACE_V25, 0x42, _frame(info))
    assert caught.value.actual == len(info) and caught.value.family == "pace_v25"


def test_short_payload_names_the_length_it_needed():
    info = encode_info(_single(PACK))
    with pytest.raises(LengthError) as caught:
        decode_info(PACE_V25, 0x42, _frame(info[:20]))
    assert caught.value.expected == (22,) and caught.value.at_least  # the current field
    assert "expected at least 22 bytes, got 20" in str(caught.value)
    with pytest.raises(LengthError) as caught:
        decode_info(PACE_V25, 0x42, _frame(info + b"\x00" * 2))
    assert caught.value.expected == (len(info), len(info) + 1) and not caught.value.at_least
    with pytest.raises(LengthError, match="at least 2 bytes"):
        decode_info(PACE_V25, 0x42, _frame(b"\x00"))


def _pace_alarm(**changes) -> PaceAlarm:
    values = dict(cell_alarm=(0,) * 16, temp_alarm=(0,) * 6, charge_current_alarm=0,
                  pack_voltage_alarm=0, discharge_current_alarm=0, protect1=0, protect2=0,
                  instruction_state=0x0C, control_state=0, fault_state=0, balance1=0,
                  balance2=0, warn1=0, warn2=0, extra_status=(0,) * 5)
    return PaceAlarm(**{**values, **changes})


def _walks(cls, info: bytes, count: int, variant: int) -> bool:
    """Whether ``count`` blocks with this variant fill ``info`` after its two head bytes."""
    cur = Cursor(info, 2)
    try:
        for _ in range(count):
            read_layout(cls.LAYOUT, cur, {}, variant)
    except (Short, Unknown):
        return False
    return cur.pos == len(info)


def test_identical_modules_settle_a_walk_that_fits_two_tails():
    """The first pack's extra status bytes also read as the start of a 32-cell pack: with
    no extra bytes the two blocks fill the payload too, but with different cell counts."""
    answer = PackAnswer(infoflag=0, command_value=None, packs=(
        _pace_alarm(instruction_state=0x0E, balance1=1, extra_status=(0x20, 0, 0x20, 0x20, 0)),
        _pace_alarm()))
    info = encode_info(answer)
    assert _walks(PaceAlarm, info, 2, 0) and _walks(PaceAlarm, info, 2, 5)
    assert decode_info(PACE_V25, 0x44, _frame(info), all_packs=True) == answer


def test_ambiguous_walk_of_different_modules_is_refused():
    """Packs with different counts whose bytes also walk with another tail: no guessing."""
    first = PacePack(cell_mv=(), temp_dk=(), current_10ma=2, pack_mv=2, remaining_10mah=1,
                     user_defined_p=1, full_10mah=0, cycles=0, design_10mah=0, soc_pct=1)
    second = PacePack(cell_mv=(2, 2), temp_dk=(), current_10ma=1, pack_mv=0, remaining_10mah=0,
                      user_defined_p=2, full_10mah=2, cycles=0, design_10mah=0, soc_pct=0)
    info = encode_info(PackAnswer(infoflag=0, command_value=None, packs=(first, second)))
    assert _walks(PacePack, info, 2, 0) and _walks(PacePack, info, 2, 1)
    with pytest.raises(LayoutError) as caught:
        decode_info(PACE_V25, 0x42, _frame(info), all_packs=True)
    assert caught.value.variants == (0, 1) and "refusing to guess" in str(caught.value)


def test_all_packs_form_of_unknown_request_is_tried_after_the_one_pack_form():
    answer = PackAnswer(infoflag=0, command_value=None, packs=(PACK, PACK, PACK))
    frame = _frame(encode_info(answer))
    assert decode_info(PACE_V25, 0x42, frame) == answer
    with pytest.raises(LengthError):
        decode_info(PACE_V25, 0x42, frame, all_packs=False)
    empty = PackAnswer(infoflag=0, command_value=None, packs=())
    assert decode_info(PACE_V25, 0x42, _frame(encode_info(empty)), all_packs=True) == empty


def test_families_without_an_all_packs_form_decode_one_pack():
    pack = SeplosPack(cell_mv=(3300,), temp_dk=(2980,), current_10ma=0, pack_10mv=330,
                      remaining_10mah=1, user_defined_p=10, full_10mah=2, soc_permille=500,
                      design_10mah=3, cycles=4, soh_permille=1000, port_10mv=330,
                      reserved=(0, 0, 0, 0))
    info = encode_info(_single(pack))
    assert decode_info(SEPLOS_V2, 0x42, _frame(info, 0x20), all_packs=True) == _single(pack)
    with pytest.raises(ValueError, match="no all-packs form"):
        encode_info(PackAnswer(infoflag=0, command_value=None, packs=(pack,)))


def test_unknown_selector_value_is_a_layout_error():
    pack = SeplosPack(cell_mv=(), temp_dk=(), current_10ma=0, pack_10mv=0, remaining_10mah=0,
                      user_defined_p=10, full_10mah=0, soc_permille=0, design_10mah=0,
                      cycles=0, soh_permille=0, port_10mv=0, reserved=(0, 0, 0, 0))
    info = bytearray(encode_info(_single(pack)))
    info[10] = 11  # P
    with pytest.raises(LayoutError, match="user_defined_p = 11; the layout knows 10"):
        decode_info(SEPLOS_V2, 0x42, _frame(bytes(info), 0x20))
    with pytest.raises(ValueError, match="has no layout"):
        encode_info(_single(dataclasses.replace(pack, user_defined_p=11)))


def test_pylontech_capacity_fields_follow_p():
    module = PylonModule(cell_mv=(3300,), temp_dk=(2981,), current_100ma=-1, pack_mv=3300,
                         remaining1_mah=0xFFFF, user_defined_p=4, full1_mah=0xFFFF, cycles=1,
                         remaining2_mah=70000, full2_mah=74000)
    view = describe(_single(module))
    assert (view["remaining_ah"], view["full_ah"], view["capacity_field_bytes"]) == (70.0, 74.0, 3)
    assert "remaining1_ah" not in view and view["soc_pct_calc"] == 94.59
    with pytest.raises(ValueError, match="full2_mah is set"):
        encode_info(_single(dataclasses.replace(module, user_defined_p=2, remaining2_mah=None)))
    two = dataclasses.replace(module, user_defined_p=2, remaining2_mah=None, full2_mah=None,
                              remaining1_mah=0, full1_mah=0)
    assert describe(_single(two))["soc_pct_calc"] is None
    assert decode_info(PYLONTECH, 0x42, _frame(encode_info(_single(two)), 0x20)) == _single(two)


def test_pace_alarm_extra_status_lengths():
    with pytest.raises(ValueError, match="3 bytes is not one of"):
        encode_info(_single(_pace_alarm(extra_status=(1, 2, 3))))


def test_eg4_counts_two_temperatures_less_than_it_sends():
    alarm = Eg4Alarm(cell_alarm=(0,), temp_alarm=(0,), current_alarm=0, pack_voltage_alarm=0,
                     user_defined_p=9, balance_event=0, voltage_event=0, temperature_event=0,
                     current_event=0, remaining_capacity_alarm=0, fet_status=0,
                     system_status=0, balance_status=0, reserved=(0,))
    with pytest.raises(ValueError, match="allows 2..257"):
        encode_info(_single(alarm))
    four = dataclasses.replace(alarm, temp_alarm=(0,) * 6)
    info = encode_info(_single(four))
    assert info[4] == 4  # the count byte: 6 sent, 4 said
    assert decode_info(EG4_LIFEPOWER4, 0x44, _frame(info, 0x20)).packs[0] == four
    assert describe(_single(four))["temp_count"] == 4


@pytest.mark.parametrize("change, message", [
    ({"cycles": 0x10000}, "cycles: 65536 does not fit"),
    ({"current_10ma": 0x8000}, "current_10ma: 32768 does not fit"),
    ({"pack_mv": -1}, "pack_mv: -1"),
    ({"cycles": None}, "None is not allowed"),
    ({"cycles": 1.5}, "not an integer"),
    ({"cycles": True}, "not an integer"),
    ({"temp_dk": (0x8000,)}, "as a measurement"),
    ({"cell_mv": (1,) * 256}, "256 items"),
    ({"user_defined_p": 256}, "does not fit 1 byte"),
])
def test_values_that_cannot_be_encoded_are_our_bug(change, message):
    with pytest.raises(ValueError, match=message):
        encode_info(_single(dataclasses.replace(PACK, **change)))


@pytest.mark.parametrize("answer, message", [
    (PackAnswer(infoflag=0, command_value=1, packs=(PACK, PACK)), "one block"),
    (PackAnswer(infoflag=256, command_value=1, packs=(PACK,)), "exceed a byte"),
    (PackAnswer(infoflag=0, command_value=None,
                packs=(PACK, dataclasses.replace(PACK, soc_pct=1))), "one layout and tail"),
    (PaceSerial(bms_serial="x" * 21), "does not fit 20"),
    (PaceSerial(bms_serial="a\0b"), "NUL"),
    (PaceSerial(bms_serial="abc "), "padding"),
    (PylonManufacturerInfo(device_name="US2000", software_version=(1, 2), manufacturer="P-"),
     "padding"),
    (PylonManufacturerInfo(device_name="US2000", software_version=(1,), manufacturer="P"),
     "1 items, the layout has 2"),
    (PaceSerial(bms_serial="café"), "ascii"),
])
def test_answers_that_cannot_be_encoded_are_our_bug(answer, message):
    with pytest.raises(ValueError, match=message):
        encode_info(answer)


def test_text_is_cut_at_nul_and_stripped_of_padding():
    info = b"US2000C\0\xff\xff" + b"\x01\x07" + b"Pylon" + b"-" * 15  # junk after the NUL
    answer = decode_info(PYLONTECH, 0x51, _frame(info, 0x20))
    assert (answer.device_name, answer.manufacturer) == ("US2000C", "Pylon")
    assert encode_info(answer) == b"US2000C\0\0\0\x01\x07Pylon" + b"-" * 15
    garbled = decode_info(PYLONTECH, 0x51, _frame(b"\xe9" + info[1:], 0x20))
    assert garbled.device_name == "\ufffdS2000C"


def test_named_bits_are_shown_as_booleans():
    view = describe(PylonManagement(command_value=2, charge_voltage_limit_mv=28400,
                                    discharge_voltage_limit_mv=23200,
                                    charge_current_limit_100ma=555,
                                    discharge_current_limit_100ma=-555, status=0x48))
    assert view["status"] == 0x48 and view["discharge_enable"] and view["full_charge_request"]
    assert not view["charge_enable"]


def test_protocol_version_answer_has_no_info():
    frame = Frame(ver=0x20, adr=2, cid1=0x46, cid2=0, info=b"\x01")
    with pytest.raises(LengthError) as caught:
        decode_info(PYLONTECH, 0x4F, frame)
    assert caught.value.expected == (0,)
    assert describe(decode_info(PYLONTECH, 0x4F, Frame(ver=0x35, adr=2, cid1=0x46, cid2=0))) == {
        "ver": 0x35}
    assert encode_info(ProtocolVersion(ver=0x20)) == b""


def test_text_element_shows_its_key():
    view = describe(PaceSerial(bms_serial="A", pack_serial=""))
    assert view == {"bms_serial": "A", "pack_serial": ""}
    assert Text("x", 3).width == 3


def test_raw_answers_pass_through():
    frame = Frame(ver=0x25, adr=1, cid1=0x46, cid2=0, info=b"\x0a\xbc")
    answer = decode_info(PACE_V25, 0x47, frame)
    assert encode_info(answer) == b"\x0a\xbc"
    assert describe(answer) == {"info": "0ABC"}
