"""Every hook a bms-gateway plugin can implement.

Hooks are few, synchronous, called once at start-up, and *register* things. What a
plugin registers does the work afterwards (a component's ``async run()``, a
processor's ``process()``); live telemetry never flows through pluggy. Each hook is
documented in ``docs/plugin_hooks.md`` (a test checks that every hook is).
"""

from __future__ import annotations

import pluggy

PROJECT = "bms_gateway"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def gateway_register_config(register):
    """Register the plugin's configuration section.

    Call ``register(section, model)`` with the top-level YAML key (the plugin's name)
    and a pydantic model (``extra="forbid"``) that validates that section. A plugin
    whose section appears in the config file is enabled; ``enabled: false`` inside the
    section disables it without deleting the section.
    """


@hookspec
def gateway_default_config():
    """Return this plugin's part of the built-in default configuration, or None.

    The built-in default is what ``bms-gateway run`` uses without ``-c``: a mapping
    ``{section: settings}`` that passes the plugin's own model. Built-in plugins use it
    to make the gateway run on a fresh machine with no file at all.
    """


@hookspec
def gateway_register_commands(register):
    """Register extra ``bms-gateway`` subcommands.

    Call ``register(name, help=..., add_arguments=fn(parser), run=fn(args) -> int)``.
    ``run`` returns the process exit code (0 ok, 1 failure, 2 usage, 78 config). The
    command is available whenever the plugin is installed, enabled or not.
    """


@hookspec
def gateway_register_components(context, register):
    """Register the long-running parts of an enabled plugin.

    ``context`` is a :class:`gateway.app.GatewayContext` (the validated config, the
    hub, the clock, the state directory). Call ``register(component, role=...)`` with
    an object that has a ``name`` attribute and an ``async def run()`` that runs until
    cancelled and releases its resources (sockets, serial ports) in ``finally``.
    ``role`` is ``"north"`` (serves data out), ``"south"`` (reads devices) or
    ``"service"``; shutdown stops south first, lets north and services ``flush()``
    what is pending (bounded), then stops north, then services.
    Called only for enabled plugins.
    """


@hookspec
def gateway_register_processors(context, register):
    """Register snapshot processors of an enabled plugin.

    Call ``register(processor)`` with an object whose
    ``process(snapshot, now) -> (snapshot, events)`` is fast and never does I/O: the
    hub calls it for every new snapshot before publishing (the alarm rules are one).
    Called only for enabled plugins.
    """


@hookspec
def gateway_reload(context):
    """Apply a re-read, already validated configuration (SIGHUP).

    ``context.config`` holds the new configuration. A plugin takes what it can apply
    live (thresholds, north settings) and leaves the rest for the next start. Raising
    an exception here is a bug; validation has happened before this hook is called.
    """
