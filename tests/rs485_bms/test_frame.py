"""Frame encoding and parsing, and every way a frame can be broken."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugins.rs485_bms.protocol import (
    MAX_FRAME_BYTES,
    ChecksumError,
    Frame,
    LengthChecksumError,
    LengthError,
    NonHexError,
    TruncatedError,
    encode_frame,
    frame_checksum,
    parse_frame,
)
from plugins.rs485_bms.protocol.frame import MAX_INFO_BYTES

REQUEST = b"~25014642E00201FD30\r"


def _with_checksum(chars: bytes) -> bytes:
    return b"~" + chars + f"{frame_checksum(chars):04X}".encode() + b"\r"


def test_encode_worked_example():
    frame = Frame(ver=0x25, adr=1, cid1=0x46, cid2=0x42, info=b"\x01")
    assert encode_frame(frame) == REQUEST
    assert len(REQUEST) == 20


def test_parse_keeps_raw_and_ignores_it_in_comparisons():
    frame = parse_frame(REQUEST)
    assert frame == Frame(ver=0x25, adr=1, cid1=0x46, cid2=0x42, info=b"\x01")
    assert frame.raw == REQUEST and frame.wire == REQUEST
    assert Frame(ver=0x25, adr=1, cid1=0x46, cid2=0x42, info=b"\x01").wire == REQUEST


def test_cr_is_optional():
    assert parse_frame(REQUEST[:-1]) == parse_frame(REQUEST)


def test_shortest_legal_frame():
    frame = parse_frame(b"~200246000000FDB2\r")
    assert (frame.ver, frame.adr, frame.rtn, frame.info) == (0x20, 2, 0, b"")


def test_lower_case_hex_is_accepted():
    """A sender writing lower case sums its own characters; so do we."""
    upper = parse_frame(b"~25014600F07A0001100CC70CC80CC70CC70CC70CC50CC60CC70CC70CC60CC70CC6"
                        b"0CC60CC70CC60CC7060B9B0B990B990B990BB30BBCFF1FCCCD12D303286A008C2710E1E4")
    body = encode_frame(upper)[1:-5].lower()
    lower = _with_checksum(body)
    assert parse_frame(lower) == upper
    assert parse_frame(lower[:-5] + lower[-5:-1].lower() + b"\r") == upper


@given(ver=st.integers(0, 255), adr=st.integers(0, 255), cid1=st.integers(0, 255),
       cid2=st.integers(0, 255), info=st.binary(max_size=MAX_INFO_BYTES))
def test_encode_parse_round_trip(ver, adr, cid1, cid2, info):
    frame = Frame(ver=ver, adr=adr, cid1=cid1, cid2=cid2, info=info)
    wire = encode_frame(frame)
    assert len(wire) == 18 + 2 * len(info) <= MAX_FRAME_BYTES
    assert parse_frame(wire) == frame


@pytest.mark.parametrize("field", ["ver", "adr", "cid1", "cid2"])
@pytest.mark.parametrize("value", [-1, 256])
def test_header_byte_out_of_range_is_our_bug(field, value):
    values = {"ver": 0x25, "adr": 1, "cid1": 0x46, "cid2": 0x42, field: value}
    with pytest.raises(ValueError, match=field):
        encode_frame(Frame(**values))


def test_info_too_long_is_our_bug():
    with pytest.raises(ValueError, match="2048"):
        encode_frame(Frame(ver=0x25, adr=1, cid1=0x46, cid2=0x42, info=bytes(2048)))


def test_a_frame_starts_with_soi():
    with pytest.raises(ValueError):
        parse_frame(REQUEST[1:])


@pytest.mark.parametrize("data, position", [
    (b"~2501464XE00201FD30\r", 8),
    (b"~25014642E00201FD3 \r", 18),
    (b"~25014642E0020\r1FD30\r", 14),
    (b"~~25014642E00201FD30\r", 1),
])
def test_non_hex(data, position):
    with pytest.raises(NonHexError) as caught:
        parse_frame(data)
    assert caught.value.position == position and caught.value.raw == data
    assert caught.value.kind == "non_hex"


@pytest.mark.parametrize("data", [
    b"~",
    b"~2501464",  # inside the header
    b"~25014642E0",  # inside LENGTH
    b"~25014642E00201\r",  # the data, then CR: no CHKSUM at all
    b"~25014642E00201FD3\r",  # CHKSUM cut short
])
def test_truncated(data):
    with pytest.raises(TruncatedError) as caught:
        parse_frame(data)
    assert caught.value.raw == data and caught.value.kind == "truncated"


def test_no_checksum_message_says_so():
    with pytest.raises(TruncatedError, match="no CHKSUM"):
        parse_frame(b"~25014642E00201\r")


def test_lchksum():
    data = _with_checksum(b"25014642F00201")
    with pytest.raises(LengthChecksumError) as caught:
        parse_frame(data)
    assert (caught.value.expected, caught.value.actual) == (0xE, 0xF)
    assert caught.value.code == "lchksum_mismatch" and caught.value.raw == data


def test_more_characters_than_lenid():
    data = _with_checksum(b"25014642E0020101")
    with pytest.raises(LengthError) as caught:
        parse_frame(data)
    assert caught.value.family is None and caught.value.expected == (6,)
    assert caught.value.actual == 8 and caught.value.kind == "length"


def test_odd_lenid():
    data = _with_checksum(b"25014642D0030010")
    with pytest.raises(LengthError, match="whole bytes"):
        parse_frame(data)


def test_chksum():
    data = REQUEST.replace(b"FD30", b"FD31")
    with pytest.raises(ChecksumError) as caught:
        parse_frame(data)
    assert (caught.value.expected, caught.value.actual) == (0xFD30, 0xFD31)
    assert caught.value.code == "chksum_mismatch"


def test_the_expected_length_comes_from_the_length_field():
    from plugins.rs485_bms.protocol.frame import expected_frame_bytes

    wire = encode_frame(Frame(ver=0x25, adr=1, cid1=0x46, cid2=0x00, info=bytes(range(37))))
    assert expected_frame_bytes(wire[:13]) == len(wire)
    assert expected_frame_bytes(wire) == len(wire)
    assert expected_frame_bytes(wire[:12]) is None  # LENGTH not complete
    assert expected_frame_bytes(b"x" + wire[1:13]) is None  # no SOI
    assert expected_frame_bytes(wire[:9] + b"00G0") is None  # LENGTH not hex
    field = wire[9:13]
    flipped = field[:1] + (b"F" if field[1:2] != b"F" else b"E") + field[2:]
    assert expected_frame_bytes(wire[:9] + flipped) is None  # LCHKSUM does not match
