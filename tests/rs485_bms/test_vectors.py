"""Every captured frame decodes field for field to its ``expected`` block, every payload
encodes back, and every quoted request is what our request builder sends, byte for byte."""

from __future__ import annotations

import pytest

from plugins.rs485_bms.protocol import (
    Frame,
    PackAnswer,
    ProtocolError,
    RequestInfo,
    RtnError,
    decode_answer,
    decode_info,
    decode_record,
    describe,
    encode_frame,
    encode_info,
    get_profile,
    make_request,
    parse_frame,
)


def _request(vector) -> Frame | None:
    return parse_frame(vector["request"].encode("ascii")) if vector["request"] else None


def _decode(vector, frame: Frame):
    """The vector's answer decoded as its family's answer to its command."""
    profile = get_profile(vector["vendor_family"])
    if frame.rtn in profile.records:
        return decode_record(profile, frame)
    request = _request(vector)
    return decode_info(profile, int(vector["command_cid2"], 16), frame,
                       all_packs=None if request is None else request.info == b"\xff")


def test_vector_decodes_to_expected(good_vector, assert_expected):
    frame = parse_frame(good_vector["response"].encode("ascii"))
    view = {"rtn": frame.rtn, "adr": frame.adr}
    if frame.info or frame.rtn == 0:  # an error answer without payload has nothing more
        view.update(describe(_decode(good_vector, frame)))
    assert_expected(good_vector["expected"], view)


def test_broken_vector_fails_with_its_error(broken_vector):
    with pytest.raises(ProtocolError) as caught:
        parse_frame(broken_vector["response"].encode("ascii"))
    assert caught.value.code == broken_vector["expected"]["error"]


def test_payload_round_trips(payload_vector):
    frame = parse_frame(payload_vector["response"].encode("ascii"))
    answer = _decode(payload_vector, frame)
    info = encode_info(answer)
    rebuilt = Frame(ver=frame.ver, adr=frame.adr, cid1=frame.cid1, cid2=frame.rtn, info=info)
    if isinstance(answer, PackAnswer):
        profile = get_profile(payload_vector["vendor_family"])
        assert decode_info(profile, int(payload_vector["command_cid2"], 16), rebuilt,
                           all_packs=answer.all_packs) == answer
    else:
        assert _decode(payload_vector, rebuilt) == answer
    if payload_vector["id"] != "pace25_jakiper_c1_version":  # its last pad is NUL, ours space
        assert info == frame.info


def test_request_vector_is_built_byte_exact(request_vector):
    profile = get_profile(request_vector["vendor_family"])
    sent = parse_frame(request_vector["request"].encode("ascii"))
    options = {}
    if profile.command(sent.cid2).request is RequestInfo.SWITCH:
        options["switch_on"] = sent.info == b"\x00"
    request = make_request(profile, sent.cid2, sent.adr, all_packs=sent.info == b"\xff",
                           **options)
    assert encode_frame(request) == request_vector["request"].encode("ascii") + b"\r"
    assert request == sent


def test_answer_decodes_through_its_request(exchange_vector):
    """decode_answer() takes the command and the all-packs form from the request."""
    profile = get_profile(exchange_vector["vendor_family"])
    frame = parse_frame(exchange_vector["response"].encode("ascii"))
    request = _request(exchange_vector)
    if frame.rtn != 0:
        with pytest.raises(RtnError) as caught:
            decode_answer(profile, request, frame)
        assert caught.value.rtn == frame.rtn and caught.value.raw == frame.raw
        assert caught.value.kind == "rtn" and caught.value.meaning
    else:
        assert decode_answer(profile, request, frame) == _decode(exchange_vector, frame)
