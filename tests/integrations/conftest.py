"""A real gateway for the NMS profiles: ``bms-gateway run`` with the simulated 12-pack
bank of the default configuration, on free loopback ports, polled once at start (the
poll interval is an hour, so every value holds still while a test compares two peers)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MIBS = REPO / "mibs"
INTEGRATIONS = REPO / "integrations"
COMMUNITY = "public"


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: 'make test' installs the Debian packages")
    return path


@pytest.fixture(scope="session")
def snmp_env(tmp_path_factory) -> dict[str, str]:
    """Environment for net-snmp tools: no user or system config, a private HOME."""
    home = tmp_path_factory.mktemp("netsnmp-int")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MIB", "SNMP"))}
    env.update(HOME=str(home), SNMPCONFPATH=str(home), SNMP_PERSISTENT_DIR=str(home))
    return env


@pytest.fixture(scope="session")
def snmp(snmp_env):
    """``snmp("snmpget", *args)`` -> CompletedProcess (text); fails the test on an error."""
    def run(name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([tool(name), *args], capture_output=True, text=True,
                              env=snmp_env, timeout=60)
        if check and proc.returncode != 0:
            pytest.fail(f"{name} {' '.join(args)} failed ({proc.returncode}):\n"
                        f"{proc.stdout}\n{proc.stderr}")
        return proc
    return run


@pytest.fixture(scope="session")
def gateway(tmp_path_factory, snmp) -> Iterator[types.SimpleNamespace]:
    """A running ``bms-gateway run`` whose 12 simulated modules have all answered."""
    work = tmp_path_factory.mktemp("gateway")
    port = free_port(socket.SOCK_DGRAM)
    config = {
        "gateway": {"name": "nms-test-gw", "watchdog": False, "state_dir": str(work / "state")},
        "rs485_bms": {"buses": [{"name": "sim", "family": "pace_v25", "poll_interval_s": 3600,
                                 "simulate": {"packs": 12, "first_address": 1}}]},
        "alarms": {},
        "snmp_agent": {"listen_address": "127.0.0.1", "port": port,
                       "v2c": {"community": COMMUNITY}},
    }
    path = work / "gateway.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    exe = Path(sys.executable).with_name("bms-gateway")
    log = open(work / "gateway.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([str(exe), "run", "-c", str(path)], stdout=log,
                            stderr=subprocess.STDOUT)
    target = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            out = snmp("snmpget", "-Oqv", "-v2c", "-c", COMMUNITY, "-t", "1", "-r", "0",
                       target, ".1.3.6.1.4.1.32473.2.1.1.2.22.0", check=False)
            if out.returncode == 0 and out.stdout.strip() == "12":
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the gateway did not come up:\n"
                            + (work / "gateway.log").read_text(errors="replace"))
            time.sleep(0.2)
        yield types.SimpleNamespace(target=target, port=port, pid=proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
