"""The ``http`` plugin: a read-only web server with the status page (and the manual's
LED view), a JSON API and Prometheus ``/metrics`` (docs/http.md). Hookimpls only;
aiohttp and prometheus_client are imported when the plugin is enabled."""

from __future__ import annotations

from gateway.hookspecs import hookimpl

SECTION = "http"


@hookimpl
def gateway_register_config(register):
    from plugins.http.settings import HttpSettings

    register(SECTION, HttpSettings)


@hookimpl
def gateway_default_config():
    from plugins.http.settings import default_config

    return {SECTION: default_config()}


@hookimpl
def gateway_register_components(context, register):
    import importlib.metadata

    from plugins.http.server import HttpServer

    server = HttpServer(context.section(SECTION), context.hub, clock=context.clock,
                        health=context.health.read, state_dir=context.state_dir,
                        gateway_name=context.config.core.name,
                        version=importlib.metadata.version("bms-gateway"),
                        config_file=context.config.file)
    context.extra[SECTION] = server
    register(server, role="north")


@hookimpl
def gateway_reload(context):
    server = context.extra.get(SECTION)
    if server is not None and context.section(SECTION) is not None:
        server.apply(context.section(SECTION))
