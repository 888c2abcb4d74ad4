"""LCHKSUM and CHKSUM, against the reference's worked examples and as properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugins.rs485_bms.protocol import MAX_LENID, encode_length, frame_checksum, length_checksum


def test_worked_example_pace_analog_request():
    assert length_checksum(2) == 0xE
    assert encode_length(2) == 0xE002
    assert frame_checksum(b"25014642E00201") == 0xFD30


def test_length_examples():
    assert encode_length(0) == 0x0000  # LENID 0: the field is 0000
    assert encode_length(0x07A) == 0xF07A  # a 16S/6T PACE analog answer
    assert encode_length(18) == 0xD012  # the PACE document's example
    assert encode_length(MAX_LENID) == 0x3FFF  # 45 = 13 (mod 16); -13 = 3


def test_ydt_example_sum():
    """The YD/T example printed by Pylontech/Seplos sums to 0x038F -> FC71, not FC72;
    the PACE document's changed body gives FC72."""
    assert frame_checksum(b"1203400456ABCEFE") == 0xFC71
    assert frame_checksum(b"1203400356ABCEFE") == 0xFC72


def test_checksum_reduces_modulo_65536_not_65535():
    chars = b"F" * 1500  # ASCII sum 105000, as large as a 10-pack all-packs answer
    assert sum(chars) == 105000
    assert frame_checksum(chars) == 0x10000 - 105000 % 0x10000 == 0x65D8
    assert frame_checksum(chars) != (-(105000 % 0xFFFF)) & 0xFFFF


@pytest.mark.parametrize("lenid", [-1, MAX_LENID + 1])
def test_lenid_out_of_range_is_our_bug(lenid):
    with pytest.raises(ValueError):
        length_checksum(lenid)


@given(st.integers(0, MAX_LENID))
def test_lchksum_cancels_the_nibbles(lenid):
    nibbles = (lenid >> 8) + (lenid >> 4 & 0xF) + (lenid & 0xF)
    assert (nibbles + length_checksum(lenid)) % 16 == 0
    assert encode_length(lenid) & MAX_LENID == lenid


@given(st.binary(max_size=5000))
def test_chksum_cancels_the_sum(chars):
    assert (sum(chars) + frame_checksum(chars)) % 0x10000 == 0
