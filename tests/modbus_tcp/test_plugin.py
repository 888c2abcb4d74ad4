"""The plugin's hooks and its configuration section."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading

import pytest

import plugins.modbus_tcp as plugin
from gateway.app import Gateway
from gateway.config import ConfigError, config_from_mapping, parse_yaml, validate_document
from gateway.plugins import make_plugin_manager
from plugins.modbus_tcp import register_map as rm
from plugins.modbus_tcp.server import ModbusTcpServer
from plugins.modbus_tcp.settings import ModbusTcpSettings, UnknownUnits


def models():
    pm, _ = make_plugin_manager(load_entrypoints=False, extra=(("modbus_tcp", plugin),))
    found = {}
    pm.hook.gateway_register_config(register=lambda name, model: found.setdefault(name, model))
    return pm, found


def test_hooks_register_the_section_and_a_valid_default():
    pm, found = models()
    assert found == {"modbus_tcp": ModbusTcpSettings}
    (default,) = [d for d in pm.hook.gateway_default_config() if d]
    config = config_from_mapping(default, found)
    s = config.section("modbus_tcp")
    assert (str(s.listen_address), s.port) == ("127.0.0.1", 1502)
    assert (s.bank_unit_id, s.direct_unit_ids, s.module_unit_ids) == (1, True, False)
    assert (s.max_connections, s.unknown_unit_ids) == (16, UnknownUnits.EXCEPTION)


def test_components_register_one_north_server(mb):
    pm, found = models()
    config = config_from_mapping({"modbus_tcp": {"port": 0}}, found)
    gw = Gateway(config, pm)
    (server,) = gw.components["north"]
    assert isinstance(server, ModbusTcpServer) and server.name == "modbus_tcp"
    assert gw.components["south"] == gw.components["service"] == []


def problems(yaml_text):
    _, found = models()
    with pytest.raises(ConfigError) as err:
        validate_document(parse_yaml(yaml_text, "gw.yaml"), found)
    return [str(p) for p in err.value.problems]


def test_config_errors_name_the_key_and_line():
    out = problems("modbus_tcp:\n  port: 70000\n  listen_adress: 0.0.0.0\n"
                   "  direct_unit_ids: no\n  unknown_unit_ids: drop\n")
    assert any(p.startswith("gw.yaml:2: modbus_tcp.port") for p in out)
    assert any("gw.yaml:3: modbus_tcp.listen_adress: unknown key; did you mean "
               "'listen_address'?" in p for p in out)
    assert any(p.startswith("gw.yaml:4: modbus_tcp.direct_unit_ids: must be true or false")
               for p in out)
    assert any(p.startswith("gw.yaml:5: modbus_tcp.unknown_unit_ids") for p in out)


def test_bank_unit_may_not_collide_with_module_units():
    (p,) = problems("modbus_tcp:\n  module_unit_ids: true\n  bank_unit_id: 103\n")
    assert "collides with the module unit identifiers 101-164" in p
    ok = ModbusTcpSettings(module_unit_ids=True, bank_unit_id=100)
    assert ok.module_unit_id_base == 100
    ModbusTcpSettings(bank_unit_id=103)  # no module units: no collision


def test_listen_address_must_be_an_ip_address():
    assert problems("modbus_tcp:\n  listen_address: localhost\n")


@pytest.mark.e2e
def test_gateway_runs_the_server_and_stops_it(free_port):
    """The whole runtime path: config -> hook -> component in the gateway's TaskGroup."""
    pm, found = models()
    config = config_from_mapping({"gateway": {"watchdog": False},
                                  "modbus_tcp": {"port": free_port}}, found)
    gw = Gateway(config, pm)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete, args=(
        gw.run(shutdown_trigger=stop.wait, install_signal_handlers=False),))
    thread.start()
    try:
        (server,) = gw.components["north"]
        asyncio.run_coroutine_threadsafe(asyncio.wait_for(server.started.wait(), 10),
                                         loop).result()
        with socket.create_connection(("127.0.0.1", free_port), timeout=5) as sock:
            sock.sendall(struct.pack(">HHHBBHH", 1, 0, 6, 1, 3, 0, 6))
            reply = sock.recv(100)
            assert reply[7:9] == b"\x03\x0c"
            (version, slots, base, stride, length, status) = struct.unpack(">6H", reply[9:])
            assert (version, slots, base, stride, status) == (
                rm.MAP_VERSION, 64, 1000, 200, 4)  # no data
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
    assert not thread.is_alive()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", free_port), timeout=5)


def test_every_config_key_is_documented(repo):
    doc = (repo / "docs" / "modbus.md").read_text()
    for name, field in ModbusTcpSettings.model_fields.items():
        assert f"| `{name}` |" in doc, f"{name} is missing from the key table of docs/modbus.md"
        assert field.description, name


def test_modules_past_the_last_block_are_named_once(mb, caplog):
    clock = lambda: 100.0  # noqa: E731
    hub, _ = mb.make_hub(clock)
    server = ModbusTcpServer(ModbusTcpSettings(port=0), hub, clock=clock)
    modules = [mb.make_module(p, 100.0) for p in (1, 64, 65, 70)]
    hub.update("rs485_bms", modules=modules)
    server.tables()
    hub.update("rs485_bms", modules=modules)
    server.tables()
    warnings = [r.getMessage() for r in caplog.records if "not served on Modbus" in r.message]
    assert len(warnings) == 1 and "positions 65, 70 are not served" in warnings[0]
