"""The ``snmp_agent`` plugin: serves the bank over SNMP (BMS-GATEWAY-MIB, docs/snmp.md).

Hookimpls only; the agent is imported when the plugin is enabled, pysnmp only for v3
informs.
"""

from gateway.hookspecs import hookimpl

SECTION = "snmp_agent"


@hookimpl
def gateway_register_config(register):
    from plugins.snmp_agent.settings import SnmpAgentSettings

    register(SECTION, SnmpAgentSettings)


@hookimpl
def gateway_default_config():
    from plugins.snmp_agent.settings import default_config

    return {SECTION: default_config()}


@hookimpl
def gateway_register_components(context, register):
    from plugins.snmp_agent.agent import SnmpAgent

    agent = SnmpAgent.from_context(context)
    context.extra[SECTION] = agent
    context.health.register(SECTION, agent.health_figures)
    register(agent, role="north")


@hookimpl
def gateway_reload(context):
    agent = context.extra.get(SECTION)
    if agent is not None and context.section(SECTION) is not None:
        agent.apply(context.section(SECTION))
