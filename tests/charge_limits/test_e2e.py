"""End to end: a real ``bms-gateway run`` polls its in-process simulator (4 PACE packs of
100 Ah) with a scenario; mbpoll reads the limit registers of the bank block, net-snmp's
snmpget the bmsLimits objects (by name with BMS-GATEWAY-MIB, and raw), pysunspec2 the
SunSpec 802 points. Scenarios: two modules drop out (``silence``), a high cell
(``cell_ramp``), a cold module (``cell_temp``)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from sunspec2.modbus import client as sunspec_client

from gateway.model import LimitCause
from plugins.modbus_tcp import register_map as rm
from plugins.snmp_agent import oid_map as om

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
BANK = rm.BANK_BLOCK.offsets
WIDE = {"ccl_ma", "dcl_ma", "rectifier_charge_ma"}  #: uint32, high word first
MODULE_CCL = 20_000  #: 0.2 C of a simulated 100 Ah pack


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gateway:
    def __init__(self, tmp: Path, exe: str, env: dict[str, str], steps: list[dict],
                 limits: dict | None = None) -> None:
        self.snmp_port = free_port(socket.SOCK_DGRAM)
        self.modbus_port = free_port(socket.SOCK_STREAM)
        scenario = tmp / "scenario.yaml"
        scenario.write_text(yaml.safe_dump({"steps": steps}))
        config = tmp / "gateway.yaml"
        config.write_text(yaml.safe_dump({
            "gateway": {"name": "limits-e2e", "watchdog": False},
            "rs485_bms": {"stale_after_s": 3, "buses": [{
                "name": "sim", "baud": 115200, "poll_interval_s": 0.2,
                "simulate": {"packs": 4, "turnaround_ms": 0, "scenario": str(scenario)}}]},
            "snmp_agent": {"listen_address": "127.0.0.1", "port": self.snmp_port,
                           "v2c": {"community": "public"}},
            "modbus_tcp": {"listen_address": "127.0.0.1", "port": self.modbus_port},
            "alarms": {"rectifier_above_ccl": {"raise_delay_s": 0, "clear_delay_s": 0}},
            "charge_limits": limits or {},
        }, sort_keys=False))
        self.log = tmp / "gateway.log"
        self._log = self.log.open("w")
        self.proc = subprocess.Popen([exe, "run", "-c", str(config)], stdout=subprocess.DEVNULL,
                                     stderr=self._log, env=env)
        home = tmp / "netsnmp"
        home.mkdir()
        self.snmp_env = {k: v for k, v in os.environ.items() if not k.startswith(("MIB", "SNMP"))}
        self.snmp_env.update(HOME=str(home), SNMPCONFPATH=str(home), SNMP_PERSISTENT_DIR=str(home))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        finally:
            self._log.close()

    def bank(self) -> dict[str, int | None] | None:
        """The bank block over mbpoll (FC03), decoded; None while the server is not up."""
        # the bank block is longer than one read (125 registers): read it in two, the
        # limits in one read of their own so that they come from one snapshot
        chunks = []
        first = BANK["cvl_mv"]
        for start, count in ((0, first), (first, rm.BANK_BLOCK.length - first)):
            part = subprocess.run(["mbpoll", "-m", "tcp", "-p", str(self.modbus_port), "-0", "-1",
                                  "-a", "1", "-r", str(start), "-c", str(count), "-t", "4",
                                  "-o", "2", "127.0.0.1"], capture_output=True, text=True, timeout=20)
            chunks.append(part)
        out = subprocess.CompletedProcess(chunks[0].args, max(c.returncode for c in chunks),
                                          ''.join(c.stdout for c in chunks),
                                          ''.join(c.stderr for c in chunks))
        if out.returncode != 0:
            return None
        regs = {int(a): int(v) & 0xFFFF
                for a, v in re.findall(r"^\[(\d+)\]:\s+(-?\d+)", out.stdout, re.M)}
        values: dict[str, int | None] = {}
        for f in rm.BANK_BLOCK.fields:
            off = BANK[f.name]
            if f.length == 2:
                v = regs[off] << 16 | regs[off + 1]
                values[f.name] = None if v == 0xFFFFFFFF else v
            elif f.length == 1:
                values[f.name] = None if regs[off] == 0xFFFF else regs[off]
        return values

    def wait_bank(self, condition, timeout: float = 30.0) -> dict[str, int | None]:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail("the gateway exited:\n" + self.log.read_text())
            last = self.bank()
            if last is not None and last.get("bank_status") == rm.BankStatus.OK \
                    and condition(last):
                return last
            time.sleep(0.2)
        pytest.fail(f"no such bank block within {timeout} s; last: "
                    f"{ {k: last[k] for k in ('ccl_ma', 'ccl_cause', 'dcl_ma') } if last else None}"
                    f"\n{self.log.read_text()}")

    def snmpget(self, *oids: str, mib: bool) -> list[str]:
        args = ["-m", "+BMS-GATEWAY-MIB", "-M", f"+{REPO / 'mibs'}"] if mib else ["-m", ""]
        out = subprocess.run(["snmpget", "-v2c", "-c", "public", "-t", "2", "-r", "1", "-Oqv",
                              *args, f"127.0.0.1:{self.snmp_port}", *oids],
                             capture_output=True, text=True, env=self.snmp_env, timeout=20)
        assert out.returncode == 0, out.stderr
        return out.stdout.splitlines()


def oid(obj) -> str:
    return ".".join(map(str, obj.oid)) + ".0"


@pytest.fixture
def start(tmp_path, gateway_cmd, subprocess_env, require_tool):
    for tool in ("mbpoll", "snmpget"):
        require_tool(tool)
    started: list[Gateway] = []

    def run(steps, limits=None) -> Gateway:
        gw = Gateway(tmp_path, gateway_cmd[0], subprocess_env, steps, limits)
        started.append(gw)
        return gw
    yield run
    for gw in started:
        gw.stop()


def snmp_limits(gw: Gateway) -> dict[str, str]:
    objs = (om.LIMIT_CHARGE_CURRENT, om.LIMIT_CHARGE_CURRENT_CAUSE,
            om.LIMIT_CHARGE_CURRENT_REASON, om.LIMIT_CHARGE_CURRENT_MODULE,
            om.LIMIT_DISCHARGE_CURRENT, om.LIMIT_CHARGE_VOLTAGE, om.LIMIT_MODULES_COUNTED)
    values = gw.snmpget(*(oid(o) for o in objs), mib=False)
    return {o.name: v.strip('"') for o, v in zip(objs, values)}


def test_modules_dropping_out_scale_the_limits_and_raise_the_rectifier_alarm(start):
    gw = start([{"at_s": 6, "packs": [3, 4], "fault": "silence"}],
               limits={"rectifier_charge_a": 80})
    before = gw.wait_bank(lambda b: b["ccl_ma"] == 4 * MODULE_CCL)
    assert before["ccl_cause"] == LimitCause.CAPACITY and before["dcl_ma"] == 400_000
    assert (before["cvl_mv"], before["cutoff_mv"], before["eod_mv"]) == (53_250, 40_300, 40_500)
    assert before["rectifier_charge_ma"] == 80_000 and before["alarms_active"] == 0
    after = gw.wait_bank(lambda b: b["ccl_ma"] == 2 * MODULE_CCL)
    assert (after["ccl_cause"], after["dcl_ma"], after["limits_modules_counted"]) == (
        LimitCause.MODULES_NOT_LIVE, 200_000, 2)
    snmp = snmp_limits(gw)
    assert snmp["bmsLimitChargeCurrent"] == "40000"
    assert re.fullmatch(r"2 modules (offline|stale), 2 of 4 live|2 of 4 live: 1 offline, 1 stale",
                        snmp["bmsLimitChargeCurrentReason"])
    assert snmp["bmsLimitModulesCounted"] == "2"
    # the NOC sees the rectifier set for the whole bank; the text is that of the raise,
    # which came when the first or the second silent pack stopped counting
    deadline = time.monotonic() + 20
    while True:
        texts = subprocess.run(
            ["snmpwalk", "-v2c", "-c", "public", "-Oqv", "-m", "", f"127.0.0.1:{gw.snmp_port}",
             ".".join(map(str, om.ALARM_TEXT.oid))], capture_output=True, text=True,
            env=gw.snmp_env, timeout=20).stdout
        if "rectifier" in texts or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert re.search(r"rectifier set for 4 modules, (2 on line \(CCL 40\.0 A\)|"
                     r"3 on line \(CCL 60\.0 A\))", texts), texts
    assert gw.wait_bank(lambda b: b["alarm_worst_severity"] <= 4)["alarms_active"] >= 1


def test_a_high_cell_tapers_the_charge_current(start):
    gw = start([{"at_s": 0, "packs": [2], "fault": "cell_ramp", "cell": 7, "from_mv": 3580,
                 "to_mv": 3580}])
    b = gw.wait_bank(lambda b: b["ccl_cause"] == LimitCause.CELL_VOLTAGE
                     and b["limits_modules_counted"] == 4)
    assert b["ccl_ma"] == 4 * MODULE_CCL * 133 // 1000  # (3600 - 3580) / (3600 - 3450)
    assert (b["ccl_cause_position"], b["ccl_cause_index"]) == (2, 7)
    assert b["dcl_ma"] == 400_000
    snmp = snmp_limits(gw)
    assert snmp["bmsLimitChargeCurrentReason"] == "cell 7 of module 2 at 3.580 V"
    assert snmp["bmsLimitChargeCurrentModule"] == "2"
    named = gw.snmpget("bmsLimitChargeCurrentCause.0", "bmsLimitChargeCurrent.0",
                       "bmsLimitChargeVoltage.0", mib=True)
    assert named[0] == "cellVoltage" and named[1].startswith("10.640")
    assert named[2].startswith("53.250")
    # SunSpec 802, read by a third-party client
    device = sunspec_client.SunSpecModbusClientDeviceTCP(slave_id=1, ipaddr="127.0.0.1",
                                                         ipport=gw.modbus_port, timeout=5)
    try:
        device.scan()
        battery = device.models[802][0]
        battery.read()
        assert battery.AChaMax.cvalue == 10  # 10.64 A rounded down
        assert battery.ADisChaMax.cvalue == 400
        assert battery.VMax.cvalue == pytest.approx(53.25)
        assert battery.VMin.cvalue == pytest.approx(40.3)
    finally:
        device.close()


def test_a_cold_module_derates_charging_but_not_discharging(start):
    gw = start([{"at_s": 0, "packs": [3], "fault": "cell_temp", "degc": 2}])
    b = gw.wait_bank(lambda b: b["ccl_cause"] == LimitCause.COLD
                     and b["limits_modules_counted"] == 4)
    assert b["ccl_ma"] == 4 * MODULE_CCL * 200 // 1000  # (2 - 0) / (10 - 0)
    assert (b["ccl_cause_position"], b["ccl_cause_index"]) == (3, 1)
    assert b["dcl_ma"] == 400_000 and b["dcl_cause"] == LimitCause.CAPACITY
    snmp = snmp_limits(gw)
    assert snmp["bmsLimitChargeCurrentReason"] == "cold: 2.0 C, module 3 sensor 1"
    assert snmp["bmsLimitDischargeCurrent"] == "400000"
