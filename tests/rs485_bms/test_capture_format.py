"""The capture record format and transcriber at their edges: every malformed field is
named, every way an answer can go wrong gets its own result (protocol/ is kept at 100 %
coverage: each branch here is a case a field capture can hold)."""

from __future__ import annotations

import json

import pytest

from plugins.rs485_bms.protocol import PACE_V25, Frame, encode_frame, make_request
from plugins.rs485_bms.protocol.capture import (
    CaptureFormatError,
    CaptureHeader,
    CaptureRecord,
    CaptureTranscriber,
    encode_header,
    encode_record,
    exchanges,
    parse_line,
    read_capture,
)
from plugins.rs485_bms.protocol.frame import MAX_FRAME_BYTES
from plugins.rs485_bms.protocol.session import INTRA_PACK_RTN

T = "2026-12-03T10:00:00.000000Z"
HEADER = {"capture": "bms-gateway", "version": 1, "bus": "b", "family": "pace_v25",
          "baud": 9600, "started": T}


@pytest.mark.parametrize("fields,message", [
    ({"t": 5}, "the time 5 is not a string"),
    ({"frame": 7}, "frame is not a string"),
    ({"result": ""}, "result is not a word"),
])
def test_bad_record_fields_are_named(fields, message):
    record = {"t": T, "dir": "tx", "frame": "~x\r", "result": "request", **fields}
    with pytest.raises(CaptureFormatError, match=message):
        parse_line(json.dumps(record))


@pytest.mark.parametrize("fields,message", [
    ({"bus": 3}, "bus and family must be strings"),
    ({"baud": 0}, "baud 0 is not a positive integer"),
    ({"baud": True}, "baud True is not a positive integer"),
])
def test_bad_header_fields_are_named(fields, message):
    with pytest.raises(CaptureFormatError, match=message):
        parse_line(json.dumps({**HEADER, **fields}))


def test_blank_lines_are_skipped_and_a_header_of_another_family_is_refused():
    header = encode_header(CaptureHeader(bus="b", family="pace_v25", baud=9600, started=0.0))
    other = encode_header(CaptureHeader(bus="b", family="pylontech", baud=9600, started=0.0))
    record = encode_record(CaptureRecord(at=1.0, direction="tx", raw=b"~x\r", result="request"))
    capture = read_capture([header, "\n", other, record], source="f.jsonl")
    assert len(capture.records) == 1 and capture.corrupt == 1
    assert capture.problems[0].startswith("f.jsonl:3: a header of family pylontech")
    assert read_capture([], source="empty").records == []


def answer(request: Frame, *, cid1: int | None = None, rtn: int = 0, info: bytes = b"",
           adr: int | None = None) -> bytes:
    return encode_frame(Frame(ver=request.ver, adr=request.adr if adr is None else adr,
                              cid1=request.cid1 if cid1 is None else cid1, cid2=rtn,
                              info=info))


def results(transcriber, *chunks):
    out = []
    for data in chunks:
        out += transcriber.received(data, 2.0)
    out += transcriber.close(3.0)
    return [r.result for r in out if r.direction == "rx"]


def test_each_way_an_answer_goes_wrong_has_its_result():
    request = make_request(PACE_V25, 0x42, 2)
    wire = encode_frame(request)

    t = CaptureTranscriber(PACE_V25)
    t.sent(wire, 1.0)
    assert results(t, b"", wire) == ["echo"]  # a read of nothing, then our own request

    t = CaptureTranscriber(PACE_V25)
    t.sent(wire, 1.0)
    assert results(t, answer(request, rtn=INTRA_PACK_RTN)) == ["intra_pack"]

    t = CaptureTranscriber(PACE_V25)
    t.sent(wire, 1.0)
    assert results(t, answer(request, cid1=0x4A)) == ["cid"]

    t = CaptureTranscriber(PACE_V25)
    t.sent(wire, 1.0)  # another master asks another pack meanwhile
    assert results(t, encode_frame(make_request(PACE_V25, 0x42, 5))) == ["foreign"]

    unknown = Frame(ver=request.ver, adr=2, cid1=request.cid1, cid2=0x99, info=b"\x02")
    assert 0x99 not in PACE_V25.commands  # a command the profile knows nothing about
    t = CaptureTranscriber(PACE_V25)
    t.sent(encode_frame(unknown), 1.0)
    assert results(t, answer(unknown, info=b"\x01\x02")) == ["ok"]  # kept, not judged


def test_a_garbled_request_is_recorded_with_its_error_and_an_overlong_answer_overflows():
    t = CaptureTranscriber(PACE_V25)
    [sent] = t.sent(b"~20014A42E00201FD00\r", 1.0)  # a wrong checksum
    assert sent.direction == "tx" and sent.result != "request"
    long = b"~" + b"0" * (MAX_FRAME_BYTES + 10)  # no CR in sight
    got = t.received(long, 2.0) + t.close(3.0)
    assert "overflow" in [r.result for r in got]
    assert sum(len(r.raw) for r in got if r.direction == "rx") == len(long)


def test_exchanges_leave_out_requests_that_do_not_parse():
    good = encode_frame(make_request(PACE_V25, 0x42, 1))
    records = [CaptureRecord(at=1.0, direction="tx", raw=b"~garbled\r", result="chksum"),
               CaptureRecord(at=1.1, direction="rx", raw=b"~junk\r", result="chksum"),
               CaptureRecord(at=2.0, direction="tx", raw=good, result="request")]
    [only] = list(exchanges(records))
    assert only.request.adr == 1 and only.replies == ()
