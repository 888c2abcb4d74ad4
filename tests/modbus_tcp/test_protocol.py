"""The sans-IO Modbus/TCP session: framing, exception rules, unit scheme (no sockets)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugins.modbus_tcp import register_map as rm
from plugins.modbus_tcp.protocol import Session, UnitScheme, compile_tables

WRITE_FUNCTIONS = (0x05, 0x06, 0x0F, 0x10, 0x16, 0x17)
BANK_LEN = rm.BANK_BLOCK.length  #: the first address past the bank block
MODULE_LEN = rm.MODULE_BLOCK.length
BANK_READ = min(BANK_LEN, 125)  #: the bank block in one read, as far as one read goes
OTHER_FUNCTIONS = (0x01, 0x02, 0x07, 0x08, 0x0B, 0x11, 0x14, 0x2B, 0x63, 0x83)


@pytest.fixture(scope="module")
def image(mb):
    """Module-scoped: the image is immutable, and hypothesis tests reuse it."""
    return rm.make_image(mb.make_snapshot(10_000.0), 10_000.0, stale_after_s=60)


def session(image, scheme=None, **kw):
    tables = compile_tables(image, scheme or UnitScheme())
    return Session(lambda: tables, **kw)


def adu(unit, pdu, tid=7, protocol=0, length=None):
    return struct.pack(">HHHB", tid, protocol, len(pdu) + 1 if length is None else length,
                       unit) + pdu


def split_adus(data):
    """Parse a response stream into (tid, unit, pdu); asserts it is well-formed."""
    out = []
    while data:
        tid, protocol, length, unit = struct.unpack(">HHHB", data[:7])
        assert protocol == 0 and 3 <= length <= 254 and len(data) >= 6 + length
        out.append((tid, unit, data[7:6 + length]))
        data = data[6 + length:]
    return out


def ask(s, unit, pdu, tid=7):
    out, broken = s.feed(adu(unit, pdu, tid))
    assert not broken
    ((rtid, runit, rpdu),) = split_adus(out)
    assert (rtid, runit) == (tid, unit)
    return rpdu


def read(function, address, count):
    return struct.pack(">BHH", function, address, count)


def test_fc03_and_fc04_serve_the_same_registers(image):
    s = session(image)
    for address, count in ((0, BANK_READ), (BANK_LEN - BANK_READ, BANK_READ), (1000, 125), (1005, 125), (40000, 125), (40125, 11)):
        r3, r4 = ask(s, 1, read(3, address, count)), ask(s, 1, read(4, address, count))
        assert r3[0] == 3 and r4[0] == 4 and r3[1:] == r4[1:]
        assert r3[1] == 2 * count
        assert struct.unpack(f">{count}H", r3[2:]) == rm.read_registers(image.bank_unit,
                                                                         address, count)


@pytest.mark.parametrize("function", WRITE_FUNCTIONS + OTHER_FUNCTIONS)
def test_writes_and_other_functions_answer_illegal_function(image, function):
    pdu = bytes([function]) + bytes(range(10))
    assert ask(session(image), 1, pdu) == bytes([function | 0x80, 0x01])


@pytest.mark.parametrize("pdu", [read(3, 0, 0), read(4, 0, 126), read(3, 0, 0xFFFF),
                                 b"\x03\x00\x00\x00", b"\x03", b"\x04\x00\x00\x00\x01\x00"])
def test_bad_quantity_or_request_length_answers_illegal_data_value(image, pdu):
    assert ask(session(image), 1, pdu) == bytes([pdu[0] | 0x80, 0x03])


@pytest.mark.parametrize("address,count", [(BANK_LEN, 1), (BANK_LEN - 4, 5), (500, 10), (999, 2), (1000 + MODULE_LEN - 1, 2),
                                           
                                           (13600 + MODULE_LEN, 1), (39999, 3), (40130, 7), (65535, 1),
                                           (65500, 125)])
def test_unmapped_or_crossing_reads_answer_illegal_data_address(image, address, count):
    assert ask(session(image), 1, read(3, address, count)) == b"\x83\x02"


def test_checks_run_unit_then_function_then_quantity_then_address(image):
    s = session(image)
    assert ask(s, 9, read(6, BANK_LEN, 0)) == b"\x86\x0a"  # unknown unit first
    assert ask(s, 1, b"\x10" + bytes(5)) == b"\x90\x01"  # then the function
    assert ask(s, 1, read(3, BANK_LEN, 0)) == b"\x83\x03"  # then the quantity
    assert ask(s, 1, read(3, BANK_LEN, 1)) == b"\x83\x02"  # then the address


def test_unit_scheme_bank_and_direct_ids(image):
    s = session(image)
    for unit in (1, 0, 255):
        assert ask(s, unit, read(3, 0, 1)) == b"\x03\x02" + struct.pack(">H", rm.MAP_VERSION)
    assert ask(s, 2, read(3, 0, 1)) == b"\x83\x0a"
    strict = session(image, UnitScheme(bank_unit_id=17, direct_unit_ids=False))
    assert ask(strict, 17, read(3, 0, 1))[0] == 3
    for unit in (0, 1, 255):
        assert ask(strict, unit, read(3, 0, 1)) == b"\x83\x0a"


def test_unknown_units_can_be_left_unanswered(image):
    s = session(image, answer_unknown_units=False)
    assert s.feed(adu(9, read(3, 0, 1))) == (b"", False)
    assert s.counters.unanswered == 1
    assert ask(s, 1, read(3, 0, 1))[0] == 3  # the connection goes on


def test_module_units_serve_their_block_at_1000(image):
    s = session(image, UnitScheme(module_unit_id_base=100))
    for position in (1, 3, 12, 64):
        own = ask(s, 100 + position, read(3, 1000, 125))
        in_bank = ask(s, 1, read(3, rm.module_block_start(position), 125))
        assert own == in_bank
        assert ask(s, 100 + position, read(3, 0, BANK_READ)) == ask(s, 1, read(3, 0, BANK_READ))
    assert ask(s, 103, read(3, 1200, 1)) == b"\x83\x02"  # only one module block there
    assert ask(s, 103, read(3, 40000, 2)) == b"\x83\x02"  # no SunSpec view on module units
    assert ask(s, 165, read(3, 0, 1)) == b"\x83\x0a"
    assert ask(s, 100, read(3, 0, 1)) == b"\x83\x0a"


def test_transaction_ids_and_pipelined_requests_keep_their_order(image):
    s = session(image)
    stream = b"".join(adu(1, read(3, a, 1), tid=t) for t, a in ((1, 0), (2, BANK_LEN), (3, 1000)))
    out, broken = s.feed(stream)
    assert not broken
    answers = split_adus(out)
    assert [(t, p[0]) for t, _, p in answers] == [(1, 3), (2, 0x83), (3, 3)]


@pytest.mark.parametrize("header", [
    adu(1, read(3, 0, 1), protocol=1),  # not the Modbus protocol identifier
    adu(1, b"", length=1),  # no function code
    adu(1, b"", length=0),
    adu(1, b"", length=255),  # longer than any Modbus PDU
    b"GET / HTTP/1.1\r\n\r\n",
])
def test_a_malformed_header_breaks_the_connection_after_earlier_answers(image, header):
    s = session(image)
    out, broken = s.feed(adu(1, read(3, 0, 1), tid=5) + header)
    assert broken and s.counters.malformed == 1
    assert split_adus(out)[0][0] == 5


def test_output_limit_leaves_a_backlog_answered_later_in_order(image):
    stream = b"".join(adu(1, read(3, 1000, 125), tid=i) for i in range(10))
    whole, _ = session(image).feed(stream)
    s = session(image)
    out, broken = s.feed(stream, max_output=600)
    assert not broken and s.backlog and len(split_adus(out)) == 3  # 259 bytes each
    parts = [out]
    while s.backlog:
        parts.append(s.feed(b"", max_output=600)[0])
    assert b"".join(parts) == whole and s.pending == 0
    assert s.feed(b"", max_output=600) == (b"", False) and not s.backlog


def test_frames_split_anywhere_give_the_same_answers(image):
    stream = b"".join(adu(u, read(f, a, c), tid=i) for i, (u, f, a, c) in enumerate(
        [(1, 3, 0, 10), (1, 4, 1000, 125), (9, 3, 0, 1), (1, 3, BANK_LEN, 1), (1, 6, 0, 1)]))
    whole, _ = session(image).feed(stream)
    s = session(image)
    parts = [s.feed(stream[i:i + 1]) for i in range(len(stream))]
    assert b"".join(out for out, _ in parts) == whole and not any(b for _, b in parts)
    assert s.pending == 0


@given(st.data())
@settings(max_examples=60, deadline=None)
def test_random_chunking_never_changes_the_answers(image, data):
    stream = b"".join(adu(1, read(3, a, 3), tid=a) for a in range(0, 60, 3))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    s = session(image)
    out = b""
    for lo, hi in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        part, broken = s.feed(stream[lo:hi])
        assert not broken
        out += part
    assert out == session(image).feed(stream)[0]


@given(st.binary(max_size=600))
@settings(max_examples=300, deadline=None)
def test_arbitrary_bytes_never_raise_and_answers_are_well_formed(image, data):
    s = session(image)
    out, broken = s.feed(data)
    for _, _, pdu in split_adus(out):
        assert pdu[0] in (3, 4) or (pdu[0] & 0x80 and len(pdu) == 2 and pdu[1] in (1, 2, 3, 10))
    assert s.pending <= 260


@given(st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255),
                          st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)), max_size=20))
@settings(max_examples=200, deadline=None)
def test_every_well_framed_request_gets_exactly_one_answer(image, requests):
    s = session(image)
    stream = b"".join(adu(u, struct.pack(">BHH", f, a, c), tid=i)
                      for i, (u, f, a, c) in enumerate(requests))
    out, broken = s.feed(stream)
    assert not broken
    answers = split_adus(out)
    assert [t for t, _, _ in answers] == list(range(len(requests)))
    for (unit, function, address, count), (_, runit, pdu) in zip(requests, answers, strict=True):
        assert runit == unit
        expected = (rm.read_registers(image.bank_unit, address, count)
                    if unit in (0, 1, 255) and function in (3, 4) else None)
        if isinstance(expected, tuple):
            assert pdu == bytes([function, 2 * count]) + struct.pack(f">{count}H", *expected)
        else:
            assert pdu[0] == function | 0x80
