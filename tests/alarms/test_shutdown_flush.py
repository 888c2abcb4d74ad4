"""Shutdown delivers the alarm cleared at the last moment (issue 13).

An in-process gateway with the real ``snmp_agent`` plugin, a v2c trap receiver (a UDP
socket of the test) and a test south component whose last snapshot - published as it
stops - clears an alarm. The gateway stops the south side first, so that clear is in;
the SNMP notifier then sends it before the north side stops. Before, north stopped first
and the clear was logged but its trap never left."""

from __future__ import annotations

import asyncio
import socket

from gateway.app import Gateway
from gateway.cli import config_models
from gateway.config import Section, config_from_mapping
from gateway.hookspecs import hookimpl
from gateway.model import Alarm, AlarmCleared, AlarmRaised, Severity
from gateway.plugins import make_plugin_manager

ALARM = Alarm(seq=1, kind="module_stale", severity=Severity.MINOR, position=3,
              raised_at=0.0, raised_wall_time=1_795_000_000.0,
              text="module 3 data stale, 9 s old")
CLEAR_TEXT = b"module 3 data fresh at the last moment"


class LastWords:
    """A south component whose final snapshot, as it stops, clears the alarm."""

    name = "last-words"

    def __init__(self, hub, started: asyncio.Event) -> None:
        self.hub = hub
        self.started = started
        self.stopping = False

    async def run(self) -> None:
        self.hub.update(self.name, modules=())
        self.started.set()
        try:
            await asyncio.Event().wait()
        finally:
            self.stopping = True
            self.hub.update(self.name, modules=())


class ClearOnStop:
    """A processor: the alarm is raised by the first snapshot, cleared by the last."""

    def __init__(self) -> None:
        self.component: LastWords | None = None
        self.raised = self.cleared = False

    def process(self, snapshot, now):
        assert self.component is not None
        if not self.raised:
            self.raised = True
            return snapshot, [AlarmRaised(alarm=ALARM)]
        if self.component.stopping and not self.cleared:
            self.cleared = True
            gone = Alarm(**{**{f: getattr(ALARM, f) for f in ALARM.__dataclass_fields__},
                            "text": CLEAR_TEXT.decode()})
            return snapshot, [AlarmCleared(alarm=gone, cleared_at=now,
                                           cleared_wall_time=1_795_000_009.0, clear_seq=2)]
        return snapshot, []


class Plugin:
    def __init__(self, started: asyncio.Event) -> None:
        self.started = started
        self.processor = ClearOnStop()

    @hookimpl
    def gateway_register_config(self, register):
        register("last_words", Section)

    @hookimpl
    def gateway_register_processors(self, context, register):
        register(self.processor)

    @hookimpl
    def gateway_register_components(self, context, register):
        self.processor.component = LastWords(context.hub, self.started)
        register(self.processor.component, role="south")


def _udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_alarm_cleared_as_the_pollers_stop_is_still_sent():
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)

    async def main() -> None:
        started = asyncio.Event()
        plugin = Plugin(started)
        pm, _ = make_plugin_manager(extra=(("last_words", plugin),))
        config = config_from_mapping({
            "last_words": {},
            "snmp_agent": {"listen_address": "127.0.0.1", "port": _udp_port(),
                           "v2c": {"community": "public"},
                           "notifications": {"receivers": [{
                               "host": "127.0.0.1", "port": receiver.getsockname()[1],
                               "version": "v2c", "community": "traps"}]}},
        }, config_models(pm))
        gw = Gateway(config, pm)
        stop = asyncio.Event()
        runner = asyncio.create_task(gw.run(shutdown_trigger=stop.wait,
                                            install_signal_handlers=False))
        await started.wait()
        await asyncio.sleep(0.3)  # the notifier is up and has sent coldStart and the raise
        stop.set()
        await asyncio.wait_for(runner, 10)
        assert plugin.processor.cleared

    try:
        asyncio.run(main())
        datagrams = []
        receiver.settimeout(0.5)
        while True:
            try:
                datagrams.append(receiver.recv(65536))
            except TimeoutError:
                break
    finally:
        receiver.close()
    assert len(datagrams) == 3, datagrams  # coldStart, the raise, the clear
    assert ALARM.text.encode() in datagrams[1]
    assert CLEAR_TEXT in datagrams[2]
