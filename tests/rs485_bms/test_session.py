"""The one-request session: matching, deadlines, drops and counters (no sleeping)."""

from __future__ import annotations

import pytest

from plugins.rs485_bms.protocol import (
    AddressError,
    Answer,
    ChecksumError,
    CidError,
    Frame,
    InterruptedFrameError,
    ResponseTimeout,
    RtnError,
    Session,
    TruncatedError,
    encode_frame,
    parse_frame,
)

REQUEST = parse_frame(b"~25014642E00201FD30\r")
ANSWER = (b"~25014600F07A0001100CC70CC80CC70CC70CC70CC50CC60CC70CC70CC60CC70CC60CC60CC70CC6"
          b"0CC7060B9B0B990B990B990BB30BBCFF1FCCCD12D303286A008C2710E1E4\r")
INTRA_PACK = b"~200B465AC04000010D4F0D4C0B2E0B1B015715496B7C6D6003D6154A00110000000003028082F00A\r"


def _answer(**changes) -> bytes:
    frame = parse_frame(ANSWER)
    values = {"ver": frame.ver, "adr": frame.adr, "cid1": frame.cid1, "cid2": frame.cid2,
              "info": frame.info, **changes}
    return encode_frame(Frame(**values))


@pytest.fixture
def session():
    s = Session()
    assert s.send(REQUEST, now=10.0, timeout_s=0.5) == REQUEST.raw
    return s


def test_answer_in_chunks(session):
    assert session.receive(ANSWER[:50], now=10.1) == []
    [event] = session.receive(ANSWER[50:], now=10.2)
    assert event == Answer(request=REQUEST, frame=parse_frame(ANSWER))
    assert session.outstanding is None and session.deadline is None
    assert session.counters.frames_ok == 1


def test_one_request_at_a_time(session):
    with pytest.raises(RuntimeError):
        session.send(REQUEST, now=10.0, timeout_s=0.5)


@pytest.mark.parametrize("timeout_s", [0, -1])
def test_timeout_must_be_positive(timeout_s):
    with pytest.raises(ValueError):
        Session().send(REQUEST, now=0, timeout_s=timeout_s)


def test_wrong_address_is_dropped_and_the_request_stays(session):
    [error] = session.receive(_answer(adr=2), now=10.1)
    assert isinstance(error, AddressError) and (error.expected, error.actual) == (1, 2)
    assert error.kind == "address" and error.raw == _answer(adr=2)
    assert session.outstanding == REQUEST
    [event] = session.receive(ANSWER, now=10.2)
    assert isinstance(event, Answer)
    assert session.counters.wrong_address == 1 and session.counters.frames_ok == 1


def test_wrong_device_type_is_dropped(session):
    [error] = session.receive(_answer(cid1=0x4A), now=10.1)
    assert isinstance(error, CidError) and (error.expected, error.actual) == (0x46, 0x4A)
    assert session.outstanding == REQUEST and session.counters.wrong_address == 1


def test_seplos_intra_pack_records_are_skipped(session):
    assert session.receive(INTRA_PACK + INTRA_PACK, now=10.1) == []
    assert session.counters.intra_pack == 2 and session.outstanding == REQUEST


def test_our_echo_is_skipped(session):
    assert session.receive(REQUEST.raw, now=10.05) == []
    assert session.counters.echoes == 1 and session.outstanding == REQUEST


def test_frames_while_idle_are_unsolicited():
    session = Session()
    assert session.receive(ANSWER, now=1.0) == []
    assert session.counters.unsolicited == 1
    assert session.receive(REQUEST.wire, now=1.1) == []  # another master's, while idle
    assert (session.counters.unsolicited, session.counters.foreign_requests) == (1, 1)


def test_rtn_error_ends_the_transaction(session):
    [error] = session.receive(_answer(cid2=0x04, info=b""), now=10.1)
    assert isinstance(error, RtnError) and error.rtn == 4 and error.meaning == "CID2 invalid"
    assert session.outstanding is None and session.counters.rtn_errors == 1


def test_garbled_frames_are_reported_and_counted(session):
    garbled = ANSWER.replace(b"E1E4", b"E1E5")
    events = session.receive(b"xx" + garbled + b"~2501" + ANSWER, now=10.1)
    assert [type(e) for e in events] == [ChecksumError, InterruptedFrameError, Answer]
    c = session.counters
    assert (c.checksum_errors, c.format_errors, c.garbage_bytes) == (1, 1, 2)


def test_deadline(session):
    assert session.poll(now=10.49) == []
    [event] = session.poll(now=10.5)
    assert event == ResponseTimeout(request=REQUEST)
    assert session.outstanding is None and session.counters.timeouts == 1
    assert session.poll(now=11.0) == []


def test_a_partial_answer_at_the_deadline_is_truncated(session):
    session.receive(ANSWER[:40], now=10.1)
    events = session.poll(now=10.6)
    assert [type(e) for e in events] == [TruncatedError, ResponseTimeout]
    assert events[0].raw == ANSWER[:40] and session.counters.format_errors == 1


def test_late_answer_times_out_first_then_is_unsolicited(session):
    events = session.receive(ANSWER, now=11.0)
    assert events == [ResponseTimeout(request=REQUEST)]
    assert session.counters.unsolicited == 1 and session.counters.frames_ok == 0


def test_cancel(session):
    session.cancel()
    assert session.outstanding is None
    assert session.receive(ANSWER, now=10.1) == []
    assert session.send(REQUEST, now=10.2, timeout_s=0.1)


def test_another_masters_requests_are_dropped_not_taken_for_answers(session):
    """bms-protocol.md 1.4 step 4: a second master polls the same wires. Its 0x44 to
    our ADR (CID2 0x44 would read as an undocumented RTN) and its 0x42 to another ADR
    are requests, not answers: dropped and counted; our answer still matches."""
    to_us = encode_frame(Frame(ver=0x25, adr=1, cid1=0x46, cid2=0x44, info=b"\x01"))
    to_other = encode_frame(Frame(ver=0x25, adr=7, cid1=0x46, cid2=0x42, info=b"\x07"))
    assert session.receive(to_us + to_other, now=10.1) == []
    assert session.counters.foreign_requests == 2 and session.outstanding == REQUEST
    assert session.counters.rtn_errors == 0 and session.counters.wrong_address == 0
    [event] = session.receive(ANSWER, now=10.2)
    assert isinstance(event, Answer)


def test_documented_return_codes_still_end_the_transaction(session):
    """0x90 is a PACE command but also Pylontech's documented 'ADR error' return code:
    an answer carrying it is an RTN error, not a foreign request."""
    [event] = session.receive(_answer(cid2=0x90, info=b""), now=10.1)
    assert isinstance(event, RtnError) and event.rtn == 0x90
    assert session.counters.foreign_requests == 0 and session.outstanding is None


# ------------------------------------------------------ ADR 00 (RS232 console port) ----
# tests/data/frames.json: the PACE RS232 document's answer (pace25_doc_rs232_42_ff), sent
# with ADR 00 as the console port sends every answer (Tertiush/bmspace#37: asked at ADR 01,
# a pack answered with ADR 00), and the refused 0x9B of pace25_jakiper_9b_rtn09.
CONSOLE_ANSWER = (b"~25004600F07A0001100D420D140D130D130D130D130D130D130D110D120D130D110D110D12"
                  b"0D100D13060BB70BB70BB80BB60BB30BBD0000D155128E03138800001388E3AC\r")
CONSOLE_RTN09 = b"~25004609E00204FD2B\r"


def test_an_adr00_answer_pairs_with_the_request_in_flight(session):
    [event] = session.receive(CONSOLE_ANSWER, now=10.2)
    assert event == Answer(request=REQUEST, frame=parse_frame(CONSOLE_ANSWER), adr0=True)
    assert event.frame.adr == 0 and session.outstanding is None
    c = session.counters
    assert (c.frames_ok, c.adr0_answers, c.wrong_address) == (1, 1, 0)


def test_an_adr00_error_answer_ends_the_transaction_and_is_counted():
    session = Session()
    session.send(Frame(ver=0x25, adr=1, cid1=0x46, cid2=0x9B, info=b"\x01"), now=0.0,
                 timeout_s=0.5)
    [error] = session.receive(CONSOLE_RTN09, now=0.1)
    assert isinstance(error, RtnError) and error.rtn == 0x09
    assert session.outstanding is None
    assert (session.counters.rtn_errors, session.counters.adr0_answers) == (1, 1)


@pytest.mark.parametrize("change", [{"cid1": 0x4A}, {"ver": 0x20}], ids=["cid1", "ver"])
def test_an_adr00_answer_of_another_device_type_or_version_does_not_pair(session, change):
    frame = parse_frame(CONSOLE_ANSWER)
    other = encode_frame(Frame(ver=change.get("ver", frame.ver), adr=0,
                               cid1=change.get("cid1", frame.cid1), cid2=0, info=frame.info))
    [error] = session.receive(other, now=10.1)
    assert isinstance(error, AddressError) and (error.expected, error.actual) == (1, 0)
    assert session.outstanding == REQUEST
    assert (session.counters.adr0_answers, session.counters.wrong_address) == (0, 1)


def test_an_adr00_answer_after_the_deadline_pairs_with_nothing(session):
    assert session.receive(CONSOLE_ANSWER, now=10.6) == [ResponseTimeout(request=REQUEST)]
    assert session.counters.adr0_answers == 0 and session.counters.unsolicited == 1
