"""Keeps the agent's OID table current with the least work: pure, no sockets, no clock.

Rebuilding and re-encoding the whole table at every snapshot (the poller publishes after
each module; at 2 buses x 15 modules that was about 30 ms a time) stalled every request
queued behind it. The table is the sorted union of parts (:func:`oid_map.make_bank_parts`:
the gateway scalars, the bank, the buses, one part per module row, the alarms, plus the
system group and the engine group). :meth:`TableKeeper.update` compares each part with
the last one:

* the same list object (a module row that did not change, from
  :class:`~plugins.snmp_agent.oid_map.ModuleRowsCache`): nothing to do;
* the same OIDs: the changed values are patched in place at their known positions and
  only those varbinds are encoded again;
* otherwise (a module going stale loses its measurement columns, an alarm is raised or
  cleared, a module appears): the table is rebuilt, sorted once, and every unchanged
  varbind keeps its encoding.

Ages are not values of the table at all but :class:`~plugins.snmp_agent.oid_map.Elapsed`
markers resolved per request, so time passing never rebuilds anything. Patching in
place is safe because a request is answered in one go on the event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

from plugins.snmp_agent.oid_map import Part, Variable
from plugins.snmp_agent.responder import OID, Table


class TableKeeper:
    """The table for successive lists of parts, built incrementally."""

    def __init__(self, *, live: Mapping[OID, Callable[[], Variable]],
                 clock: Callable[[], float], objects: frozenset[OID] | None = None) -> None:
        self._live = live
        self._clock = clock
        self._objects = objects
        self.table: Table | None = None
        self._parts: dict[object, tuple[list[Variable], list[int]]] = {}
        self._keys: list[object] = []
        self.version = 0  #: moves on every commit and invalidation (a plan's yardstick)
        self.rebuilds = 0  #: full rebuilds (sorted again)
        self.patched = 0  #: variables patched in place

    def update(self, parts: Sequence[Part]) -> Table:
        plan = self.plan(parts)
        for _ in plan.steps():
            pass
        return self.commit(plan)

    def plan(self, parts: Sequence[Part]) -> Plan:
        """What :meth:`commit` will do for ``parts``, worked out by :meth:`Plan.steps`
        (a step per changed part; the table is not touched until the commit)."""
        return Plan(self, parts)

    def commit(self, plan: Plan) -> Table:
        """Apply a plan whose steps are done, in one go. The table must not have changed
        since the plan was made (the agent checks it)."""
        assert plan.done and plan.version == self.version, "a plan for another table"
        self.version += 1
        if plan.built is not None:
            self.table, self._parts, self._keys = plan.built
            self.rebuilds += 1
            return self.table
        table = self.table
        assert table is not None
        for i, v, encoded in plan.patches:
            table.put(i, v, encoded)
        self.patched += len(plan.patches)
        for key, items, positions in plan.replaced:
            self._parts[key] = (items, positions)
        return table

    def invalidate(self) -> None:
        """Rebuild at the next update (new settings)."""
        self.table = None
        self.version += 1


class Plan:
    """The patches that bring the keeper's table to a list of parts or, where OIDs came
    or went, the new table, built beside the one served."""

    def __init__(self, keeper: TableKeeper, parts: Sequence[Part]) -> None:
        self.keeper = keeper
        self.parts = parts
        self.version = keeper.version  #: the table this plan is for
        self.rebuild = keeper.table is None or [k for k, _ in parts] != keeper._keys
        self.patches: list[tuple[int, Variable, bytes | None]] = []
        self.replaced: list[tuple[object, list[Variable], list[int]]] = []
        self.built: tuple[Table, dict[object, tuple[list[Variable], list[int]]],
                          list[object]] | None = None
        self.done = False

    def steps(self) -> Iterator[None]:
        """Compare each changed part with the last and encode what changed, or build
        the new table; yields between steps of about a millisecond or less, so that the
        caller may let requests in."""
        keeper, table = self.keeper, self.keeper.table
        if not self.rebuild:
            assert table is not None
            for key, items in self.parts:
                old, positions = keeper._parts[key]
                if items is old:
                    continue
                if len(items) != len(old) or any(a.oid != b.oid for a, b in zip(items, old)):
                    self.rebuild = True
                    break
                for i, a, b in zip(positions, old, items):
                    if a != b:
                        self.patches.append((i, b, table.encoding(i, b)))
                self.replaced.append((key, items, positions))
                yield
        if self.rebuild:
            yield from self._build()
        self.done = True

    def _build(self) -> Iterator[None]:
        """Sort again, every unchanged varbind keeping its encoding (``reuse``)."""
        keeper = self.keeper
        variables = sorted((v for _, items in self.parts for v in items), key=lambda v: v.oid)
        yield
        extra = {} if keeper._objects is None else {"objects": keeper._objects}
        table, steps = Table.building(variables, live=keeper._live, clock=keeper._clock,
                                      reuse=keeper.table, **extra)
        yield from steps
        parts: dict[object, tuple[list[Variable], list[int]]] = {}
        for n, (key, items) in enumerate(self.parts, start=1):
            parts[key] = (items, [table.positions[v.oid] for v in items])
            if n % 16 == 0:
                yield
        self.built = (table, parts, [k for k, _ in self.parts])
