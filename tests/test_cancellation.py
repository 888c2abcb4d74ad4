"""Shutdown cancels every component, even when the cancellation lands in the same loop
iteration as the wake-up its loop was waiting for.

On Python 3.11 ``asyncio.wait_for`` returns the inner result in that case and drops the
cancellation: a ``while True`` loop around it then never ends, and ``bms-gateway run``
ignored SIGTERM (seen once in CI, in a gateway polling every 0.2 s). The loops below
are woken and cancelled in one step; each must end cancelled. The source check keeps
the pattern out of the code on every Python version."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

from gateway.hub import Hub

from plugins.alarms.processor import AlarmProcessor
from plugins.alarms.service import AlarmService
from plugins.alarms.settings import AlarmsSettings
from plugins.modbus_tcp.server import ModbusTcpServer
from plugins.modbus_tcp.settings import ModbusTcpSettings
from plugins.snmp_agent.notifier import Notifier
from plugins.snmp_agent.settings import NotificationSettings

REPO = Path(__file__).resolve().parents[1]


async def wake_and_cancel(task: asyncio.Task, wake) -> None:
    """``wake()`` and ``task.cancel()`` with no await between them."""
    wake()
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=5)
    assert task in done, "the task ignored its cancellation"
    assert task.cancelled()


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_the_alarm_service_stops_when_cancelled_as_it_wakes():
    async def main() -> None:
        processor = AlarmProcessor(AlarmsSettings())
        hub = Hub()
        hub.add_processor(processor)
        service = AlarmService(processor, hub, state_dir=None)  # flush() without a thread
        task = asyncio.create_task(service.run())
        await settle()
        await wake_and_cancel(task, processor.wakeup.set)
    asyncio.run(main())


def test_the_modbus_server_stops_when_cancelled_as_a_snapshot_arrives():
    async def main() -> None:
        hub = Hub()
        server = ModbusTcpServer(ModbusTcpSettings(listen_address="127.0.0.1", port=0), hub)
        task = asyncio.create_task(server.run())
        await asyncio.wait_for(server.started.wait(), 5)
        await settle()
        await wake_and_cancel(task, lambda: hub.update("rs485_bms", modules=[]))
    asyncio.run(main())


def test_the_notifier_stops_when_cancelled_as_its_heartbeat_changes():
    async def main() -> None:
        settings = NotificationSettings.model_validate(
            {"receivers": [], "heartbeat_interval_s": 60, "cold_start": False})
        notifier = Notifier(settings, Hub(), uptime_ticks=lambda: 0, engine_seed="t")
        task = asyncio.create_task(notifier.run())
        await settle()
        faster = settings.model_copy(update={"heartbeat_interval_s": 30})
        await wake_and_cancel(task, lambda: notifier.apply(faster))  # SIGHUP's path
    asyncio.run(main())


def swallowing(node: ast.AST) -> bool:
    """``asyncio.wait_for`` (3.11 may drop a cancellation), or ``suppress(CancelledError)``
    (drops the caller's own cancellation along with the child's)."""
    if (isinstance(node, ast.Attribute) and node.attr == "wait_for"
            and isinstance(node.value, ast.Name) and node.value.id == "asyncio"):
        return True
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name):
        name = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
        return name == "suppress" and any("CancelledError" in ast.unparse(a) for a in node.args)
    return False


def test_no_component_code_can_drop_a_cancellation():
    offenders = [
        f"{path.relative_to(REPO)}:{node.lineno}"
        for path in sorted([*REPO.glob("gateway/**/*.py"), *REPO.glob("plugins/**/*.py")])
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
        if swallowing(node)
    ]
    assert offenders == []


def test_the_source_check_sees_both_patterns():
    found = [swallowing(n) for n in ast.walk(ast.parse(
        "async def f(t):\n"
        "    await asyncio.wait_for(t, 1)\n"
        "    with contextlib.suppress(asyncio.CancelledError):\n"
        "        await t\n"))]
    assert sum(found) == 2
