"""RFC 3416 command responder procedures over a sorted OID table. Pure: no sockets.

:class:`Table` holds what the agent serves at one instant (from :mod:`oid_map`) with
every varbind BER-encoded once; :func:`respond` applies the elements of procedure of
RFC 3416 section 4.2 to one request:

* GET (4.2.1): noSuchObject when no implemented object is a prefix of the name,
  noSuchInstance when one is but the instance does not exist;
* GETNEXT (4.2.2): the lexicographic successor, endOfMibView past the last variable;
* GETBULK (4.2.3): non-repeaters then repetitions; stops after an iteration whose
  repeaters are all endOfMibView (no rescans past the end of the view), and truncates
  the varbind list from the end to the size budget, down to none: never tooBig;
* SET (4.2.5): refused with noAccess at the first varbind: every principal's write
  view is empty;
* GET/GETNEXT replies that do not fit the budget become tooBig with an empty
  varbind list.

The caller turns the items of an :class:`Outcome` into BER (v2c fast path) or pyasn1
objects (SNMPv3 through pysnmp); sizes are always counted in encoded BER octets.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from plugins.snmp_agent import ber
from plugins.snmp_agent.oid_map import OBJECT_OIDS, Elapsed, Variable, resolve

OID = tuple[int, ...]
BUILD_STEP = 1000  #: variables per step of :meth:`Table.building`
Item = int | tuple[OID, int]
"""A response varbind: an index into the table, or (name, exception tag)."""


class Table:
    """The served variables, sorted, with their varbinds encoded once.

    ``live`` maps OIDs whose value must be taken at request time (sysUpTime, the snmp
    counters) to a function returning the current :class:`Variable`; a variable whose
    value is an :class:`~plugins.snmp_agent.oid_map.Elapsed` (an age) is resolved with
    ``clock`` at request time too. ``reuse``: a previous table whose encodings of the
    very same variables are taken instead of encoding them again.
    """

    __slots__ = ("oids", "variables", "encoded", "positions", "objects", "_live", "_clock")

    def __init__(self, variables: Sequence[Variable], *,
                 live: Mapping[OID, Callable[[], Variable]] | None = None,
                 objects: Iterable[OID] = OBJECT_OIDS,
                 clock: Callable[[], float] | None = None,
                 reuse: Table | None = None) -> None:
        for _ in self._build(variables, live=live, objects=objects, clock=clock,
                             reuse=reuse):
            pass

    @classmethod
    def building(cls, variables: Sequence[Variable], *,
                 live: Mapping[OID, Callable[[], Variable]] | None = None,
                 objects: Iterable[OID] = OBJECT_OIDS,
                 clock: Callable[[], float] | None = None,
                 reuse: Table | None = None) -> tuple[Table, Iterator[None]]:
        """A table and the steps that build it (a step per :data:`BUILD_STEP`
        variables): the same table as the constructor's once the steps are done,
        ``reuse`` only read, so that a caller can serve the old table meanwhile."""
        table = cls.__new__(cls)
        return table, table._build(variables, live=live, objects=objects, clock=clock,
                                   reuse=reuse)

    def _build(self, variables: Sequence[Variable], *,
               live: Mapping[OID, Callable[[], Variable]] | None,
               objects: Iterable[OID], clock: Callable[[], float] | None,
               reuse: Table | None) -> Iterator[None]:
        live = live or {}
        self.variables = list(variables)
        self.oids = [v.oid for v in self.variables]
        if any(a >= b for a, b in zip(self.oids, self.oids[1:])):
            raise ValueError("variables must be sorted by OID without duplicates")
        self.positions = {oid: i for i, oid in enumerate(self.oids)}
        self._clock = clock
        self._live = {self.positions[oid]: fn for oid, fn in live.items() if oid in self.positions}
        self.encoded: list[bytes | None] = [None] * len(self.variables)
        self.objects = objects if isinstance(objects, frozenset) else frozenset(objects)
        old = reuse.positions if reuse is not None else {}
        for i, v in enumerate(self.variables):
            if i % BUILD_STEP == BUILD_STEP - 1:
                yield
            if i in self._live or isinstance(v.value, Elapsed):
                continue
            j = old.get(v.oid)
            if j is not None and reuse is not None and reuse.variables[j] == v:
                self.encoded[i] = reuse.encoded[j]
            else:
                self.encoded[i] = ber.encode_varbind(v.oid, v.syntax, v.value)

    def __len__(self) -> int:
        return len(self.oids)

    def patch(self, i: int, v: Variable) -> None:
        """Serve ``v`` at position ``i`` (the same OID) from now on."""
        self.put(i, v, self.encoding(i, v))

    def encoding(self, i: int, v: Variable) -> bytes | None:
        """What :meth:`put` keeps for ``v`` at position ``i``: its encoded varbind, or
        None where the value is read per request (a live value, an age)."""
        if i in self._live or isinstance(v.value, Elapsed):
            return None
        return ber.encode_varbind(v.oid, v.syntax, v.value)

    def put(self, i: int, v: Variable, encoded: bytes | None) -> None:
        """Serve ``v``, encoded in advance by :meth:`encoding`, at position ``i``."""
        assert v.oid == self.oids[i]
        self.variables[i] = v
        self.encoded[i] = encoded

    def variable(self, i: int) -> Variable:
        fn = self._live.get(i)
        if fn is not None:
            return fn()
        v = self.variables[i]
        if isinstance(v.value, Elapsed):
            return resolve(v, self._now())
        return v

    def varbind(self, i: int) -> bytes:
        raw = self.encoded[i]
        if raw is None:
            v = self.variable(i)
            raw = ber.encode_varbind(v.oid, v.syntax, v.value)
        return raw

    def _now(self) -> float:
        if self._clock is None:
            raise ValueError("a table with ages needs a clock")
        return self._clock()

    def item_bytes(self, item: Item) -> bytes:
        if isinstance(item, int):
            return self.varbind(item)
        return ber.encode_exception_varbind(*item)

    def get(self, oid: OID) -> Item:
        i = self.positions.get(oid)
        if i is not None:
            return i
        # an instance name is an object's OID plus at least one sub-identifier
        for k in range(len(oid) - 1, 0, -1):
            if oid[:k] in self.objects:
                return (oid, ber.NO_SUCH_INSTANCE)
        return (oid, ber.NO_SUCH_OBJECT)

    def next_index(self, oid: OID) -> int | None:
        i = bisect.bisect_right(self.oids, oid)
        return i if i < len(self.oids) else None

    def get_next(self, oid: OID) -> Item:
        i = self.next_index(oid)
        return (oid, ber.END_OF_MIB_VIEW) if i is None else i


@dataclass(frozen=True, slots=True)
class Outcome:
    """What to answer: error-status, error-index and the varbinds.

    ``items`` is None when the response echoes the request's varbinds (an error).
    """

    error_status: int = ber.NO_ERROR
    error_index: int = 0
    items: tuple[Item, ...] | None = ()


TOO_BIG = Outcome(ber.TOO_BIG, 0, ())


def _fit(table: Table, items: list[Item], budget: int) -> Outcome:
    size = sum(len(table.item_bytes(it)) for it in items)
    return Outcome(items=tuple(items)) if size <= budget else TOO_BIG


def respond(table: Table, pdu_type: int, oids: Sequence[OID], *, non_repeaters: int = 0,
            max_repetitions: int = 0, budget: int) -> Outcome:
    """Process one request PDU against ``table``.

    ``budget`` is the room, in octets, for the response's encoded varbinds (the
    message size limit minus the message's other fields).
    """
    if pdu_type == ber.GET_REQUEST:
        return _fit(table, [table.get(o) for o in oids], budget)
    if pdu_type == ber.GET_NEXT_REQUEST:
        return _fit(table, [table.get_next(o) for o in oids], budget)
    if pdu_type == ber.SET_REQUEST:
        return Outcome(ber.NO_ACCESS, 1, None) if oids else Outcome()
    if pdu_type == ber.GET_BULK_REQUEST:
        return _bulk(table, oids, non_repeaters, max_repetitions, budget)
    raise ValueError(f"not a request PDU: 0x{pdu_type:02x}")


def _bulk(table: Table, oids: Sequence[OID], non_repeaters: int, max_repetitions: int,
          budget: int) -> Outcome:
    n = min(max(non_repeaters, 0), len(oids))
    m = max(max_repetitions, 0)
    items: list[Item] = []
    used = 0
    for oid in oids[:n]:
        item = table.get_next(oid)
        size = len(table.item_bytes(item))
        if used + size > budget:  # RFC 3416 4.2.3: fewer varbinds, never tooBig
            return Outcome(items=tuple(items))
        used += size
        items.append(item)
    repeaters = oids[n:]
    if not repeaters:
        return Outcome(items=tuple(items))
    last = len(table) - 1
    # per repeater: the table index last returned, or the name it ended at
    cursor: list[int | None] = [None] * len(repeaters)
    ended: list[OID | None] = [None] * len(repeaters)
    for rep in range(m):
        all_ended = True
        for j, oid in enumerate(repeaters):
            name = ended[j]
            if name is not None:
                item: Item = (name, ber.END_OF_MIB_VIEW)
            else:
                c = cursor[j]
                i = table.next_index(oid) if c is None else (c + 1 if c < last else None)
                if i is None:
                    name = oid if c is None else table.oids[c]
                    ended[j] = name
                    item = (name, ber.END_OF_MIB_VIEW)
                else:
                    cursor[j] = i
                    item = i
                    all_ended = False
            size = len(table.item_bytes(item))
            if used + size > budget:  # RFC 3416 4.2.3: drop varbinds from the end
                return Outcome(items=tuple(items))
            used += size
            items.append(item)
        if all_ended:  # every repeater is past the end: further iterations add nothing
            break
    return Outcome(items=tuple(items))
