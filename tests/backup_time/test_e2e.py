"""End to end: a real ``bms-gateway run`` polls its in-process simulator through a
mains failure (scenario: the rectifier stops, a 40 A site load draws from the bank for
16 s). A real ``snmptrapd`` receives bmsBankOnBattery and bmsBankOnMains; net-snmp
(snmpget, snmptable) and mbpoll read the bank state, the time to EOD and, afterwards,
the discharge record; a restart keeps the record (state_dir)."""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from plugins.modbus_tcp import register_map as rm

pytestmark = pytest.mark.e2e

BANK = rm.BANK_BLOCK.offsets
OUTAGE = {"at_s": 4, "until_s": 20, "fault": "mains_failure", "load_a": 40}


def load_helpers():
    name = "bms_gateway_alarm_e2e_helpers"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parents[1] / "alarms" / "trapd.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class Site:
    def __init__(self, tmp: Path, exe: str, env: dict[str, str]) -> None:
        self.h = load_helpers()
        self.tmp, self.exe, self.env = tmp, exe, env
        self.trap_port = self.h.free_port()
        self.snmp_port = self.h.free_port()
        self.modbus_port = self.h.free_port(kind=socket.SOCK_STREAM)
        self.trapd = self.h.TrapDaemon(tmp, [self.trap_port])
        self.config = tmp / "gateway.yaml"
        home = tmp / "netsnmp"
        home.mkdir()
        self.snmp_env = {k: v for k, v in os.environ.items() if not k.startswith(("MIB", "SNMP"))}
        self.snmp_env.update(HOME=str(home), SNMPCONFPATH=str(home),
                             SNMP_PERSISTENT_DIR=str(home))
        self.gateway = None

    def write(self, steps) -> None:
        scenario = self.tmp / "scenario.yaml"
        scenario.write_text(yaml.safe_dump({"steps": steps}))
        self.config.write_text(yaml.safe_dump({
            "gateway": {"name": "backup-e2e", "state_dir": str(self.tmp / "state"),
                        "watchdog": False},
            "rs485_bms": {"stale_after_s": 5, "buses": [{
                "name": "sim", "baud": 115200, "poll_interval_s": 0.2,
                "simulate": {"packs": 4, "turnaround_ms": 0, "scenario": str(scenario)}}]},
            "snmp_agent": {"listen_address": "127.0.0.1", "port": self.snmp_port,
                           "v2c": {"community": "public"},
                           "notifications": {"receivers": [{
                               "host": "127.0.0.1", "port": self.trap_port, "version": "v2c",
                               "community": self.h.COMMUNITY}]}},
            "modbus_tcp": {"listen_address": "127.0.0.1", "port": self.modbus_port},
            "backup_time": {"debounce_s": 1, "smoothing_window_s": 5, "settle_s": 1},
        }, sort_keys=False))

    def start(self) -> None:
        t0 = time.time()
        self.gateway = self.h.GatewayProcess(self.exe, self.config, self.env)
        self.trapd.wait(lambda t: t.name == "coldStart" and t.at >= t0, timeout=30)

    def snmp(self, tool: str, *args: str) -> str:
        out = subprocess.run(
            [tool, "-v2c", "-c", "public", "-t", "2", "-r", "1", "-m", "+BMS-GATEWAY-MIB",
             "-M", f"+{self.h.MIBS}", *args[:-1], f"127.0.0.1:{self.snmp_port}", args[-1]]
            if tool == "snmptable" else
            [tool, "-v2c", "-c", "public", "-t", "2", "-r", "1", "-m", "+BMS-GATEWAY-MIB",
             "-M", f"+{self.h.MIBS}", f"127.0.0.1:{self.snmp_port}", *args],
            capture_output=True, text=True, env=self.snmp_env, timeout=20)
        assert out.returncode == 0, out.stderr
        return out.stdout

    def get(self, *names: str) -> dict[str, str]:
        out = self.snmp("snmpget", "-OQ", *names)
        return {k.split("::")[-1]: v.strip().strip('"')
                for k, v in (line.split(" = ", 1) for line in out.splitlines())}

    def modbus_bank(self) -> dict[str, int]:
        # the bank block is longer than one read (125 registers): read it in pieces
        chunks = []
        for start in range(0, rm.BANK_BLOCK.length, 125):
            count = min(125, rm.BANK_BLOCK.length - start)
            part = subprocess.run(["mbpoll", "-m", "tcp", "-p", str(self.modbus_port), "-0", "-1",
                                  "-a", "1", "-r", str(start), "-c", str(count), "-t",
                                  "4:hex", "127.0.0.1"], capture_output=True, text=True, timeout=20)
            chunks.append(part)
        out = subprocess.CompletedProcess(chunks[0].args, max(c.returncode for c in chunks),
                                          ''.join(c.stdout for c in chunks),
                                          ''.join(c.stderr for c in chunks))
        assert out.returncode == 0, out.stdout + out.stderr
        regs = {int(a): int(v, 16) for a, v in
                re.findall(r"^\[(\d+)\]:\s+0x([0-9A-F]{4})", out.stdout, re.M)}
        values = {}
        for f in rm.BANK_BLOCK.fields:
            off = BANK[f.name]
            values[f.name] = (regs[off] << 16 | regs[off + 1]) if f.length == 2 else regs[off]
        return values

    def close(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()
        self.trapd.stop()


@pytest.fixture
def site(tmp_path, gateway_cmd, subprocess_env, require_tool):
    for name in ("snmptrapd", "snmpget", "snmptable", "mbpoll"):
        require_tool(name)
    s = Site(tmp_path, gateway_cmd[0], subprocess_env)
    yield s
    s.close()


def test_a_mains_failure_on_snmp_and_modbus_with_traps_and_a_discharge_record(site):
    site.write([OUTAGE])
    site.start()
    on = site.trapd.wait(lambda t: t.name == "bmsBankOnBattery", timeout=30)
    assert on.value("bmsBackupState").startswith("discharging")
    assert on.port == site.trap_port

    # during the outage: on battery, with a time to EOD that fits the bank's figures
    # the 5 s smoothing window must hold only the discharge: a poll cycle that straddles
    # the outage's start reads some packs still charging (the bank current passes 0)
    deadline = time.monotonic() + 20
    while int(site.get("bmsBackupSecondsOnBattery.0")["bmsBackupSecondsOnBattery.0"]
              .split()[0]) < 7:
        assert time.monotonic() < deadline, "the bank left the battery too early"
        time.sleep(0.2)
    v = site.get("bmsBackupState.0", "bmsBackupSecondsOnBattery.0",
                 "bmsBackupMinutesRemaining.0", "bmsBackupDischargeCurrent.0",
                 "bmsBankRemainingCapacity.0", "bmsBackupLimitedBy.0")
    assert v["bmsBackupState.0"] == "discharging"
    assert 7 <= int(v["bmsBackupSecondsOnBattery.0"].split()[0]) <= 12
    minutes = int(v["bmsBackupMinutesRemaining.0"].split()[0])
    remaining_ah = float(v["bmsBankRemainingCapacity.0"].split()[0])
    current_a = float(v["bmsBackupDischargeCurrent.0"].split()[0])
    assert abs(current_a - 40) <= 0.2
    # 4 packs, nothing near a cut-off: the remaining charge at 40 A, to the minute
    assert abs(minutes - remaining_ah / 40 * 60) <= 2, (minutes, remaining_ah)
    assert v["bmsBackupLimitedBy.0"] == "capacity"
    regs = site.modbus_bank()
    assert regs["backup_state"] == 4 and regs["estimate_limited_by"] == 1
    assert abs(regs["seconds_to_eod"] / 60 - minutes) <= 2
    assert abs(regs["discharge_current_ma"] - 40_000) <= 200
    assert regs["discharge_last_number"] == 0

    # back on mains: the trap carries the record, the table and the registers hold it
    off = site.trapd.wait(lambda t: t.name == "bmsBankOnMains", timeout=30)
    assert off.instance("bmsDischargeDuration") == 1
    assert 14 <= int(off.value("bmsDischargeDuration").split()[0]) <= 18
    assert off.value("bmsDischargeEodReached").startswith("false")
    table = site.snmp("snmptable", "-Cf", "|", "-CH", "-Cb", "bmsDischargeTable")
    (row,) = [line.split("|") for line in table.splitlines() if line.strip()]
    assert len(row) == 13  # every column but the index
    duration = int(row[2].split()[0])
    assert 14 <= duration <= 18
    delivered_ah = float(row[3].split()[0])
    assert abs(delivered_ah - 40 * duration / 3600) <= 0.05
    assert row[12] == "false"
    regs = site.modbus_bank()
    assert regs["discharge_last_number"] == 1
    assert regs["discharge_last_duration_s"] == duration
    assert abs(regs["discharge_last_mah"] - delivered_ah * 1000) <= 10
    assert regs["discharge_last_soc_start_permille"] >= regs["discharge_last_soc_end_permille"]
    assert regs["backup_state"] == 1  # charging again
    assert site.get("bmsBackupSecondsOnBattery.0")["bmsBackupSecondsOnBattery.0"].startswith("0")

    # a restart keeps the record
    site.gateway.stop()
    site.write([])
    site.start()
    v = site.get("bmsDischargeLastNumber.0", "bmsDischargeDuration.1")
    assert v["bmsDischargeLastNumber.0"] == "1"
    assert int(v["bmsDischargeDuration.1"].split()[0]) == duration
    assert site.modbus_bank()["discharge_last_duration_s"] == duration
