"""A total bus loss and its recovery, end to end, through the TCP fault proxy
(tests/faultproxy.py) between a real ``bms-gateway run`` and a real ``bms-gateway
simulate --listen`` bank.

While the bus is lost, neither SNMP (``bmsBankWorstStatus``, read with snmpget) nor
Modbus (``bank_status``, register 5, read with mbpoll) says ok: no module is live. When
the converter comes back, a real ``snmptrapd`` receives the ``bus_down`` raise and clear
and nothing else: no ``module_stale`` raise and clear for each module the poller has not
polled again yet (issue 13)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from plugins.modbus_tcp import register_map as rm

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

PACKS = 8
BANK_STATUS = rm.BANK_BLOCK.offsets["bank_status"]


@pytest.fixture
def tools(require_tool):
    for name in ("snmptrapd", "snmpget", "mbpoll"):
        require_tool(name)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _bank_status(modbus_port: int) -> int:
    out = subprocess.run(["mbpoll", "-m", "tcp", "-p", str(modbus_port), "-0", "-1", "-a", "1",
                          "-r", str(BANK_STATUS), "-c", "1", "-t", "4", "127.0.0.1"],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stdout + out.stderr
    (value,) = re.findall(rf"^\[{BANK_STATUS}\]:\s+(-?\d+)", out.stdout, re.M)
    return int(value)


def _worst_status(e2e, snmp_port: int, env: dict[str, str]) -> str:
    out = subprocess.run(["snmpget", "-v2c", "-c", "public", "-t", "2", "-r", "1",
                          "-m", "+BMS-GATEWAY-MIB", "-M", f"+{e2e.MIBS}", "-Oqv",
                          f"127.0.0.1:{snmp_port}", "bmsBankWorstStatus.0"],
                         capture_output=True, text=True, env=env, timeout=20)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def _until(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_a_total_bus_loss_is_no_ok_status_and_its_recovery_no_trap_storm(
        e2e, tmp_path: Path, gateway_cmd, subprocess_env, fault_proxy, tools):
    sim_port = e2e.free_port(socket.SOCK_STREAM)
    sim = subprocess.Popen([*gateway_cmd, "simulate", "--listen", f"tcp://127.0.0.1:{sim_port}",
                            "--packs", str(PACKS), "--baud", "115200", "--turnaround-ms", "0"],
                           env=subprocess_env, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    trap_port, snmp_port = e2e.free_port(), e2e.free_port()
    modbus_port = e2e.free_port(socket.SOCK_STREAM)
    trapd = e2e.TrapDaemon(tmp_path, [trap_port])
    snmp_env = {k: v for k, v in os.environ.items() if not k.startswith(("MIB", "SNMP"))}
    snmp_env.update(HOME=str(tmp_path), SNMPCONFPATH=str(tmp_path),
                    SNMP_PERSISTENT_DIR=str(tmp_path / "persist"))
    gw = None
    try:
        assert sim.stdout is not None and sim.stdout.readline().startswith("tcp://")
        proxy = fault_proxy(sim_port)
        config = tmp_path / "gateway.yaml"
        config.write_text(yaml.safe_dump({
            "gateway": {"name": "faults-e2e", "watchdog": False},
            "rs485_bms": {"stale_after_s": 2, "buses": [{
                "name": "b", "port": proxy.address, "addresses": f"1-{PACKS}",
                "baud": 115200, "poll_interval_s": 0.5, "timeout_ms": 300}]},
            "snmp_agent": {"listen_address": "127.0.0.1", "port": snmp_port,
                           "v2c": {"community": "public"},
                           "notifications": {"receivers": [
                               {"host": "127.0.0.1", "port": trap_port, "version": "v2c",
                                "community": e2e.COMMUNITY}]}},
            "modbus_tcp": {"listen_address": "127.0.0.1", "port": modbus_port},
            "alarms": {"bus_down": {"raise_delay_s": 1, "clear_delay_s": 1}},
        }))
        gw = e2e.GatewayProcess(gateway_cmd[0], config, subprocess_env)
        trapd.wait(lambda t: t.name == "coldStart", timeout=30)
        _until(lambda: _worst_status(e2e, snmp_port, snmp_env) == "ok", 20,
               "not every module got live")
        assert _bank_status(modbus_port) == 1

        # the converter loses power: the link drops and reconnects are refused
        proxy.refuse()
        proxy.drop()
        trapd.wait(lambda t: t.name == "bmsAlarmRaised"
                   and t.value("bmsAlarmKind") == "bus_down", timeout=20)
        time.sleep(2.5)  # every module's data is now older than stale_after_s too
        assert _bank_status(modbus_port) == 3  # no live module
        assert _worst_status(e2e, snmp_port, snmp_env) == "stale"

        # it is back: one clear, and the bank is live again
        proxy.refuse(False)
        trapd.wait(lambda t: t.name == "bmsAlarmCleared"
                   and t.value("bmsAlarmKind") == "bus_down", timeout=20)
        _until(lambda: _worst_status(e2e, snmp_port, snmp_env) == "ok", 20,
               "not every module got live again")
        assert _bank_status(modbus_port) == 1
        time.sleep(2.0)  # room for late module_stale traps, if there were any
        alarm_traps = [(t.name, t.value("bmsAlarmKind")) for t in trapd.received(trap_port)
                       if t.name in ("bmsAlarmRaised", "bmsAlarmCleared")]
        assert alarm_traps == [("bmsAlarmRaised", "bus_down"),
                               ("bmsAlarmCleared", "bus_down")], gw.log()
    finally:
        if gw is not None:
            gw.stop()
        trapd.stop()
        _stop(sim)
        if sim.stdout is not None:
            sim.stdout.close()
