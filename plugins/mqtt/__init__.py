"""The ``mqtt`` plugin: publishes the bank to an MQTT broker, with Home Assistant
discovery and a persisted queue so a broker outage loses no alarm (docs/mqtt.md).

Hookimpls only; aiomqtt is imported when the plugin is enabled.
"""

from gateway.hookspecs import hookimpl

SECTION = "mqtt"


@hookimpl
def gateway_register_config(register):
    from plugins.mqtt.settings import MqttSettings

    register(SECTION, MqttSettings)


@hookimpl
def gateway_register_components(context, register):
    from plugins.mqtt.publisher import MqttPublisher

    publisher = MqttPublisher(context.section(SECTION), context.hub,
                              site=context.config.core.name, state_dir=context.state_dir,
                              health=context.health, clock=context.clock,
                              wall_clock=context.wall_clock)
    context.health.register(SECTION, publisher.health_figures)
    register(publisher, role="north")
