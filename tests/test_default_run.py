"""The README's promise: `bms-gateway run` with no config polls a simulated 12-pack bank
and serves it over SNMP (127.0.0.1:1161), Modbus-TCP (127.0.0.1:1502) and HTTP (the
status page on http://127.0.0.1:8080/), read here by net-snmp, mbpoll and urllib, then
stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import urllib.request

import pytest

pytestmark = pytest.mark.e2e

SNMP = ["-v2c", "-c", "public", "-m", "+BMS-GATEWAY-MIB", "-M", "+mibs", "-t", "1", "-r", "1"]


def snmp(tool, *args, repo):
    res = subprocess.run([tool, *SNMP, "127.0.0.1:1161", *args], capture_output=True,
                         text=True, cwd=repo, timeout=30)
    # values on stdout; stderr carries net-snmp's complaints about the IETF MIBs that
    # Debian does not ship (ours and its imports are under mibs/)
    return res.returncode, res.stdout


def mbpoll(*args):
    res = subprocess.run(["mbpoll", "-m", "tcp", "-p", "1502", "-a", "1", "-0", "-1", *args,
                          "127.0.0.1"], capture_output=True, text=True, timeout=30)
    return res.returncode, res.stdout + res.stderr


def registers(out: str) -> dict[int, int]:
    return {int(a): int(v) for a, v in re.findall(r"^\[(\d+)\]:\s+(-?\d+)", out, re.M)}


@pytest.fixture
def default_gateway(gateway_cmd, subprocess_env, repo, require_tool):
    require_tool("snmpget")
    require_tool("mbpoll")
    proc = subprocess.Popen(gateway_cmd + ["run"], env=subprocess_env, cwd=repo,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 45
        online = None
        while time.monotonic() < deadline and proc.poll() is None:
            code, out = snmp("snmpget", "-Oqv", "bmsBankModulesOnline.0", repo=repo)
            if code == 0 and out.strip() == "12":
                online = 12
                break
            time.sleep(0.5)
        assert online == 12, f"the default bank never came fully online: {out}"
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        finally:
            proc.kill()
            proc.communicate()


def test_default_run_serves_the_simulated_bank(default_gateway, repo):
    code, out = snmp("snmpget", "-Oqv", "SNMPv2-MIB::sysDescr.0", "bmsBankModulesConfigured.0",
                     repo=repo)
    assert code == 0 and "bms-gateway" in out.splitlines()[0]
    assert out.splitlines()[1] == "12"
    code, table = snmp("snmptable", "-Ci", "-Cf", ",", "bmsModuleTable", repo=repo)
    assert code == 0, table
    rows = [r for r in table.splitlines() if r.count(",") > 3 and "ok" in r]
    assert len(rows) == 12, table
    code, out = mbpoll("-r", "9", "-c", "2")
    assert code == 0, out
    assert registers(out) == {9: 12, 10: 12}
    # the first module's block: its status register reads 1 (ok) on Modbus too
    code, out = mbpoll("-r", "1000", "-c", "4")
    assert code == 0 and 1 in registers(out).values(), out
    # the status page and its JSON API on 127.0.0.1:8080
    with urllib.request.urlopen("http://127.0.0.1:8080/api/v1/bank", timeout=10) as r:
        bank = json.loads(r.read())
    assert bank["bank"]["modules_online"] == 12 and len(bank["modules"]) == 12
    with urllib.request.urlopen("http://127.0.0.1:8080/", timeout=10) as r:
        assert 'src="static/app.js"' in r.read().decode()

    default_gateway.send_signal(signal.SIGTERM)
    assert default_gateway.wait(timeout=5) == 0
