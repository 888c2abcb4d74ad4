"""The register tables the server answers from, kept up to date incrementally.

:func:`~plugins.modbus_tcp.register_map.make_image` and
:func:`~plugins.modbus_tcp.protocol.compile_tables` build every register of every unit
from scratch. :class:`LiveTables` serves the same bytes (a test compares the two, byte
for byte, over a series of snapshots and clock steps) for a fraction of the work:

* the unit tables are compiled once; each block is a ``bytearray`` of fixed length
  that every unit showing it shares (a module's block sits in the bank unit and in the
  module's own unit), so a block rewritten in place is current in every unit at once;
* on :meth:`LiveTables.update` a module block is packed again only when its key
  changed: the module reading (by equality), the status the map serves for it, and its
  alarms. The bank block and the SunSpec view are packed again when the snapshot or a
  served status changed (together well under a millisecond);
* every other block gets only its age registers (``register_map.BANK_AGES`` and
  ``MODULE_AGES``) rewritten at their offsets.

Pure apart from the buffers it owns: time is passed in.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

from gateway.model import BankSnapshot
from plugins.modbus_tcp.bank_view import MAX_POSITIONS, DeviceInfo, make_bank_view
from plugins.modbus_tcp.fields import Layout, encode_value
from plugins.modbus_tcp.protocol import Table, UnitScheme, make_tables, pack_registers
from plugins.modbus_tcp.register_map import (
    BANK_AGES,
    BANK_BLOCK,
    BANK_BLOCK_START,
    MODULE_AGES,
    MODULE_BLOCK,
    MODULE_BLOCK_BASE,
    SUNSPEC_BASE,
    age_value,
    alarms_by_position,
    make_bank_registers,
    make_module_registers,
    make_sunspec_registers,
    module_block_start,
    served_by_position,
    unconfigured_registers,
)

T = TypeVar("T")


class _AgePatch(Generic[T]):
    """Rewrites one block's age registers in place."""

    __slots__ = ("_fields",)

    def __init__(self, layout: Layout, ages: Mapping[str, Callable[[T], float | None]]
                 ) -> None:
        self._fields = [(2 * layout.offsets[name], layout.field(name), then,
                         struct.Struct(f">{layout.field(name).length}H"))
                        for name, then in ages.items()]

    def apply(self, buffer: bytearray, source: T, now: float) -> None:
        for offset, field, then, fmt in self._fields:
            fmt.pack_into(buffer, offset, *encode_value(field, age_value(now, then(source))))


_BANK_AGES = _AgePatch(BANK_BLOCK, BANK_AGES)
_MODULE_AGES = _AgePatch(MODULE_BLOCK, MODULE_AGES)
_UNCONFIGURED = object()  #: the key of a position no module is configured at


class LiveTables:
    """The register tables of every served unit, rewritten in place on :meth:`update`."""

    def __init__(self, scheme: UnitScheme, *, stale_after_s: float,
                 device: DeviceInfo = DeviceInfo()) -> None:
        self._stale_after_s = stale_after_s
        self._device = device
        self._bank = bytearray(2 * BANK_BLOCK.length)
        self._sunspec = bytearray(len(pack_registers(make_sunspec_registers(
            make_bank_view(None, 0.0, stale_after_s), device))))
        self._modules = [bytearray(2 * MODULE_BLOCK.length) for _ in range(MAX_POSITIONS)]
        self._module_keys: list[object] = [None] * MAX_POSITIONS
        self._bank_key: object = None
        self.repacked = 0  #: module blocks packed again by the last update (for tests)
        self.version = 0  #: completed updates
        self.updated = False  #: the last :meth:`steps` to end wrote its update
        bank_unit = [(BANK_BLOCK_START, self._bank), (SUNSPEC_BASE, self._sunspec)]
        bank_unit += [(module_block_start(p), self._modules[p - 1])
                      for p in range(1, MAX_POSITIONS + 1)]
        self.tables: dict[int, Table] = make_tables(
            bank_unit,
            {p: [(BANK_BLOCK_START, self._bank), (MODULE_BLOCK_BASE, self._modules[p - 1])]
             for p in range(1, MAX_POSITIONS + 1)},
            scheme)
        self.update(None, 0.0)

    def update(self, snapshot: BankSnapshot | None, now: float) -> None:
        """Make every table serve ``snapshot`` at monotonic time ``now``."""
        for _ in self.steps(snapshot, now):
            pass

    def steps(self, snapshot: BankSnapshot | None, now: float) -> Iterator[None]:
        """:meth:`update` in steps: the blocks that changed are packed one step at a
        time with nothing written, then every write is made in the last step, at once,
        so that a request between two steps reads the tables as they were. If another
        update completed in between, this one writes nothing (:attr:`updated` stays
        False): the caller starts again from the newest snapshot."""
        self.updated = False
        version = self.version
        view = make_bank_view(snapshot, now, self._stale_after_s)
        served = served_by_position(view)
        writes: list[tuple[bytearray, bytes]] = []
        ages: list[tuple[_AgePatch, bytearray, object]] = []
        keys: list[tuple[int, object]] = []  # (position, key); position 0: the bank
        bank_key = (snapshot, view.status, tuple(s.status for s in view.modules))
        if not _same(bank_key, self._bank_key):
            writes.append((self._bank, pack_registers(make_bank_registers(view, now))))
            writes.append((self._sunspec, pack_registers(
                make_sunspec_registers(view, self._device))))
            keys.append((0, bank_key))
            yield
        else:
            ages.append((_BANK_AGES, self._bank, view))
        alarms_at = alarms_by_position(snapshot)
        for p in range(1, MAX_POSITIONS + 1):
            buffer = self._modules[p - 1]
            s = served.get(p)
            if s is None:
                if self._module_keys[p - 1] is not _UNCONFIGURED:
                    writes.append((buffer, pack_registers(unconfigured_registers(p))))
                    keys.append((p, _UNCONFIGURED))
                continue
            alarms = alarms_at.get(p, ())
            key = (s.reading, s.status, alarms)
            if _same(key, self._module_keys[p - 1]):
                ages.append((_MODULE_AGES, buffer, s))
            else:
                writes.append((buffer, pack_registers(make_module_registers(s, now, alarms))))
                keys.append((p, key))
                yield
        if self.version != version:
            self.updated = False  # overtaken: what was packed may be older than served
            return
        for buffer, data in writes:
            buffer[:] = data
        for patch, buffer, source in ages:
            patch.apply(buffer, source, now)
        for p, key in keys:
            if p == 0:
                self._bank_key = key
            else:
                self._module_keys[p - 1] = key
        self.repacked = sum(1 for p, _ in keys if p > 0 and _ is not _UNCONFIGURED)
        self.version += 1
        self.updated = True


def _same(key: object, cached: object) -> bool:
    """Keys are tuples whose first item is compared by identity when possible: an
    unchanged module reading is usually the very same object."""
    if not isinstance(key, tuple) or not isinstance(cached, tuple):
        return False
    return all(a is b or a == b for a, b in zip(key, cached, strict=True))
