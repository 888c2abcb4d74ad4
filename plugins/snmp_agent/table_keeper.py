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

from collections.abc import Callable, Mapping, Sequence

from plugins.snmp_agent.oid_map import Part, Variable
from plugins.snmp_agent.responder import OID, Table


class TableKeeper:
    """The table for successive lists of parts, built incrementally."""

    def __init__(self, *, live: Mapping[OID, Callable[[], Variable]],
                 clock: Callable[[], float]) -> None:
        self._live = live
        self._clock = clock
        self.table: Table | None = None
        self._parts: dict[object, tuple[list[Variable], list[int]]] = {}
        self._keys: list[object] = []
        self.rebuilds = 0  #: full rebuilds (sorted again)
        self.patched = 0  #: variables patched in place

    def update(self, parts: Sequence[Part]) -> Table:
        table = self.table
        if table is None or [k for k, _ in parts] != self._keys:
            return self._rebuild(parts)
        patches: list[tuple[list[int], list[Variable], list[Variable]]] = []
        for key, items in parts:
            old, positions = self._parts[key]
            if items is old:
                continue
            if len(items) != len(old) or any(a.oid != b.oid for a, b in zip(items, old)):
                return self._rebuild(parts)
            patches.append((positions, old, items))
        for positions, old, items in patches:
            for i, a, b in zip(positions, old, items):
                if a != b:
                    table.patch(i, b)
                    self.patched += 1
        for key, items in parts:
            old, positions = self._parts[key]
            if items is not old:
                self._parts[key] = (items, positions)
        return table

    def _rebuild(self, parts: Sequence[Part]) -> Table:
        variables = sorted((v for _, items in parts for v in items), key=lambda v: v.oid)
        table = Table(variables, live=self._live, clock=self._clock, reuse=self.table)
        self._parts = {key: (items, [table.positions[v.oid] for v in items])
                       for key, items in parts}
        self._keys = [k for k, _ in parts]
        self.table = table
        self.rebuilds += 1
        return table

    def invalidate(self) -> None:
        """Rebuild at the next update (new settings)."""
        self.table = None
