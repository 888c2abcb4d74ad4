"""The ``charge_limits`` plugin: live charge voltage, charge current and discharge current
limits for the rectifier or the inverter (docs/charge_limits.md).

Hookimpls only; the pure core (limits.py) is imported when the plugin is enabled. The
processor registers ``tryfirst`` so that it runs before the alarm processor: the
``rectifier_above_ccl`` alarm reads the limits of the snapshot it evaluates.
"""

from gateway.hookspecs import hookimpl

SECTION = "charge_limits"


@hookimpl
def gateway_register_config(register):
    from plugins.charge_limits.settings import ChargeLimitsSettings

    register(SECTION, ChargeLimitsSettings)


@hookimpl
def gateway_default_config():
    # enabled by default: the limits only add read-only values (Modbus, SunSpec 802,
    # SNMP) computed from the manual's table, and an EMS that reads them gets safe
    # figures out of the box; the rectifier alarm stays silent until rectifier_charge_a
    # is configured
    return {SECTION: {}}


@hookimpl(tryfirst=True)
def gateway_register_processors(context, register):
    from plugins.charge_limits.processor import ChargeLimitsProcessor

    processor = ChargeLimitsProcessor(context.section(SECTION))
    context.extra[SECTION] = processor
    register(processor)


@hookimpl
def gateway_reload(context):
    processor = context.extra.get(SECTION)
    if processor is not None and context.section(SECTION) is not None:
        processor.apply(context.section(SECTION))
