"""The gateway's own CPU per RS485 transaction, with no north load, 2 buses x 15 packs.

Setup, all on 127.0.0.1: two ``bms-gateway simulate`` processes (15 PACE packs each, no
turnaround, answers released at wire speed) and one ``bms-gateway run`` polling both
through ``socket://`` with ``poll_interval_s: 0`` (a cycle follows the last at once),
the alarm engine on and the SNMP agent on (asked twice per case, for the frame
counters: bmsBusFramesOk). Measured at 9600 and at 115200 Bd: the gateway process's
CPU time (every thread: the event loop, the ports' worker threads) over a window,
divided by the transactions answered in it, against the bus time of one transaction
(the simulators answer at wire speed with no turnaround, so this is the wire time of
its bytes: the physical limit of the poll rate).

The last line printed is::

    poll-cpu/wire: <ratio>x gateway CPU per transaction vs its wire time at 115200 Bd, 2x15 packs

Run: ``.venv/bin/python benchmarks/poll_cpu.py`` (about 60 s; ``--seconds``).
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))
from live import BIN, buses, cpu_s, free_port, start_simulators, stop  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PACKS = 15
WARMUP_S = 13.0  # past the start-up garbage-collector freeze (gateway/collector.py)
BUS_FRAMES_OK = ".1.3.6.1.4.1.32473.2.1.1.3.1.8"  # bmsBusFramesOk
BUS_CYCLES = ".1.3.6.1.4.1.32473.2.1.1.3.1.6"  # bmsBusCycles
BUS_CYCLE_MS = ".1.3.6.1.4.1.32473.2.1.1.3.1.4"  # bmsBusLastCycleTime
LAST_CELL = ".1.3.6.1.4.1.32473.2.1.1.5.1.2.2.15.16"  # bmsCellVoltage.2.15.16


def column(port: int, oid: str) -> list[int]:
    out = subprocess.run(["snmpwalk", "-v2c", "-c", "public", "-On", "-Oqv",
                          f"127.0.0.1:{port}", oid], capture_output=True, text=True,
                         check=True)
    return [int(v) for v in out.stdout.split()]


def measure(work: Path, baud: int, seconds: float) -> tuple[float, float, float]:
    """(CPU s per transaction, wire s per transaction, cycle ms) at ``baud``."""
    procs: list[subprocess.Popen] = []
    try:
        ports, procs = start_simulators(2, PACKS, baud)
        snmp = free_port(socket.SOCK_DGRAM)
        config = {
            "gateway": {"state_dir": str(work / f"state-{baud}")},
            "rs485_bms": {"buses": buses(ports, PACKS, baud)},
            "snmp_agent": {"listen_address": "127.0.0.1", "port": snmp,
                           "v2c": {"community": "public"}},
            "alarms": {},
        }
        path = work / f"gateway-{baud}.yaml"
        path.write_text(yaml.safe_dump(config))
        gateway = subprocess.Popen([str(BIN / "bms-gateway"), "run", "-c", str(path)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   cwd=REPO)
        procs.append(gateway)
        deadline = time.monotonic() + 120
        while True:
            out = subprocess.run(["snmpget", "-v2c", "-c", "public", "-Oqv", "-t", "1",
                                  f"127.0.0.1:{snmp}", LAST_CELL], capture_output=True,
                                 text=True)
            if out.returncode == 0 and "No Such" not in out.stdout:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the gateway never polled every pack")
            time.sleep(0.5)
        time.sleep(WARMUP_S)
        frames0, c0, t0 = sum(column(snmp, BUS_FRAMES_OK)), cpu_s(gateway.pid), time.monotonic()
        time.sleep(seconds)
        frames1, c1, t1 = sum(column(snmp, BUS_FRAMES_OK)), cpu_s(gateway.pid), time.monotonic()
        cycle_ms = max(column(snmp, BUS_CYCLE_MS))
        transactions = frames1 - frames0
        if transactions <= 0:
            raise RuntimeError("no transaction answered while measuring")
        # the bus time of one transaction, measured: the simulators answer at wire
        # speed with no turnaround, so this is the wire time of its bytes (poll_cycle.py
        # shows the cycle within 2 % of it); the two buses run side by side
        wire = (t1 - t0) * 2 / transactions
        return (c1 - c0) / transactions, wire, cycle_ms
    finally:
        for p in procs:
            stop(p)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="measuring window per baud")
    args = ap.parse_args(argv)
    ratio = 0.0
    with tempfile.TemporaryDirectory(prefix="bms-poll-cpu-") as tmp:
        for baud in (9600, 115200):
            cpu, wire, cycle_ms = measure(Path(tmp), baud, args.seconds)
            ratio = cpu / wire
            print(f"{baud:>6} Bd: gateway CPU {cpu * 1e3:.3f} ms per transaction; a "
                  f"transaction takes {wire * 1e3:.2f} ms of its bus (cycle of 15 packs "
                  f"{cycle_ms} ms); CPU {ratio:.3f}x the bus time, "
                  f"{cpu / wire * 2:.2f} of a core for 2 buses")
    print(f"poll-cpu/wire: {ratio:.3f}x gateway CPU per transaction vs its wire time at "
          "115200 Bd, 2x15 packs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
