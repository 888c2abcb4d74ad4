"""Typed register fields: SunSpec-style types, sentinels, and packing into registers.

Shared by the register map (:mod:`plugins.modbus_tcp.register_map`) and the SunSpec view
(:mod:`plugins.modbus_tcp.sunspec`). Pure; no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

SENTINELS: dict[str, int] = {
    "uint16": 0xFFFF,
    "int16": 0x8000,
    "uint32": 0xFFFFFFFF,
    "int32": 0x80000000,
    "bitfield16": 0xFFFF,
    "bitfield32": 0xFFFFFFFF,
    "enum16": 0xFFFF,
    "sunssf": 0x8000,
    "string": 0x0000,
    "pad": 0x8000,
}
_SIZES = {"uint32": 2, "int32": 2, "bitfield32": 2}

#: Units used in register names and what one count is worth.
UNITS: dict[str, str] = {
    "mV": "0.001 V",
    "mA": "0.001 A",
    "mAh": "0.001 Ah",
    "W": "1 W",
    "0.1 degC": "0.1 °C",
    "permille": "0.1 %",
    "s": "1 s",
}


@dataclass(frozen=True, slots=True)
class Field:
    """One named value in a block: one register, or two for 32-bit types, or more for a
    string."""

    name: str
    type: str
    unit: str = ""
    doc: str = ""
    size: int = 0  #: registers; 0 = derived from the type
    bits: tuple[str, ...] = ()  #: bitfield: name of bit 0, 1, ... ("" = reserved, reads 0)
    values: tuple[tuple[int, str], ...] = ()  #: enum: value and meaning

    @property
    def length(self) -> int:
        return self.size or _SIZES.get(self.type, 1)

    @property
    def scale(self) -> str:
        return UNITS.get(self.unit, "")


class Layout:
    """An ordered, gap-free list of fields; offsets follow from the order."""

    def __init__(self, name: str, fields: Sequence[Field]) -> None:
        self.name = name
        self.fields = tuple(fields)
        self.offsets: dict[str, int] = {}
        offset = 0
        for f in self.fields:
            if f.name in self.offsets:
                raise ValueError(f"{name}: field {f.name!r} defined twice")
            if f.type not in SENTINELS:
                raise ValueError(f"{name}.{f.name}: unknown type {f.type!r}")
            self.offsets[f.name] = offset
            offset += f.length
        self.length = offset
        self._names = frozenset(self.offsets)
        self._by_name = {f.name: f for f in self.fields}
        self._plan = tuple(_plan(f) for f in self.fields)

    def field(self, name: str) -> Field:
        return self._by_name[name]

    def pack(self, values: Mapping[str, object]) -> tuple[int, ...]:
        """Registers of this layout; a field missing from ``values`` reads as its sentinel."""
        unknown = values.keys() - self._names
        if unknown:
            raise KeyError(f"{self.name}: no such fields {sorted(unknown)}")
        # the rules of encode_value, unrolled per field (the image is packed on every
        # snapshot: this loop is most of that work); test_fields checks they agree
        out: list[int] = []
        append = out.append
        get = values.get
        for name, kind, sentinel, lo, hi, f in self._plan:
            value = get(name)
            if kind is _PAD:
                append(sentinel)
                continue
            if kind is _OTHER:
                out.extend(encode_value(f, value))
                continue
            if value is None:
                v = sentinel
            else:
                v = int(value)  # type: ignore[call-overload]
                v = v & 0xFFFFFFFF if lo <= v <= hi else sentinel
            if kind is _ONE:
                append(v & 0xFFFF)
            else:
                append(v >> 16 & 0xFFFF)
                append(v & 0xFFFF)
        return tuple(out)


#: The value range each numeric type represents; anything else reads as the sentinel.
_RANGES: dict[str, tuple[int, int]] = {
    "int16": (-0x7FFF, 0x7FFF), "sunssf": (-0x7FFF, 0x7FFF),
    "int32": (-0x7FFFFFFF, 0x7FFFFFFF),
    "uint16": (0, 0xFFFE), "enum16": (0, 0xFFFE), "uint32": (0, 0xFFFFFFFE),
    "bitfield16": (0, 0xFFFF), "bitfield32": (0, 0xFFFFFFFF),
}
_ONE, _TWO, _PAD, _OTHER = "one register", "two registers", "pad", "other"


def _plan(f: Field) -> tuple[str, str, int, int, int, Field]:
    """How :meth:`Layout.pack` encodes ``f``: (name, kind, sentinel, low, high, field)."""
    sentinel = SENTINELS[f.type]
    if f.type == "pad" and f.length == 1:
        return f.name, _PAD, sentinel, 0, 0, f
    if f.type in _RANGES and f.length == _SIZES.get(f.type, 1):
        lo, hi = _RANGES[f.type]
        return f.name, _ONE if f.length == 1 else _TWO, sentinel, lo, hi, f
    return f.name, _OTHER, sentinel, 0, 0, f


def encode_value(f: Field, value: object) -> list[int]:
    """Registers for ``value`` in field ``f``; None or an unrepresentable value gives the
    sentinel (a value is never wrapped or clipped into a wrong one)."""
    t = f.type
    if t == "string":
        raw = b"" if value is None else str(value).encode("ascii", "replace")
        raw = raw[: 2 * f.length].ljust(2 * f.length, b"\0")
        return [raw[i] << 8 | raw[i + 1] for i in range(0, len(raw), 2)]
    if t == "pad":
        return [SENTINELS[t]]
    sentinel = SENTINELS[t]
    if value is None:
        v = sentinel
    else:
        v = int(value)  # type: ignore[call-overload]
        if t in ("int16", "sunssf"):
            v = v & 0xFFFF if -0x7FFF <= v <= 0x7FFF else sentinel
        elif t == "int32":
            v = v & 0xFFFFFFFF if -0x7FFFFFFF <= v <= 0x7FFFFFFF else sentinel
        elif t in ("uint16", "enum16"):
            v = v if 0 <= v <= 0xFFFE else sentinel
        elif t == "uint32":
            v = v if 0 <= v <= 0xFFFFFFFE else sentinel
        elif t == "bitfield16":
            v = v if 0 <= v <= 0xFFFF else sentinel
        elif t == "bitfield32":
            v = v if 0 <= v <= 0xFFFFFFFF else sentinel
    if f.length == 2:
        return [v >> 16 & 0xFFFF, v & 0xFFFF]
    return [v]


def decode_value(f: Field, registers: Sequence[int]) -> int | str | None:
    """Inverse of :func:`encode_value` (for tests and tools): None for the sentinel."""
    if f.type == "string":
        raw = b"".join(r.to_bytes(2, "big") for r in registers[: f.length])
        return raw.rstrip(b"\0").decode("ascii", "replace") or None
    v = registers[0] if f.length == 1 else registers[0] << 16 | registers[1]
    if v == SENTINELS[f.type]:
        return None
    if f.type in ("int16", "sunssf") and v & 0x8000:
        return v - 0x10000
    if f.type == "int32" and v & 0x80000000:
        return v - 0x100000000
    return v



def div_round(n: int, d: int) -> int:
    """``n / d`` rounded half away from zero, in integers (``d`` > 0)."""
    q = (abs(n) * 2 + d) // (2 * d)
    return q if n >= 0 else -q
