"""A field capture reproduced on the desk, end to end.

Run 1: a real ``bms-gateway simulate`` plays tests/data/capture-faults.yaml (silence,
garbled, late, truncated and flagged answers) to a real ``bms-gateway run`` that records
its bus (``capture:``). Run 2: ``bms-gateway simulate --replay`` plays that capture to a
second gateway with the same bus settings. In both runs, after each poll cycle (while the
bus is idle) the values served are read with net-snmp's ``snmpget`` and with ``mbpoll``;
at every cycle seen in both runs they must be the same: statuses, values, BMS flags and
the per-module counters (all but garbage bytes, which land on whichever transaction
they fall into). Nothing compared depends on how fast the box is: both gateways retry an
offline module at every cycle (no back-off decision), each fault lasts longer than a poll
period, and a sample counts only if the bus stayed idle until it was read.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from plugins.modbus_tcp import register_map as rm
from plugins.snmp_agent import oid_map as om

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

PACKS = 3
POLL_S = 1.2
CYCLES = 11  #: the last fault ends at about cycle 9
BUS_CYCLES = "." + ".".join(map(str, om.BUS_CYCLES.oid + (1,)))
#: the bus's cycle count and counters: they change with every module the poller
#: publishes, so while they stand still the bus is idle between two cycles
BUS_STATE = [BUS_CYCLES] + ["." + ".".join(map(str, c.oid + (1,))) for c in om.BUS_COUNTERS]
MODULE_OBJECTS = (om.MOD_STATUS, om.MOD_LINK_STATE, om.MOD_VOLTAGE, om.MOD_CURRENT,
                  om.MOD_SOC, om.MOD_REMAINING, om.MOD_CELL_MIN, om.MOD_CELL_MAX,
                  om.MOD_TEMP_MAX, om.MOD_WARNINGS, *om.MOD_COUNTERS[:3])
#: the module block's registers up to the last temperature, but not its data age
MODBUS_COUNT = rm.MODULE_BLOCK.offsets["temp_6_dc"] + 1
DATA_AGE = rm.MODULE_BLOCK.offsets["data_age_s"]
#: stray bytes are counted on the module whose transaction they fall into: where a late
#: or cut-off answer's bytes land depends on timing, so this counter is not compared
GARBAGE = rm.MODULE_BLOCK.offsets["garbage_bytes"]  # uint32: this and the next register


def _port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _snmpget(port: int, oids: list[str]) -> dict[str, str]:
    out = subprocess.run(["snmpget", "-v2c", "-c", "public", "-On", "-Oqe", "-t", "1",
                          "-r", "2", f"127.0.0.1:{port}", *oids], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0 and not out.stderr, out.stderr
    values = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert set(values) == set(oids), out.stdout
    return values


def _modbus(port: int, start: int) -> list[int]:
    out = subprocess.run(["mbpoll", "-m", "tcp", "-p", str(port), "-a", "1", "-0", "-1",
                          "-t", "4:hex", "-r", str(start), "-c", str(MODBUS_COUNT),
                          "127.0.0.1"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    regs = dict(re.findall(r"^\[(\d+)\]:\s+0x([0-9A-F]{4})", out.stdout, re.M))
    return [int(regs[str(a)], 16) for a in range(start, start + MODBUS_COUNT)]


def served_per_cycle(snmp_port: int, modbus_port: int, gateway: subprocess.Popen
                     ) -> dict[int, dict]:
    """Cycle number -> what SNMP and Modbus serve just after that cycle ended.

    A sample counts only if the bus's state (cycle count and counters) stayed as it was
    when the cycle was seen to end until the last value was read: then every value is
    the one the cycle left, none is from the next cycle, however slow the box is."""
    module_oids = ["." + ".".join(map(str, obj.oid + (1, adr)))
                   for adr in range(1, PACKS + 1) for obj in MODULE_OBJECTS]
    seen: dict[int, dict] = {}
    last = 0
    deadline = time.monotonic() + 60
    while last < CYCLES:
        assert time.monotonic() < deadline, f"only {last} cycles in 60 s"
        assert gateway.poll() is None, "the gateway stopped"
        ended = _snmpget(snmp_port, BUS_STATE)
        cycles = int(ended[BUS_CYCLES])
        if cycles == last:
            time.sleep(0.03)
            continue
        last = cycles
        snmp = _snmpget(snmp_port, module_oids + BUS_STATE)
        blocks = [_modbus(modbus_port, rm.module_block_start(adr))
                  for adr in range(1, PACKS + 1)]
        for block in blocks:
            block[DATA_AGE] = block[GARBAGE] = block[GARBAGE + 1] = 0
        after = _snmpget(snmp_port, BUS_STATE)
        if all(snmp.pop(oid) == ended[oid] == after[oid] for oid in BUS_STATE):
            seen[cycles] = {"snmp": snmp, "modbus": blocks}
    return seen


def run_gateway(tmp_path: Path, name: str, bank_port: int, gateway_cmd, env,
                capture: Path | None) -> dict[int, dict]:
    snmp_port, modbus_port = _port(socket.SOCK_DGRAM), _port()
    bus = {"name": "field", "port": f"socket://127.0.0.1:{bank_port}", "family": "pace_v25",
           "addresses": f"1-{PACKS}", "baud": 115200, "poll_interval_s": POLL_S,
           "timeout_ms": 300, "retries": 0,
           # no back-off decision may depend on timing: an offline module is retried at
           # the very next cycle (0.1 s is far less than the 1.2 s period less a cycle's
           # ~0.5 s), so both runs send the same requests in every cycle. With the
           # default back-off (1.2 s, doubling) whether a retry fell due in a cycle had a
           # margin of about one answer timeout, and a loaded box could tip it
           "offline_retry_max_s": 0.1}
    if capture is not None:
        bus["capture"] = {"file": str(capture)}
    config = tmp_path / f"{name}.yaml"
    config.write_text(yaml.safe_dump({
        "gateway": {"watchdog": False},
        "rs485_bms": {"stale_after_s": 3600, "buses": [bus]},
        "snmp_agent": {"listen_address": "127.0.0.1", "port": snmp_port},
        "modbus_tcp": {"listen_address": "127.0.0.1", "port": modbus_port},
    }))
    gateway = subprocess.Popen([*gateway_cmd, "run", "-c", str(config)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_listening(modbus_port, gateway)
        return served_per_cycle(snmp_port, modbus_port, gateway)
    finally:
        _stop(gateway)


def test_a_replayed_capture_serves_the_values_of_the_original_run(
        tmp_path, gateway_cmd, subprocess_env, require_tool, repo):
    for tool in ("snmpget", "mbpoll"):
        require_tool(tool)
    capture = tmp_path / "field.jsonl"
    scenario = repo / "tests/data/capture-faults.yaml"

    bank_port = _port()
    sim = subprocess.Popen([*gateway_cmd, "simulate", "--listen",
                            f"tcp://127.0.0.1:{bank_port}", "--packs", str(PACKS),
                            "--baud", "115200", "--turnaround-ms", "0",
                            "--scenario", str(scenario)],
                           env=subprocess_env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        _wait_listening(bank_port, sim)
        original = run_gateway(tmp_path, "original", bank_port, gateway_cmd,
                               subprocess_env, capture)
    finally:
        _stop(sim)

    # the capture saw every fault
    decoded = subprocess.run([*gateway_cmd, "decode", "--json", "--capture", str(capture)],
                             capture_output=True, text=True, timeout=60)
    assert decoded.stderr == ""  # no corrupt line: the gateway closed the file cleanly
    results = {json.loads(line)["result"] for line in decoded.stdout.splitlines()}
    assert {"request", "ok", "timeout", "chksum", "late", "truncated"} <= results, results

    bank_port = _port()
    replay = subprocess.Popen([*gateway_cmd, "simulate", "--listen",
                               f"tcp://127.0.0.1:{bank_port}", "--replay", str(capture)],
                              env=subprocess_env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        _wait_listening(bank_port, replay)
        replayed = run_gateway(tmp_path, "replayed", bank_port, gateway_cmd,
                               subprocess_env, None)
    finally:
        _stop(replay)
        stderr = replay.stderr.read()
        replay.stderr.close()
    assert "no answer" not in stderr  # every request the second gateway sent was recorded

    common = sorted(set(original) & set(replayed))
    assert len(common) >= CYCLES - 3, (sorted(original), sorted(replayed))
    for cycle in common:
        assert replayed[cycle] == original[cycle], f"cycle {cycle}"
    # the faults are in what was compared: pack 2 went offline, pack 3 counted checksum
    # errors, pack 1 warned
    status = "." + ".".join(map(str, om.MOD_LINK_STATE.oid + (1, 2)))
    checksum = "." + ".".join(map(str, om.MOD_COUNTERS[2].oid + (1, 3)))
    warnings = "." + ".".join(map(str, om.MOD_WARNINGS.oid + (1, 1)))
    assert len({original[c]["snmp"][status] for c in common}) > 1
    assert int(original[common[-1]]["snmp"][checksum]) > 0
    assert len({original[c]["snmp"][warnings] for c in common}) > 1
