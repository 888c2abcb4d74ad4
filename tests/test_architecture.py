"""Standing rules of the layout (conventions.md), checked from the source."""

from __future__ import annotations

import ast
import inspect
import re
import subprocess
import sys
from pathlib import Path

import plugins
from gateway import hookspecs

REPO = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_core_never_imports_plugins_or_protocol_stacks():
    forbidden = re.compile(r"^(plugins|pysnmp|pymodbus|serial)(\.|$)")
    offenders = {
        f"{p.relative_to(REPO)}: {m}"
        for p in (REPO / "gateway").rglob("*.py")
        for m in imported_modules(p)
        if forbidden.match(m)
    }
    assert not offenders


def test_only_transport_imports_pyserial():
    offenders = [
        str(p.relative_to(REPO))
        for p in (REPO / "plugins").rglob("*.py")
        if any(m == "serial" or m.startswith("serial.") for m in imported_modules(p))
        and p.name != "transport.py"
    ]
    assert not offenders


def test_import_plugins_resolves_to_this_tree():
    assert Path(plugins.__file__).resolve().parent == REPO / "plugins"


def test_plugin_packages_import_no_protocol_stack():
    """`bms-gateway plugins` and `check-config` stay fast: no pysnmp/pymodbus at import."""
    code = ("import sys, gateway.plugins as gp; gp.make_plugin_manager(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pysnmp','pymodbus','serial')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_hook_is_documented():
    doc = (REPO / "docs/plugin_hooks.md").read_text()
    hooks = [n for n, f in inspect.getmembers(hookspecs, inspect.isfunction)
             if n.startswith("gateway_")]
    assert hooks
    for name in hooks:
        assert f"## {name}(" in doc, f"{name} has no section in docs/plugin_hooks.md"
        assert getattr(hookspecs, name).__doc__, f"{name} has no docstring"
