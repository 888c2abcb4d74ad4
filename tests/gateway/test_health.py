"""The health registry: figures by source, read at answer time; a broken reader hides
only its own source."""

from __future__ import annotations

import logging

from gateway.health import Figure, Health


def test_figures_are_read_when_asked_not_when_registered():
    health = Health()
    count = {"n": 0}
    health.register("a", lambda: [Figure(name="x_total", value=count["n"], kind="counter",
                                         help="x")])
    count["n"] = 7
    assert [f.value for f in health.read()["a"]] == [7]


def test_a_reader_that_raises_leaves_out_its_source_only(caplog):
    health = Health()

    def broken():
        raise RuntimeError("bug")
    health.register("bad", broken)
    health.register("good", lambda: [Figure(name="y", value=1, kind="gauge", help="y")])
    with caplog.at_level(logging.ERROR):
        read = health.read()
    assert set(read) == {"good"}
    assert "health figures of bad could not be read" in caplog.text


def test_the_default_gateway_registers_snmp_and_modbus_figures():
    from gateway.app import Gateway
    from gateway.cli import read_config
    from gateway.plugins import make_plugin_manager

    pm, _ = make_plugin_manager()
    gw = Gateway(read_config(pm, None), pm)
    read = gw.context.health.read()
    names = {source: {f.name for f in figures} for source, figures in read.items()}
    assert {"snmp_in_pkts_total", "snmp_notifier_traps_sent_total"} <= names["snmp_agent"]
    assert {"modbus_requests_total", "modbus_evicted_total", "modbus_connections"} <= (
        names["modbus_tcp"])
    for figures in read.values():
        assert len({(f.name, f.labels) for f in figures}) == len(figures), "duplicate names"
        assert all(f.kind == "gauge" or f.name.endswith("_total") for f in figures)
