"""Write bms_gateway_by_snmp.yaml, the Zabbix 7.0 template of bms-gateway.

Run from the repository: ``.venv/bin/python integrations/zabbix/make_template.py``.
The OIDs come from the agent's own OID table (plugins/snmp_agent), so the template
names exactly what the agent serves; tests/integrations/test_zabbix.py checks that the
shipped file is this script's output and resolves every OID in it against mibs/ with
snmptranslate.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from plugins.snmp_agent import oid_map as om  # noqa: E402
from plugins.snmp_agent import standard_mibs as sm  # noqa: E402

OUT = HERE / "bms_gateway_by_snmp.yaml"
TEMPLATE = "BMS gateway by SNMP"
GROUP = "Templates/Power"


def uuid(key: str) -> str:
    """A stable UUIDv4-shaped identifier (Zabbix checks the version and variant bits)."""
    h = bytearray(hashlib.sha256(f"bms-gateway/zabbix/{key}".encode()).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x40
    h[8] = (h[8] & 0x3F) | 0x80
    return h.hex()


def oid(obj, index: str = "0") -> str:
    return ".".join(map(str, obj.oid)) + (f".{index}" if index else "")


def item(key: str, name: str, obj, *, value_type: str = "FLOAT", units: str = "",
         multiplier: str | None = None, valuemap: str | None = None, delay: str = "1m",
         index: str = "0", description: str = "", tags: tuple[tuple[str, str], ...] = (),
         triggers: list | None = None) -> dict:
    out: dict = {"uuid": uuid(key), "name": name, "type": "SNMP_AGENT",
                 "snmp_oid": f"get[{oid(obj, index)}]", "key": key, "delay": delay,
                 "value_type": value_type}
    if units:
        out["units"] = units
    out["description"] = description or f"{obj.name} ({_mib(obj)})."
    if valuemap:
        out["valuemap"] = {"name": valuemap}
    if multiplier:
        out["preprocessing"] = [{"type": "MULTIPLIER", "parameters": [multiplier]}]
    out["tags"] = [{"tag": t, "value": v} for t, v in tags] or [
        {"tag": "component", "value": "bank"}]
    if triggers:
        out["triggers"] = triggers
    return out


def _mib(obj) -> str:
    return "UPS-MIB" if obj.oid[:7] == sm.UPS_MIB_OID else "BMS-GATEWAY-MIB"


def trigger(key: str, name: str, expression: str, priority: str, description: str,
            *, prototype: bool = False) -> dict:
    return {"uuid": uuid(f"trigger/{key}"), "expression": expression, "name": name,
            "priority": priority, "description": description,
            "tags": [{"tag": "scope", "value": "availability" if "stale" in key
                      or "poll" in key else "notice"}]
            } | ({"manual_close": "NO"} if prototype else {})


def last(key: str) -> str:
    return f"last(/{TEMPLATE}/{key})"


#: our alarm severities (ITU-ALARM-TC-MIB, bmsAlarmSeverity) -> Zabbix trigger severities
SEVERITIES = ((3, "critical", "DISASTER"), (4, "major", "HIGH"), (5, "minor", "AVERAGE"),
              (6, "warning", "WARNING"))

VALUEMAPS = {
    "BMS module status": [(1, "ok"), (2, "stale"), (3, "offline"), (4, "never seen")],
    "BMS link state": [(1, "never seen"), (2, "online"), (3, "suspect"), (4, "offline")],
    "BMS alarm severity": [(1, "cleared"), (2, "indeterminate"), (3, "critical"),
                           (4, "major"), (5, "minor"), (6, "warning")],
    "BMS temperature role": [(1, "cell"), (2, "MOSFET"), (3, "ambient"), (4, "board"),
                             (5, "other")],
    "UPS-MIB upsBatteryStatus": [(1, "unknown"), (2, "batteryNormal"), (3, "batteryLow"),
                                 (4, "batteryDepleted")],
}


def bank_items() -> list[dict]:
    sev_triggers = [trigger(f"bank-severity-{n}", f"Battery bank: an active {word} alarm",
                            f"{last('bms.bank.worst_severity')}={n}", prio,
                            f"The worst active alarm of the bank is {word} (bmsBankWorstSeverity)."
                            " The alarm table item and the alarm discovery name it.")
                    for n, word, prio in SEVERITIES]
    return [
        item("bms.bank.current", "Bank current", om.BANK_CURRENT, units="A",
             multiplier="0.001", description="bmsBankCurrent: sum over the live modules; "
             "positive while charging, negative while discharging."),
        item("bms.bank.voltage", "Bank voltage (mean)", om.BANK_VOLTAGE_MEAN, units="V",
             multiplier="0.001"),
        item("bms.bank.soc", "Bank state of charge", om.BANK_SOC, units="%",
             multiplier="0.1"),
        item("bms.bank.cell_min", "Lowest cell voltage", om.BANK_CELL_MIN, units="V",
             multiplier="0.001"),
        item("bms.bank.cell_max", "Highest cell voltage", om.BANK_CELL_MAX, units="V",
             multiplier="0.001"),
        item("bms.bank.temp_min", "Lowest temperature", om.BANK_TEMP_MIN, units="°C",
             multiplier="0.1"),
        item("bms.bank.temp_max", "Highest temperature", om.BANK_TEMP_MAX, units="°C",
             multiplier="0.1"),
        item("bms.bank.modules_configured", "Modules configured", om.BANK_MODULES_CONFIGURED,
             value_type="UNSIGNED"),
        item("bms.bank.modules_online", "Modules with live data", om.BANK_MODULES_ONLINE,
             value_type="UNSIGNED"),
        item("bms.bank.worst_status", "Worst module status", om.BANK_WORST_STATUS,
             value_type="UNSIGNED", valuemap="BMS module status"),
        item("bms.bank.worst_severity", "Worst active alarm severity", om.BANK_WORST_SEVERITY,
             value_type="UNSIGNED", valuemap="BMS alarm severity", triggers=sev_triggers),
        item("bms.bank.active_alarms", "Active alarms", om.BANK_ACTIVE_ALARMS,
             value_type="UNSIGNED"),
        item("bms.alarm.last_seq", "Alarm sequence number", om.ALARM_LAST_SEQ,
             value_type="UNSIGNED", description="bmsAlarmLastSeq: moves with every raise "
             "and clear."),
        item("bms.gateway.last_cycle_age", "Age of the last complete poll cycle",
             om.GW_LAST_CYCLE_AGE, value_type="UNSIGNED", units="s", triggers=[trigger(
                 "gateway-poll", "BMS gateway: polling stopped",
                 f"{last('bms.gateway.last_cycle_age')}>{{$BMS.POLL.AGE.MAX}}", "HIGH",
                 "No bus completed a poll cycle for {$BMS.POLL.AGE.MAX} seconds "
                 "(bmsGwLastCycleAge): the values served are not live.")]),
        item("ups.battery.status", "Battery status (UPS-MIB)", sm.UPS_BATTERY_STATUS,
             value_type="UNSIGNED", valuemap="UPS-MIB upsBatteryStatus",
             description="upsBatteryStatus: low / depleted while the alarm engine's "
             "bank_voltage_low / bank_voltage_eod alarms are active.", triggers=[
                 trigger("ups-low", "Battery bank: battery low",
                         f"{last('ups.battery.status')}=3", "HIGH",
                         "upsBatteryStatus is batteryLow: the bank voltage is below the "
                         "low-voltage alarm threshold."),
                 trigger("ups-depleted", "Battery bank: battery depleted",
                         f"{last('ups.battery.status')}=4", "DISASTER",
                         "upsBatteryStatus is batteryDepleted: the bank voltage is at the "
                         "end-of-discharge threshold.")]),
        item("ups.battery.charge", "Estimated charge remaining (UPS-MIB)",
             sm.UPS_CHARGE_REMAINING, value_type="UNSIGNED", units="%"),
    ]


def module_discovery() -> dict:
    col = ".".join(map(str, om.MOD_POSITION.oid))
    serial = ".".join(map(str, om.MOD_SERIAL.oid))
    idx = "{#SNMPINDEX}"
    tags = (("component", "module"), ("module", "{#POSITION}"))
    protos = [
        item(f"bms.module.status[{idx}]", "Module {#POSITION}: status", om.MOD_STATUS,
             index=idx, value_type="UNSIGNED", valuemap="BMS module status", tags=tags),
        item(f"bms.module.link[{idx}]", "Module {#POSITION}: link state", om.MOD_LINK_STATE,
             index=idx, value_type="UNSIGNED", valuemap="BMS link state", tags=tags),
        item(f"bms.module.data_age[{idx}]", "Module {#POSITION}: data age", om.MOD_DATA_AGE,
             index=idx, value_type="UNSIGNED", units="s", tags=tags),
        item(f"bms.module.voltage[{idx}]", "Module {#POSITION}: voltage", om.MOD_VOLTAGE,
             index=idx, units="V", multiplier="0.001", tags=tags),
        item(f"bms.module.current[{idx}]", "Module {#POSITION}: current", om.MOD_CURRENT,
             index=idx, units="A", multiplier="0.001", tags=tags),
        item(f"bms.module.soc[{idx}]", "Module {#POSITION}: state of charge", om.MOD_SOC,
             index=idx, units="%", multiplier="0.1", tags=tags),
        item(f"bms.module.soh[{idx}]", "Module {#POSITION}: state of health", om.MOD_SOH,
             index=idx, units="%", multiplier="0.1", tags=tags),
        item(f"bms.module.cycles[{idx}]", "Module {#POSITION}: cycles", om.MOD_CYCLES,
             index=idx, value_type="UNSIGNED", tags=tags, delay="1h"),
    ]
    for p in protos:
        p["uuid"] = uuid(f"proto/{p['key']}")
    return {
        "uuid": uuid("lld/modules"), "name": "Battery modules", "type": "SNMP_AGENT",
        "snmp_oid": f"discovery[{{#POSITION}},{col},{{#SERIAL}},{serial}]",
        "key": "bms.module.discovery", "delay": "1h",
        "description": "bmsModuleTable: one entry per configured module, indexed "
                       "bmsBusIndex.bmsModuleAddress.",
        "item_prototypes": protos,
        "trigger_prototypes": [{
            "uuid": uuid("trigger/module-not-live"),
            "expression": f"min(/{TEMPLATE}/bms.module.status[{idx}],5m)>1",
            "name": "Module {#POSITION}: data not live ({ITEM.LASTVALUE1})",
            "priority": "AVERAGE",
            "description": "The module's data has not been live for 5 minutes: stale, "
                           "offline or never seen. Its values are not served meanwhile.",
        }],
    }


def table_discovery(key: str, name: str, macro: str, obj_index, value, *, units: str,
                    multiplier: str, label: str, extra: tuple = ()) -> dict:
    idx = "{#SNMPINDEX}"
    pairs = [f"{{#{macro}}},{oid(obj_index, '')}"] + [f"{m},{oid(o, '')}" for m, o in extra]
    proto = item(f"{key}[{idx}]", f"{label} {{#SNMPINDEX}}", value, index=idx, units=units,
                 multiplier=multiplier, tags=(("component", key.split(".")[1]),))
    proto["uuid"] = uuid(f"proto/{key}")
    return {"uuid": uuid(f"lld/{key}"), "name": name, "type": "SNMP_AGENT",
            "snmp_oid": f"discovery[{','.join(pairs)}]", "key": f"{key}.discovery",
            "delay": "1h", "description": f"{value.name}: index bus.address.number "
            "(bmsBusIndex.bmsModuleAddress.n).", "item_prototypes": [proto]}


def alarm_discovery() -> dict:
    idx = "{#SNMPINDEX}"
    proto = item(f"bms.alarm.severity[{idx}]", "Alarm {#SNMPINDEX}: {#KIND} severity",
                 om.ALARM_SEVERITY, index=idx, value_type="UNSIGNED",
                 valuemap="BMS alarm severity", tags=(("component", "alarm"),))
    proto["uuid"] = uuid("proto/alarm")
    return {
        "uuid": uuid("lld/alarms"), "name": "Active alarms", "type": "SNMP_AGENT",
        "snmp_oid": f"discovery[{{#KIND}},{oid(om.ALARM_KIND, '')},"
                    f"{{#MODULE}},{oid(om.ALARM_MODULE, '')},"
                    f"{{#TEXT}},{oid(om.ALARM_TEXT, '')}]",
        "key": "bms.alarm.discovery", "delay": "1m", "lifetime_type": "DELETE_IMMEDIATELY",
        "description": "bmsAlarmTable: one entry per active alarm, indexed by its sequence "
                       "number. A cleared alarm leaves the table and its trigger is deleted "
                       "at the next discovery.",
        "item_prototypes": [proto],
        "trigger_prototypes": [{
            "uuid": uuid(f"trigger/alarm-{n}"),
            "expression": f"last(/{TEMPLATE}/bms.alarm.severity[{idx}])={n}",
            "name": f"{{#KIND}} ({word}): {{#TEXT}}",
            "priority": prio,
            "description": f"An active {word} alarm of the gateway's alarm engine "
                           "(module {#MODULE}, 0 = bank or gateway).",
        } for n, word, prio in SEVERITIES],
    }


def multi_item_triggers() -> list[dict]:
    """Triggers on more than one item: Zabbix exports them beside the templates."""
    return [trigger(
        "bank-modules-offline", "Battery bank: modules without live data",
        f"{last('bms.bank.modules_online')}<{last('bms.bank.modules_configured')}",
        "AVERAGE", "Fewer modules have live data than are configured: the module "
        "discovery shows which (status stale, offline or never seen).")]


def template() -> dict:
    return {"zabbix_export": {
        "version": "7.0",
        "template_groups": [{"uuid": uuid("group"), "name": GROUP}],
        "templates": [{
            "uuid": uuid("template"), "template": TEMPLATE, "name": TEMPLATE,
            "description": "bms-gateway: 48 V LiFePO4 battery bank over SNMP "
                           "(BMS-GATEWAY-MIB and UPS-MIB; mibs/ of the project). Set the "
                           "host's SNMP interface to SNMPv2 with community "
                           "{$SNMP_COMMUNITY}, or to SNMPv3 authPriv with security name "
                           "{$SNMPV3_USER}, auth {$SNMPV3_AUTHPASS} and privacy "
                           "{$SNMPV3_PRIVPASS} (the agent's protocols: SHA-256 and AES by "
                           "default). Values of stale or offline modules are not served: "
                           "their items go unsupported until the module is live again.",
            "vendor": {"name": "bms-gateway", "version": "7.0-0"},
            "groups": [{"name": GROUP}],
            "items": bank_items(),
            "discovery_rules": [
                module_discovery(),
                table_discovery("bms.cell", "Cells", "CELL", om.CELL_VOLTAGE,
                                om.CELL_VOLTAGE, units="V", multiplier="0.001",
                                label="Cell voltage"),
                table_discovery("bms.temp", "Temperature sensors", "ROLE", om.TEMP_ROLE,
                                om.TEMP_VALUE, units="°C", multiplier="0.1",
                                label="Temperature"),
                alarm_discovery(),
            ],
            "macros": [
                {"macro": "{$SNMP_COMMUNITY}", "value": "public",
                 "description": "SNMPv2c community of the gateway (snmp_agent.v2c.community)"},
                {"macro": "{$SNMPV3_USER}", "value": "nms",
                 "description": "SNMPv3 user (snmp_agent.v3_users[].name)"},
                {"macro": "{$SNMPV3_AUTHPASS}", "type": "SECRET_TEXT", "value": "",
                 "description": "SNMPv3 authentication passphrase (auth_key)"},
                {"macro": "{$SNMPV3_PRIVPASS}", "type": "SECRET_TEXT", "value": "",
                 "description": "SNMPv3 privacy passphrase (priv_key)"},
                {"macro": "{$BMS.POLL.AGE.MAX}", "value": "120",
                 "description": "seconds without a complete poll cycle before the "
                                "'polling stopped' trigger"},
            ],
            "valuemaps": [
                {"uuid": uuid(f"valuemap/{name}"), "name": name,
                 "mappings": [{"value": str(v), "newvalue": text} for v, text in maps]}
                for name, maps in VALUEMAPS.items()],
        }],
        "triggers": multi_item_triggers(),
    }}


def render() -> str:
    return yaml.safe_dump(template(), sort_keys=False, allow_unicode=True, width=100)


if __name__ == "__main__":
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT}")
