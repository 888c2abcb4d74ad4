"""The snmp_agent package imports in one direction only (issue 19): the SNMPv3 engine
and the informs are handed the agent (an endpoint.Service) instead of importing it.
(No import cycle anywhere: tests/test_architecture.py.)"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "plugins" / "snmp_agent"
PREFIX = "plugins.snmp_agent"


def package_graph() -> dict[str, set[str]]:
    """module -> the package's modules it imports (every import statement, anywhere)."""
    modules = {p.stem: p for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        out: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.module:
                module = node.module if node.level == 0 else f"{PREFIX}.{node.module}"
                if module == PREFIX:  # from plugins.snmp_agent import ber
                    out.update(a.name for a in node.names if a.name in modules)
                elif module.startswith(PREFIX + "."):
                    out.add(module.split(".")[2])
            elif isinstance(node, ast.Import):
                out.update(a.name.split(".")[2] for a in node.names
                           if a.name.startswith(PREFIX + "."))
        graph[name] = out & set(modules) - {name}
    return graph


def test_the_v3_engine_and_the_informs_never_import_the_agent():
    graph = package_graph()
    for name in ("v3_engine", "usm_keys", "inform", "usm", "endpoint", "settings"):
        if name in graph:
            assert "agent" not in graph[name] and "notifier" not in graph[name], name


def test_the_agent_satisfies_the_service_the_engine_is_handed():
    from plugins.snmp_agent import agent, endpoint

    for member in ("handle_datagram", "process"):
        assert callable(getattr(agent.SnmpAgent, member))
    assert agent.AgentCounters is endpoint.AgentCounters
