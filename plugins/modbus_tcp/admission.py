"""Who may connect, and who makes room: the Modbus server's connection policy, pure.

A SCADA master that opens a new connection for every poll must be served while idle
clients, half-open connections or a byte-a-second (slowloris) client hold every slot.
So a full server never refuses a newcomer; it closes the connection that has gone
longest without completing a request:

1. A source (IP address) at ``max_per_source`` connections makes room among its own:
   one client can never push out another's connections.
2. Otherwise, a server at ``max_connections`` closes the longest-idle connection of the
   source holding the most connections (the flood's, when there is one).

"Idle" counts from the connection's last *complete* request (or its start), so bytes
trickling in do not keep a slot; :func:`overdue` finds the connections whose started
frame has not completed within the frame deadline. Sources outside ``allowed`` networks
are refused before any of this (:func:`source_allowed`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
K = TypeVar("K")


@dataclass(slots=True)
class Slot(Generic[K]):
    """What the policy knows of one open connection."""

    key: K
    source: str  #: the peer's IP address, as text
    last_request: float  #: when its last complete request arrived (or it connected)
    frame_started: float | None = None  #: when the first byte of an incomplete frame came


def source_allowed(source: str, allowed: Sequence[Network] | None) -> bool:
    """True if ``allowed`` is None (no list: everyone) or a network holds ``source``.
    An IPv4 client on an IPv6 socket (``::ffff:a.b.c.d``) is matched as IPv4."""
    if allowed is None:
        return True
    try:
        address = ipaddress.ip_address(source.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == net.version and address in net for net in allowed)


def make_room(slots: Iterable[Slot[K]], source: str, *, max_connections: int,
              max_per_source: int) -> K | None:
    """The connection to close so that a new one from ``source`` fits, or None."""
    slots = list(slots)
    own = [s for s in slots if s.source == source]
    if len(own) >= max_per_source:
        return _longest_idle(own)
    if len(slots) < max_connections:
        return None
    per_source: dict[str, int] = {}
    for s in slots:
        per_source[s.source] = per_source.get(s.source, 0) + 1
    most = max(per_source.values())
    return _longest_idle([s for s in slots if per_source[s.source] == most])


def _longest_idle(slots: list[Slot[K]]) -> K:
    return min(slots, key=lambda s: s.last_request).key


def overdue(slots: Iterable[Slot[K]], now: float, frame_timeout_s: float) -> list[K]:
    """Connections whose incomplete frame began more than ``frame_timeout_s`` ago."""
    return [s.key for s in slots
            if s.frame_started is not None and now - s.frame_started > frame_timeout_s]
