"""The aiomqtt glue in-process: against a real Mosquitto, and against a "broker" that
accepts connections and never answers (the poller must not notice either)."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest

from gateway.health import Health
from gateway.hub import Hub

from plugins.mqtt.publisher import MqttPublisher
from plugins.mqtt.settings import MqttSettings

from .builders import module, repoll
from .conftest import wait_for

pytestmark = pytest.mark.e2e


def settings(port: int, **extra) -> MqttSettings:
    return MqttSettings.model_validate({
        "host": "127.0.0.1", "port": port, "reconnect_min_s": 0.1, "reconnect_max_s": 0.5,
        "unchanged_interval_s": 0, "health_interval_s": 1, **extra})


async def until(predicate, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


def test_publishes_then_says_offline_on_a_clean_stop(broker, collectors, tmp_path):
    sub = collectors(broker.port)
    hub, health = Hub(), Health()
    pub = MqttPublisher(settings(broker.port), hub, site="in-proc", state_dir=tmp_path,
                        health=health, version="test")
    health.register("mqtt", pub.health_figures)

    async def main() -> None:
        task = asyncio.create_task(pub.run())
        await until(lambda: pub.connected, 10)
        hub.update("test", modules=[module(1, now=time.monotonic())])
        await until(lambda: pub.published["state"] >= 4, 10)  # avail, state, bank, active
        await until(lambda: sub.last("bms/in-proc/health") is not None, 5)
        task.cancel()
        await asyncio.wait({task})
    asyncio.run(main())
    wait_for(lambda: sub.last("bms/in-proc/status") is not None
             and sub.last("bms/in-proc/status").payload == b"offline", 10, "offline")
    assert sub.last("bms/in-proc/bank1/1/state").json()["status"] == "ok"
    assert sub.last("homeassistant/sensor/bms_in-proc/bank1_1_voltage/config") is not None
    health_doc = sub.last("bms/in-proc/health").json()
    names = {f["name"] for f in health_doc["figures"]["mqtt"]}
    assert {"mqtt_queue_depth", "mqtt_dropped_total", "mqtt_published_total",
            "mqtt_reconnects_total", "mqtt_connected"} <= names
    assert (tmp_path / "mqtt_queue.sqlite3").exists()


def test_a_broker_that_never_answers_holds_nothing_back(tmp_path):
    """TCP accepted, no CONNACK ever: updates go on at full speed into the bounded
    queue, whose depth and drops are health figures."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]
    hub = Hub()
    pub = MqttPublisher(settings(port, publish_timeout_s=0.5, queue={
        "max_states": 20, "persist": False}), hub, site="mute", state_dir=None,
        version="test")

    async def main() -> list[float]:
        task = asyncio.create_task(pub.run())
        m = module(1, now=time.monotonic())
        took = []
        for i in range(50):
            m = repoll(m, time.monotonic(), voltage_mv=50_000 + i)
            t0 = time.perf_counter()
            hub.update("test", modules=[m])
            took.append(time.perf_counter() - t0)
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.wait({task})
        return took
    try:
        took = asyncio.run(main())
    finally:
        silent.close()
    assert max(took) < 0.05  # the source's update never waits on the broker
    figures = {(f.name, dict(f.labels).get("kind")): f.value for f in pub.health_figures()}
    assert figures[("mqtt_connected", None)] == 0
    assert figures[("mqtt_queue_depth", "state")] == 20
    assert figures[("mqtt_dropped_total", "state")] > 0
    assert figures[("mqtt_published_total", "state")] == 0


def test_a_message_left_from_a_killed_run_goes_out_first(broker, collectors, tmp_path):
    from plugins.mqtt.outbox import FILE_NAME, Outbox
    from plugins.mqtt.topic_map import Message

    box = Outbox(max_events=10, max_states=10, path=tmp_path / FILE_NAME)
    box.put(Message(topic="bms/left/alarms/event", payload=b'{"seq":1}', qos=1,
                    kind="event"))
    box.close()
    sub = collectors(broker.port)
    hub = Hub()
    pub = MqttPublisher(settings(broker.port), hub, site="left", state_dir=tmp_path,
                        version="test")
    assert pub.outbox.restored == 1

    async def main() -> None:
        task = asyncio.create_task(pub.run())
        await until(lambda: pub.published["event"] == 1, 10)
        task.cancel()
        await asyncio.wait({task})
    asyncio.run(main())
    wait_for(lambda: sub.received("bms/left/alarms/event"), 10, "the restored event")
    assert json.loads(sub.received("bms/left/alarms/event")[0].payload) == {"seq": 1}
