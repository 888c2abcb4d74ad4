"""End to end: a real ``bms-gateway run`` polling its simulator with a fault scenario
(tests/data/http-faults.yaml: pack 3 warns, protects and reports a sampling IC fault),
read by a real headless Chromium, a real Prometheus, Debian's promtool, net-snmp's
snmpget and mbpoll. The gateway polls once (the poll interval is an hour), so every
client sees the same numbers."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from gateway.leds import LedState
from plugins.modbus_tcp import register_map as rm
from plugins.snmp_agent import oid_map as om

pytestmark = pytest.mark.e2e

PACKS = 4
FAULTED = 3
SILENT = 4  #: never answers: never seen
LIVE = (1, 2, 3)
SCENARIO = Path(__file__).resolve().parents[1] / "data" / "http-faults.yaml"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


def _port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 5) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def get_json(url: str) -> dict:
    return json.loads(get(url))


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Gateway:
    def __init__(self, http: int, snmp: int, modbus: int, state_dir: Path) -> None:
        self.http, self.snmp, self.modbus, self.state_dir = http, snmp, modbus, state_dir
        self.url = f"http://127.0.0.1:{http}"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    for tool in ("snmpget", "mbpoll"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: 'make test' installs the Debian packages")
    tmp = tmp_path_factory.mktemp("http-e2e")
    gw = Gateway(_port(), _port(socket.SOCK_DGRAM), _port(), tmp / "state")
    config = tmp / "gateway.yaml"
    config.write_text(yaml.safe_dump({
        "gateway": {"watchdog": False, "state_dir": str(gw.state_dir)},
        "rs485_bms": {"stale_after_s": 7200, "buses": [{
            "name": "sim", "family": "pace_v25", "poll_interval_s": 3600,
            "simulate": {"packs": PACKS, "turnaround_ms": 0, "scenario": str(SCENARIO)}}]},
        "snmp_agent": {"listen_address": "127.0.0.1", "port": gw.snmp},
        "modbus_tcp": {"listen_address": "127.0.0.1", "port": gw.modbus, "stale_after_s": 7200},
        "alarms": {},
        "http": {"listen_address": "127.0.0.1", "port": gw.http, "refresh_s": 1},
    }))
    exe = Path(sys.executable).parent / "bms-gateway"  # the venv's console script
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    proc = subprocess.Popen([str(exe), "run", "-c", str(config)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 45
        doc: dict = {}
        while time.monotonic() < deadline:
            assert proc.poll() is None, "the gateway stopped"
            try:
                doc = get_json(gw.url + "/api/v1/bank")
            except (OSError, urllib.error.URLError):
                time.sleep(0.2)
                continue
            mods = doc["modules"]
            if (len(mods) == PACKS and all(mods[p - 1]["status"] == "ok" for p in LIVE)
                    and doc["buses"] and doc["buses"][0]["cycles"] >= 1
                    and mods[FAULTED - 1]["bms"]["faults"] and doc["alarms"]):
                assert mods[SILENT - 1]["status"] == "never_seen", mods[SILENT - 1]
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"the bank never came online with its fault: {doc}")
        yield gw
    finally:
        _stop(proc)


# ------------------------------------------------------------- the browser -------

def chromium(require_tool, tmp_path, *args: str) -> subprocess.CompletedProcess:
    # the virtual time budget lets the page's fetch() calls finish before the dump
    return subprocess.run([require_tool("chromium"), *CHROMIUM_FLAGS,
                           f"--user-data-dir={tmp_path / 'chromium'}",
                           "--virtual-time-budget=8000", *args],
                          capture_output=True, text=True, timeout=90)


def test_the_status_page_in_chromium_shows_the_faulted_modules_leds(gateway, require_tool,
                                                                     tmp_path):
    res = chromium(require_tool, tmp_path, "--dump-dom", gateway.url + "/")
    assert res.returncode == 0, res.stderr[-2000:]
    dom = res.stdout
    card = re.search(r'<article[^>]*id="module-3".*?</article>', dom, re.S)
    assert card, dom[:3000]
    card = card.group(0)
    def led(name: str) -> str:
        return re.search(rf'data-led="{name}" data-state="([a-z_0-9]+)"', card).group(1)

    assert led("err") == "steady"  # red, a fault
    assert led("alm") == "steady"  # orange, a protection wins over the warning
    assert re.search(r'data-fault-codes="6"', card), card
    assert "sampling IC communication failure" in card
    other = re.search(r'<article[^>]*id="module-1".*?</article>', dom, re.S).group(0)
    assert re.search(r'data-led="err" data-state="off"', other)
    silent = re.search(r'<article[^>]*id="module-4".*?</article>', dom, re.S).group(0)
    assert 'data-status="never_seen"' in silent and 'data-leds="unknown"' in silent
    assert silent.count('data-state="unknown"') == 7  # unknown, never shown as off
    assert "Lights unknown" in silent
    assert 'data-state="live"' in dom  # the page's own fetches reached the API
    assert re.search(r"<tr data-seq=\"\d+\"><td>\d+</td><td class=\"sev-critical\">", dom)
    shot = tmp_path / "page.png"
    res = chromium(require_tool, tmp_path, "--window-size=412,1400", "--hide-scrollbars",
                   f"--screenshot={shot}", gateway.url + "/")
    assert res.returncode == 0 and shot.stat().st_size > 20_000, res.stderr[-2000:]


# --------------------------------------------------- the same numbers, 3 ways -----

def snmp_get(gateway, oids: list[tuple[int, ...]]) -> dict[tuple[int, ...], str]:
    names = [".".join(map(str, o)) for o in oids]
    out = subprocess.run(["snmpget", "-v2c", "-c", "public", "-On", "-Oqe", "-t", "2", "-r", "3",
                          f"127.0.0.1:{gateway.snmp}", *names], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    values = {}
    for line in out.stdout.splitlines():
        oid, value = line.split(" ", 1)
        values[tuple(int(x) for x in oid.strip(".").split("."))] = value.strip().strip('"')
    return values


def modbus_block(gateway, start: int, count: int) -> list[int]:
    out = subprocess.run(["mbpoll", "-m", "tcp", "-p", str(gateway.modbus), "-a", "1", "-0",
                          "-1", "-t", "4:hex", "-r", str(start), "-c", str(count),
                          "127.0.0.1"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    regs = dict(re.findall(r"^\[(\d+)\]:\s+0x([0-9A-F]{4})", out.stdout, re.M))
    return [int(regs[str(a)], 16) for a in range(start, start + count)]


def _s32(hi: int, lo: int) -> int:
    v = hi << 16 | lo
    return v - (1 << 32) if v & 0x80000000 else v


def test_http_json_snmp_and_modbus_serve_the_same_numbers(gateway):
    o = rm.MODULE_BLOCK.offsets
    for p in LIVE:
        m = get_json(f"{gateway.url}/api/v1/modules/{p}")
        t = m["telemetry"]
        idx = (1, m["address"])
        scalars = {om.MOD_VOLTAGE: t["voltage_mv"], om.MOD_CURRENT: t["current_ma"],
                   om.MOD_SOC: t["soc_permille"], om.MOD_REMAINING: t["remaining_mah"],
                   om.MOD_FULL: t["full_mah"], om.MOD_CYCLES: t["cycles"],
                   om.MOD_CELL_MIN: t["cell_min_mv"], om.MOD_CELL_MAX: t["cell_max_mv"]}
        want = {obj.oid + idx: str(v) for obj, v in scalars.items()}
        want.update({om.CELL_VOLTAGE.oid + idx + (i,): str(mv)
                     for i, mv in enumerate(t["cell_mv"], start=1)})
        want.update({om.TEMP_VALUE.oid + idx + (s["sensor"],): str(s["temp_dc"])
                     for s in t["temps"]})
        assert snmp_get(gateway, list(want)) == want, f"module {p}"

        block = modbus_block(gateway, rm.module_block_start(p), o["cell_1_mv"] + len(t["cell_mv"]))
        leds = modbus_block(gateway, rm.module_block_start(p) + o["led_run"], 8)
        assert block[o["status"]] == 1
        assert block[o["voltage_mv"]] == t["voltage_mv"]
        assert _s32(*block[o["current_ma"]:o["current_ma"] + 2]) == t["current_ma"]
        assert block[o["soc_permille"]] == t["soc_permille"]
        assert _s32(*block[o["remaining_mah"]:o["remaining_mah"] + 2]) == t["remaining_mah"]
        assert block[o["cycles"]] == t["cycles"]
        assert [block[o[f"cell_{i}_mv"]] for i in range(1, len(t["cell_mv"]) + 1)] == t["cell_mv"]

        # the LED view, derived once, served three ways
        names = {s.name.lower(): s.value for s in LedState}
        json_leds = [names[m["leds"][k]] for k in ("run", "alm", "err")] + [
            names[s] for s in m["leds"]["soc"]]
        assert leds[:7] == json_leds, f"module {p}"
        assert leds[7] == sum(1 << (c - 1) for c in m["leds"]["fault_codes"])
        led_oids = [om.MOD_LED_RUN, om.MOD_LED_ALM, om.MOD_LED_ERR, *om.MOD_LED_SOC]
        snmp = snmp_get(gateway, [obj.oid + idx for obj in led_oids]
                        + [om.MOD_LED_ERR_CODES.oid + idx])
        assert [int(snmp[obj.oid + idx]) for obj in led_oids] == json_leds
        assert snmp[om.MOD_LED_ERR_CODES.oid + idx] == " ".join(
            map(str, m["leds"]["fault_codes"]))
    faulted = get_json(f"{gateway.url}/api/v1/modules/{FAULTED}")["leds"]
    assert (faulted["err"], faulted["alm"], faulted["fault_codes"]) == ("steady", "steady", [6])
    # the silent module: status everywhere, values and lights nowhere
    silent = get_json(f"{gateway.url}/api/v1/modules/{SILENT}")
    assert (silent["status"], silent["telemetry"], silent["leds"]) == ("never_seen", None, None)
    idx = (1, silent["address"])
    assert snmp_get(gateway, [om.MOD_STATUS.oid + idx]) == {om.MOD_STATUS.oid + idx: "4"}
    err_oid = ".".join(map(str, om.MOD_LED_ERR.oid + idx))
    out = subprocess.run(["snmpget", "-v2c", "-c", "public", "-On", "-t", "2", "-r", "3",
                          f"127.0.0.1:{gateway.snmp}", err_oid],
                         capture_output=True, text=True, timeout=30)
    assert "No Such Instance" in out.stdout, out.stdout
    block = modbus_block(gateway, rm.module_block_start(SILENT), 1)
    leds = modbus_block(gateway, rm.module_block_start(SILENT) + o["led_run"], 8)
    assert block == [4] and leds == [0xFFFF] * 8


def test_events_come_from_the_alarm_plugins_log(gateway):
    deadline = time.monotonic() + 10
    while True:  # the alarm service writes the log in a worker thread
        events = get_json(gateway.url + "/api/v1/events")
        if any(e.get("kind") == "fault_sampling_ic" for e in events["events"]):
            break
        assert time.monotonic() < deadline, events
        time.sleep(0.2)
    assert events["available"] is True


# ------------------------------------------------------------- Prometheus ---------

def test_promtool_accepts_the_gateways_metrics(gateway, require_tool):
    body = get(gateway.url + "/metrics")
    res = subprocess.run([require_tool("promtool"), "check", "metrics"], input=body,
                         capture_output=True, timeout=30)
    assert res.returncode == 0 and not res.stdout and not res.stderr, (
        res.stdout.decode() + res.stderr.decode())
    text = body.decode()
    assert 'bms_module_fault{address="3",bus="sim",fault="sampling_ic"} 1.0' in text
    assert 'bms_module_fault_code{address="3",bus="sim",code="6"} 1.0' in text
    assert re.search(r'^bms_bus_poll_cycles_total\{bus="sim"\} 1\.0$', text, re.M)
    assert re.search(r"^process_resident_memory_bytes \d", text, re.M)
    assert re.search(r"^bms_gateway_snmp_in_pkts_total \d", text, re.M)
    assert re.search(r"^bms_gateway_modbus_requests_total \d", text, re.M)


def test_a_real_prometheus_scrapes_the_gateway_and_answers_promql(gateway, require_tool,
                                                                   tmp_path):
    port = _port()
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "bms-gateway", "scrape_interval": "1s",
                            "static_configs": [{"targets": [f"127.0.0.1:{gateway.http}"]}]}],
    }))
    proc = subprocess.Popen([require_tool("prometheus"),
                             f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        cell = get_json(f"{gateway.url}/api/v1/modules/{FAULTED}")["telemetry"]["cell_mv"][6]
        query = f'bms_cell_voltage_volts{{address="{FAULTED}",cell="7"}}'
        url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
        deadline = time.monotonic() + 60
        result = None
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            try:
                doc = get_json(url)
            except (OSError, urllib.error.URLError):
                time.sleep(0.5)
                continue
            if doc["status"] == "success" and doc["data"]["result"]:
                result = doc["data"]["result"]
                break
            time.sleep(0.5)
        assert result is not None, "Prometheus never answered the query"
        assert len(result) == 1
        assert result[0]["metric"]["job"] == "bms-gateway"
        assert result[0]["metric"]["bus"] == "sim" and result[0]["metric"]["address"] == "3"
        assert float(result[0]["value"][1]) == cell / 1000
        up = get_json(f"http://127.0.0.1:{port}/api/v1/query?query=up")["data"]["result"]
        assert [r["value"][1] for r in up] == ["1"]
    finally:
        _stop(proc)
        if proc.stderr is not None:
            proc.stderr.close()
