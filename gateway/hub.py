"""The hub: the one place where the latest bank snapshot lives.

Sources (south) hand the hub their part of the bank with :meth:`Hub.update`; the hub
assembles an immutable :class:`~gateway.model.BankSnapshot`, runs the processors (alarm
rules) over it, and publishes it. Publishing never blocks and never waits on a reader:

* north plugins read :attr:`Hub.latest` whenever a request arrives, or wait for the
  next snapshot with a :class:`SnapshotWatch` (a latest-wins slot: a slow reader skips
  snapshots, it never holds the poller back);
* events (alarm raised/cleared) go to bounded :class:`EventQueue` s; when a consumer
  falls behind, the oldest events are dropped and counted.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from gateway.bank import count_alarmed, make_bank_aggregates
from gateway.model import BankSnapshot, BusStatus, Event, ModuleReading

log = logging.getLogger(__name__)

Clock = Callable[[], float]


class Processor(Protocol):
    """Transforms each assembled snapshot (e.g. the alarm rules); must be fast and pure
    apart from its own state: it runs inside :meth:`Hub.update`."""

    def process(self, snapshot: BankSnapshot, now: float) -> tuple[BankSnapshot, Sequence[Event]]:
        ...  # pragma: no cover - protocol


def _aged(m: ModuleReading, now: float) -> ModuleReading:
    """``m`` with status STALE if its data outlived the source's stale age."""
    status = m.status_at(now)
    return m if status is m.status else dataclasses.replace(m, status=status)


def age_snapshot(snapshot: BankSnapshot, now: float) -> BankSnapshot:
    """``snapshot`` as it stands at ``now``: modules whose data outlived their stale age
    are STALE and the bank aggregates leave them out. The hub republishes at least once
    a second, so this normally returns ``snapshot`` itself; north plugins call it so that
    a hub that stopped publishing can never leave old values live."""
    modules = tuple(_aged(m, now) for m in snapshot.modules)
    if all(a is m for a, m in zip(modules, snapshot.modules)):
        return snapshot
    return dataclasses.replace(snapshot, modules=modules, bank=make_bank_aggregates(
        modules, alarmed_positions=(a.position for a in snapshot.alarms)))


class SnapshotWatch:
    """A latest-wins slot: :meth:`next` returns the newest snapshot not yet seen."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._seen = -1
        self._changed = asyncio.Event()

    def _notify(self) -> None:
        self._changed.set()

    async def next(self) -> BankSnapshot:
        while True:
            snap = self._hub.latest
            if snap is not None and snap.seq != self._seen:
                self._seen = snap.seq
                return snap
            self._changed.clear()
            await self._changed.wait()

    def close(self) -> None:
        self._hub._watches.discard(self)


class EventQueue:
    """A bounded FIFO of events; on overflow the oldest event is dropped and counted."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self._items: collections.deque[Event] = collections.deque(maxlen=maxsize)
        self._ready = asyncio.Event()
        self.dropped = 0

    def put(self, event: Event) -> None:
        if len(self._items) == self._items.maxlen:
            self.dropped += 1
        self._items.append(event)
        self._ready.set()

    def get_nowait(self) -> Event | None:
        if not self._items:
            return None
        return self._items.popleft()

    async def get(self) -> Event:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()

    def __len__(self) -> int:
        return len(self._items)


class Hub:
    def __init__(self, *, clock: Clock = time.monotonic, wall_clock: Clock = time.time) -> None:
        self._clock = clock
        self._wall_clock = wall_clock
        self._latest: BankSnapshot | None = None
        self._seq = 0
        self._parts: dict[str, tuple[tuple[ModuleReading, ...], tuple[BusStatus, ...]]] = {}
        self._processors: list[Processor] = []
        self._watches: set[SnapshotWatch] = set()
        self._queues: list[EventQueue] = []
        self.last_update_at: float | None = None  #: last update() from any source
        self.source_updated_at: dict[str, float] = {}

    @property
    def latest(self) -> BankSnapshot | None:
        return self._latest

    def add_processor(self, processor: Processor) -> None:
        self._processors.append(processor)

    def watch(self) -> SnapshotWatch:
        w = SnapshotWatch(self)
        self._watches.add(w)
        return w

    def subscribe_events(self, maxsize: int = 1024) -> EventQueue:
        q = EventQueue(maxsize)
        self._queues.append(q)
        return q

    def update(
        self,
        source: str,
        *,
        modules: Sequence[ModuleReading],
        buses: Sequence[BusStatus] = (),
    ) -> BankSnapshot:
        """Replace ``source``'s part of the bank and publish a new snapshot."""
        self._parts[source] = (tuple(modules), tuple(buses))
        self.source_updated_at[source] = self._clock()
        self.last_update_at = self.source_updated_at[source]
        return self._publish()

    def oldest_source_update(self) -> float | None:
        """When the least recently heard-from source last updated (None: none yet)."""
        return min(self.source_updated_at.values()) if self.source_updated_at else None

    async def tick(self, period_s: float = 1.0) -> None:
        """Re-publish every ``period_s`` so that ages and staleness move on even when no
        source publishes (a stalled poller must not leave its last values live)."""
        while True:
            await asyncio.sleep(period_s)
            if self._parts:
                self._publish()

    def republish(self) -> BankSnapshot:
        """Publish again from the current parts (e.g. after a processor's settings changed)."""
        return self._publish()

    def _publish(self) -> BankSnapshot:
        now = self._clock()
        all_modules = tuple(sorted(
            (_aged(m, now) for mods, _ in self._parts.values() for m in mods),
            key=lambda m: m.position,
        ))
        all_buses = tuple(b for _, buses in self._parts.values() for b in buses)
        self._seq += 1
        prev = self._latest
        snap = BankSnapshot(
            seq=self._seq,
            created_at=now,
            wall_time=self._wall_clock(),
            modules=all_modules,
            buses=all_buses,
            bank=make_bank_aggregates(all_modules),
            alarms=prev.alarms if prev else (),
            alarm_last_seq=prev.alarm_last_seq if prev else 0,
        )
        events: list[Event] = []
        for p in self._processors:
            snap, produced = p.process(snap, now)
            events.extend(produced)
        if snap.alarms:
            alarmed = (a.position for a in snap.alarms)
            if snap.modules is all_modules:  # only the alarmed count can have changed
                bank = dataclasses.replace(
                    snap.bank, modules_alarmed=count_alarmed(snap.modules, alarmed))
            else:
                bank = make_bank_aggregates(snap.modules, alarmed_positions=alarmed)
            snap = dataclasses.replace(snap, bank=bank)
        self._latest = snap
        for w in list(self._watches):
            w._notify()
        for ev in events:
            for q in self._queues:
                q.put(ev)
        return snap
