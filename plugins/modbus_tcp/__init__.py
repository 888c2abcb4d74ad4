"""The ``modbus_tcp`` plugin: a Modbus-TCP server with a versioned register map and a
SunSpec battery view (docs/modbus.md, docs/register_map.md). Hookimpls only."""

from __future__ import annotations

from gateway.hookspecs import hookimpl

SECTION = "modbus_tcp"


@hookimpl
def gateway_register_config(register):
    from plugins.modbus_tcp.settings import ModbusTcpSettings

    register(SECTION, ModbusTcpSettings)


@hookimpl
def gateway_default_config():
    return {SECTION: {"listen_address": "127.0.0.1", "port": 1502}}


@hookimpl
def gateway_register_components(context, register):
    import importlib.metadata

    from plugins.modbus_tcp.register_map import DeviceInfo
    from plugins.modbus_tcp.server import ModbusTcpServer

    settings = context.section(SECTION)
    device = DeviceInfo(version=importlib.metadata.version("bms-gateway"),
                        serial=context.config.core.name,
                        device_address=settings.bank_unit_id)
    server = ModbusTcpServer(settings, context.hub, clock=context.clock, device=device)
    context.health.register(SECTION, server.health_figures)
    register(server, role="north")
