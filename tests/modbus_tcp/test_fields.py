"""Layout.pack (the unrolled fast path) agrees with encode_value field by field."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.model import Condition
from plugins.modbus_tcp import register_map as rm
from plugins.modbus_tcp import sunspec
from plugins.modbus_tcp.fields import SENTINELS, Field, Layout, encode_value

EVERY_TYPE = Layout("every_type", [
    *(Field(f"f_{t}", t, size=16 if t == "string" else 0) for t in SENTINELS),
    Field("wide_uint16", "uint16", size=3),  # a size that is not the type's own
    Field("narrow_uint32", "uint32", size=1),
])
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-2**40, 2**40),
    st.sampled_from([-0x8000, -0x7FFF, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF, 0x10000,
                     -0x80000000, 0x7FFFFFFF, 0xFFFFFFFE, 0xFFFFFFFF, 0x100000000,
                     Condition.CELL_OVER_VOLTAGE | Condition.LOW_CAPACITY]))


def reference(layout: Layout, values: dict[str, object]) -> tuple[int, ...]:
    return tuple(r for f in layout.fields for r in encode_value(f, values.get(f.name)))


@given(st.data())
def test_pack_equals_encode_value_for_every_type(data):
    values = {f.name: data.draw(st.text(max_size=40) if f.type == "string" else VALUES)
              for f in EVERY_TYPE.fields if data.draw(st.booleans())}
    assert EVERY_TYPE.pack(values) == reference(EVERY_TYPE, values)


@given(st.data())
def test_pack_equals_encode_value_for_the_served_layouts(data):
    for layout in (rm.BANK_BLOCK, rm.MODULE_BLOCK, sunspec.MODEL_1, sunspec.MODEL_802):
        values = {f.name: data.draw(st.text(max_size=40) if f.type == "string" else VALUES)
                  for f in layout.fields if data.draw(st.booleans())}
        assert layout.pack(values) == reference(layout, values), layout.name
