"""The ``alarms`` plugin: threshold, BMS and communication alarms (docs/alarms.md).

Hookimpls only; the rules and their glue are imported when the plugin is enabled.
"""

from gateway.hookspecs import hookimpl

SECTION = "alarms"


@hookimpl
def gateway_register_config(register):
    from plugins.alarms.settings import AlarmsSettings

    register(SECTION, AlarmsSettings)


@hookimpl
def gateway_default_config():
    return {SECTION: {}}


@hookimpl
def gateway_register_processors(context, register):
    from plugins.alarms.processor import make_processor

    processor = make_processor(context.section(SECTION), state_dir=context.state_dir,
                               now=context.clock(), wall_time=context.wall_clock())
    context.extra[SECTION] = processor
    register(processor)


@hookimpl
def gateway_register_components(context, register):
    from plugins.alarms.service import AlarmService

    service = AlarmService(context.extra[SECTION], context.hub, state_dir=context.state_dir,
                           clock=context.clock, wall_clock=context.wall_clock)
    context.extra[SECTION + ".service"] = service
    register(service, role="service")


@hookimpl
def gateway_reload(context):
    processor = context.extra.get(SECTION)
    if processor is not None and context.section(SECTION) is not None:
        processor.apply(context.section(SECTION), wall_time=context.wall_clock())
    service = context.extra.get(SECTION + ".service")
    if service is not None:
        service.apply()
