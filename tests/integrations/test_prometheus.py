"""integrations/prometheus: the shipped snmp.yml is the generator's output for the shipped
generator.yml, and Debian's prometheus-snmp-exporter scraping a real gateway with it
reports every value that snmpget reads."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
MIBS = REPO / "mibs"
PROMETHEUS = REPO / "integrations" / "prometheus"
COMMUNITY = "public"  #: the community of the gateway fixture (conftest) and of snmp.yml
MODULE = "bms_gateway"
#: values that move between the scrape and the snmpget (times since something)
MOVING = {"sysUpTime", "bmsGwUptime", "bmsGwLastCycleAge", "bmsBusLastCycleAge",
          "bmsModuleDataAge"}


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: 'make test' installs the Debian packages")
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_snmp_yml_is_what_the_generator_makes(tmp_path):
    shutil.copy(PROMETHEUS / "generator.yml", tmp_path / "generator.yml")
    proc = subprocess.run([tool("prometheus-snmp-generator"), "--fail-on-parse-errors",
                           "generate"], cwd=tmp_path, capture_output=True, text=True,
                          env={"MIBDIRS": str(MIBS), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "snmp.yml").read_text() == (PROMETHEUS / "snmp.yml").read_text()


@pytest.fixture(scope="module")
def exporter(tmp_path_factory):
    port = free_port()
    work = tmp_path_factory.mktemp("exporter")
    log = open(work / "exporter.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([tool("prometheus-snmp-exporter"),
                             f"--config.file={PROMETHEUS / 'snmp.yml'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read()
                break
            except (urllib.error.URLError, ConnectionError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("snmp_exporter did not start:\n"
                                + (work / "exporter.log").read_text(errors="replace"))
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_exposition(text: str) -> list[tuple[str, dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, line
        labels = {k: v.encode().decode("unicode_escape") for k, v in _LABEL.findall(m[2] or "")}
        out.append((m[1], labels, float(m[3])))
    return out


def snmpget_all(snmp, target: str, oids: list[str]) -> dict[str, str]:
    """numeric OID -> value as net-snmp prints it with -Oqn -Oe -Ot (plain numbers)."""
    values: dict[str, str] = {}
    for i in range(0, len(oids), 20):  # 20 varbinds fit the agent's message size
        out = snmp("snmpget", "-m", "SNMPv2-MIB", "-M", str(MIBS), "-v2c", "-c", COMMUNITY,
                   "-On", "-Oq", "-Oe", "-Ot", "-Ox", target, *oids[i:i + 20]).stdout
        oid = ""
        for line in out.splitlines():
            if line.startswith("."):
                oid, _, value = line.partition(" ")
                values[oid] = value
            else:  # net-snmp wraps long hex strings onto further lines
                values[oid] += " " + line
    return values


def test_scrape_equals_snmpget_value_for_value(gateway, exporter, snmp):
    conf = yaml.safe_load((PROMETHEUS / "snmp.yml").read_text())[MODULE]
    metrics = {m["name"]: m for m in conf["metrics"]}
    with urllib.request.urlopen(f"{exporter}/snmp?target={gateway.target}&module={MODULE}",
                                timeout=60) as reply:
        samples = parse_exposition(reply.read().decode())
    served: dict[str, list[tuple[str, dict[str, str], float]]] = defaultdict(list)
    for name, labels, value in samples:
        base = name[:-len("_info")] if name.endswith("_info") else name
        if base in metrics:
            served[base].append((name, labels, value))
    # every family of the snapshot is there: bank, bus, module, cell, temperature, UPS
    for family in ("bmsBankCurrent", "bmsModuleVoltage", "bmsCellVoltage", "bmsTempValue",
                   "bmsBusCycles", "upsBatteryVoltage",
                   "upsBatteryStatus", "bmsModuleStatus", "bmsModuleSerial"):
        assert served.get(family), family
    assert len(served["bmsCellVoltage"]) == 12 * 16
    oid_of: dict[tuple[str, tuple], str] = {}
    for name, entries in served.items():
        m = metrics[name]
        for _, labels, _ in entries:
            index = tuple(labels[i["labelname"]] for i in m.get("indexes", []))
            oid_of[(name, index)] = "." + m["oid"] + "." + (".".join(index) if index else "0")
    values = snmpget_all(snmp, gateway.target, sorted(set(oid_of.values())))
    checked = 0
    for name, entries in served.items():
        if name in MOVING:
            continue
        m = metrics[name]
        for sample, labels, value in entries:
            index = tuple(labels[i["labelname"]] for i in m.get("indexes", []))
            got = values[oid_of[(name, index)]]
            kind = m["type"]
            if kind in ("gauge", "counter"):
                assert value == float(int(got)), (sample, labels, got)
            elif kind == "EnumAsStateSet":
                state = labels[name]
                assert value == (1.0 if m["enum_values"][int(got)] == state else 0.0), (
                    sample, labels, got)
            elif kind == "EnumAsInfo":
                assert labels[name] == m["enum_values"][int(got)], (sample, labels, got)
            elif kind == "DisplayString":
                text = bytes.fromhex(got.strip('"').replace(" ", "")).decode() if got != '""' \
                    else ""
                assert labels[name] == text, (sample, labels, got)
            elif kind == "Bits":
                raw = bytes.fromhex(got.strip('"').replace(" ", "")) if got != '""' else b""
                bit = int(next(k for k, v in m["enum_values"].items() if v == labels[name]))
                on = bit // 8 < len(raw) and bool(raw[bit // 8] & (0x80 >> bit % 8))
                assert value == (1.0 if on else 0.0), (sample, labels, got)
            else:
                pytest.fail(f"unexpected metric type {kind} of {name}")
            checked += 1
    assert checked > 1400  # 12 modules x (16 cells + 6 temperatures + module columns) + bank
