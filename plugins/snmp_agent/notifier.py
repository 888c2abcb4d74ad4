"""The notification originator component: alarm events in, traps and informs out.

It reads the hub's alarm events from a bounded queue of its own, so it never holds the
poller back, and the receivers never hold each other back:

* a v2c receiver gets an SNMPv2-Trap at once (one UDP datagram, never blocks);
* a v3 receiver has a bounded queue and a worker that sends one inform at a time and
  waits for the acknowledgement (pysnmp resends it ``retries`` times). An inform that is
  still not acknowledged stays at the head of the queue and is tried again with a
  doubling back-off up to 60 s, so a receiver that was down gets what it missed, in
  order, when it is back; when the queue is full the oldest inform is dropped and
  counted. Only the newest heartbeat waits in a queue.

On-battery and back-on-mains notifications (a few per outage) go out at once. Alarm
notifications pass a token bucket first (``rate_limit_burst`` at once, then
``rate_limit_per_s``); the excess is dropped for every receiver, counted and logged once
per burst. Receivers notice any loss from bmsAlarmLastSeq (in every alarm notification
and in the heartbeat) and re-read bmsAlarmTable.

On SIGHUP (:meth:`Notifier.apply`) receivers that did not change keep their queues;
removed ones are stopped, new ones started; the heartbeat interval and the rate limit
apply at once.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from gateway.hub import Hub, age_snapshot
from gateway.model import AlarmCleared, AlarmRaised, BankOnBattery, BankOnMains

from plugins.snmp_agent.notifications import (
    Category,
    Notification,
    TokenBucket,
    encode_v2c_trap,
    make_alarm_notification,
    make_cold_start,
    make_heartbeat,
    make_power_notification,
)
from plugins.snmp_agent.settings import NotificationSettings, Receiver

log = logging.getLogger(__name__)

EVENT_QUEUE_SIZE = 4096
BACKOFF_MAX_S = 60.0


@dataclass
class NotifierCounters:
    events: int = 0  #: alarm events read from the hub
    rate_limited: int = 0  #: alarm notifications dropped by the rate limit
    traps_sent: int = 0  #: v2c traps sent (one per receiver)
    informs_acknowledged: int = 0
    informs_unacknowledged: int = 0  #: attempts that got no acknowledgement (then retried)
    informs_dropped: int = 0  #: informs dropped from a full queue
    heartbeats: int = 0


class _Target(abc.ABC):
    """One receiver."""

    def __init__(self, receiver: Receiver, notifier: Notifier) -> None:
        self.receiver = receiver
        self.identity = receiver.identity()
        self.notifier = notifier

    def start(self) -> None:
        """Called once the notifier runs (inside its event loop)."""

    @abc.abstractmethod
    def submit(self, n: Notification) -> None:
        """Send ``n`` now, or queue it for sending."""

    @property
    def pending(self) -> bool:
        """Notifications wait to be delivered to a receiver that takes them."""
        return False

    async def close(self) -> None:
        """Stop; pending notifications are discarded."""


class _TrapTarget(_Target):
    def __init__(self, receiver: Receiver, notifier: Notifier) -> None:
        super().__init__(receiver, notifier)
        assert receiver.community is not None
        self.community = receiver.community.get_secret_value().encode()

    def submit(self, n: Notification) -> None:
        transport = self.notifier.transport
        if transport is None:
            return
        r = self.receiver
        transport.sendto(encode_v2c_trap(n, self.community, self.notifier.next_request_id()),
                         (r.host, r.port))
        self.notifier.counters.traps_sent += 1


class _InformTarget(_Target):
    def __init__(self, receiver: Receiver, notifier: Notifier) -> None:
        super().__init__(receiver, notifier)
        self.queue: collections.deque[Notification] = collections.deque()
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.failing = False

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(
                self.run(), name=f"snmp-inform:{self.receiver.label}")

    def submit(self, n: Notification) -> None:
        q = self.queue
        if n.category is Category.HEARTBEAT:  # only the newest heartbeat is worth sending
            for old in [x for x in q if x.category is Category.HEARTBEAT]:
                q.remove(old)
        while len(q) >= self.receiver.queue_size:
            dropped = q.popleft()
            self.notifier.counters.informs_dropped += 1
            log.warning("snmp_agent: %s: inform queue full, dropped %s", self.receiver.label,
                        dropped.label)
        q.append(n)
        self.ready.set()

    @property
    def pending(self) -> bool:
        # a receiver that does not acknowledge is not waited for
        return bool(self.queue) and not self.failing

    async def run(self) -> None:
        from plugins.snmp_agent.inform import InformSender  # imports pysnmp

        sender = InformSender(self.receiver, engine_seed=self.notifier.engine_seed)
        backoff = 1.0
        try:
            while True:
                while not self.queue:
                    self.ready.clear()
                    await self.ready.wait()
                n = self.queue[0]
                if await sender.send(n):
                    if self.queue and self.queue[0] is n:
                        self.queue.popleft()
                    self.notifier.counters.informs_acknowledged += 1
                    if self.failing:
                        log.info("snmp_agent: %s acknowledges informs again", self.receiver.label)
                    self.failing = False
                    backoff = 1.0
                    continue
                self.notifier.counters.informs_unacknowledged += 1
                if not self.failing:
                    log.warning("snmp_agent: %s does not acknowledge informs; %d queued, "
                                "retrying with back-off", self.receiver.label, len(self.queue))
                self.failing = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
        finally:
            sender.close()

    async def close(self) -> None:
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
            # asyncio.wait, not ``await task`` under suppress(CancelledError): that would
            # also swallow a cancellation of the caller (the notifier shutting down)
            await asyncio.wait([task])
            if not task.cancelled() and task.exception() is not None:
                log.error("snmp_agent: %s: sender failed: %r", self.receiver.label,
                          task.exception())


def _make_target(receiver: Receiver, notifier: Notifier) -> _Target:
    return (_TrapTarget if receiver.version == "v2c" else _InformTarget)(receiver, notifier)


class Notifier:
    """The ``snmp_notifier`` component (role north)."""

    name = "snmp_notifier"

    def __init__(self, settings: NotificationSettings, hub: Hub, *,
                 uptime_ticks: Callable[[], int], engine_seed: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.hub = hub
        self.events = hub.subscribe_events(EVENT_QUEUE_SIZE)
        #: the agent's "until the table serves snapshot N" (a notification goes out once
        #: what it announces is served), if any
        self.wait_served: Callable[[int], Awaitable[None]] | None = None
        self.uptime_ticks = uptime_ticks
        self.engine_seed = engine_seed
        self.clock = clock
        self.counters = NotifierCounters()
        self.settings = settings
        self.bucket = TokenBucket(settings.rate_limit_per_s, settings.rate_limit_burst, clock())
        self.targets: list[_Target] = [_make_target(r, self) for r in settings.receivers]
        self.transport: asyncio.DatagramTransport | None = None
        self.running = False
        self._request_id = 0
        self._limited = False
        self._heartbeat_changed = asyncio.Event()
        self._closing: set[asyncio.Task[Any]] = set()

    def next_request_id(self) -> int:
        self._request_id = self._request_id % (2**31 - 1) + 1
        return self._request_id

    def delivery_counts(self) -> tuple[int, int]:
        """(delivered, dropped) for bmsGwNotificationsSent/-Dropped: traps sent plus
        informs acknowledged, per receiver; rate-limited notifications plus informs
        dropped from a full queue."""
        c = self.counters
        return c.traps_sent + c.informs_acknowledged, c.rate_limited + c.informs_dropped

    # ------------------------------------------------------------------ settings ----
    def apply(self, settings: NotificationSettings) -> None:
        """New receivers, heartbeat interval and rate limit (SIGHUP)."""
        old = {t.identity: t for t in self.targets}
        targets = []
        for r in settings.receivers:
            t = old.pop(r.identity(), None)
            if t is None:
                t = _make_target(r, self)
                if self.running:
                    t.start()
                log.info("snmp_agent: notification receiver %s added", r.label)
            targets.append(t)
        for t in old.values():
            log.info("snmp_agent: notification receiver %s removed", t.receiver.label)
            if self.running:
                task = asyncio.get_running_loop().create_task(t.close())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
        self.targets = targets
        if settings.heartbeat_interval_s != self.settings.heartbeat_interval_s:
            self._heartbeat_changed.set()
        self.settings = settings
        self.bucket.configure(settings.rate_limit_per_s, settings.rate_limit_burst)

    # ------------------------------------------------------------------ sending -----
    def send(self, n: Notification) -> None:
        for t in self.targets:
            t.submit(n)

    def handle_event(self, event: Any) -> None:
        if isinstance(event, BankOnBattery | BankOnMains):
            self.counters.events += 1
            self.send(make_power_notification(event, self.uptime_ticks()))
            return
        if not isinstance(event, AlarmRaised | AlarmCleared):
            return
        self.counters.events += 1
        n = make_alarm_notification(event, self.uptime_ticks())
        if not self.bucket.take(self.clock()):
            self.counters.rate_limited += 1
            if not self._limited:
                log.warning("snmp_agent: notification rate limit reached (%g/s, burst %d): "
                            "dropping %s and further ones until it recovers; receivers see "
                            "the gap in bmsAlarmLastSeq", self.settings.rate_limit_per_s,
                            self.settings.rate_limit_burst, n.label)
            self._limited = True
            return
        if self._limited:
            log.info("snmp_agent: notification rate back under the limit (%d dropped so far)",
                     self.counters.rate_limited)
        self._limited = False
        self.send(n)

    def send_heartbeat(self) -> None:
        self.counters.heartbeats += 1
        latest = self.hub.latest  # as it stands now, like every value the agent serves
        self.send(make_heartbeat(None if latest is None else age_snapshot(latest, self.clock()),
                                 self.uptime_ticks()))

    async def flush(self) -> None:
        """Return once every alarm event the hub has queued is sent and every inform is
        acknowledged (receivers that do not acknowledge are not waited for). Called at
        shutdown after the pollers stopped; the caller bounds the wait."""
        while self.running and (len(self.events) or any(t.pending for t in self.targets)):
            await asyncio.sleep(0.02)

    # ------------------------------------------------------------------ run ---------
    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, family=socket.AF_INET)
        self.running = True
        try:
            for t in self.targets:
                t.start()
            if self.settings.cold_start:
                self.send(make_cold_start(self.uptime_ticks()))
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._heartbeats(), name="snmp-heartbeat")
                while True:
                    event = await self.events.get()
                    latest = self.hub.latest
                    if self.wait_served is not None and latest is not None:
                        # a manager that polls on a trap must find the alarm row
                        await self.wait_served(latest.seq)
                    self.handle_event(event)
                    while (ev := self.events.get_nowait()) is not None:
                        self.handle_event(ev)
        finally:
            self.running = False
            for t in self.targets:
                await t.close()
            for task in list(self._closing):
                task.cancel()
            self.transport.close()
            self.transport = None

    async def _heartbeats(self) -> None:
        while True:
            interval = self.settings.heartbeat_interval_s
            self._heartbeat_changed.clear()
            if interval <= 0:
                await self._heartbeat_changed.wait()
                continue
            try:
                async with asyncio.timeout(interval):
                    await self._heartbeat_changed.wait()
            except TimeoutError:
                self.send_heartbeat()

