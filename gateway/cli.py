"""The ``bms-gateway`` command.

Exit codes: 0 ok, 1 failure, 2 usage error, 78 configuration error (EX_CONFIG), also
used when a plugin cannot be loaded. Only this module configures logging.

Output into a pipe that closes early (``| head``, ``| less`` quit before the end,
``| grep -m1``): every command stops quietly, with no traceback, and exits 1, the
failure code, because what it had to say was not all delivered (a shell's
``set -o pipefail`` sees it; GNU tools in the same place die of SIGPIPE, 141).
``run`` logs to stderr: when the log's reader goes away (seen at the next log line, or
within a second) the gateway stops in order, as on SIGTERM, and exits 1 - a daemon is
not left running with no log and nobody waiting for it, and under systemd (where the
log is the journal) ``Restart=on-failure`` brings it back with a working log.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import logging
import os
import select
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pluggy
import pydantic

from gateway import __version__
from gateway.config import (
    ConfigError,
    GatewayConfig,
    config_from_mapping,
    load_config,
)
from gateway.plugins import PluginInfo, PluginLoadError, make_plugin_manager

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CONFIG = 78

LOG_CHECK_S = 1.0  #: how often ``run`` looks whether its log's reader is still there

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def config_models(pm: pluggy.PluginManager) -> dict[str, type[pydantic.BaseModel]]:
    models: dict[str, type[pydantic.BaseModel]] = {}

    def register(section: str, model: type[pydantic.BaseModel]) -> None:
        if section in models:
            raise ValueError(f"config section {section!r} registered twice")
        models[section] = model

    pm.hook.gateway_register_config(register=register)
    return models


def default_config_data(pm: pluggy.PluginManager) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for part in pm.hook.gateway_default_config():
        if part:
            data.update(part)
    return data


def read_config(pm: pluggy.PluginManager, path: str | None) -> GatewayConfig:
    models = config_models(pm)
    if path is None:
        return config_from_mapping(default_config_data(pm), models)
    return load_config(path, models)


def _report_config_error(exc: ConfigError) -> int:
    for p in exc.problems:
        print(p, file=sys.stderr)
    n = len(exc.problems)
    print(f"configuration rejected: {n} problem{'s' if n != 1 else ''}", file=sys.stderr)
    return EXIT_CONFIG


def _cmd_run(args: argparse.Namespace, pm: pluggy.PluginManager,
             log_handler: LogHandler) -> int:
    from gateway.app import ComponentError, Gateway  # the runtime is only needed here

    try:
        config = read_config(pm, args.config)
    except ConfigError as exc:
        return _report_config_error(exc)
    if args.config is None:
        log.info("no -c given: running the built-in default configuration")
    reload = (lambda: read_config(pm, args.config)) if args.config else None
    try:
        gateway = Gateway(config, pm, reload_config=reload)
    except ConfigError as exc:
        return _report_config_error(exc)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        log_lost = asyncio.Event()
        # the handler may be called from a worker thread (serial I/O, the alarm disk writer)
        log_handler.on_lost = lambda: loop.call_soon_threadsafe(log_lost.set)

        async def log_gone() -> None:
            """Returns when the log's reader is gone: seen by a write that failed, or,
            while the gateway has nothing to log, by looking every LOG_CHECK_S."""
            while not log_handler.lost:
                if _reader_gone(log_handler.stream):
                    log_handler.mark_lost()
                    break
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(LOG_CHECK_S):
                        await log_lost.wait()

        try:
            if log_handler.lost:  # gone before the loop ran: do not start at all
                return
            await gateway.run(shutdown_trigger=log_gone)
        finally:
            log_handler.on_lost = None

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:  # a second Ctrl-C while shutting down
        pass
    except ComponentError as exc:
        print(f"bms-gateway: {exc}", file=sys.stderr)
        return exc.exit_code
    return EXIT_FAILURE if log_handler.lost else EXIT_OK


def _cmd_check_config(args: argparse.Namespace, pm: pluggy.PluginManager) -> int:
    try:
        config = read_config(pm, args.file)
    except ConfigError as exc:
        return _report_config_error(exc)
    if args.print:
        json.dump(config.redacted(), sys.stdout, indent=2, default=str)
        print()
    enabled = ", ".join(sorted(config.sections)) or "none"
    print(f"{config.file}: OK (plugins enabled: {enabled})")
    return EXIT_OK


def _cmd_plugins(args: argparse.Namespace, pm: pluggy.PluginManager,
                 infos: dict[str, PluginInfo]) -> int:
    try:
        config = read_config(pm, args.config)
    except ConfigError as exc:
        return _report_config_error(exc)
    rows = [("NAME", "VERSION", "ORIGIN", "STATE")]
    for name in sorted(infos):
        info = infos[name]
        origin = "built-in" if info.builtin else f"third-party ({info.distribution})"
        state = ("enabled" if config.enabled(name)
                 else "disabled" if name in config.disabled else "not configured")
        rows.append((name, info.version, origin, state))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[3])
    return EXIT_OK


def plugin_commands(pm: pluggy.PluginManager) -> list[Command]:
    commands: list[Command] = []

    def register(name: str, *, help: str, add_arguments: Callable[[argparse.ArgumentParser], None],
                 run: Callable[[argparse.Namespace], int]) -> None:
        commands.append(Command(name, help, add_arguments, run))

    pm.hook.gateway_register_commands(register=register)
    return commands


def selected_command(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (the first word that is not an option)."""
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word == "--log-level":
            skip = True
        elif not word.startswith("-"):
            return word
    return None


def make_parser(commands: Sequence[Command], selected: str | None = None
                ) -> argparse.ArgumentParser:
    """The argument parser. A plugin command's own arguments are added only when it is
    the ``selected`` one: building them may import that plugin's heavier modules."""
    parser = argparse.ArgumentParser(
        prog="bms-gateway",
        description="RS485 battery-bank gateway: SNMP agent and Modbus-TCP server.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
                        type=str.upper, help="logging threshold (default INFO)")
    # dest "subcommand": a plugin command may well have an option called --command
    sub = parser.add_subparsers(dest="subcommand", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run the gateway")
    p.add_argument("-c", "--config", metavar="FILE",
                   help="YAML config (default: a simulated 12-pack bank on loopback)")
    p = sub.add_parser("check-config", help="validate a config file and exit")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--print", action="store_true",
                   help="print the configuration as JSON, secrets redacted")
    p = sub.add_parser("plugins", help="list installed plugins and whether they are enabled")
    p.add_argument("-c", "--config", metavar="FILE",
                   help="config that decides what is enabled (default: the built-in one)")
    for cmd in commands:
        p = sub.add_parser(cmd.name, help=cmd.help)
        if cmd.name == selected:
            cmd.add_arguments(p)
    return parser


class LogHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The stderr handler: when stderr is a pipe whose reader went away, it stops
    writing (no "--- Logging error ---" per record) and calls ``on_lost`` once."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.lost = False
        self.on_lost: Callable[[], None] | None = None
        self._lost_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if not self.lost:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        exc = sys.exc_info()[1]
        if not _is_broken_pipe(exc):
            super().handleError(record)
            return
        self.mark_lost()

    def mark_lost(self) -> None:
        """The log's reader is gone: write nothing more, tell ``on_lost`` (once)."""
        with self._lost_lock:
            if self.lost:
                return
            self.lost = True
        _point_at_devnull(self.stream)
        callback = self.on_lost
        if callback is not None:
            callback()


def configure_logging(level: str) -> LogHandler:
    """Log to stderr at ``level``, as :func:`logging.basicConfig` does: not when logging
    is configured already (an embedding program, pytest), except by an earlier call."""
    handler = LogHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, LogHandler)]:
        root.removeHandler(old)
    if not root.handlers:
        root.addHandler(handler)
        root.setLevel(level)
    return handler


def _is_broken_pipe(exc: BaseException | None) -> bool:
    return isinstance(exc, BrokenPipeError) or (
        isinstance(exc, OSError) and exc.errno in (errno.EPIPE, errno.ESHUTDOWN))


def _reader_gone(stream: Any) -> bool:
    """True if ``stream`` is a pipe or socket whose reading end is closed."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))


def _point_at_devnull(stream: Any) -> None:
    """Send what ``stream`` still holds, and anything written to it later (logging at
    shutdown, the interpreter's final flush), to /dev/null: the pipe is gone."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line. Output into a pipe closed early ends the command quietly
    with exit 1 (see the module's docstring)."""
    try:
        code = _main(argv)
        # what is still buffered meets the closed pipe here, not at interpreter exit
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        broken = [s for s in (sys.stdout, sys.stderr) if _reader_gone(s)]
        if not broken:
            raise  # a socket's, not ours: a bug, and it says so
        for stream in broken:
            _point_at_devnull(stream)
        return EXIT_FAILURE


def _main(argv: Sequence[str] | None) -> int:
    try:
        pm, infos = make_plugin_manager()
    except PluginLoadError as exc:
        print(f"bms-gateway: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    commands = plugin_commands(pm)
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = make_parser(commands, selected_command(argv))
    args = parser.parse_args(argv)  # exits 2 on usage errors
    log_handler = configure_logging(args.log_level)
    if args.subcommand == "run":
        return _cmd_run(args, pm, log_handler)
    if args.subcommand == "check-config":
        return _cmd_check_config(args, pm)
    if args.subcommand == "plugins":
        return _cmd_plugins(args, pm, infos)
    for cmd in commands:
        if cmd.name == args.subcommand:
            return cmd.run(args)
    parser.error(f"unknown command {args.subcommand!r}")  # pragma: no cover - argparse checks
    return EXIT_USAGE  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
