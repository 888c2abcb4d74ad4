"""The `rs485_bms` plugin: polls BMS modules over RS485 (hookimpls only).

Heavy imports (pyserial, the poller) happen only when the plugin is enabled or one of
its commands runs, so `bms-gateway plugins` and `check-config` stay fast.
"""

from __future__ import annotations

from gateway.hookspecs import hookimpl

NAME = "rs485_bms"


@hookimpl
def gateway_register_config(register):
    from plugins.rs485_bms.settings import Rs485Settings

    register(NAME, Rs485Settings)


@hookimpl
def gateway_default_config():
    return {
        NAME: {
            "buses": [{
                "name": "sim",
                "family": "pace_v25",
                "simulate": {"packs": 12, "first_address": 1},
                "poll_interval_s": 5,
            }],
        },
    }


@hookimpl
def gateway_register_commands(register):
    from plugins.rs485_bms import commands

    commands.register_all(register)


@hookimpl
def gateway_register_components(context, register):
    from plugins.rs485_bms.component import make_components

    for component in make_components(context, context.section(NAME)):
        register(component, role="south")
