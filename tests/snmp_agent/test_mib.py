"""BMS-GATEWAY-MIB: lint-clean, and identical to what the agent serves, both directions."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from gateway.leds import LedState
from gateway.model import Condition, Fault, LinkState, ModuleStatus, Severity, State, TempRole
from plugins.snmp_agent import oid_map as om
from plugins.snmp_agent.oid_map import Syntax

MIBS = Path(__file__).resolve().parents[2] / "mibs"
MIB_FILE = MIBS / "BMS-GATEWAY-MIB.txt"
IMPLEMENTED_GROUPS = {
    "BMS-GATEWAY-MIB": ("bmsGatewayGroup", "bmsBankGroup", "bmsBusGroup", "bmsModuleGroup",
                        "bmsCellGroup", "bmsTempGroup", "bmsAlarmGroup", "bmsBackupGroup",
                        "bmsLimitsGroup"),
    "SNMPv2-MIB": ("systemGroup", "snmpGroup", "snmpCommunityGroup"),
    "SNMP-FRAMEWORK-MIB": ("snmpEngineGroup",),
}
#: Implemented from a MIB that mibs/ does not ship: SNMP-USER-BASED-SM-MIB's usmStats
#: subtree (its groups also hold the usmUserTable, which is not served). It is checked
#: against pysnmp's compilation of the RFC 3414 module instead.
USM_MODULE, USM_SUBTREE = "SNMP-USER-BASED-SM-MIB", "usmStats"
BASE_TYPES = {
    "Integer32": Syntax.INTEGER, "Enumeration": Syntax.INTEGER,
    "OctetString": Syntax.OCTET_STRING, "Bits": Syntax.OCTET_STRING,
    "ObjectIdentifier": Syntax.OBJECT_IDENTIFIER, "Counter32": Syntax.COUNTER32,
    "Gauge32": Syntax.GAUGE32, "Unsigned32": Syntax.GAUGE32, "TimeTicks": Syntax.TIMETICKS,
}


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: 'make test' installs smitools")
    return path


def smidump(module: str) -> dict:
    out = subprocess.run([tool("smidump"), "-f", "python", module], capture_output=True,
                         text=True, env={**os.environ, "SMIPATH": str(MIBS)}, check=True)
    return ast.literal_eval(out.stdout[out.stdout.index("MIB = ") + len("MIB = "):])


@pytest.fixture(scope="module")
def mibs() -> dict[str, dict]:
    return {name: smidump(name) for name in
            ("BMS-GATEWAY-MIB", "SNMPv2-MIB", "SNMPv2-TC", "SNMP-FRAMEWORK-MIB")}


def typedefs(mibs) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for mib in mibs.values():
        out.update(mib.get("typedefs", {}))
    return out


def resolve(syntax: dict, types: dict[str, dict]) -> tuple[str, dict]:
    """(base type, innermost type dict carrying ranges or named numbers)."""
    t = syntax["type"]
    if "basetype" in t:
        return t["basetype"], t
    if t["name"] in BASE_TYPES:  # an SNMPv2-SMI type used as is (TimeTicks, Counter32)
        return t["name"], t
    td = types[t["name"]]
    parent = td.get("parent module", {}).get("type")
    if parent in BASE_TYPES and td["basetype"] == "Unsigned32":  # libsmi: TimeTicks
        return parent, td
    return td["basetype"], td


def bounds(base: str, t: dict) -> tuple[int | None, int | None]:
    if "ranges" in t:
        return (min(int(r["min"]) for r in t["ranges"]), max(int(r["max"]) for r in t["ranges"]))
    numbers = [int(v["number"]) for v in t.values()
               if isinstance(v, dict) and v.get("nodetype") == "namednumber"]
    if base == "Enumeration":
        return min(numbers), max(numbers)
    if base == "Integer32":
        return om.INTEGER32
    return None, None


def implemented_objects(mibs) -> dict[str, tuple[tuple[int, ...], dict]]:
    out = {}
    for module, groups in IMPLEMENTED_GROUPS.items():
        mib = mibs[module]
        for group in groups:
            for name in mib["groups"][group]["members"]:
                node = mib["nodes"][name]
                out[name] = (tuple(int(x) for x in node["oid"].split(".")), node)
    return out


def test_smilint_prints_nothing():
    out = subprocess.run([tool("smilint"), "-l", "6", "-s", str(MIB_FILE)], capture_output=True,
                         text=True, env={**os.environ, "SMIPATH": str(MIBS)})
    assert out.stdout + out.stderr == ""


def usm_stats_objects() -> dict[str, tuple[tuple[int, ...], str, str]]:
    """The scalars of the usmStats subtree: name -> (OID, syntax class, max access)."""
    from pysnmp.smi import builder

    mib_builder = builder.MibBuilder()
    mib_builder.load_modules(USM_MODULE)
    symbols = mib_builder.mibSymbols[USM_MODULE]
    root = tuple(symbols[USM_SUBTREE].getName())
    return {name: (tuple(sym.getName()), type(sym.getSyntax()).__name__, sym.getMaxAccess())
            for name, sym in symbols.items()
            if type(sym).__name__ == "MibScalar" and tuple(sym.getName())[:len(root)] == root}


def test_served_usm_stats_equal_the_standard_mib_in_both_directions():
    standard = usm_stats_objects()
    served = {o.name: o for o in om.OBJECT_TYPES.values()
              if o.oid[:len(om.USM_STATS_OID)] == om.USM_STATS_OID}
    assert set(served) == set(standard) == {o.name for o in om.USM_COUNTERS.values()}
    for name, (oid, syntax, access) in standard.items():
        assert served[name].oid == oid and not served[name].column, name
        assert (syntax, access) == ("Counter32", "read-only"), name
        assert served[name].syntax is Syntax.COUNTER32, name


def test_served_objects_equal_the_mib_in_both_directions(mibs):
    mib = implemented_objects(mibs)
    served = {o.name: o for o in om.OBJECT_TYPES.values()
              if o.oid[:len(om.USM_STATS_OID)] != om.USM_STATS_OID}
    assert set(served) == set(mib), (set(served) ^ set(mib))
    types = typedefs(mibs)
    for name, (oid, node) in mib.items():
        obj = served[name]
        assert obj.oid == oid, name
        assert obj.column == (node["nodetype"] == "column"), name
        # SNMPv2-MIB's writable objects are served read-only (MIN-ACCESS read-only in
        # its compliance statement); BMS-GATEWAY-MIB is read-only throughout
        expected = ("readonly", "readwrite") if node["moduleName"] == "SNMPv2-MIB" else (
            "readonly",)
        assert node["access"] in expected, name
        base, t = resolve(node["syntax"], types)
        assert obj.syntax is BASE_TYPES[base], name
        if obj.syntax in (Syntax.INTEGER, Syntax.OCTET_STRING) and base != "Bits":
            assert (obj.low, obj.high) == bounds(base, t), name


def test_every_mib_object_is_in_a_group_and_every_group_implemented_or_notification(mibs):
    mib = mibs["BMS-GATEWAY-MIB"]
    grouped = {m for g in mib["groups"].values() for m in g["members"]}
    accessible = {n for n, v in mib["nodes"].items()
                  if v["nodetype"] in ("scalar", "column") and v.get("access") != "noaccess"}
    assert accessible <= grouped
    object_groups = {g for g, v in mib["groups"].items()
                     if not set(v["members"]) & set(mib["notifications"])}
    assert object_groups == set(IMPLEMENTED_GROUPS["BMS-GATEWAY-MIB"])
    notifications = set(mib["notifications"])
    assert notifications == {"bmsAlarmRaised", "bmsAlarmCleared", "bmsHeartbeat",
                             "bmsBankOnBattery", "bmsBankOnMains"}
    raised = mib["notifications"]["bmsAlarmRaised"]["objects"]
    assert raised == mib["notifications"]["bmsAlarmCleared"]["objects"]
    assert mib["notifications"]["bmsAlarmRaised"]["oid"].endswith(".0.1")


def camel(name: str) -> str:
    head, *rest = name.lower().split("_")
    return head + "".join(p.capitalize() for p in rest)


@pytest.mark.parametrize(("tc", "flags"), [
    ("BmsConditionFlags", Condition), ("BmsFaultFlags", Fault), ("BmsStateFlags", State)])
def test_bits_are_the_model_flags(mibs, tc, flags):
    td = mibs["BMS-GATEWAY-MIB"]["typedefs"][tc]
    bits = {k: int(v["number"]) for k, v in td.items()
            if isinstance(v, dict) and v.get("nodetype") == "namednumber"}
    model = {camel(f.name): f.value.bit_length() - 1 for f in flags if f.value}
    assert bits == model


@pytest.mark.parametrize(("tc", "members"), [
    ("BmsDataStatus", {camel(s.name): int(s) for s in ModuleStatus}),
    ("BmsSensorRole", {camel(r.name): int(r) for r in TempRole} | {"mosfet": 2}),
    ("BmsSeverity", {camel(s.name): int(s) for s in Severity}),
    ("BmsLinkState", {camel(s.name): n for s, n in om._LINK_STATE.items()}),
    ("BmsLedState", {camel(s.name): int(s) for s in LedState}),
])
def test_enumerations_are_the_model_enums(mibs, tc, members):
    td = mibs["BMS-GATEWAY-MIB"]["typedefs"][tc]
    named = {k: int(v["number"]) for k, v in td.items()
             if isinstance(v, dict) and v.get("nodetype") == "namednumber"}
    assert named == members
    assert set(om._LINK_STATE) == set(LinkState)


def test_the_enterprise_number_is_named_once():
    text = MIB_FILE.read_text()
    assert re.findall(r"\{\s*enterprises\s+(\d+)\s*\}", text) == [str(om.PEN)]
    assert om.ENTERPRISE_OID == (1, 3, 6, 1, 4, 1, om.PEN)


def test_oids_of_the_named_nodes(mibs):
    nodes = mibs["BMS-GATEWAY-MIB"]["nodes"]

    def oid(name):
        node = nodes.get(name) or mibs["BMS-GATEWAY-MIB"]["compliances"][name]
        return tuple(int(x) for x in node["oid"].split("."))
    assert oid("bmsGatewayAgent") == om.SYS_OBJECT_ID
    assert oid("bmsGatewayMIB") == om.BMS_MIB_OID
    assert oid("bmsCompliance") == om.BMS_COMPLIANCE_OID


def test_display_hints_and_units_carry_the_scale(mibs):
    types = mibs["BMS-GATEWAY-MIB"]["typedefs"]
    assert {n: types[n].get("format") for n in (
        "BmsMilliVolts", "BmsMilliAmps", "BmsDeciCelsius", "BmsPerMille", "BmsMilliAmpHours")
    } == {"BmsMilliVolts": "d-3", "BmsMilliAmps": "d-3", "BmsDeciCelsius": "d-1",
          "BmsPerMille": "d-1", "BmsMilliAmpHours": "d-3"}
    nodes = mibs["BMS-GATEWAY-MIB"]["nodes"]
    units = {"BmsMilliVolts": "volts", "BmsMilliAmps": "amperes",
             "BmsDeciCelsius": "degrees Celsius", "BmsPerMille": "percent",
             "BmsMilliAmpHours": "ampere-hours"}
    checked = 0
    for name, node in nodes.items():
        t = node.get("syntax", {}).get("type", {})
        if t.get("name") in units:
            assert node.get("units") == units[t["name"]], name
            checked += 1
    assert checked > 20
