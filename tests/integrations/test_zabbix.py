"""integrations/zabbix: the Zabbix 7.0 template is its generator's output, well formed,
and every OID in it resolves with snmptranslate against mibs/ to an object the agent
serves (the scalar items answered by a real gateway)."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from plugins.snmp_agent import oid_map as om
from plugins.snmp_agent import standard_mibs as sm

REPO = Path(__file__).resolve().parents[2]
MIBS = REPO / "mibs"
ZABBIX = REPO / "integrations" / "zabbix"
TEMPLATE_FILE = ZABBIX / "bms_gateway_by_snmp.yaml"
MODULES = "SNMPv2-MIB:BMS-GATEWAY-MIB:UPS-MIB"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: 'make test' installs the Debian packages")
    return path


@pytest.fixture(scope="module")
def template() -> dict:
    return yaml.safe_load(TEMPLATE_FILE.read_text(encoding="utf-8"))["zabbix_export"]


def walk(node):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v)


def snmp_oids(template: dict) -> list[str]:
    """Every OID named by an snmp_oid field, without its instance."""
    out = []
    for node in walk(template):
        spec = node.get("snmp_oid")
        if spec is None:
            continue
        m = re.fullmatch(r"(get|discovery)\[(.*)\]", spec)
        assert m, spec
        parts = m[2].split(",")
        oids = parts if m[1] == "get" else parts[1::2]
        for o in oids:
            assert re.fullmatch(r"[\d.]+(\.0|\.\{#SNMPINDEX\})?", o), o
            out.append(re.sub(r"\.(0|\{#SNMPINDEX\})$", "", o) if m[1] == "get" else o)
    return out


def test_the_template_is_the_generators_output():
    spec = importlib.util.spec_from_file_location("make_template", ZABBIX / "make_template.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert TEMPLATE_FILE.read_text(encoding="utf-8") == module.render()


def test_template_is_a_well_formed_zabbix_7_export(template):
    assert template["version"] == "7.0"
    (tpl,) = template["templates"]
    uuids = [n["uuid"] for n in walk(template) if "uuid" in n]
    assert len(uuids) == len(set(uuids))
    for u in uuids:  # UUIDv4, as Zabbix's import checks
        assert re.fullmatch(r"[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}", u), u
    keys = [i["key"] for i in tpl["items"]]
    protos = [p["key"] for d in tpl["discovery_rules"] for p in d["item_prototypes"]]
    assert len(set(keys + protos)) == len(keys + protos)
    maps = {v["name"] for v in tpl["valuemaps"]}
    for node in walk(template):
        if "valuemap" in node:
            assert node["valuemap"]["name"] in maps
        if "expression" in node:  # triggers name the template's own items
            for key in re.findall(r"/BMS gateway by SNMP/([^)\[,]+(?:\[[^\]]*\])?)",
                                  node["expression"]):
                assert key in keys + protos, key
    assert {m["macro"] for m in tpl["macros"]} >= {
        "{$SNMP_COMMUNITY}", "{$SNMPV3_USER}", "{$SNMPV3_AUTHPASS}", "{$SNMPV3_PRIVPASS}"}
    for i in tpl["items"]:  # a trigger kept under an item names that item only
        for t in i.get("triggers", []):
            assert set(re.findall(r"/BMS gateway by SNMP/([^)\[,]+)", t["expression"])) == {
                i["key"]}, t["name"]
    names = {d["name"] for d in tpl["discovery_rules"]}
    assert names == {"Battery modules", "Cells", "Temperature sensors", "Active alarms"}


def test_triggers_mirror_the_alarm_severities(template):
    (tpl,) = template["templates"]
    alarms = next(d for d in tpl["discovery_rules"] if d["name"] == "Active alarms")
    got = {int(t["expression"].rsplit("=", 1)[1]): t["priority"]
           for t in alarms["trigger_prototypes"]}
    assert got == {3: "DISASTER", 4: "HIGH", 5: "AVERAGE", 6: "WARNING"}
    assert alarms["lifetime_type"] == "DELETE_IMMEDIATELY"  # a cleared alarm's trigger goes


def test_every_oid_resolves_against_our_mibs_to_a_served_object(template):
    oids = snmp_oids(template)
    proc = subprocess.run([tool("snmptranslate"), "-m", MODULES, "-M", str(MIBS), "-Os",
                           *oids], capture_output=True, text=True, check=True)
    assert proc.stderr == ""
    names = proc.stdout.split()
    served = {".".join(map(str, o.oid)): o.name for o in
              list(om.OBJECT_TYPES.values()) + list(sm.OBJECT_TYPES.values())}
    assert names == [served[o] for o in oids]


def test_value_maps_are_the_mib_enumerations(template):
    (tpl,) = template["templates"]
    maps = {v["name"]: {int(m["value"]) for m in v["mappings"]} for v in tpl["valuemaps"]}
    for node in walk(template):
        if "valuemap" not in node:
            continue
        base = re.sub(r"^get\[|\.(0|\{#SNMPINDEX\})\]$", "", node["snmp_oid"])
        out = subprocess.run([tool("snmptranslate"), "-m", MODULES, "-M", str(MIBS), "-Td",
                              base], capture_output=True, text=True, check=True).stdout
        syntax = re.search(r"SYNTAX\t.*\{(.*)\}", out)
        assert syntax, base
        numbers = {int(n) for n in re.findall(r"\((\d+)\)", syntax[1])}
        assert maps[node["valuemap"]["name"]] == numbers, base


@pytest.mark.e2e
def test_every_scalar_item_is_answered_by_a_running_gateway(template, gateway, snmp):
    (tpl,) = template["templates"]
    oids = [i["snmp_oid"][4:-1] for i in tpl["items"]]
    out = snmp("snmpget", "-m", "", "-On", "-Oq", "-v2c", "-c", "public", gateway.target,
               *oids).stdout.splitlines()
    assert [line.split(" ")[0] for line in out] == ["." + o for o in oids]
    assert not [line for line in out if "No Such" in line]
