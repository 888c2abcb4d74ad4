"""The aiomqtt glue: one client task with a reconnect loop, fed by the outbox.

Three producers never touch the network: the snapshot watch (module, bank and alarm
table messages through the pure :class:`~plugins.mqtt.topic_map.Planner`), the hub's
event queue (alarm raised/cleared) and a health timer. They put messages into the
:class:`~plugins.mqtt.outbox.Outbox`; the connection task publishes them in order and
removes each only once the broker has it (PUBACK for QoS 1). The poller and the other
north plugins never wait on the broker: a slow or absent broker only fills the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import math
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import aiomqtt

from gateway.health import Figure, Health
from gateway.hub import Hub
from gateway.model import ModuleReading

from plugins.mqtt.discovery import discovery_key, discovery_messages
from plugins.mqtt.outbox import FILE_NAME, KINDS, Outbox
from plugins.mqtt.settings import MqttSettings, TlsSettings, topic_level
from plugins.mqtt.topic_map import (
    OFFLINE,
    ONLINE,
    Layout,
    Message,
    Planner,
    event_message,
    health_message,
)

log = logging.getLogger(__name__)

GOODBYE_TIMEOUT_S = 2.0  #: how long a clean shutdown waits to say "offline"


def make_tls_context(tls: TlsSettings) -> ssl.SSLContext:
    """A client TLS context: the CA file (or the system's CAs), the optional client
    certificate, and verification of the broker's certificate and name unless off."""
    ctx = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=str(tls.ca_file) if tls.ca_file else None)
    if tls.cert_file is not None and tls.key_file is not None:
        ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    if not tls.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def describe(exc: BaseException) -> str:
    """One line saying why the broker could not be reached or used."""
    text = str(exc) or type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return f"the broker's TLS certificate was not accepted ({text})"
    return text


class MqttPublisher:
    name = "mqtt"

    def __init__(self, settings: MqttSettings, hub: Hub, *, site: str,
                 state_dir: Path | None, health: Health | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time, version: str | None = None
                 ) -> None:
        self.settings = settings
        self.hub = hub
        self.health = health
        self.clock = clock
        self.wall_clock = wall_clock
        self.version = version or importlib.metadata.version("bms-gateway")
        self.layout = Layout(settings.topic_prefix, topic_level(settings.site or site))
        self.planner = Planner(self.layout, min_interval_s=settings.min_interval_s,
                               unchanged_interval_s=settings.unchanged_interval_s,
                               state_qos=settings.state_qos)
        path = None
        if settings.queue.persist and state_dir is not None:
            path = Path(state_dir) / FILE_NAME
        self.outbox = Outbox(max_events=settings.queue.max_events,
                             max_states=settings.queue.max_states, path=path)
        if self.outbox.restored:
            log.info("mqtt: %d messages from before the restart wait in %s",
                     self.outbox.restored, path)
        self.events = hub.subscribe_events(maxsize=max(1024, settings.queue.max_events))
        self.tls_context = make_tls_context(settings.tls) if settings.tls.enabled else None
        self._queued = asyncio.Event()
        self._discovery: dict[str, Message] = {}
        self._discovery_keys: dict[tuple[str, int], tuple[object, ...]] = {}
        self.connected = False
        self.connects = 0
        self.published: dict[str, int] = {k: 0 for k in KINDS}
        self._problem: str | None = None

    # ------------------------------------------------------------------ health ---
    def health_figures(self) -> list[Figure]:
        out: list[Figure] = []
        for kind in KINDS:
            labels = (("kind", kind),)
            out += [
                Figure(name="mqtt_queue_depth", value=self.outbox.depth(kind), kind="gauge",
                       help="messages waiting for the MQTT broker", labels=labels),
                Figure(name="mqtt_dropped_total", value=self.outbox.dropped[kind],
                       kind="counter", help="messages dropped because the MQTT queue was "
                       "full", labels=labels),
                Figure(name="mqtt_published_total", value=self.published[kind],
                       kind="counter", help="messages the MQTT broker accepted",
                       labels=labels)]
        out += [
            Figure(name="mqtt_connected", value=int(self.connected), kind="gauge",
                   help="1 while connected to the MQTT broker"),
            Figure(name="mqtt_reconnects_total", value=max(0, self.connects - 1),
                   kind="counter", help="connections to the MQTT broker after the first"),
            Figure(name="mqtt_event_queue_dropped_total", value=self.events.dropped,
                   kind="counter", help="alarm events the hub dropped before the MQTT "
                   "plugin read them")]
        return out

    # --------------------------------------------------------------- producers ---
    def queue(self, message: Message) -> None:
        self.outbox.put(message)
        self._queued.set()

    def _update_discovery(self, modules: tuple[ModuleReading, ...]) -> list[Message]:
        ha = self.settings.home_assistant
        if not ha.enabled:
            return []
        changed: list[Message] = []
        for m in modules:
            key = discovery_key(m)
            if self._discovery_keys.get((m.bus, m.address)) == key:
                continue
            self._discovery_keys[(m.bus, m.address)] = key
            for msg in discovery_messages(self.layout, [m], prefix=ha.discovery_prefix,
                                          version=self.version):
                if self._discovery.get(msg.topic) != msg:
                    self._discovery[msg.topic] = msg
                    changed.append(msg)
        return changed

    async def _produce_states(self) -> None:
        watch = self.hub.watch()
        try:
            while True:
                snapshot = await watch.next()
                changed = self._update_discovery(snapshot.modules)
                if self.connected:  # otherwise they go out first at the next connect
                    for msg in changed:
                        self.queue(msg)
                for msg in self.planner.plan(snapshot, self.clock()):
                    self.queue(msg)
        finally:
            watch.close()

    async def _produce_events(self) -> None:
        while True:
            message = event_message(self.layout, await self.events.get())
            if message is not None:
                self.queue(message)

    async def _produce_health(self) -> None:
        while True:
            await asyncio.sleep(self.settings.health_interval_s)
            figures = self.health.read() if self.health is not None else {
                "mqtt": self.health_figures()}
            self.queue(health_message(self.layout, figures, self.hub.latest,
                                      self.wall_clock(), qos=self.settings.state_qos))

    # -------------------------------------------------------------- connection ---
    def make_client(self) -> aiomqtt.Client:
        s = self.settings
        return aiomqtt.Client(
            s.host, s.effective_port,
            username=s.username,
            password=s.password.get_secret_value() if s.password is not None else None,
            identifier=s.client_id or f"bms-gateway-{self.layout.site}",
            protocol=(aiomqtt.ProtocolVersion.V5 if s.protocol == "5"
                      else aiomqtt.ProtocolVersion.V311),
            will=aiomqtt.Will(self.layout.status, OFFLINE.encode(), qos=1, retain=True),
            keepalive=s.keepalive_s,
            timeout=s.publish_timeout_s,
            tls_context=self.tls_context,
            logger=logging.getLogger("plugins.mqtt.client"),
        )

    async def _publish(self, client: aiomqtt.Client, msg: Message,
                       timeout_s: float | None = None) -> None:
        timeout_s = self.settings.publish_timeout_s if timeout_s is None else timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                await client.publish(msg.topic, msg.payload, qos=msg.qos, retain=msg.retain,
                                     timeout=math.inf)
        except TimeoutError:
            raise aiomqtt.MqttError(f"publish to {msg.topic} not acknowledged within "
                                    f"{timeout_s:g} s") from None

    @staticmethod
    async def _watch_lost(client: aiomqtt.Client) -> None:
        """Returns (raising MqttError) when the connection is lost: we subscribe to
        nothing, so the message iterator ends only by a disconnection."""
        async for _ in client.messages:  # pragma: no cover - nothing is subscribed
            pass

    async def _session(self) -> None:
        """One connection: say online, (re)publish discovery, drain the outbox."""
        client = self.make_client()
        async with client:
            self.connected = True
            self.connects += 1
            self._problem = None
            log.info("mqtt: connected to %s:%d as %s (MQTT %s), %d messages queued",
                     self.settings.host, self.settings.effective_port, client.identifier,
                     self.settings.protocol, len(self.outbox))
            lost = asyncio.create_task(self._watch_lost(client), name="mqtt-lost")
            try:
                await self._publish(client, Message(topic=self.layout.status, qos=1,
                                                    retain=True, payload=ONLINE.encode()))
                for msg in list(self._discovery.values()):
                    await self._publish(client, msg)
                await self._drain(client, lost)
            except asyncio.CancelledError:
                with contextlib.suppress(aiomqtt.MqttError):
                    await self._publish(client, Message(
                        topic=self.layout.status, qos=1, retain=True,
                        payload=OFFLINE.encode()), timeout_s=GOODBYE_TIMEOUT_S)
                raise
            finally:
                self.connected = False
                lost.cancel()
                await asyncio.wait({lost})  # never raises: a cancellation stays ours
                if not lost.cancelled():
                    lost.exception()  # retrieved: it is the disconnection seen above

    async def _drain(self, client: aiomqtt.Client, lost: asyncio.Task[None]) -> None:
        while True:
            entry = self.outbox.peek()
            if entry is None:
                self._queued.clear()
                waiter = asyncio.ensure_future(self._queued.wait())
                try:
                    await asyncio.wait({waiter, lost}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
                if lost.done():
                    lost.result()  # raises the MqttError of the disconnection
                    raise aiomqtt.MqttError("disconnected")
                continue
            entry_id, msg = entry
            await self._publish(client, msg)
            self.outbox.remove(entry_id)
            self.published[msg.kind] += 1

    async def _connect_loop(self) -> None:
        s = self.settings
        delay = s.reconnect_min_s
        while True:
            connects = self.connects
            try:
                await self._session()
                problem = "the broker closed the connection"
            except aiomqtt.MqttError as exc:
                problem = describe(exc)
            if self.connects != connects:
                delay = s.reconnect_min_s  # it worked for a while: start over
            if problem != self._problem:
                log.warning("mqtt: broker %s:%d: %s; retrying with back-off (%g s to %g s), "
                            "%d messages queued", s.host, s.effective_port, problem,
                            s.reconnect_min_s, s.reconnect_max_s, len(self.outbox))
                self._problem = problem
            else:
                log.debug("mqtt: still failing: %s", problem)
            await asyncio.sleep(delay)
            delay = min(delay * 2, s.reconnect_max_s)

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._produce_states(), name="mqtt-states")
                tg.create_task(self._produce_events(), name="mqtt-events")
                tg.create_task(self._produce_health(), name="mqtt-health")
                tg.create_task(self._connect_loop(), name="mqtt-connection")
        finally:
            self.outbox.close()
