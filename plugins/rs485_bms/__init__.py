"""The `rs485_bms` plugin: polls BMS modules over RS485 (hookimpls only).

Heavy imports (pyserial, the poller) happen only when the plugin is enabled or one of
its commands runs, so `bms-gateway plugins` and `check-config` stay fast.

The plugin's parts, lowest first; each imports only the parts before it (a test in
tests/test_architecture.py keeps it so):

1. ``protocol/``: the sans-IO codec (frames, reader, session, family layouts and names).
2. ``sim/``: the simulated bank (physics, scenarios, the answers packs send).
3. ``settings.py``: the ``rs485_bms:`` config section (checks a scenario through
   ``sim.scenario`` alone).
4. ``poller/``: transport, module links, dialect and normalisation, the poll loop.
5. ``tools/``: the ``decode`` and ``scan`` commands.
6. ``component.py`` and ``commands.py``: the glue the hookimpls below hand to the core.
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
