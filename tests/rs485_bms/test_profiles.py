"""Families as data: request builders for every command, inference, request views."""

from __future__ import annotations

import pytest

from plugins.rs485_bms.protocol import (
    DAREN_BASEN,
    EG4_LIFEPOWER4,
    PACE_V25,
    PROFILES,
    PYLONTECH,
    SEPLOS_V2,
    Frame,
    PaceVersion,
    ProtocolVersion,
    RequestInfo,
    decode_answer,
    decode_info,
    decode_record,
    describe_request,
    encode_frame,
    get_profile,
    infer_profiles,
    make_request,
    make_response,
    parse_frame,
)

ALL_COMMANDS = [(p, c) for p in PROFILES.values() for c in p.commands.values()]


def _options(command):
    return {"switch_on": True} if command.request is RequestInfo.SWITCH else {}


@pytest.mark.parametrize("profile, command", ALL_COMMANDS,
                         ids=[f"{p.name}-{c.cid2:02X}" for p, c in ALL_COMMANDS])
def test_request_for_one_address(profile, command):
    address = profile.addresses[1]
    frame = make_request(profile, command.cid2, address, **_options(command))
    assert (frame.ver, frame.adr, frame.cid1, frame.cid2) == (
        profile.ver, address, profile.cid1, command.cid2)
    expected_info = {RequestInfo.NONE: b"", RequestInfo.ADDRESS: bytes((address,)),
                     RequestInfo.SWITCH: b"\x00"}[command.request]
    assert frame.info == expected_info
    assert parse_frame(encode_frame(frame)) == frame
    assert not profile.is_answer(frame)


@pytest.mark.parametrize("profile, command", ALL_COMMANDS,
                         ids=[f"{p.name}-{c.cid2:02X}" for p, c in ALL_COMMANDS])
def test_request_for_all_packs(profile, command):
    if command.all_packs:
        frame = make_request(profile, command.cid2, profile.addresses[1], all_packs=True)
        assert frame.info == b"\xff"
        assert describe_request(profile, frame) == {"all_packs": True}
    else:
        with pytest.raises(ValueError, match="all-packs"):
            make_request(profile, command.cid2, profile.addresses[1], all_packs=True,
                         **_options(command))


def test_all_packs_forms_are_pace_and_pylontech_analog_and_alarm():
    forms = {(p.name, c.cid2) for p, c in ALL_COMMANDS if c.all_packs}
    assert forms == {("pace_v25", 0x42), ("pace_v25", 0x44), ("pylontech", 0x42),
                     ("pylontech", 0x44)}


def test_pace_mosfet_switch():
    assert make_request(PACE_V25, 0x9B, 0, switch_on=False).info == b"\x01"
    assert make_request(PACE_V25, 0x9A, 0, switch_on=True).info == b"\x00"
    with pytest.raises(ValueError, match="required"):
        make_request(PACE_V25, 0x9A, 0)
    with pytest.raises(ValueError, match="not allowed"):
        make_request(PACE_V25, 0x42, 1, switch_on=True)


@pytest.mark.parametrize("profile, address", [
    (PACE_V25, 16), (PACE_V25, -1), (PYLONTECH, 0), (PYLONTECH, 255), (SEPLOS_V2, 16),
    (EG4_LIFEPOWER4, 16), (DAREN_BASEN, 16)])
def test_address_out_of_range_is_our_bug(profile, address):
    with pytest.raises(ValueError, match="address"):
        make_request(profile, 0x42, address)


def test_unknown_command_is_our_bug():
    with pytest.raises(ValueError, match="no command 0x93"):
        make_request(SEPLOS_V2, 0x93, 1)
    with pytest.raises(ValueError, match="no command"):
        decode_answer(PACE_V25, Frame(ver=0x25, adr=1, cid1=0x46, cid2=0x77),
                      Frame(ver=0x25, adr=1, cid1=0x46, cid2=0))


def test_get_profile():
    assert get_profile("seplos_v2") is SEPLOS_V2
    with pytest.raises(ValueError, match="pace_v25"):
        get_profile("pace")


@pytest.mark.parametrize("ver, cid1, expected", [
    (0x25, 0x46, (PACE_V25,)),
    (0x25, 0x4F, (PACE_V25,)),  # a PACE clone reporting lithium-ion
    (0x20, 0x46, (PYLONTECH, SEPLOS_V2)),
    (0x20, 0x4A, (EG4_LIFEPOWER4,)),
    (0x22, 0x4A, (DAREN_BASEN,)),
    (0x21, 0x46, ()),
    (0x26, 0x46, ()),
])
def test_infer_profiles(ver, cid1, expected):
    assert infer_profiles(Frame(ver=ver, adr=1, cid1=cid1, cid2=0)) == expected


@pytest.mark.parametrize("profile, cid2, answer", [
    (PACE_V25, 0x00, True), (PACE_V25, 0x09, True), (PACE_V25, 0x90, False),
    (PYLONTECH, 0x90, True), (PYLONTECH, 0x91, True), (PYLONTECH, 0x93, False),
    (SEPLOS_V2, 0xE2, True), (SEPLOS_V2, 0x5A, True), (SEPLOS_V2, 0x42, False),
    (PACE_V25, 0xE1, False),  # PACE: read MOSFET temperature settings
])
def test_is_answer(profile, cid2, answer):
    assert profile.is_answer(Frame(ver=profile.ver, adr=1, cid1=profile.cid1, cid2=cid2)) is answer


@pytest.mark.parametrize("profile, frame, view", [
    (PACE_V25, make_request(PACE_V25, 0x42, 3), {"command_value": 3}),
    (PACE_V25, make_request(PACE_V25, 0x9B, 0, switch_on=False), {"switch_on": False}),
    (PACE_V25, make_request(PACE_V25, 0xC1, 1), {}),
    (PACE_V25, Frame(ver=0x25, adr=1, cid1=0x46, cid2=0xC1, info=b"\x01"), {"info": "01"}),
    (PACE_V25, Frame(ver=0x25, adr=1, cid1=0x46, cid2=0xD1), {"info": ""}),
    (PYLONTECH, Frame(ver=0x20, adr=2, cid1=0x46, cid2=0x42, info=b"\x01\x02"),
     {"info": "0102"}),
])
def test_describe_request(profile, frame, view):
    assert describe_request(profile, frame) == view


def test_decode_record_needs_a_record_code():
    with pytest.raises(ValueError, match="no record"):
        decode_record(PACE_V25, Frame(ver=0x25, adr=1, cid1=0x46, cid2=0x5A))


def test_make_response_is_what_a_device_sends():
    request = make_request(PACE_V25, 0xC1, 2)
    answer = PaceVersion(version="P16S100A-1812-1.00")
    frame = make_response(PACE_V25, request, answer)
    assert (frame.ver, frame.adr, frame.cid1, frame.rtn) == (0x25, 2, 0x46, 0)
    assert decode_answer(PACE_V25, request, parse_frame(encode_frame(frame))) == answer
    refused = make_response(PACE_V25, request, answer, rtn=0x04)
    assert refused.rtn == 4


def test_protocol_version_travels_in_ver():
    request = make_request(PYLONTECH, 0x4F, 2)
    frame = make_response(PYLONTECH, request, ProtocolVersion(ver=0x35))
    assert frame.ver == 0x35 and frame.info == b""
    assert decode_answer(PYLONTECH, request, frame) == ProtocolVersion(ver=0x35)


def test_undocumented_pace_answers_stay_raw():
    frame = Frame(ver=0x25, adr=1, cid1=0x46, cid2=0, info=b"\x01\x02")
    answer = decode_info(PACE_V25, 0x51, frame)
    assert answer.info == b"\x01\x02"
