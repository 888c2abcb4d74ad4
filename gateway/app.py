"""The runtime: plugins' components in one event loop, one TaskGroup, orderly shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pluggy

from gateway.collector import keep_collector
from gateway.config import ConfigError, GatewayConfig
from gateway.health import Health
from gateway.hub import Hub

log = logging.getLogger(__name__)

ROLES = ("north", "service", "south")
START_ORDER = ("south", "service", "north")  #: south first, so north has data soonest
#: south stops first (no new data; the alarms settle on the last snapshot), then north
#: and services deliver what is pending (``flush``), then north stops, services last
SHUTDOWN_ORDER = ("south", "north", "service")
#: how long north and services may take, all together, to deliver what is pending
FLUSH_S = 2.0
#: a component still running this long after its cancellation is named in the log
SHUTDOWN_REPORT_S = 5.0


class Component(Protocol):
    """What a plugin registers. A north or service component may also have an
    ``async def flush()``: deliver what is pending (notifications, log records); the
    gateway calls it at shutdown once south has stopped, and cancels it after
    :data:`FLUSH_S`. A listener may have ``listens_on`` (``"udp 127.0.0.1:1161"``):
    the gateway names it when the component cannot listen there."""

    name: str

    async def run(self) -> None:
        ...  # pragma: no cover - protocol


#: OSError numbers that mean "cannot listen there", and the exit code each one gets:
#: taken (another process, or a gateway still stopping: a restart may help) or not
#: allowed / not on this host (the configuration must change: 78, systemd does not restart)
_LISTEN_ERRORS = {
    errno.EADDRINUSE: (1, "address already in use (another program has this port)"),
    errno.EACCES: (78, "permission denied (ports below 1024 need root or "
                       "CAP_NET_BIND_SERVICE)"),
    errno.EPERM: (78, "operation not permitted"),
    errno.EADDRNOTAVAIL: (78, "address not available (no interface of this host has it)"),
}


class ComponentError(Exception):
    """A component could not start: it cannot listen where it is configured to. One
    line for the user (``str()``), and the exit code the command line ends with."""

    def __init__(self, component: str, where: str | None, cause: OSError) -> None:
        self.component = component
        self.cause = cause
        self.exit_code, text = _LISTEN_ERRORS[cause.errno or 0]
        place = f" on {where}" if where else ""
        detail = "" if where else f" ({cause})"  # asyncio's text may name the address
        super().__init__(f"{component}: cannot listen{place}: {text}{detail}")


async def _run_component(comp: Component) -> None:
    """``comp.run()``, with a failure to listen turned into a :class:`ComponentError`."""
    try:
        await comp.run()
    except OSError as exc:
        if exc.errno not in _LISTEN_ERRORS:
            raise
        raise ComponentError(comp.name, getattr(comp, "listens_on", None), exc) from exc


@dataclass
class GatewayContext:
    """What a plugin gets when it registers its components and processors."""

    config: GatewayConfig
    hub: Hub
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    state_dir: Path | None = None
    #: components register their counters here; north plugins serving health read it
    health: Health = field(default_factory=Health)
    extra: dict[str, Any] = field(default_factory=dict)

    def section(self, name: str) -> Any:
        return self.config.section(name)


class Gateway:
    """Builds the components of the enabled plugins and runs them until shutdown."""

    def __init__(self, config: GatewayConfig, pm: pluggy.PluginManager, *,
                 reload_config: Callable[[], GatewayConfig] | None = None) -> None:
        self.config = config
        self.pm = pm
        self.hub = Hub()
        self.context = GatewayContext(config=config, hub=self.hub,
                                      state_dir=config.core.state_dir)
        self._reload_config = reload_config
        self.components: dict[str, list[Component]] = {r: [] for r in ROLES}
        self._build()

    def _enabled_hook(self, hook_name: str):
        hook = getattr(self.pm.hook, hook_name)
        enabled = [p for n, p in self.pm.list_name_plugin() if self.config.enabled(n)]
        others = [p for p in self.pm.get_plugins() if p not in enabled]
        return self.pm.subset_hook_caller(hook_name, remove_plugins=others) if others else hook

    def _build(self) -> None:
        def register_component(component: Component, *, role: str = "service") -> None:
            if role not in ROLES:
                raise ValueError(f"role must be one of {ROLES}, not {role!r}")
            self.components[role].append(component)

        self._enabled_hook("gateway_register_processors")(
            context=self.context, register=self.hub.add_processor)
        self._enabled_hook("gateway_register_components")(
            context=self.context, register=register_component)

    def reload(self) -> bool:
        """Re-read the config file and hand it to the plugins; keep the old one on error."""
        if self._reload_config is None:
            log.warning("SIGHUP: running from the built-in default config; nothing to reload")
            return False
        try:
            new = self._reload_config()
        except ConfigError as exc:
            for p in exc.problems:
                log.error("reload refused, keeping the running config: %s", p)
            return False
        if set(new.sections) != set(self.config.sections):
            log.warning("reload: enabling or disabling plugins needs a restart; "
                        "other settings are applied")
        live = {self.pm.get_name(impl.plugin)
                for impl in self.pm.hook.gateway_reload.get_hookimpls()}
        for name in sorted(set(new.sections) & set(self.config.sections) - live):
            if new.sections[name] != self.config.sections[name]:
                log.warning("reload: %s settings changed; they take effect at the next "
                            "restart", name)
        self.config = new
        self.context.config = new
        self._enabled_hook("gateway_reload")(context=self.context)
        self.hub.republish()
        log.info("configuration reloaded from %s", new.file)
        return True

    async def run(self, *, shutdown_trigger: Callable[[], Any] | None = None,
                  install_signal_handlers: bool = True) -> None:
        """Run until ``shutdown_trigger()`` (an awaitable factory) completes, or until
        SIGTERM/SIGINT. Stops south first, lets north and services flush what is pending
        (at most :data:`FLUSH_S`), then stops north, then services."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        installed: list[int] = []
        def request_stop() -> None:
            if stop.is_set():
                return
            stop.set()
            # a second Ctrl-C while shutting down interrupts at once (Python's default)
            loop.remove_signal_handler(signal.SIGINT)
            installed.remove(signal.SIGINT)

        if install_signal_handlers:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, request_stop)
                installed.append(sig)
            loop.add_signal_handler(signal.SIGHUP, self.reload)
            installed.append(signal.SIGHUP)
        names = ", ".join(c.name for r in ROLES for c in self.components[r]) or "nothing"
        log.info("%s starting: %s", self.config.core.name, names)
        try:
            async with asyncio.TaskGroup() as tg:
                tasks: dict[str, list[asyncio.Task[None]]] = {r: [] for r in ROLES}
                for role in START_ORDER:
                    for comp in self.components[role]:
                        tasks[role].append(tg.create_task(_run_component(comp),
                                                          name=comp.name))
                ticker = tg.create_task(self.hub.tick(), name="hub-tick")
                collector = tg.create_task(
                    keep_collector(lambda: self.hub.latest is not None),
                    name="garbage-collector")
                tg.create_task(self._systemd_notify(stop), name="systemd-notify")
                waiters = [asyncio.ensure_future(stop.wait())]
                if shutdown_trigger is not None:
                    waiters.append(asyncio.ensure_future(shutdown_trigger()))
                done, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                for w in pending:
                    w.cancel()
                stop.set()
                log.info("shutting down")
                for role in SHUTDOWN_ORDER:
                    for t in tasks[role]:
                        t.cancel()
                    await _stopped(tasks[role])
                    if role == "south":
                        # nothing new: the alarms stay as the last data left them
                        ticker.cancel()
                        collector.cancel()
                        await self._flush()
        except BaseExceptionGroup as group:
            # a component that cannot listen: that one error, not the group's traceback
            failed, others = group.split(ComponentError)
            if failed is None or others is not None:
                raise
            first = failed.exceptions[0]
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            raise first from None
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
        log.info("stopped")

    async def _flush(self) -> None:
        """Let north and services deliver what is pending (an alarm cleared by the last
        snapshot must still reach the NMS), all together within :data:`FLUSH_S`."""
        tasks: dict[asyncio.Task[Any], str] = {}
        for role in ("north", "service"):
            for comp in self.components[role]:
                flush = getattr(comp, "flush", None)
                if callable(flush):
                    tasks[asyncio.ensure_future(flush())] = comp.name
        if not tasks:
            return
        done, pending = await asyncio.wait(tasks, timeout=FLUSH_S)
        for t in pending:
            t.cancel()
            log.warning("shutdown: %s did not deliver all it had pending within %g s",
                        tasks[t], FLUSH_S)
        if pending:
            await asyncio.wait(pending)
        for t in done:
            if not t.cancelled() and t.exception() is not None:
                log.error("shutdown: %s failed to flush: %r", tasks[t], t.exception())

    async def _systemd_notify(self, stop: asyncio.Event) -> None:
        """READY=1 at start; WATCHDOG=1 only while the hub keeps receiving snapshots."""
        addr = os.environ.get("NOTIFY_SOCKET")
        if not addr:
            await stop.wait()
            return
        if addr.startswith("@"):
            addr = "\0" + addr[1:]
        usec = int(os.environ.get("WATCHDOG_USEC", "0") or 0)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            def send(msg: str) -> None:
                with contextlib.suppress(OSError):
                    sock.sendto(msg.encode(), addr)
            send("READY=1")
            try:
                limit = usec / 1e6
                started = time.monotonic()
                while not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(limit / 2 if usec else 3600):
                            await stop.wait()
                    # progress = every source (every bus) updated the hub within the last
                    # watchdog interval (before the first update: start-up grace)
                    last = self.hub.oldest_source_update() or started
                    if usec and self.config.core.watchdog and time.monotonic() - last < limit:
                        send("WATCHDOG=1")
            finally:
                send("STOPPING=1")


async def _stopped(tasks: list[asyncio.Task[None]]) -> None:
    """Wait for cancelled tasks to end; name any that is slow about it, and where it
    waits, so a shutdown that hangs says why (systemd would otherwise just kill it)."""
    pending = set(tasks)
    waited = 0.0
    while pending:
        _, pending = await asyncio.wait(pending, timeout=SHUTDOWN_REPORT_S)
        waited += SHUTDOWN_REPORT_S
        for t in sorted(pending, key=asyncio.Task.get_name):
            frame = _component_frame(t)
            where = (f"{frame.f_code.co_filename}:{frame.f_lineno} "
                     f"({frame.f_code.co_name})" if frame is not None else "an unknown place")
            log.error("shutdown: %s is still running %g s after it was stopped; it waits "
                      "in %s", t.get_name(), waited, where)


def _component_frame(task: asyncio.Task[None]) -> Any:
    """The frame where a component's ``run()`` waits (inside :func:`_run_component`)."""
    coro: Any = task.get_coro()
    if getattr(coro, "cr_code", None) is _run_component.__code__:
        coro = getattr(coro, "cr_await", None)
    return getattr(coro, "cr_frame", None)
