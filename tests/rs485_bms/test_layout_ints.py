"""read_ints (integers in one go) reads exactly what read_int reads one by one."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugins.rs485_bms.protocol.layout import Cursor, Short, read_int, read_ints


def one_by_one(data: bytes, pos: int, count: int, size: int, signed: bool,
               unknown: int | None) -> tuple[tuple[int | None, ...], int] | int:
    """(values, end) as read_int reads them, or the Short's ``needed``."""
    cur = Cursor(data, pos)
    try:
        values = tuple(read_int(cur, size, signed, unknown) for _ in range(count))
    except Short as short:
        return short.needed
    return values, cur.pos


@given(data=st.binary(max_size=40), pos=st.integers(0, 8), count=st.integers(0, 12),
       size=st.integers(1, 4), signed=st.booleans(), unknown=st.sampled_from(
           [None, 0, 0xFF, 0x8000, 0xFFFF, 0x7FFF, 0xFFFFFF, 0x80000000]))
def test_read_ints_equals_read_int_one_by_one(data, pos, count, size, signed, unknown):
    expected = one_by_one(data, pos, count, size, signed, unknown)
    cur = Cursor(data, pos)
    if isinstance(expected, int):
        with pytest.raises(Short) as short:
            read_ints(cur, count, size, signed, unknown)
        assert short.value.needed == expected
        assert cur.pos == pos
    else:
        assert (read_ints(cur, count, size, signed, unknown), cur.pos) == expected


def test_three_byte_integers_signed_and_unknown():
    data = bytes.fromhex("FFFFFE 800000 7FFFFF 000001")
    assert read_ints(Cursor(data), 4, 3, True, 0x7FFFFF) == (-2, -0x800000, None, 1)


@pytest.mark.parametrize(("raw", "signed", "unknown", "value"), [
    ("FFFF", False, 0xFFFF, None), ("FFFF", True, 0xFFFF, None), ("FFFF", True, None, -1),
    ("8000", True, 0x7FFF, -0x8000), ("7FFF", False, 0xFFFF, 0x7FFF)])
def test_read_int_compares_unknown_raw(raw, signed, unknown, value):
    data = bytes.fromhex(raw)
    assert read_int(Cursor(data), 2, signed, unknown) == value
    assert read_ints(Cursor(data * 2), 2, 2, signed, unknown) == (value, value)
