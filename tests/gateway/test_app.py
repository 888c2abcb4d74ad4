"""The runtime: every registered component runs in one TaskGroup and stops in order."""

from __future__ import annotations

import asyncio

from gateway import app
from gateway.app import Gateway
from gateway.config import Section, config_from_mapping
from gateway.hookspecs import hookimpl
from gateway.plugins import make_plugin_manager


class Recorder:
    """A component that notes when it runs and when it has released its resources."""

    def __init__(self, name: str, log: list[str], started: asyncio.Event | None = None):
        self.name = name
        self.log = log
        self.started = started

    async def run(self) -> None:
        self.log.append(f"{self.name} up")
        if self.started is not None:
            self.started.set()
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0)  # a release that itself awaits (closing a port)
            self.log.append(f"{self.name} closed")


class Plugin:
    def __init__(self, log: list[str], started: asyncio.Event) -> None:
        self.log = log
        self.started = started

    @hookimpl
    def gateway_register_config(self, register):
        register("order", Section)

    @hookimpl
    def gateway_register_components(self, context, register):
        register(Recorder("modbus", self.log), role="north")
        register(Recorder("alarms", self.log), role="service")
        register(Recorder("rs485", self.log, self.started), role="south")
        register(Recorder("snmp", self.log), role="north")


def test_shutdown_stops_north_then_services_then_south_and_each_releases_first():
    log: list[str] = []

    async def main() -> None:
        started = asyncio.Event()
        pm, _ = make_plugin_manager(load_entrypoints=False,
                                    extra=(("order", Plugin(log, started)),))
        gw = Gateway(config_from_mapping({"order": {}}, {"order": Section}), pm)
        stop = asyncio.Event()
        runner = asyncio.create_task(gw.run(shutdown_trigger=stop.wait,
                                            install_signal_handlers=False))
        await started.wait()
        await asyncio.sleep(0)
        assert sorted(log) == ["alarms up", "modbus up", "rs485 up", "snmp up"]
        assert log[0] == "rs485 up"  # south starts first, so north has data soonest
        log.clear()
        stop.set()
        await asyncio.wait_for(runner, 5)

    asyncio.run(main())
    assert log == ["modbus closed", "snmp closed", "alarms closed", "rs485 closed"]


class Stubborn:
    """A component whose release takes long after its cancellation."""

    name = "stubborn"

    def __init__(self, started: asyncio.Event, release: asyncio.Event) -> None:
        self.started = started
        self.release = release

    async def run(self) -> None:
        self.started.set()
        try:
            await asyncio.Event().wait()
        finally:
            await self.release.wait()


def test_a_component_slow_to_stop_is_named_with_where_it_waits(monkeypatch, caplog):
    monkeypatch.setattr(app, "SHUTDOWN_REPORT_S", 0.01)

    class StubbornPlugin:
        def __init__(self, started, release):
            self.component = Stubborn(started, release)

        @hookimpl
        def gateway_register_config(self, register):
            register("slow", Section)

        @hookimpl
        def gateway_register_components(self, context, register):
            register(self.component, role="north")

    async def main() -> None:
        started, release = asyncio.Event(), asyncio.Event()
        pm, _ = make_plugin_manager(load_entrypoints=False,
                                    extra=(("slow", StubbornPlugin(started, release)),))
        gw = Gateway(config_from_mapping({"slow": {}}, {"slow": Section}), pm)
        stop = asyncio.Event()
        runner = asyncio.create_task(gw.run(shutdown_trigger=stop.wait,
                                            install_signal_handlers=False))
        await started.wait()
        stop.set()
        while "still running" not in caplog.text:
            await asyncio.sleep(0.01)
        assert not runner.done()
        release.set()
        await asyncio.wait_for(runner, 5)

    asyncio.run(main())
    line = next(r.getMessage() for r in caplog.records if "still running" in r.message)
    assert line.startswith("shutdown: stubborn is still running 0.01 s after it was stopped")
    assert f"{__file__}:" in line and "(run)" in line
