"""End to end: a real ``bms-gateway run`` subprocess polls its in-process simulator over a
loopback socket; a real ``snmptrapd`` receives the notifications and decodes them by name
with BMS-GATEWAY-MIB; net-snmp and mbpoll read the alarm table and the Modbus alarm
registers. Covers: one raise and one clear per threshold crossing, as a v2c trap and as
an acknowledged v3 inform, while a dead receiver retries in the background; the table and
the registers while the alarm is active; the heartbeat; restarts that keep the log and do
not announce again; SIGHUP with new thresholds and receivers, and with a bad file."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from plugins.modbus_tcp import register_map as rm

pytestmark = pytest.mark.e2e

BANK = rm.BANK_BLOCK.offsets
RAMP_UP = [  # pack 2, cell 7: 3.40 V -> 3.70 V, held, back to 3.40 V
    {"at_s": 3, "until_s": 4.5, "packs": [2], "fault": "cell_ramp", "cell": 7,
     "from_mv": 3400, "to_mv": 3700, "duration_s": 1.5},
    {"at_s": 4.5, "until_s": 10, "packs": [2], "fault": "cell_ramp", "cell": 7,
     "from_mv": 3700, "to_mv": 3700},
    {"at_s": 10, "until_s": 11.5, "packs": [2], "fault": "cell_ramp", "cell": 7,
     "from_mv": 3700, "to_mv": 3400, "duration_s": 1.5},
]
HIGH_CELL = [{"at_s": 0, "packs": [2], "fault": "cell_ramp", "cell": 7, "from_mv": 3700,
              "to_mv": 3700}]
FAST_CELL_RULE = {"cell_voltage_high": {"raise_delay_s": 0.5, "clear_delay_s": 0.5}}


@pytest.fixture
def tools(require_tool):
    for name in ("snmptrapd", "snmpget", "snmpwalk", "mbpoll"):
        require_tool(name)


class Site:
    """Ports, files and processes of one test: snmptrapd, the config, gateway runs."""

    def __init__(self, e2e, tmp_path: Path, gateway_cmd, subprocess_env) -> None:
        self.e2e = e2e
        self.tmp = tmp_path
        self.exe = gateway_cmd[0]
        self.env = subprocess_env
        self.state_dir = tmp_path / "state"
        self.v2c_port, self.v3_port, self.dead_port = (e2e.free_port() for _ in range(3))
        self.snmp_port = e2e.free_port()
        self.modbus_port = e2e.free_port(kind=socket.SOCK_STREAM)
        self.trapd = e2e.TrapDaemon(tmp_path, [self.v2c_port, self.v3_port])
        self.config = tmp_path / "gateway.yaml"
        self.gateways: list = []
        snmp_home = tmp_path / "netsnmp"
        snmp_home.mkdir()
        self.snmp_env = {k: v for k, v in os.environ.items() if not k.startswith(("MIB", "SNMP"))}
        self.snmp_env.update(HOME=str(snmp_home), SNMPCONFPATH=str(snmp_home),
                             SNMP_PERSISTENT_DIR=str(snmp_home))

    def receiver(self, version: str, port: int | None = None, **extra) -> dict:
        e = self.e2e
        if version == "v2c":
            return {"host": "127.0.0.1", "port": port or self.v2c_port, "version": "v2c",
                    "community": e.COMMUNITY, **extra}
        return {"host": "127.0.0.1", "port": port or self.v3_port, "version": "v3",
                "user": e.V3_USER, "auth_key": e.V3_AUTH, "priv_key": e.V3_PRIV,
                # long enough that a loaded box never makes pysnmp resend an inform that
                # snmptrapd then prints twice (the counts below are exact)
                "timeout_s": 3, "retries": 1, **extra}

    def write(self, *, steps, receivers, alarms=None, heartbeat_s: float = 0) -> None:
        scenario = self.tmp / "scenario.yaml"
        scenario.write_text(yaml.safe_dump({"steps": steps}))
        cfg = {
            "gateway": {"name": "alarm-e2e", "state_dir": str(self.state_dir),
                        "watchdog": False},
            "rs485_bms": {"stale_after_s": 5, "buses": [{
                "name": "sim", "baud": 115200, "poll_interval_s": 0.2,
                "simulate": {"packs": 4, "turnaround_ms": 0, "scenario": str(scenario)}}]},
            "snmp_agent": {"listen_address": "127.0.0.1", "port": self.snmp_port,
                           "v2c": {"community": "public"},
                           "notifications": {"receivers": receivers,
                                             "heartbeat_interval_s": heartbeat_s}},
            "modbus_tcp": {"listen_address": "127.0.0.1", "port": self.modbus_port},
            "alarms": alarms if alarms is not None else FAST_CELL_RULE,
        }
        self.config.write_text(yaml.safe_dump(cfg, sort_keys=False))

    def start(self):
        """Start the gateway; returns once its coldStart reached the v2c receiver."""
        t0 = time.time()
        gw = self.e2e.GatewayProcess(self.exe, self.config, self.env)
        self.gateways.append(gw)
        self.trapd.wait(lambda t: t.name == "coldStart" and t.at >= t0, timeout=30)
        return gw

    def snmp(self, tool: str, *args: str) -> str:
        out = subprocess.run(
            [tool, "-v2c", "-c", "public", "-t", "2", "-r", "1", "-m", "+BMS-GATEWAY-MIB",
             "-M", f"+{self.e2e.MIBS}", f"127.0.0.1:{self.snmp_port}", *args],
            capture_output=True, text=True, env=self.snmp_env, timeout=20)
        assert out.returncode == 0, out.stderr
        return out.stdout

    def modbus_bank(self) -> dict[str, int]:
        # the bank block is longer than one read (125 registers): read it in pieces
        chunks = []
        for start in range(0, rm.BANK_BLOCK.length, 125):
            count = min(125, rm.BANK_BLOCK.length - start)
            part = subprocess.run(["mbpoll", "-m", "tcp", "-p", str(self.modbus_port), "-0", "-1",
                                  "-a", "1", "-r", str(start), "-c", str(count), "-t", "4",
                                  "127.0.0.1"], capture_output=True, text=True, timeout=20)
            chunks.append(part)
        out = subprocess.CompletedProcess(chunks[0].args, max(c.returncode for c in chunks),
                                          ''.join(c.stdout for c in chunks),
                                          ''.join(c.stderr for c in chunks))
        assert out.returncode == 0, out.stderr
        regs = {int(a): int(v) for a, v in re.findall(r"^\[(\d+)\]:\s+(-?\d+)", out.stdout, re.M)}
        values = {name: regs[offset] for name, offset in BANK.items() if offset in regs}
        off = BANK["alarm_last_seq"]  # uint32, high word first
        values["alarm_last_seq"] = regs[off] << 16 | regs[off + 1]
        return values

    def log_records(self) -> list[dict]:
        path = self.state_dir / "alarms.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()]

    def close(self) -> None:
        for gw in self.gateways:
            gw.stop()
        self.trapd.stop()


@pytest.fixture
def site(e2e, tmp_path, gateway_cmd, subprocess_env, tools):
    s = Site(e2e, tmp_path, gateway_cmd, subprocess_env)
    yield s
    s.close()


def alarm_traps(site, port: int) -> list:
    return [t for t in site.trapd.received(port)
            if t.name in ("bmsAlarmRaised", "bmsAlarmCleared")]


def test_a_cell_crossing_the_threshold_and_back_is_one_raise_and_one_clear(site):
    site.write(steps=RAMP_UP, heartbeat_s=1, receivers=[
        site.receiver("v2c"), site.receiver("v3"),
        site.receiver("v3", port=site.dead_port, timeout_s=0.3, retries=0)])
    gw = site.start()
    trapd = site.trapd
    raised = trapd.wait(lambda t: t.name == "bmsAlarmRaised" and t.port == site.v2c_port)
    seq = raised.instance("bmsAlarmKind")
    assert raised.value("bmsAlarmKind") == "cell_voltage_high"
    assert raised.value("bmsAlarmSeverity") == "major(4)"
    assert raised.value("bmsAlarmModule") == "2" and raised.value("bmsAlarmSubIndex") == "7"
    assert int(raised.value("bmsAlarmValue")) >= 3600
    assert raised.value("bmsAlarmThreshold") == "3600"
    assert raised.values["bmsAlarmLastSeq.0"] == str(seq)
    assert raised.value("bmsAlarmText").startswith("module 2 cell 7 at 3.")
    assert {k.split(".")[1] for k in raised.values if k.startswith("bmsAlarm")
            and not k.startswith("bmsAlarmLastSeq")} == {str(seq)}
    informed = trapd.wait(lambda t: t.name == "bmsAlarmRaised" and t.port == site.v3_port)
    assert informed.values == {**raised.values, "sysUpTime.0": informed.values["sysUpTime.0"]}

    # while active: in the MIB's alarm table, and summarised in the Modbus bank block
    t0 = time.monotonic()
    row = site.snmp("snmpget", f"bmsAlarmKind.{seq}", f"bmsAlarmModule.{seq}",
                    f"bmsAlarmSubIndex.{seq}", "bmsAlarmLastSeq.0", "bmsBankActiveAlarms.0")
    assert time.monotonic() - t0 < 2  # the dead receiver's retries never hold the agent up
    assert f"bmsAlarmKind.{seq} = STRING: cell_voltage_high" in row
    assert f"bmsAlarmModule.{seq} = INTEGER: 2" in row and "bmsBankActiveAlarms.0 = Gauge32: 1" in row
    regs = site.modbus_bank()
    assert regs["alarms_active"] == 1 and regs["alarm_worst_severity"] == 4
    assert regs["modules_alarm_1_16"] == 1 << 1 and regs["modules_major_1_16"] == 1 << 1
    assert regs["alarm_last_seq"] == seq

    cleared = trapd.wait(lambda t: t.name == "bmsAlarmCleared" and t.port == site.v2c_port)
    assert cleared.instance("bmsAlarmKind") == seq
    assert cleared.values["bmsAlarmLastSeq.0"] == str(seq + 1)
    trapd.wait(lambda t: t.name == "bmsAlarmCleared" and t.port == site.v3_port)
    # the next heartbeat tells the last sequence number: nothing was lost
    # on the v2c port: its traps leave in order on one socket (a v3 heartbeat sent just
    # before the clear may be printed after it)
    hb = trapd.wait(lambda t: t.name == "bmsHeartbeat" and t.port == site.v2c_port
                    and t.at > cleared.at + 0.01)
    assert hb.values["bmsAlarmLastSeq.0"] == str(seq + 1)
    assert hb.values["bmsBankActiveAlarms.0"] == "0"
    time.sleep(1.0)  # room for a duplicate, if there were one
    for port in (site.v2c_port, site.v3_port):
        assert [t.name for t in alarm_traps(site, port)] == ["bmsAlarmRaised", "bmsAlarmCleared"]
        assert len(site.trapd.received(port, "coldStart")) == 1
    assert "bmsAlarmKind" not in site.snmp("snmpwalk", "bmsAlarmTable")
    gw.wait_log(f"v3 127.0.0.1:{site.dead_port} does not acknowledge informs")
    assert gw.stop() == 0, gw.log()
    events = [(r["event"], r.get("seq")) for r in site.log_records()]
    assert events == [("started", None), ("raised", seq), ("cleared", seq)]


def test_a_restart_keeps_the_log_and_does_not_announce_again(site):
    site.write(steps=HIGH_CELL, receivers=[site.receiver("v2c")],
               alarms={"cell_voltage_high": {"raise_delay_s": 0, "clear_delay_s": 0}})
    gw = site.start()
    raised = site.trapd.wait(lambda t: t.name == "bmsAlarmRaised")
    seq = raised.instance("bmsAlarmKind")
    assert gw.stop() == 0

    # second run, the cell still high: the alarm is re-established silently
    restart = time.time()
    gw = site.start()
    out = ""
    for _ in range(50):  # until every module is live again
        out = site.snmp("snmpget", "bmsBankModulesOnline.0", f"bmsAlarmKind.{seq}",
                        "bmsAlarmLastSeq.0")
        if "bmsBankModulesOnline.0 = Gauge32: 4" in out:
            break
        time.sleep(0.2)
    assert "bmsBankModulesOnline.0 = Gauge32: 4" in out, out
    assert f"bmsAlarmKind.{seq} = STRING: cell_voltage_high" in out
    assert f"bmsAlarmLastSeq.0 = Gauge32: {seq}" in out
    time.sleep(1.5)  # several poll cycles with the condition evaluated again
    assert [t for t in alarm_traps(site, site.v2c_port) if t.at >= restart] == []
    assert gw.stop() == 0
    records = site.log_records()
    assert [r["event"] for r in records] == ["started", "raised", "started", "confirmed"]
    assert records[2]["restored"][0]["seq"] == seq and records[3]["seq"] == seq

    # third run, the cell back to normal: the restored alarm clears, announced
    site.write(steps=[], receivers=[site.receiver("v2c")],
               alarms={"cell_voltage_high": {"raise_delay_s": 0, "clear_delay_s": 0}})
    gw = site.start()
    cleared = site.trapd.wait(lambda t: t.name == "bmsAlarmCleared")
    assert cleared.instance("bmsAlarmKind") == seq
    assert cleared.values["bmsAlarmLastSeq.0"] == str(seq + 1)
    assert [t.name for t in alarm_traps(site, site.v2c_port)] == [
        "bmsAlarmRaised", "bmsAlarmCleared"]
    assert gw.stop() == 0
    assert [r["event"] for r in site.log_records()][-2:] == ["started", "cleared"], gw.log()


def test_sighup_applies_new_thresholds_and_receivers_and_refuses_a_bad_file(site):
    steady = [{"at_s": 0, "packs": [3], "fault": "cell_ramp", "cell": 2, "from_mv": 3500,
               "to_mv": 3500}]
    site.write(steps=steady, receivers=[site.receiver("v2c")], alarms=FAST_CELL_RULE)
    gw = site.start()
    time.sleep(1.0)  # 3.50 V is below the default 3.60 V: nothing
    assert alarm_traps(site, site.v2c_port) == []

    # lower the threshold and add the v3 receiver: both get the raise
    site.write(steps=steady, receivers=[site.receiver("v2c"), site.receiver("v3")],
               alarms={"cell_voltage_high": {"raise_v": 3.45, "clear_v": 3.40,
                                             "raise_delay_s": 0.5, "clear_delay_s": 0.5}})
    mark = gw.reload()
    gw.wait_log("configuration reloaded", after=mark)
    for port in (site.v2c_port, site.v3_port):
        t = site.trapd.wait(lambda t, p=port: t.name == "bmsAlarmRaised" and t.port == p)
        assert (t.value("bmsAlarmModule"), t.value("bmsAlarmSubIndex"),
                t.value("bmsAlarmThreshold")) == ("3", "2", "3450")

    # a file with an error: refused with file:line:key, the running config stays
    text = site.config.read_text().replace("clear_v: 3.4", "clear_v: 3.5")
    site.config.write_text(text)
    line = next(i for i, l in enumerate(text.splitlines(), 1) if "cell_voltage_high:" in l)
    mark = gw.reload()
    err = gw.wait_log("reload refused", after=mark)
    assert f"{site.config}:{line}: alarms.cell_voltage_high: clear_v (3.5) must be below" in err
    time.sleep(0.5)
    assert gw.proc.poll() is None
    out = site.snmp("snmpget", "bmsBankActiveAlarms.0")
    assert "Gauge32: 1" in out  # still raised under the running thresholds
    assert [t.name for t in alarm_traps(site, site.v2c_port)] == ["bmsAlarmRaised"]
    assert gw.stop() == 0
