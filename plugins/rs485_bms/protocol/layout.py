"""Declarative payload layouts: one description per answer drives decoding, encoding
and the human (JSON) view, so the three can never disagree.

A layout is a tuple of elements, each naming a field of the answer's dataclass:

* :class:`Num` - a big-endian integer of 1-4 bytes (optionally signed, optionally with a
  raw value meaning "not available", e.g. 0x8000 for a temperature sensor not fitted);
* :class:`Counted` - a count byte followed by that many integers (``extra`` more than the
  count says, for EG4's temperature list);
* :class:`Fixed` - a fixed number of integers without a count byte;
* :class:`Text` - fixed-width ASCII, padded;
* :class:`Choice` - what follows depends on a field read before (Pylontech's P byte
  selects 2- or 3-byte capacities; Seplos and EG4 only document one P value);
* :class:`Tail` - optional trailing fields, present as a prefix (PACE's extension tail);
* :class:`Varying` - trailing raw bytes of one of a few documented lengths.

A layout has at most one variable-length element (:class:`Tail` or :class:`Varying`),
and it is last. Where several pack blocks follow each other, each variant length is
tried and the walk has to end exactly at the end of the payload (:func:`decode_blocks`).
If two variants fit with different results, the one giving every pack the same cell
and sensor counts wins (a parallel group is identical modules); otherwise the payload
is refused rather than guessed.

Answer classes carry their layout as ``LAYOUT`` (a ``ClassVar``) and may define
``derived(self) -> dict`` for computed view fields.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

A = TypeVar("A")


@dataclass(frozen=True, slots=True)
class Scale:
    """How a wire integer is shown to people: ``(raw - offset) / divisor``."""

    divisor: int
    offset: int = 0


#: mV -> V, mAh -> Ah, Wh -> kWh
MILLI = Scale(1000)
#: 10 mV -> V, 10 mA -> A, 10 mAh -> Ah, 0.01 % -> %
CENTI = Scale(100)
#: 100 mA -> A, 0.1 % -> %, 0.1 degC -> degC
DECI = Scale(10)


def kelvin(offset: int) -> Scale:
    """0.1 K with the vendor's offset (2730 for PACE, 2731 elsewhere) -> degC."""
    return Scale(10, offset)


class Short(Exception):
    """The payload ended inside the layout; ``needed`` is the length it needed."""

    def __init__(self, needed: int) -> None:
        super().__init__(needed)
        self.needed = needed


class Unknown(Exception):
    """The payload holds a value the layout does not describe (e.g. an unknown P)."""


class Cursor:
    """A read position in a payload."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def take(self, size: int) -> bytes:
        end = self.pos + size
        if end > len(self.data):
            raise Short(end)
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk


def _show(scale: Scale | None, raw: int | None) -> int | float | None:
    if raw is None or scale is None:
        return raw
    return (raw - scale.offset) / scale.divisor


def read_int(cur: Cursor, size: int, signed: bool, unknown: int | None) -> int | None:
    """One big-endian integer; ``unknown`` (compared raw) reads as None."""
    pos = cur.pos
    end = pos + size
    data = cur.data
    if end > len(data):
        raise Short(end)
    cur.pos = end
    raw = int.from_bytes(data[pos:end], "big")
    if raw == unknown:
        return None
    if signed and raw >> (8 * size - 1):
        raw -= 1 << (8 * size)
    return raw


_STRUCT_CODES = {1: "B", 2: "H", 4: "I"}


def read_ints(cur: Cursor, count: int, size: int, signed: bool, unknown: int | None
              ) -> tuple[int | None, ...]:
    """``count`` integers as :func:`read_int` reads them one by one, in one go; running
    out raises :class:`Short` naming the end of the first integer that does not fit."""
    if count == 0:
        return ()
    pos = cur.pos
    data = cur.data
    end = pos + count * size
    if end > len(data):
        raise Short(pos + size * (max(0, len(data) - pos) // size + 1))
    code = _STRUCT_CODES.get(size)
    if code is not None:
        raws: tuple[int, ...] = struct.unpack_from(f">{count}{code}", data, pos)
    else:
        raws = tuple(int.from_bytes(data[i:i + size], "big") for i in range(pos, end, size))
    cur.pos = end
    if not signed and unknown is None:
        return raws
    bits = 8 * size
    top = 1 << (bits - 1)
    return tuple(None if raw == unknown else raw - (1 << bits) if signed and raw & top
                 else raw for raw in raws)


@dataclass(frozen=True, slots=True)
class _Int:
    """Writes one integer (shared by the integer elements; :func:`read_int` reads it)."""

    size: int
    signed: bool
    unknown: int | None

    def write(self, value: int | None, out: bytearray, name: str) -> None:
        if value is None:
            if self.unknown is None:
                raise ValueError(f"{name}: None is not allowed (no 'not available' value)")
            value = self.unknown
        elif not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{name}: {value!r} is not an integer")
        else:
            bits = 8 * self.size
            low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if self.signed else (
                0, (1 << bits) - 1)
            if not low <= value <= high or (self.unknown is not None and
                                             value & ((1 << bits) - 1) == self.unknown):
                raise ValueError(f"{name}: {value} does not fit {self.size} byte(s)"
                                 + (" as a measurement" if self.unknown is not None else ""))
        out += (value & ((1 << (8 * self.size)) - 1)).to_bytes(self.size, "big")


@dataclass(frozen=True, slots=True)
class Num:
    """One integer field.

    ``key`` is the name in the JSON view ("" hides the field there), ``scale`` how it
    is shown, ``unknown`` the raw value decoded as ``None``; ``bits`` (bit, name) pairs
    name single bits shown as booleans next to the raw value.
    """

    name: str
    size: int = 2
    signed: bool = False
    key: str | None = None
    scale: Scale | None = None
    unknown: int | None = None
    bits: tuple[tuple[int, str], ...] = ()

    @property
    def width(self) -> int:
        return self.size

    def _int(self) -> _Int:
        return _Int(self.size, self.signed, self.unknown)

    def read(self, cur: Cursor, values: dict[str, Any], variant: int) -> None:
        values[self.name] = read_int(cur, self.size, self.signed, self.unknown)

    def write(self, obj: object, out: bytearray) -> None:
        self._int().write(getattr(obj, self.name), out, self.name)

    def show(self, obj: object, view: dict[str, Any]) -> None:
        value = getattr(obj, self.name)
        key = self.name if self.key is None else self.key
        if key:
            view[key] = _show(self.scale, value)
        for bit, name in self.bits:
            view[name] = bool(value >> bit & 1)


@dataclass(frozen=True, slots=True)
class Counted:
    """A count byte, then ``count + extra`` integers (a tuple field)."""

    name: str
    count_key: str  #: the count's name in the JSON view
    size: int = 2
    signed: bool = False
    key: str | None = None
    scale: Scale | None = None
    unknown: int | None = None
    extra: int = 0

    def read(self, cur: Cursor, values: dict[str, Any], variant: int) -> None:
        count = cur.take(1)[0] + self.extra
        values[self.name] = read_ints(cur, count, self.size, self.signed, self.unknown)

    def write(self, obj: object, out: bytearray) -> None:
        items = getattr(obj, self.name)
        if not self.extra <= len(items) <= 0xFF + self.extra:
            raise ValueError(f"{self.name}: {len(items)} items; the count byte allows "
                             f"{self.extra}..{0xFF + self.extra}")
        out.append(len(items) - self.extra)
        item = _Int(self.size, self.signed, self.unknown)
        for value in items:
            item.write(value, out, self.name)

    def show(self, obj: object, view: dict[str, Any]) -> None:
        items = getattr(obj, self.name)
        view[self.count_key] = len(items) - self.extra
        view[self.key or self.name] = [_show(self.scale, v) for v in items]


@dataclass(frozen=True, slots=True)
class Fixed:
    """``count`` integers without a count byte (a tuple field)."""

    name: str
    count: int
    size: int = 1
    key: str | None = None

    def read(self, cur: Cursor, values: dict[str, Any], variant: int) -> None:
        values[self.name] = read_ints(cur, self.count, self.size, False, None)

    def write(self, obj: object, out: bytearray) -> None:
        items = getattr(obj, self.name)
        if len(items) != self.count:
            raise ValueError(f"{self.name}: {len(items)} items, the layout has {self.count}")
        item = _Int(self.size, False, None)
        for value in items:
            item.write(value, out, self.name)

    def show(self, obj: object, view: dict[str, Any]) -> None:
        view[self.key or self.name] = list(getattr(obj, self.name))


@dataclass(frozen=True, slots=True)
class Text:
    """Fixed-width ASCII. Decoding stops at the first NUL and strips trailing spaces and
    ``fill`` characters; encoding pads with ``fill``."""

    name: str
    size: int
    key: str | None = None
    fill: bytes = b" "

    @property
    def width(self) -> int:
        return self.size

    def read(self, cur: Cursor, values: dict[str, Any], variant: int) -> None:
        raw = cur.take(self.size).split(b"\0", 1)[0].rstrip(b" " + self.fill)
        values[self.name] = raw.decode("ascii", errors="replace")

    def write(self, obj: object, out: bytearray) -> None:
        text = getattr(obj, self.name)
        raw = text.encode("ascii")
        if len(raw) > self.size or b"\0" in raw or raw != raw.rstrip(b" " + self.fill):
            raise ValueError(f"{self.name}: {text!r} does not fit {self.size} characters "
                             "without NUL or trailing padding")
        out += raw.ljust(self.size, self.fill)

    def show(self, obj: object, view: dict[str, Any]) -> None:
        view[self.key or self.name] = getattr(obj, self.name)


FixedWidth = Num | Text
Field = Num | Counted | Fixed | Text


@dataclass(frozen=True, slots=True)
class Choice:
    """The fields that follow depend on the value of an earlier field ``selector``.

    A value without a case is :class:`Unknown`; encoding refuses values set for fields
    that only another case has.
    """

    selector: str
    cases: Mapping[int, tuple[Field, ...]]

    def read(self, cur: Cursor, values: dict[str, Any], variant: int) -> None:
        selected = values[self.selector]
        if selected not in self.cases:
            known = ", ".join(str(k) for k in self.cases)
            raise Unknown(f"{self.selector} = {selected}; the layout knows {known}")
        read_layout(self.cases[selected], cur, values, variant)

    def write(self, obj: object, out: bytearray) -> None:
        selected = getattr(obj, self.selector)
        if selected not in self.cases:
            raise ValueError(f"{self.selector} = {selected} has no layout")
        mine = self.cases[selected]
        own = {e.name for e in mine}
        for case in self.cases.values():
            for element in case:
                if element.name not in own and getattr(obj, element.name) is not None:
                    raise ValueError(f"{element.name} is set but {self.selector} = "
                                     f"{selected} leaves it out")
        write_layout(mine, obj, out)

    def show(self, obj: object, view: dict[str, Any]) -> None:
        show_layout(self.cases[getattr(obj, self.selector)], obj, view)


@dataclass(frozen=True, slots=True)
class Tail:
    """Optional trailing fields, present as a prefix: the variant is their byte length,
    one of ``lengths`` (each must end on a field boundary). Absent fields are ``None``
    and left out of the view."""

    elements: tuple[FixedWidth, ...]
    lengths: tuple[int, ...]

    def __post_init__(self) -> None:
        boundaries, total = [0], 0
        for element in self.elements:
            total += element.width
            boundaries.append(total)
        if any(n not in boundaries for n in self.lengths):
            raise ValueError(f"tail lengths {self.lengths} must be field boundaries "
                             f"{boundaries}")

    def read(self, cur: Cursor, values: dict[str, Any], variant: int) -> None:
        used = 0
        for element in self.elements:
            if used < variant:
                element.read(cur, values, variant)
                used += element.width
            else:
                values[element.name] = None

    def variant_of(self, obj: object) -> int:
        present = [getattr(obj, e.name) is not None for e in self.elements]
        count = present.count(True)
        if any(present[count:]):
            raise ValueError("tail fields must be present as a prefix: "
                             + ", ".join(e.name for e, p in zip(self.elements, present) if p))
        length = sum(e.width for e in self.elements[:count])
        if length not in self.lengths:
            raise ValueError(f"a tail of {length} bytes is not one of {self.lengths}")
        return length

    def write(self, obj: object, out: bytearray) -> None:
        length = self.variant_of(obj)
        for element in self.elements:
            if length <= 0:
                break
            element.write(obj, out)
            length -= element.width

    def show(self, obj: object, view: dict[str, Any]) -> None:
        for element in self.elements:
            if getattr(obj, element.name) is not None:
                element.show(obj, view)


@dataclass(frozen=True, slots=True)
class Varying:
    """Trailing raw bytes (a tuple of ints) of one of ``lengths``; the variant is the length."""

    name: str
    lengths: tuple[int, ...]
    key: str | None = None

    def read(self, cur: Cursor, values: dict[str, Any], variant: int) -> None:
        values[self.name] = tuple(cur.take(variant))

    def variant_of(self, obj: object) -> int:
        length = len(getattr(obj, self.name))
        if length not in self.lengths:
            raise ValueError(f"{self.name}: {length} bytes is not one of {self.lengths}")
        return length

    def write(self, obj: object, out: bytearray) -> None:
        self.variant_of(obj)
        out += bytes(getattr(obj, self.name))

    def show(self, obj: object, view: dict[str, Any]) -> None:
        view[self.key or self.name] = list(getattr(obj, self.name))


Element = Num | Counted | Fixed | Text | Choice | Tail | Varying


def read_layout(layout: tuple[Element, ...], cur: Cursor, values: dict[str, Any],
                variant: int) -> None:
    for element in layout:
        element.read(cur, values, variant)


def write_layout(layout: tuple[Element, ...], obj: object, out: bytearray) -> None:
    for element in layout:
        element.write(obj, out)


def show_layout(layout: tuple[Element, ...], obj: object, view: dict[str, Any]) -> None:
    for element in layout:
        element.show(obj, view)


def _variable(layout: tuple[Element, ...]) -> Tail | Varying | None:
    last = layout[-1]
    return last if isinstance(last, Tail | Varying) else None


def variants(cls: Any) -> tuple[int, ...]:
    """The lengths the layout's variable part may take (``(0,)`` if it has none)."""
    variable = _variable(cls.LAYOUT)
    return variable.lengths if variable is not None else (0,)


class Mismatch(Exception):
    """Why a payload does not decode: no variant fits (``needed``: the lengths complete
    walks implied, or with ``at_least`` the shortest length a walk ran out at), several
    fit with different results (``ambiguous``: those variants), or a value is unknown."""

    def __init__(self, *, needed: tuple[int, ...] = (), at_least: bool = False,
                 ambiguous: tuple[int, ...] = (), unknown: str = "") -> None:
        super().__init__(needed, at_least, ambiguous, unknown)
        self.needed = needed
        self.at_least = at_least
        self.ambiguous = ambiguous
        self.unknown = unknown


def decode_blocks(cls: type[A], data: bytes, start: int, count: int) -> tuple[A, ...]:
    """Decode ``count`` blocks of ``cls`` from ``data[start:]``, which they must fill.

    Every block has the same variant (tail length); each variant is tried. If several
    fit with different results, the one under which all blocks report the same counts
    (cells, sensors) is taken: a parallel group is made of identical modules. Raises
    :class:`Mismatch` when none fits, or when that does not single one out.
    """
    fits: dict[int, tuple[A, ...]] = {}
    ended: set[int] = set()
    ran_out: set[int] = set()
    unknown = ""
    for variant in variants(cls):
        cur = Cursor(data, start)
        try:
            blocks = tuple(_read_one(cls, cur, variant) for _ in range(count))
        except Short as short:
            ran_out.add(short.needed)
            continue
        except Unknown as exc:
            unknown = str(exc)
            continue
        if cur.pos == len(data):
            fits[variant] = blocks
        else:
            ended.add(cur.pos)
    distinct = set(fits.values())
    if len(distinct) > 1:
        distinct = {blocks for blocks in distinct if len({counts_of(b) for b in blocks}) == 1}
    if len(distinct) == 1:
        return distinct.pop()
    if fits:
        raise Mismatch(ambiguous=tuple(sorted(fits)))
    if ended:
        raise Mismatch(needed=tuple(sorted(ended)), unknown=unknown)
    raise Mismatch(needed=(min(ran_out),) if ran_out else (), at_least=True, unknown=unknown)


def counts_of(block: Any) -> tuple[int, ...]:
    """The lengths of a block's counted lists (cells, temperature sensors)."""
    return tuple(len(getattr(block, e.name)) for e in block.LAYOUT if isinstance(e, Counted))


def _read_one(cls: Any, cur: Cursor, variant: int) -> Any:
    values: dict[str, Any] = {}
    read_layout(cls.LAYOUT, cur, values, variant)
    return cls(**values)


def decode_struct(cls: type[A], data: bytes) -> A:
    """Decode a payload that is exactly one ``cls`` (raises :class:`Mismatch`)."""
    return decode_blocks(cls, data, 0, 1)[0]


def encode_struct(obj: Any) -> bytes:
    """The wire bytes of ``obj`` by its class's layout (raises :class:`ValueError`)."""
    out = bytearray()
    write_layout(type(obj).LAYOUT, obj, out)
    return bytes(out)


def variant_of(obj: Any) -> int:
    """The variant (variable-part length) ``obj`` encodes with."""
    variable = _variable(type(obj).LAYOUT)
    return variable.variant_of(obj) if variable is not None else 0


def describe_struct(obj: Any) -> dict[str, Any]:
    """The JSON view of ``obj``: field names and units of the test vectors, floats."""
    view: dict[str, Any] = {}
    show_layout(type(obj).LAYOUT, obj, view)
    derived: Callable[[], dict[str, Any]] | None = getattr(obj, "derived", None)
    if derived is not None:
        view.update(derived())
    return view
