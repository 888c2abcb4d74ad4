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


class Notifying(Recorder):
    """A north component with notifications pending: its ``flush`` delivers them."""

    async def flush(self) -> None:
        await asyncio.sleep(0)
        self.log.append(f"{self.name} flushed")


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
        register(Notifying("snmp", self.log), role="north")


def test_shutdown_stops_south_then_flushes_then_stops_north_then_services():
    """South first: its last data is in, the alarms settle; north delivers what is
    pending (an alarm cleared at the last moment); then north stops, services last.
    Each role has released everything before the next one is stopped."""
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
    assert log == ["rs485 closed", "snmp flushed", "modbus closed", "snmp closed",
                   "alarms closed"]


class NeverDone(Recorder):
    """A component whose flush never ends (a receiver that keeps it waiting)."""

    async def flush(self) -> None:
        self.log.append(f"{self.name} flushing")
        try:
            await asyncio.Event().wait()
        finally:
            self.log.append(f"{self.name} flush cancelled")


def test_a_flush_that_does_not_end_is_cancelled_after_the_deadline(monkeypatch, caplog):
    monkeypatch.setattr(app, "FLUSH_S", 0.05)
    log: list[str] = []

    class SlowPlugin:
        @hookimpl
        def gateway_register_config(self, register):
            register("slowflush", Section)

        @hookimpl
        def gateway_register_components(self, context, register):
            register(NeverDone("mqtt", log), role="north")

    async def main() -> None:
        pm, _ = make_plugin_manager(load_entrypoints=False, extra=(("slowflush", SlowPlugin()),))
        gw = Gateway(config_from_mapping({"slowflush": {}}, {"slowflush": Section}), pm)
        stop = asyncio.Event()
        runner = asyncio.create_task(gw.run(shutdown_trigger=stop.wait,
                                            install_signal_handlers=False))
        while "mqtt up" not in log:
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(runner, 5)

    asyncio.run(main())
    assert log == ["mqtt up", "mqtt flushing", "mqtt flush cancelled", "mqtt closed"]
    assert "shutdown: mqtt did not deliver all it had pending within 0.05 s" in caplog.text


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


class Listener:
    """A component whose start fails with ``error`` (as a bind does)."""

    def __init__(self, name: str, error: OSError) -> None:
        self.name = name
        self.error = error

    async def run(self) -> None:
        raise self.error


def _run_one(component) -> None:
    class One:
        @hookimpl
        def gateway_register_config(self, register):
            register("one", Section)

        @hookimpl
        def gateway_register_components(self, context, register):
            register(component, role="north")

    pm, _ = make_plugin_manager(load_entrypoints=False, extra=(("one", One()),))
    gw = Gateway(config_from_mapping({"one": {}}, {"one": Section}), pm)
    asyncio.run(gw.run(shutdown_trigger=asyncio.Event().wait, install_signal_handlers=False))


def test_a_listener_that_cannot_bind_is_one_error_naming_it_even_without_listens_on():
    import errno

    import pytest
    err = OSError(errno.EADDRINUSE, "error while attempting to bind on address "
                  "('0.0.0.0', 8080): address already in use")
    with pytest.raises(app.ComponentError) as info:
        _run_one(Listener("http", err))
    assert info.value.exit_code == 1
    assert str(info.value) == (
        "http: cannot listen: address already in use (another program has this port) "
        "([Errno 98] error while attempting to bind on address ('0.0.0.0', 8080): address "
        "already in use)")


def test_another_os_error_stays_a_crash():
    import errno

    import pytest
    with pytest.raises(ExceptionGroup) as info:
        _run_one(Listener("http", OSError(errno.EBADF, "bad file descriptor")))
    assert isinstance(info.value.exceptions[0], OSError)
