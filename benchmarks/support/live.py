"""Helpers of the benchmarks that run the real gateway and its simulators as processes:
free loopback ports, a process's CPU time, starting the simulated buses, stopping.
(Not a benchmark itself: ``make bench`` runs only ``benchmarks/*.py``.)"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_s(pid: int) -> float:
    """User + system CPU time (s) the process (every thread) has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_simulators(count: int, packs: int, baud: int) -> tuple[list[int], list[subprocess.Popen]]:
    """``count`` PACE buses (``bms-gateway simulate``, no turnaround, answers at wire
    speed) on free loopback TCP ports: (ports, processes)."""
    ports = [free_port() for _ in range(count)]
    procs = [subprocess.Popen([str(BIN / "bms-gateway"), "simulate", "--listen",
                               f"tcp://127.0.0.1:{p}", "--packs", str(packs), "--baud",
                               str(baud), "--turnaround-ms", "0", "--seed", str(i + 1)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for i, p in enumerate(ports)]
    return ports, procs


def buses(ports: list[int], packs: int, baud: int, *, interval_s: float = 0.0) -> list[dict]:
    """The ``rs485_bms.buses`` of a gateway polling the simulators on ``ports``: every
    pack, back to back when ``interval_s`` is 0, no gap between transactions."""
    return [{"name": f"bank{i + 1}", "port": f"socket://127.0.0.1:{p}", "family": "pace_v25",
             "baud": baud, "addresses": f"1-{packs}", "poll_interval_s": interval_s,
             "timeout_ms": 300, "gap_ms": 0} for i, p in enumerate(ports)]


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 15 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
