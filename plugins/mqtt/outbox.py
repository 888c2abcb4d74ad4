"""The outbox: what waits for the broker, bounded, in order, optionally on disk.

Every message the plugin publishes passes through here, so the order on the broker is
the order of the events. Two bounds: alarm events (``kind="event"``) and the history of
state messages (``kind="state"``); when one is full its oldest message is dropped and
counted. With a path the queue lives in one SQLite file (WAL mode): every message is
committed when it is queued and deleted when the broker acknowledged it, so a crash or
a restart loses nothing and publishes the rest, in order, with the payloads (and
timestamps) they were made with.

Synchronous and quick (one small transaction per message; WAL needs no fsync per
commit): called from the event loop, it never waits on the network.
"""

from __future__ import annotations

import collections
import sqlite3
from pathlib import Path

from plugins.mqtt.topic_map import Kind, Message

FILE_NAME = "mqtt_queue.sqlite3"
KINDS: tuple[Kind, ...] = ("event", "state")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL
)
"""


class Outbox:
    """A bounded FIFO of :class:`Message` with an id per entry (its position in order)."""

    def __init__(self, *, max_events: int, max_states: int, path: Path | None = None) -> None:
        self.limits: dict[Kind, int] = {"event": max_events, "state": max_states}
        self.dropped: dict[Kind, int] = {k: 0 for k in KINDS}
        self._queues: dict[Kind, collections.deque[tuple[int, Message]]] = {
            k: collections.deque() for k in KINDS}
        self._next_id = 1
        self._db: sqlite3.Connection | None = None
        self.path = path
        self.restored = 0  #: messages found in the file at start
        if path is not None:
            self._open(path)

    def _open(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, isolation_level=None)  # autocommit: one statement each
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(_SCHEMA)
        for row_id, kind, topic, payload, qos, retain in db.execute(
                "SELECT id, kind, topic, payload, qos, retain FROM outbox ORDER BY id"):
            if kind not in self._queues:
                continue
            self._queues[kind].append((row_id, Message(
                topic=topic, payload=bytes(payload), qos=qos, retain=bool(retain),
                kind=kind)))
            self._next_id = max(self._next_id, row_id + 1)
            self.restored += 1
        self._db = db
        for kind in KINDS:  # the limits may have shrunk since the file was written
            self._trim(kind)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def depth(self, kind: Kind) -> int:
        return len(self._queues[kind])

    def put(self, message: Message) -> None:
        if self.limits[message.kind] == 0:
            self.dropped[message.kind] += 1
            return
        if self._db is not None:
            cur = self._db.execute(
                "INSERT INTO outbox (kind, topic, payload, qos, retain) VALUES (?,?,?,?,?)",
                (message.kind, message.topic, message.payload, message.qos,
                 int(message.retain)))
            row_id = cur.lastrowid
            assert row_id is not None
        else:
            row_id = self._next_id
        self._next_id = row_id + 1
        self._queues[message.kind].append((row_id, message))
        self._trim(message.kind)

    def _trim(self, kind: Kind) -> None:
        q = self._queues[kind]
        excess = len(q) - self.limits[kind]
        if excess <= 0:
            return
        gone = [q.popleft()[0] for _ in range(excess)]
        self.dropped[kind] += excess
        self._delete(gone)

    def peek(self) -> tuple[int, Message] | None:
        """The oldest message of either kind, not removed."""
        heads = [q[0] for q in self._queues.values() if q]
        return min(heads, key=lambda h: h[0]) if heads else None

    def remove(self, entry_id: int) -> None:
        """Forget the entry ``entry_id`` (the broker acknowledged it)."""
        for q in self._queues.values():
            if q and q[0][0] == entry_id:
                q.popleft()
                self._delete([entry_id])
                return
        raise KeyError(entry_id)

    def _delete(self, ids: list[int]) -> None:
        if self._db is not None and ids:
            self._db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])
