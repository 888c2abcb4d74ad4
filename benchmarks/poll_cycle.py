"""Poll-cycle time against the physical limit of the bus.

A 12-pack PACE simulator runs as its own process (`bms-gateway simulate`) at 9600 Bd
with zero turnaround and releases every answer at wire speed (1.04 ms a byte). The
gateway's poller polls it with no inter-frame gap, in per-address mode (0x42 + 0x44 to
each pack, 24 transactions) and in master mode (two FF transactions). For each cycle:
wall time against the wire time of the bytes actually exchanged (requests + answers,
10 bits a byte), and the poller's CPU time per cycle.

Last line: `scan/wire: <ratio>x ...` for per-address mode (goal <= 1.05x).
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

from gateway.hub import Hub
from plugins.rs485_bms.poller.link import ModuleLink
from plugins.rs485_bms.settings import BusSettings
from plugins.rs485_bms.poller.source import BusPoller, wire_time_s

BAUD = 9600
PACKS = 12
CYCLES = 4


def start_simulator() -> tuple[subprocess.Popen[str], str]:
    exe = Path(sys.executable).with_name("bms-gateway")
    proc = subprocess.Popen(
        [str(exe), "simulate", "--listen", "tcp://127.0.0.1:0", "--packs", str(PACKS),
         "--baud", str(BAUD), "--turnaround-ms", "0"],
        stdout=subprocess.PIPE, text=True)
    url = proc.stdout.readline().strip()
    if not url.startswith("tcp://"):
        proc.kill()
        raise SystemExit(f"simulator did not start: {url!r}")
    return proc, "socket://" + url[len("tcp://"):]


async def measure(url: str, mode: str) -> tuple[list[float], list[float], list[float]]:
    addresses = list(range(1, PACKS + 1))
    bus = BusSettings(name="bench", port=url, baud=BAUD, mode=mode, addresses=addresses,
                      gap_ms=0, retries=0, poll_interval_s=0, timeout_ms=500,
                      identity_interval_s=1e6)
    links = [ModuleLink(bus="bench", address=a, position=i + 1) for i, a in enumerate(addresses)]
    poller = BusPoller(bus, links, hub=Hub(), stale_after_s=60)
    from plugins.rs485_bms.poller.transport import SerialTransport

    transport = SerialTransport(url, baud=BAUD)
    await transport.open()
    walls, wires, cpus = [], [], []
    try:
        await poller.cycle(transport)  # warm-up: discovery and identity reads
        for _ in range(CYCLES):
            c0, t0 = time.process_time(), time.perf_counter()
            await poller.cycle(transport)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
            wires.append(wire_time_s(poller.state.bytes_exchanged_last_cycle, BAUD))
        online = sum(1 for link in links if link.state.value == "online")
        if online != PACKS:
            raise SystemExit(f"{mode}: only {online}/{PACKS} packs online")
    finally:
        await transport.close()
    return walls, wires, cpus


def main() -> None:
    proc, url = start_simulator()
    try:
        results = {}
        for mode in ("per_address", "master"):
            walls, wires, cpus = asyncio.run(measure(url, mode))
            ratio = statistics.median(w / x for w, x in zip(walls, wires))
            results[mode] = ratio
            print(f"{mode:12s} cycle {statistics.median(walls) * 1000:7.1f} ms  "
                  f"wire {statistics.median(wires) * 1000:7.1f} ms  ratio {ratio:.3f}x  "
                  f"poller CPU {statistics.median(cpus) * 1000:6.1f} ms/cycle", flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=5)
    goal = "met" if results["per_address"] <= 1.05 else "NOT met"
    print(f"goal <= 1.05x (per-address): {goal}")
    print(f"scan/wire: {results['per_address']:.3f}x 12-pack per-address poll cycle time vs "
          "wire time of the bytes exchanged at 9600 Bd")


if __name__ == "__main__":
    main()
