"""Modbus/TCP server protocol, sans-IO: MBAP framing, request checks, responses.

A :class:`Session` turns the bytes a client sends into the bytes to send back, using
the compiled register tables of the moment (:class:`UnitTables`). It never blocks and
never does I/O, so the asyncio glue in :mod:`plugins.modbus_tcp.server` stays thin and
the rules below are tested without sockets.

Rules, checked in this order for each request:

1. MBAP header: protocol identifier 0 and a length field of 2..254 (unit identifier +
   a PDU of 1..253 bytes). Anything else is not Modbus/TCP: the session reports the
   connection as broken (the server closes that connection only).
2. Unit identifier: an identifier the tables do not serve answers exception 0x0A
   (gateway path unavailable), or nothing at all when the server is set to ignore
   unknown units.
3. Function code: 03 and 04 are served; every other code, each write included, answers
   exception 01 (illegal function).
4. Request length and quantity: a PDU that is not exactly function + address +
   quantity, or a quantity of 0 or more than 125, answers exception 03.
5. Addresses: a read touching an address outside every block, or crossing the end of a
   block, answers exception 02.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from plugins.modbus_tcp.register_map import (
    MAX_READ,
    ExceptionCode,
    RegisterImage,
)

READ_HOLDING_REGISTERS = 0x03
READ_INPUT_REGISTERS = 0x04
MBAP_LENGTH = 7  #: transaction id, protocol id, length, unit id
MAX_LENGTH_FIELD = 254  #: unit id + the largest PDU (253 bytes)

_HEADER = struct.Struct(">HHH")
_READ = struct.Struct(">HH")
_RESPONSE_HEAD = struct.Struct(">HHHBBB")


class Table:
    """One unit's registers as big-endian bytes, per block, for slicing.

    A block's buffer may be a ``bytearray`` that its owner rewrites in place (the live
    tables of :mod:`plugins.modbus_tcp.live_tables`); it never changes length."""

    __slots__ = ("starts", "ends", "data")

    def __init__(self, blocks: Sequence[tuple[int, bytes | bytearray]]) -> None:
        blocks = sorted(blocks, key=lambda b: b[0])
        self.starts = [start for start, _ in blocks]
        self.ends = [start + len(data) // 2 for start, data in blocks]
        self.data = [data for _, data in blocks]

    def read(self, address: int, count: int) -> bytes | bytearray | None:
        """``count`` registers at ``address`` as bytes, or None if any is not mapped."""
        i = bisect.bisect_right(self.starts, address) - 1
        if i < 0 or address + count > self.ends[i]:
            return None
        offset = 2 * (address - self.starts[i])
        return self.data[i][offset: offset + 2 * count]


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitScheme:
    """Which unit identifiers the server answers (see docs/modbus.md)."""

    bank_unit_id: int = 1
    direct_unit_ids: bool = True  #: 0 and 255 address the bank unit too
    module_unit_id_base: int | None = None  #: position p answers on base + p; None = off

    def bank_ids(self) -> tuple[int, ...]:
        return (self.bank_unit_id, 0, 255) if self.direct_unit_ids else (self.bank_unit_id,)


def pack_registers(values: Sequence[int]) -> bytes:
    """Registers as big-endian bytes."""
    return struct.pack(f">{len(values)}H", *values)


Buffer = bytes | bytearray


def make_tables(bank_unit: Sequence[tuple[int, Buffer]],
                module_units: Mapping[int, Sequence[tuple[int, Buffer]]],
                scheme: UnitScheme) -> dict[int, Table]:
    """Unit identifier -> registers, for every unit the scheme serves, from the packed
    blocks of the bank unit and of each module's unit (position -> blocks)."""
    bank = Table(bank_unit)
    tables = dict.fromkeys(scheme.bank_ids(), bank)
    if scheme.module_unit_id_base is not None:
        for position, blocks in module_units.items():
            tables[scheme.module_unit_id_base + position] = Table(blocks)
    return tables


def compile_tables(image: RegisterImage, scheme: UnitScheme) -> dict[int, Table]:
    """Unit identifier -> registers, for every unit the scheme serves, from scratch."""
    packed: dict[int, bytes] = {}  # id(values) -> bytes: module units share blocks

    def data(values: tuple[int, ...]) -> bytes:
        key = id(values)
        if key not in packed:
            packed[key] = pack_registers(values)
        return packed[key]

    return make_tables(
        [(b.start, data(b.values)) for b in image.bank_unit],
        {p: [(b.start, data(b.values)) for b in blocks]
         for p, blocks in image.module_units.items()},
        scheme)


def exception_response(tid: int, unit: int, function: int, code: int) -> bytes:
    return _RESPONSE_HEAD.pack(tid, 0, 3, unit, function | 0x80, code)


@dataclass(slots=True)
class Counters:
    """What a session (or the whole server) has answered."""

    requests: int = 0
    exceptions: int = 0
    unanswered: int = 0  #: requests to unknown units, ignored by configuration
    malformed: int = 0  #: connections closed for a frame that is not Modbus/TCP


class Session:
    """One client connection's request stream.

    ``tables`` is called once per :meth:`feed` and returns the register tables to answer
    from (the newest image); ``answer_unknown_units`` chooses between exception 0x0A and
    silence for unit identifiers the tables do not hold.
    """

    __slots__ = ("_tables", "_answer_unknown", "_buffer", "counters", "backlog")

    def __init__(self, tables: Callable[[], Mapping[int, Table]], *,
                 answer_unknown_units: bool = True, counters: Counters | None = None) -> None:
        self._tables = tables
        self._answer_unknown = answer_unknown_units
        self._buffer = b""
        self.counters = counters if counters is not None else Counters()
        self.backlog = False  #: the last feed stopped at its output limit with frames left

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._buffer)

    def feed(self, data: bytes, *, max_output: int | None = None) -> tuple[bytes, bool]:
        """Consume ``data``; return the bytes to send and whether the stream is broken
        (a malformed MBAP header: close the connection after sending the bytes).

        With ``max_output``, stop answering once that many bytes are ready and keep the
        rest; :attr:`backlog` then says to call ``feed(b"")`` again when the client has
        read its answers (a burst of small requests cannot swell into large buffers)."""
        buf = self._buffer + data if self._buffer else data
        size = len(buf)
        pos = 0
        out: list[bytes] = []
        produced = 0
        limit = max_output if max_output is not None else 1 << 62
        tables = self._tables()
        counters = self.counters
        self.backlog = False
        while size - pos >= MBAP_LENGTH:
            if produced >= limit:
                self.backlog = True
                break
            tid, protocol, length = _HEADER.unpack_from(buf, pos)
            if protocol != 0 or length < 2 or length > MAX_LENGTH_FIELD:
                self._buffer = b""
                counters.malformed += 1
                return b"".join(out), True
            end = pos + 6 + length
            if end > size:
                break
            unit = buf[pos + 6]
            function = buf[pos + 7]
            counters.requests += 1
            table = tables.get(unit)
            if table is None:
                if self._answer_unknown:
                    counters.exceptions += 1
                    out.append(exception_response(
                        tid, unit, function, ExceptionCode.GATEWAY_PATH_UNAVAILABLE))
                else:
                    counters.unanswered += 1
            elif function != READ_HOLDING_REGISTERS and function != READ_INPUT_REGISTERS:
                counters.exceptions += 1
                out.append(exception_response(tid, unit, function, ExceptionCode.ILLEGAL_FUNCTION))
            elif length != 6:
                counters.exceptions += 1
                out.append(exception_response(
                    tid, unit, function, ExceptionCode.ILLEGAL_DATA_VALUE))
            else:
                address, count = _READ.unpack_from(buf, pos + 8)
                registers = table.read(address, count) if 1 <= count <= MAX_READ else b""
                if registers:
                    n = 2 * count
                    out.append(_RESPONSE_HEAD.pack(tid, 0, 3 + n, unit, function, n))
                    out.append(registers)
                    produced += 9 + n
                else:
                    counters.exceptions += 1
                    out.append(exception_response(
                        tid, unit, function,
                        ExceptionCode.ILLEGAL_DATA_ADDRESS if registers is None
                        else ExceptionCode.ILLEGAL_DATA_VALUE))
            pos = end
        self._buffer = buf[pos:] if pos < size else b""
        return b"".join(out), False
