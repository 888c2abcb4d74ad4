"""Alarm latency: from the frame that crosses a threshold to the trap at the receiver.

Setup, all on 127.0.0.1:

* the bank simulator runs in this process (a thread with its own event loop) and serves
  a 4-pack PACE bank over TCP at 115200 Bd wire pacing; a scenario makes cell 5 of each
  pack step above the cell over-voltage level and back, many times, the packs staggered;
* ``bms-gateway run`` (a subprocess) polls it through ``socket://`` and sends every alarm
  as an SNMPv2c trap and as an SNMPv3 inform to one ``snmptrapd``;
* the simulator records when the first answer frame carrying a cell at or above the
  level starts on the wire (the time it is handed to the socket plus the request's own
  wire time and the turnaround: the crossing frame); this process timestamps each
  bmsAlarmRaised line snmptrapd prints.

Each raise is matched with the latest crossing of its module before it. The alarm rules
run with zero delays and no flap or storm damping, so the figure is the pipeline's own
latency: the rest of the answer on the wire, the status request that completes the
module's poll, the rules, the notifier and the network. It is compared with one poll
cycle of the bus (the gateway's own "cycle N in M ms" figure, median). The last line
printed is::

    trap-latency/cycle: <ratio>x p99 time from threshold-crossing frame to trap vs one poll cycle

Run: ``.venv/bin/python benchmarks/alarm_latency.py`` (about 75 s; ``--seconds`` to
change the measuring time).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from plugins.rs485_bms.sim.scenario import Scenario  # noqa: E402
from plugins.rs485_bms.sim.simulator import BankSimulator  # noqa: E402

PACKS = (1, 2, 3, 4)
CELL = 5
HIGH_MV, LOW_MV, LEVEL_MV = 3700, 3300, 3600
BAUD = 115200
HIGH_S, LOW_S = 1.2, 1.2
START_S = 6.0  # leave the gateway time to start and find every module


def load_helpers():
    path = REPO / "tests/alarms/trapd.py"
    spec = importlib.util.spec_from_file_location("bms_gateway_alarm_e2e_helpers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class TimingSimulator(BankSimulator):
    """The simulator, noting when each pack's first over-level answer frame is sent."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.high = {a: False for a in self.addresses}
        self.crossings: dict[int, list[float]] = {a: [] for a in self.addresses}
        self.lock = threading.Lock()

    def respond(self, request, t):
        emissions = super().respond(request, t)
        if request.cid2 == 0x42 and request.adr in self.high and emissions:
            state = self.sent.get(request.adr)
            if state is not None:
                high = state.cell_mv[CELL - 1] >= LEVEL_MV
                if high and not self.high[request.adr]:
                    # the answer starts after the request's own wire time and the delay
                    start = (time.time() + len(request.wire) * self.byte_time()
                             + emissions[0].delay_s)
                    with self.lock:
                        self.crossings[request.adr].append(start)
                self.high[request.adr] = high
        return emissions


def make_scenario(seconds: float) -> Scenario:
    steps = []
    period = HIGH_S + LOW_S
    for k, adr in enumerate(PACKS):
        offset = START_S + k * period / len(PACKS)
        at = offset
        while at + period < START_S + seconds:
            steps.append({"at_s": round(at, 3), "until_s": round(at + HIGH_S, 3),
                          "packs": [adr], "fault": "cell_ramp", "cell": CELL,
                          "from_mv": HIGH_MV, "to_mv": HIGH_MV})
            at += period
    return Scenario.model_validate({"steps": steps})


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="measuring time")
    args = ap.parse_args()
    h = load_helpers()

    sim = TimingSimulator(family="pace_v25", addresses=list(PACKS), baud=BAUD, turnaround_ms=0,
                          scenario=make_scenario(args.seconds))
    ready = threading.Event()
    sim_port: list[int] = []

    def serve() -> None:
        async def listening(port: int) -> None:
            sim_port.append(port)
            ready.set()
        asyncio.run(sim.serve_tcp("127.0.0.1", 0, on_listening=listening))

    threading.Thread(target=serve, name="simulator", daemon=True).start()
    assert ready.wait(10), "the simulator did not start"

    with tempfile.TemporaryDirectory(prefix="alarm-latency-") as tmp_s:
        tmp = Path(tmp_s)
        v2c_port, v3_port, snmp_port = h.free_port(), h.free_port(), h.free_port()
        trapd = h.TrapDaemon(tmp, [v2c_port, v3_port])
        config = tmp / "gateway.yaml"
        off = {"enabled": False}
        config.write_text(yaml.safe_dump({
            "gateway": {"name": "alarm-latency", "state_dir": str(tmp / "state"),
                        "watchdog": False},
            "rs485_bms": {"buses": [{
                "name": "bench", "port": f"socket://127.0.0.1:{sim_port[0]}",
                "family": "pace_v25", "baud": BAUD, "addresses": list(PACKS),
                "poll_interval_s": 0.2}]},
            "snmp_agent": {"listen_address": "127.0.0.1", "port": snmp_port,
                           "notifications": {
                               "heartbeat_interval_s": 0, "rate_limit_per_s": 1000,
                               "rate_limit_burst": 1000,
                               "receivers": [
                                   {"host": "127.0.0.1", "port": v2c_port, "version": "v2c",
                                    "community": h.COMMUNITY},
                                   {"host": "127.0.0.1", "port": v3_port, "version": "v3",
                                    "user": h.V3_USER, "auth_key": h.V3_AUTH,
                                    "priv_key": h.V3_PRIV}]}},
            "alarms": {
                "cell_voltage_high": {"raise_delay_s": 0, "clear_delay_s": 0},
                "cell_spread_high": off,
                "flap": {"max_raises": 1000, "window_s": 1, "hold_s": 0},
                "storm": {"max_individual": 1000, "window_s": 1},
            },
        }))
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("NOTIFY_SOCKET", None)
        gw = h.GatewayProcess(str(REPO / ".venv/bin/bms-gateway"), config, env)
        try:
            trapd.wait(lambda t: t.name == "coldStart", timeout=30)
            print(f"measuring for {args.seconds:.0f} s: {len(PACKS)} packs at {BAUD} Bd, cell "
                  f"{CELL} stepping {LOW_MV}->{HIGH_MV} mV (level {LEVEL_MV}) every "
                  f"{HIGH_S + LOW_S:.1f} s per pack", flush=True)
            time.sleep(START_S + args.seconds + 2.0)
        finally:
            gw.stop()
            trapd.stop()
        cycles = [int(m) for m in re.findall(r"cycle \d+ in (\d+) ms", "".join(gw.lines))]

    with sim.lock:
        crossings = {a: list(v) for a, v in sim.crossings.items()}
    results = {}
    for name, port in (("v2c trap", v2c_port), ("v3 inform", v3_port)):
        latencies = []
        used: set[tuple[int, float]] = set()
        for trap in trapd.received(port, "bmsAlarmRaised"):
            module = int(trap.value("bmsAlarmModule"))
            before = [c for c in crossings.get(module, []) if c <= trap.at]
            if not before or (module, before[-1]) in used:
                continue
            used.add((module, before[-1]))
            latencies.append(trap.at - before[-1])
        results[name] = latencies
    total = sum(len(v) for v in crossings.values())
    if not cycles or not results["v2c trap"]:
        print("no measurement: " + ("no poll cycles logged" if not cycles else "no traps"))
        return 1
    cycle_s = statistics.median(cycles) / 1000
    print(f"poll cycle: median {cycle_s * 1000:.0f} ms over {len(cycles)} cycles "
          f"(min {min(cycles)}, max {max(cycles)} ms)")
    for name, lat in results.items():
        if not lat:
            print(f"{name}: no raise received")
            continue
        print(f"{name}: {len(lat)} raises for {total} crossing frames; latency p50 "
              f"{percentile(lat, 0.5) * 1000:.1f} ms, p99 {percentile(lat, 0.99) * 1000:.1f} ms, "
              f"max {max(lat) * 1000:.1f} ms")
    p99 = percentile(results["v2c trap"], 0.99)
    print(f"trap-latency/cycle: {p99 / cycle_s:.2f}x p99 time from threshold-crossing frame to "
          "trap vs one poll cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
