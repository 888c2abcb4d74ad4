"""integrations/librenms: detection by the sysObjectID the agent serves, and every sensor of
the discovery YAML an object of BMS-GATEWAY-MIB with the right divisor and states."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from plugins.snmp_agent import oid_map as om

REPO = Path(__file__).resolve().parents[2]
MIBS = REPO / "mibs"
LIBRENMS = REPO / "integrations" / "librenms" / "includes" / "definitions"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: 'make test' installs the Debian packages")
    return path


def describe(name: str) -> str:
    return subprocess.run([tool("snmptranslate"), "-m", "BMS-GATEWAY-MIB", "-M", str(MIBS),
                           "-Td", f"BMS-GATEWAY-MIB::{name}"], capture_output=True, text=True,
                          check=True).stdout


def numeric(name: str) -> str:
    return subprocess.run([tool("snmptranslate"), "-m", "BMS-GATEWAY-MIB", "-M", str(MIBS),
                           "-On", f"BMS-GATEWAY-MIB::{name}"], capture_output=True, text=True,
                          check=True).stdout.strip()


def sensors() -> list[tuple[str, dict]]:
    doc = yaml.safe_load((LIBRENMS / "discovery" / "bms-gateway.yaml").read_text())
    assert doc["mib"] == "BMS-GATEWAY-MIB"
    return [(kind, s) for kind, group in doc["modules"]["sensors"].items()
            for s in group["data"]]


def test_os_is_detected_by_the_served_sys_object_id():
    os_def = yaml.safe_load((LIBRENMS / "bms-gateway.yaml").read_text())
    assert os_def["os"] == "bms-gateway" and os_def["mib_dir"] == "bms-gateway"
    assert os_def["discovery"] == [{"sysObjectID": [
        "." + ".".join(map(str, om.SYS_OBJECT_ID))]}]
    assert os_def["rfc1628_compat"] is True


@pytest.mark.parametrize(("kind", "sensor"), sensors(),
                         ids=lambda v: v if isinstance(v, str) else v.get("value", v["oid"]))
def test_sensor_is_a_mib_object_with_its_scale(kind, sensor):
    name = sensor.get("value", sensor["oid"])
    assert sensor["num_oid"] == numeric(name) + ".{{ $index }}"
    if "value" in sensor:  # a column of the table walked
        assert numeric(sensor["oid"]) == ".".join(numeric(name).split(".")[:-2])
    info = describe(name)
    hint = re.search(r'DISPLAY-HINT\t"d-(\d)"', info)
    assert sensor.get("divisor", 1) == (10 ** int(hint[1]) if hint else 1), name
    assert sensor["index"] == f"{name}.{{{{ $index }}}}"
    if kind == "state":
        numbers = dict((int(n), w) for w, n in re.findall(
            r"(\w+)\((\d+)\)", re.search(r"SYNTAX\t.*", info)[0]))
        assert {s["value"]: s["descr"] for s in sensor["states"]} == numbers
    for var in re.findall(r"\{\{ \$(bms\w+) \}\}", sensor["descr"]):
        assert numeric(var).startswith(numeric(sensor["oid"]) + "."), var  # same table


def test_sensor_indexes_are_unique():
    seen = [(kind, s["index"]) for kind, s in sensors()]
    assert len(seen) == len(set(seen))
