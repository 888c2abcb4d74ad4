"""/metrics families (plugins/http/metrics.py): pure, then the exposition checked by
Debian's promtool."""

from __future__ import annotations

import subprocess

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from gateway.health import Figure
from plugins.http.metrics import (
    LINK_COUNTERS,
    SnapshotCollector,
    iter_samples,
    make_metric_families,
)

HEALTH = {
    "snmp_agent": [Figure(name="snmp_in_pkts_total", value=12, kind="counter",
                          help="SNMP messages received.")],
    "modbus_tcp": [Figure(name="modbus_requests_total", value=34, kind="counter",
                          help="Modbus requests answered."),
                   Figure(name="modbus_connections", value=2, kind="gauge",
                          help="Open connections.")],
}


def samples(snapshot, now, health=HEALTH):
    fams = make_metric_families(snapshot, now, health=health, name="site-7", version="1.2.3")
    return [(n, lab, v) for n, lab, v in iter_samples(fams)]


def find(ss, metric, **labels):
    return [v for n, lab, v in ss
            if n == metric and all(lab.get(k) == x for k, x in labels.items())]


def module_labels(bank, position):
    m = bank.make_snapshot().module(position)
    return {"bus": m.bus, "address": str(m.address)}


def test_module_values_in_base_units(snapshot, bank):
    ss = samples(snapshot, bank.T0)
    m = snapshot.module(1)
    lab = module_labels(bank, 1)
    assert find(ss, "bms_module_voltage_volts", **lab) == [m.telemetry.voltage_mv / 1000]
    assert find(ss, "bms_module_current_amperes", **lab) == [m.telemetry.current_ma / 1000]
    assert find(ss, "bms_module_current_amperes", **lab)[0] < 0  # discharging
    assert find(ss, "bms_module_state_of_charge_ratio", **lab) == [0.61]
    assert find(ss, "bms_module_remaining_charge_coulombs", **lab) == [61_000 * 3.6]
    assert find(ss, "bms_module_cycles_total", **lab) == [201]
    assert find(ss, "bms_cell_voltage_volts", cell="7", **lab) == [m.telemetry.cell_mv[6] / 1000]
    assert len(find(ss, "bms_cell_voltage_volts", **lab)) == 16
    assert find(ss, "bms_module_temperature_celsius", sensor="3", role="cell", **lab) == [-1.5]
    assert find(ss, "bms_module_temperature_celsius", sensor="5", role="mosfet", **lab) == [30.1]
    assert find(ss, "bms_cell_balancing", cell="5", **lab) == [1]
    assert find(ss, "bms_cell_balancing", cell="6", **lab) == []  # not balancing: no series
    assert find(ss, "bms_module_balancing_cells", **lab) == [1]
    assert find(ss, "bms_module_data_age_seconds", **lab) == [1.5]
    assert find(ss, "bms_module_status", bms_module_status="ok", **lab) == [1]
    assert find(ss, "bms_module_info", position="1", serial="PK0001", firmware="V2.5",
                **lab) == [1]


def test_stale_or_offline_modules_export_status_and_age_but_no_values(snapshot, bank):
    ss = samples(snapshot, bank.T0)
    for p, status in ((bank.STALE, "stale"), (bank.OFFLINE, "offline"),
                      (bank.NEVER_SEEN, "never_seen")):
        lab = module_labels(bank, p)
        mine = [(n, labels) for n, labels, _ in ss
                if all(labels.get(k) == v for k, v in lab.items())]
        names = {n for n, _ in mine}
        counters = {f"bms_module_{name}_total" for name, _ in LINK_COUNTERS.values()}
        assert names - counters <= {"bms_module_status", "bms_module_live",
                                    "bms_module_data_age_seconds", "bms_module_info"}
        assert find(ss, "bms_module_status", bms_module_status=status, **lab) == [1]
        assert find(ss, "bms_module_live", **lab) == [0]
        assert find(ss, "bms_module_timeouts_total", **lab)  # link counters stay
    assert find(ss, "bms_module_data_age_seconds", **module_labels(bank, bank.STALE)) == [50.0]
    assert not find(ss, "bms_module_data_age_seconds", **module_labels(bank, bank.NEVER_SEEN))


def test_a_module_going_stale_at_scrape_time_loses_its_values(snapshot, bank):
    ss = samples(snapshot, bank.T0 + 31)
    lab = module_labels(bank, 1)
    assert not find(ss, "bms_module_voltage_volts", **lab)
    assert find(ss, "bms_module_status", bms_module_status="stale", **lab) == [1]


def test_bms_flags_leds_and_alarms(snapshot, bank):
    ss = samples(snapshot, bank.T0)
    lab = module_labels(bank, bank.FAULTED)
    assert find(ss, "bms_module_condition", type="protection", condition="cell_over_voltage",
                **lab) == [1]
    assert find(ss, "bms_module_condition", type="warning", condition="low_capacity", **lab) == [1]
    assert find(ss, "bms_module_fault", fault="sampling_ic", **lab) == [1]
    assert find(ss, "bms_module_fault_code", code="6", **lab) == [1]
    assert find(ss, "bms_alarms_active", kind="fault_sampling_ic", severity="critical") == [1]
    assert find(ss, "bms_alarms_active", kind="module_offline", severity="major") == [1]
    assert find(ss, "bms_alarm_last_sequence") == [9]


def test_bank_bus_and_gateway_health(snapshot, bank):
    ss = samples(snapshot, bank.T0)
    assert find(ss, "bms_bank_current_amperes") == [snapshot.bank.current_ma / 1000]
    assert find(ss, "bms_bank_modules_online") == [9]
    assert find(ss, "bms_bus_poll_cycles_total", bus="rack-a") == [120]
    assert find(ss, "bms_bus_reconnects_total", bus="rack-a") == [1]
    assert find(ss, "bms_bus_timeouts_total", bus="rack-a") == [7]
    assert find(ss, "bms_bus_checksum_errors_total", bus="rack-a") == [2]
    assert find(ss, "bms_bus_connected", bus="rack-b") == [0]
    assert find(ss, "bms_bus_last_cycle_duration_seconds", bus="rack-a") == [1.8]
    assert find(ss, "bms_gateway_snmp_in_pkts_total") == [12]
    assert find(ss, "bms_gateway_modbus_requests_total") == [34]
    assert find(ss, "bms_gateway_modbus_connections") == [2]
    assert find(ss, "bms_gateway_info", name="site-7", version="1.2.3") == [1]


def test_before_the_first_snapshot_only_the_gateway_itself():
    names = {n for n, _, _ in samples(None, 0.0)}
    assert names == {"bms_gateway_info", "bms_gateway_snmp_in_pkts_total",
                     "bms_gateway_modbus_requests_total", "bms_gateway_modbus_connections"}


def exposition(snapshot, now) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: snapshot, lambda: now, lambda: HEALTH,
                                        name="site-7", version="1.2.3"))
    return generate_latest(registry)


@pytest.mark.parametrize("offset", [0.0, 31.0], ids=["live", "all-stale"])
def test_promtool_accepts_the_exposition(snapshot, bank, require_tool, offset):
    body = exposition(snapshot, bank.T0 + offset)
    res = subprocess.run([require_tool("promtool"), "check", "metrics"], input=body,
                         capture_output=True, timeout=30)
    assert res.returncode == 0 and not res.stdout and not res.stderr, (
        res.stdout.decode() + res.stderr.decode())
    text = body.decode()
    assert "# TYPE bms_bus_poll_cycles_total counter" in text
    assert ("# TYPE bms_cell_voltage_volts gauge" in text) is (offset == 0.0)


def test_a_repeated_bus_address_is_exported_once_for_the_first_position(snapshot, bank):
    """A repeated label set would make Prometheus refuse the whole scrape."""
    import dataclasses

    modules = list(snapshot.modules)
    modules[1] = dataclasses.replace(modules[1], address=modules[0].address)
    ss = samples(dataclasses.replace(snapshot, modules=tuple(modules)), bank.T0)
    lab = module_labels(bank, 1)
    assert find(ss, "bms_module_info", **lab) == [1]
    assert find(ss, "bms_module_info", position="1", **lab) == [1]
    assert len(find(ss, "bms_cell_voltage_volts", cell="1", **lab)) == 1
