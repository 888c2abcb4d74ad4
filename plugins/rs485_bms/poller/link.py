"""Per-module link state: never-seen -> online -> suspect -> offline, and back.

Pure: every method takes ``now`` (seconds of a monotonic clock). The poller asks
:meth:`ModuleLink.due` whether to spend bus time on a module this cycle; an offline or
never-seen module is retried with a doubling back-off so that a dead module does not eat
every cycle's time budget.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from gateway.model import (
    BmsStatus,
    Identity,
    LinkCounters,
    LinkState,
    ModuleReading,
    ModuleStatus,
    Telemetry,
)


@dataclass
class ModuleLink:
    bus: str
    address: int
    position: int
    #: a module is known to be at this address (configured, or found by ``auto``); only
    #: present modules are polled as modules and published
    present: bool = True
    offline_after: int = 3  #: consecutive failures that make a module offline
    retry_base_s: float = 5.0
    retry_max_s: float = 60.0
    state: LinkState = LinkState.NEVER_SEEN
    failures: int = 0  #: consecutive failed polls
    next_try_at: float = float("-inf")
    updated_at: float | None = None
    telemetry: Telemetry | None = None
    bms: BmsStatus | None = None
    identity: Identity | None = None
    identity_at: float | None = None
    counters: LinkCounters = field(default_factory=LinkCounters)

    def due(self, now: float) -> bool:
        return now >= self.next_try_at

    def identity_due(self, now: float, interval_s: float) -> bool:
        return self.identity_at is None or now - self.identity_at >= interval_s

    def count(self, **increments: int) -> None:
        self.counters = dataclasses.replace(
            self.counters,
            **{k: getattr(self.counters, k) + v for k, v in increments.items()},
        )

    def succeeded(self, now: float, telemetry: Telemetry, bms: BmsStatus | None) -> LinkState:
        """A complete, valid poll; returns the previous state (for change logging)."""
        before = self.state
        self.state = LinkState.ONLINE
        self.failures = 0
        self.next_try_at = float("-inf")
        self.updated_at = now
        self.telemetry = telemetry
        self.bms = bms
        return before

    def failed(self, now: float) -> LinkState:
        """A poll that got no valid answer; returns the previous state."""
        before = self.state
        self.failures += 1
        if self.state is LinkState.ONLINE:
            self.state = LinkState.SUSPECT
        if self.state is LinkState.SUSPECT and self.failures >= self.offline_after:
            self.state = LinkState.OFFLINE
        if self.state in (LinkState.OFFLINE, LinkState.NEVER_SEEN):
            # back-off counts from the failures beyond the first (or beyond going offline)
            extra = self.failures - (self.offline_after if self.state is LinkState.OFFLINE else 1)
            delay = min(self.retry_base_s * (2 ** max(0, extra)), self.retry_max_s)
            self.next_try_at = now + delay
        return before

    def status(self, now: float, *, stale_after_s: float, transport_up: bool = True
               ) -> ModuleStatus:
        if self.updated_at is None:
            return ModuleStatus.NEVER_SEEN
        if self.state is LinkState.OFFLINE:
            return ModuleStatus.OFFLINE
        if not transport_up or now - self.updated_at > stale_after_s:
            return ModuleStatus.STALE
        return ModuleStatus.OK

    def reading(self, now: float, *, stale_after_s: float, transport_up: bool = True
                ) -> ModuleReading:
        return ModuleReading(
            bus=self.bus,
            address=self.address,
            position=self.position,
            status=self.status(now, stale_after_s=stale_after_s, transport_up=transport_up),
            link=self.state,
            updated_at=self.updated_at,
            stale_after_s=stale_after_s,
            identity=self.identity,
            telemetry=self.telemetry,
            bms=self.bms,
            counters=self.counters,
        )
