"""Soak: the gateway's resident memory under a long mixed load must stay flat.

Setup, all on 127.0.0.1: ``bms-gateway run`` (a subprocess) with a simulated 12-pack
PACE bank polled every second, a scenario that raises and clears cell, BMS-flag and
communication alarms all the time, SNMP v2c and an SNMPv3 authPriv user, v2c traps and
v3 informs to receivers that never answer (on two free ports) (the inform queue fills and drops), Modbus
TCP, and the alarm event log in a state directory. This process drives, for the whole
run: net-snmp bulk walks (v2c) and authPriv GETs (v3), Modbus reads on a kept
connection and on a new connection per read, and a stream of malformed SNMP datagrams.

The gateway's RSS (``/proc/PID/status`` VmRSS) is sampled every few seconds; after the
warm-up the least-squares slope is reported in MiB per hour, against the target of a
flat RSS (under 1 MiB/hour). The last line printed is::

    rss-slope: <ratio>x the 1 MiB/hour target (<slope> MiB/hour after warm-up)

Run by hand, not in ``make test``: ``.venv/bin/python benchmarks/soak.py`` (30 minutes,
5 of them warm-up; ``--minutes`` and ``--warmup-minutes`` to change them).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TARGET_MIB_PER_HOUR = 1.0
SAMPLE_S = 5.0
AUTH, PRIV = "soak-auth-key", "soak-priv-key"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scenario(seconds: float) -> dict:
    """Alarms all the time: every 40 s a cell ramps over its limit and back on one pack,
    a BMS protection flag comes and goes on another, and a third falls silent for 20 s
    (communication loss), the packs taking turns."""
    steps = []
    t, k = 10.0, 0
    while t < seconds + 60:
        a, b, c = 1 + k % 12, 1 + (k + 4) % 12, 1 + (k + 8) % 12
        steps += [
            {"at_s": t, "until_s": t + 30, "packs": [a], "fault": "cell_ramp", "cell": 1 + k % 16,
             "from_mv": 3400, "to_mv": 3700, "duration_s": 10},
            {"at_s": t, "until_s": t + 20, "packs": [b], "fault": "flags",
             "flags": {"protect1": 1}},
            {"at_s": t + 5, "until_s": t + 25, "packs": [c], "fault": "silence"},
        ]
        t, k = t + 40, k + 1
    return {"description": "soak: alarms raised and cleared all the time", "steps": steps}


def make_config(work: Path, seconds: float, snmp: int, modbus: int, trap: int) -> Path:
    scen = work / "soak-scenario.yaml"
    scen.write_text(yaml.safe_dump(scenario(seconds)))
    user = {"name": "soak", "auth_protocol": "sha1", "auth_key": AUTH,
            "priv_protocol": "aes128", "priv_key": PRIV}
    config = {
        "gateway": {"name": "soak", "state_dir": str(work / "state")},
        "rs485_bms": {"buses": [{"name": "sim", "family": "pace_v25", "poll_interval_s": 1,
                                 "simulate": {"packs": 12, "first_address": 1,
                                              "scenario": str(scen)}}]},
        "snmp_agent": {
            "listen_address": "127.0.0.1", "port": snmp, "v2c": {"community": "public"},
            "v3_users": [user],
            "notifications": {"receivers": [
                {"host": "127.0.0.1", "port": trap, "version": "v2c", "community": "public"},
                {"host": "127.0.0.1", "port": trap + 1, "version": "v3", "user": "soak",
                 "auth_protocol": "sha1", "auth_key": AUTH, "priv_protocol": "aes128",
                 "priv_key": PRIV, "timeout_s": 1, "retries": 1, "queue_size": 50}]},
        },
        "modbus_tcp": {"listen_address": "127.0.0.1", "port": modbus},
        "alarms": {},
    }
    path = work / "soak.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def wait_port(port: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the gateway did not open port {port}")


class Load:
    """The client side: threads that each repeat one kind of request until stopped."""

    def __init__(self, snmp: int, modbus: int) -> None:
        self.snmp, self.modbus = snmp, modbus
        self.stop = threading.Event()
        self.counts: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.threads = [threading.Thread(target=self._loop, args=(name, fn, pause), daemon=True)
                        for name, fn, pause in (
                            ("v2c bulk walk", self._walk, 1.0),
                            ("v3 authPriv get", self._v3_get, 0.2),
                            ("modbus kept connection", self._modbus_kept, 0.01),
                            ("modbus new connection", self._modbus_new, 0.05),
                            ("malformed snmp", self._garbage, 0.02))]
        self._kept: socket.socket | None = None

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            if t.is_alive():
                t.join(10)

    def _loop(self, name: str, fn, pause: float) -> None:
        while not self.stop.is_set():
            try:
                fn()
                self.counts[name] = self.counts.get(name, 0) + 1
            except (OSError, subprocess.SubprocessError, ValueError):
                self.errors[name] = self.errors.get(name, 0) + 1
            self.stop.wait(pause)

    def _walk(self) -> None:
        subprocess.run(["snmpbulkwalk", "-v2c", "-c", "public", "-On", "-Cr25", "-t", "2",
                        f"127.0.0.1:{self.snmp}", ".1.3.6.1.4.1.32473"],
                       capture_output=True, check=True, timeout=30)

    def _v3_get(self) -> None:
        subprocess.run(["snmpget", "-v3", "-l", "authPriv", "-u", "soak", "-a", "SHA",
                        "-A", AUTH, "-x", "AES", "-X", PRIV, "-On", "-t", "2",
                        f"127.0.0.1:{self.snmp}", ".1.3.6.1.2.1.1.3.0",
                        ".1.3.6.1.4.1.32473.2.1.1.2.1.0"],
                       capture_output=True, check=True, timeout=30)

    @staticmethod
    def _read(sock: socket.socket, address: int, count: int) -> None:
        sock.sendall(struct.pack(">HHHBBHH", 1, 0, 6, 1, 3, address, count))
        need, data = 9 + 2 * count, b""
        while len(data) < need:
            chunk = sock.recv(need - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
            if len(data) >= 9 and data[7] & 0x80:
                return  # an exception answer is an answer too

    def _modbus_kept(self) -> None:
        if self._kept is None:
            self._kept = socket.create_connection(("127.0.0.1", self.modbus), timeout=5)
        try:
            self._read(self._kept, 1000, 125)
        except OSError:
            self._kept.close()
            self._kept = None
            raise

    def _modbus_new(self) -> None:
        with socket.create_connection(("127.0.0.1", self.modbus), timeout=5) as s:
            self._read(s, 0, 60)

    def _garbage(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(os.urandom(1 + int.from_bytes(os.urandom(1), "big")),
                     ("127.0.0.1", self.snmp))


def slope_mib_per_hour(samples: list[tuple[float, int]]) -> float:
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mr = sum(r for _, r in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    cov = sum((t - mt) * (r - mr) for t, r in samples)
    return cov / var / 1024 * 3600  # KiB per second -> MiB per hour


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0, help="whole run (default 30)")
    ap.add_argument("--warmup-minutes", type=float, default=5.0,
                    help="left out of the slope (default 5)")
    args = ap.parse_args(argv)
    if args.warmup_minutes >= args.minutes:
        ap.error("--warmup-minutes must be shorter than --minutes")
    for tool in ("snmpbulkwalk", "snmpget"):
        if shutil.which(tool) is None:
            print(f"{tool} not found: install Debian's snmp package", file=sys.stderr)
            return 1
    seconds = args.minutes * 60
    snmp, modbus = free_port(socket.SOCK_DGRAM), free_port()
    trap = free_port(socket.SOCK_DGRAM)  # and trap + 1: nothing listens on either
    with tempfile.TemporaryDirectory(prefix="bms-soak-") as tmp:
        work = Path(tmp)
        config = make_config(work, seconds, snmp, modbus, trap)
        log = (work / "gateway.log").open("w")
        proc = subprocess.Popen([str(BIN / "bms-gateway"), "run", "-c", str(config)],
                                stdout=subprocess.DEVNULL, stderr=log, cwd=REPO)
        load = Load(snmp, modbus)
        samples: list[tuple[float, int]] = []
        try:
            try:
                wait_port(modbus)
            except RuntimeError:
                log.flush()
                print((work / "gateway.log").read_text()[-3000:], file=sys.stderr)
                raise
            load.start()
            t0 = time.monotonic()
            warm = args.warmup_minutes * 60
            while (now := time.monotonic() - t0) < seconds:
                if proc.poll() is not None:
                    raise RuntimeError(f"the gateway exited with {proc.returncode}")
                rss = rss_kib(proc.pid)
                if now >= warm:
                    samples.append((now, rss))
                if int(now) % 60 < SAMPLE_S:
                    print(f"{now / 60:5.1f} min  RSS {rss / 1024:6.1f} MiB", flush=True)
                time.sleep(SAMPLE_S)
        finally:
            load.close()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
        if len(samples) < 3:
            print("too few samples after the warm-up", file=sys.stderr)
            return 1
        slope = slope_mib_per_hour(samples)
        first, last = samples[0][1] / 1024, samples[-1][1] / 1024
        print("load:", ", ".join(f"{k} {v}" for k, v in sorted(load.counts.items())))
        if load.errors:
            print("client errors:", ", ".join(f"{k} {v}" for k, v in sorted(load.errors.items())))
        print(f"RSS after warm-up: {first:.1f} -> {last:.1f} MiB over "
              f"{(samples[-1][0] - samples[0][0]) / 60:.1f} min")
        print(f"rss-slope: {max(slope, 0.0) / TARGET_MIB_PER_HOUR:.2f}x the "
              f"{TARGET_MIB_PER_HOUR:g} MiB/hour target ({slope:+.2f} MiB/hour after warm-up)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
