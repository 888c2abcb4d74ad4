"""MQTT fleet: one process standing in for N sites, publishing to one local Mosquitto.

Each site is a full mqtt plugin publisher (its own hub, planner, outbox and aiomqtt
connection) fed a 12-module bank whose values change every poll, so every module sends
one state message per poll (plus the bank message). State messages go at QoS 1, so a
message counts only once the broker acknowledged it. Measured over the poll rounds: the
messages/s the broker accepted, this process's CPU per published module per poll
(``time.process_time``, hub update included), and the broker's CPU per message (from
/proc/<pid>/stat), which extrapolates to a 1000-site fleet.

Last line: `cpu/wire: <ratio>x ...`: the gateway's CPU to publish one module's poll
against the RS485 wire time of that poll (PACE 0x42 + 0x44 at 9600 Bd, request and
answer bytes from tests/data/frames.json, 10 bits a byte). Goal: <= 0.01x (MQTT costs
under 1 % of what the bus itself takes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gateway.hub import Hub
from gateway.model import Identity, LinkState, ModuleReading, ModuleStatus, Telemetry, TempRole
from plugins.mqtt.publisher import MqttPublisher
from plugins.mqtt.settings import MqttSettings
from plugins.mqtt.topic_map import Planner
from plugins.rs485_bms.poller.source import wire_time_s

REPO = Path(__file__).resolve().parents[1]
BAUD = 9600
MODULES = 12
GOAL = 0.01


def module_poll_wire_s() -> float:
    frames = json.loads((REPO / "tests/data/frames.json").read_text())
    by_id = {f["id"]: f for f in frames}
    nbytes = sum(len(by_id[i]["request"]) + 1 + len(by_id[i]["response"]) + 1  # + CR
                 for i in ("pace25_jakiper_42_16s6t_discharge", "pace25_jakiper_44_all_normal"))
    return wire_time_s(nbytes, BAUD)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(tmp: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    conf = tmp / "mosquitto.conf"
    conf.write_text(f"user root\nlistener {port} 127.0.0.1\nallow_anonymous true\n"
                    "max_queued_messages 100000\nlog_type error\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("mosquitto did not start (apt-get install mosquitto)")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bank(now: float, round_no: int) -> list[ModuleReading]:
    return [ModuleReading(
        bus="bank1", address=a, position=a, status=ModuleStatus.OK, link=LinkState.ONLINE,
        updated_at=now, stale_after_s=30,
        identity=Identity(serial=f"SN{a:04d}", model="US5000", firmware="V1.7"),
        telemetry=Telemetry(
            cell_mv=tuple(3300 + (i + round_no) % 7 for i in range(16)),
            temp_dc=(251, 249, 250, 252, 330, 240), temp_roles=(TempRole.CELL,) * 4
            + (TempRole.MOSFET, TempRole.AMBIENT), current_ma=-12_000 - round_no,
            voltage_mv=52_800 + round_no, remaining_mah=70_000, full_mah=100_000,
            design_mah=100_000, cycles=12, soc_permille=700, soh_permille=985))
        for a in range(1, MODULES + 1)]


async def run(sites: int, rounds: int, port: int, broker_pid: int) -> dict[str, float]:
    settings = MqttSettings(host="127.0.0.1", port=port, state_qos=1, min_interval_s=0,
                            unchanged_interval_s=0, health_interval_s=3600,
                            queue={"persist": False, "max_states": 100_000})
    hubs = [Hub() for _ in range(sites)]
    pubs = [MqttPublisher(settings, hub, site=f"site-{i:04d}", state_dir=None,
                          version="bench") for i, hub in enumerate(hubs)]
    tasks = [asyncio.create_task(p.run()) for p in pubs]

    def published() -> int:
        return sum(sum(p.published.values()) for p in pubs)

    async def drained() -> None:
        while any(len(p.outbox) for p in pubs) or not all(p.connected for p in pubs):
            await asyncio.sleep(0.005)

    try:
        async with asyncio.timeout(60):
            while not all(p.connected for p in pubs):
                await asyncio.sleep(0.01)
            for hub in hubs:  # round 0: discovery and first state, not measured
                hub.update("bench", modules=bank(time.monotonic(), 0))
            await asyncio.sleep(0.05)
            await drained()
        start_msgs, start_cpu, start_wall = published(), time.process_time(), time.monotonic()
        start_broker_cpu = cpu_s(broker_pid)
        async with asyncio.timeout(600):
            for r in range(1, rounds + 1):
                for hub in hubs:
                    hub.update("bench", modules=bank(time.monotonic(), r))
                await asyncio.sleep(0)
                await drained()
        wall = time.monotonic() - start_wall
        cpu = time.process_time() - start_cpu
        msgs = published() - start_msgs
        broker_cpu = cpu_s(broker_pid) - start_broker_cpu
        # what one site's poll puts on the wire: every message of a fresh planner
        payload = sum(len(m.topic) + len(m.payload) for m in Planner(pubs[0].layout).plan(
            hubs[0].latest, time.monotonic()))
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    module_polls = sites * MODULES * rounds
    return {"wall": wall, "cpu": cpu, "msgs": msgs, "module_polls": module_polls,
            "broker_cpu": broker_cpu, "bytes_per_poll": payload}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sites", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--poll-interval", type=float, default=5.0,
                    help="poll interval assumed for the 1000-site extrapolation")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        broker, port = start_broker(Path(tmp))
        try:
            r = asyncio.run(run(args.sites, args.rounds, port, broker.pid))
        finally:
            broker.terminate()
            broker.wait(timeout=10)
    wire = module_poll_wire_s()
    per_module = r["cpu"] / r["module_polls"]
    rate = r["msgs"] / r["wall"]
    per_msg_broker = r["broker_cpu"] / r["msgs"]
    msgs_per_poll = r["msgs"] / (args.sites * args.rounds)
    fleet_rate = 1000 * msgs_per_poll / args.poll_interval
    print(f"{args.sites} sites x {MODULES} modules, {args.rounds} polls: {r['msgs']} messages "
          f"in {r['wall']:.2f} s = {rate:,.0f} messages/s acknowledged (QoS 1)")
    print(f"gateway CPU {per_module * 1e3:.3f} ms per published module per poll "
          f"({msgs_per_poll:.0f} messages per site poll)")
    print(f"broker CPU {per_msg_broker * 1e6:.1f} us per message")
    print(f"1000 sites polled every {args.poll_interval:g} s: {fleet_rate:,.0f} messages/s, "
          f"{fleet_rate * per_msg_broker:.2f} broker CPU cores, "
          f"{1000 * r['bytes_per_poll'] / args.poll_interval / 1e6:.2f} MB/s of topics and payloads")
    ratio = per_module / wire
    print(f"goal <= {GOAL}x: {'met' if ratio <= GOAL else 'NOT met'}")
    print(f"cpu/wire: {ratio:.4f}x gateway CPU per published module-poll vs the RS485 wire "
          f"time of that module's poll ({wire * 1e3:.0f} ms, PACE 0x42+0x44 at {BAUD} Bd)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
