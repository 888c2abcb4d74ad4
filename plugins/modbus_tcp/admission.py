"""Who may connect, and who makes room: the Modbus server's connection policy, pure.

A SCADA master that opens a new connection for every poll must be served while idle
clients, half-open connections or a byte-a-second (slowloris) client hold every slot.
So a full server never refuses a newcomer: it admits it, gives it a moment to send its
request (``GRACE_S``, a fraction of a second), and then closes the connections that have
gone longest without completing a request, until the limits hold again
(:func:`surplus`):

1. a source (IP address) over ``max_per_source`` connections loses its own longest-idle
   ones: one client can never push out another's connections;
2. a server over ``max_connections`` loses the longest-idle connections of the source
   holding the most connections (the flood's, when there is one).

Judging only after the grace period matters under a burst: connections accepted
together are all new, and a client whose request is already waiting in the socket would
otherwise be closed before it is read. A hard cap (a multiple of ``max_connections``)
bounds what a burst can open meanwhile; past it the trim happens at once.

"Idle" counts from the connection's last *complete* request (or its start), so bytes
trickling in do not keep a slot; :func:`overdue` finds the connections whose started
frame has not completed within the frame deadline. Sources outside ``allowed`` networks
are refused before any of this (:class:`gateway.access.AccessList`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

GRACE_S = 0.2  #: a new connection's time to send its request before idleness is judged
HARD_CAP_FACTOR = 16  #: beyond max_connections x this (256 by default) the trim is at once
K = TypeVar("K")


@dataclass(slots=True)
class Slot(Generic[K]):
    """What the policy knows of one open connection."""

    key: K
    source: str  #: the peer's IP address, as text
    last_request: float  #: when its last complete request arrived (or it connected)
    frame_started: float | None = None  #: when the first byte of an incomplete frame came
    connected_at: float = 0.0

    def new(self, now: float) -> bool:
        """Still within its grace period: not judged yet."""
        return now - self.connected_at < GRACE_S


def surplus(slots: Iterable[Slot[K]], *, max_connections: int, max_per_source: int,
            keep: Collection[K] = ()) -> list[K]:
    """The connections to close so that the limits hold, longest-idle first (never one
    in ``keep``)."""
    by_source: dict[str, list[Slot[K]]] = {}
    for s in sorted(slots, key=lambda s: s.last_request):  # longest idle first
        by_source.setdefault(s.source, []).append(s)
    victims: list[K] = []
    for own in by_source.values():
        while len(own) > max_per_source and _pop_idlest(own, keep, victims):
            pass
    total = sum(len(own) for own in by_source.values())
    while total > max_connections:
        for own in sorted(by_source.values(), key=len, reverse=True):
            if _pop_idlest(own, keep, victims):
                total -= 1
                break
        else:
            break  # only connections to keep are left
    return victims


def _pop_idlest(own: list[Slot[K]], keep: Collection[K], victims: list[K]) -> bool:
    for i, s in enumerate(own):
        if s.key not in keep:
            victims.append(own.pop(i).key)
            return True
    return False


def overdue(slots: Iterable[Slot[K]], now: float, frame_timeout_s: float) -> list[K]:
    """Connections whose incomplete frame began more than ``frame_timeout_s`` ago."""
    return [s.key for s in slots
            if s.frame_started is not None and now - s.frame_started > frame_timeout_s]
