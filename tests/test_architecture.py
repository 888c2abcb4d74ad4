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


# ------------------------------------------------------------- the import graph ---

def module_files() -> dict[str, Path]:
    """Every module of gateway/ and plugins/ by dotted name (a package by its own name)."""
    out: dict[str, Path] = {}
    for top in ("gateway", "plugins"):
        for path in (REPO / top).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports, anywhere in the file (inside functions
    too). ``from package import name`` counts as importing the submodule ``name`` where
    there is one, else the package."""
    files = module_files()
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                for alias in node.names:
                    sub = f"{module}.{alias.name}"
                    found.add(sub if sub in files else module)
            elif (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module"
                  and node.args and isinstance(node.args[0], ast.Constant)):
                found.add(node.args[0].value)
        graph[name] = {m for m in found if m in files and m != name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def test_the_cycle_finder_finds_a_cycle_and_names_its_files():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert import_cycles(graph) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    files = module_files()
    cycles = ["a cycle among " + ", ".join(str(files[m].relative_to(REPO)) for m in group)
              for group in import_cycles(import_graph())]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_plugin_imports_another():
    offenders = [f"{m} imports {n}" for m, targets in import_graph().items()
                 if m.startswith("plugins.") for n in targets
                 if n.startswith("plugins.") and n.split(".")[1] != m.split(".")[1]]
    assert not offenders


_PART = re.compile(r"^\s*(\d+)\.\s+((?:``[\w./]+``(?:,\s*|\s+and\s+)?)+):", re.M)


def documented_parts(package: str) -> list[set[str]]:
    """The numbered list of parts, lowest first, in a plugin package's docstring:
    ``1. ``protocol/``: ...`` names a sub-package, ``settings.py`` a module."""
    doc = ast.get_docstring(ast.parse((REPO / package.replace(".", "/") / "__init__.py")
                                      .read_text())) or ""
    parts = []
    for match in _PART.finditer(doc):
        names = re.findall(r"``([\w./]+)``", match.group(2))
        parts.append({n.rstrip("/").removesuffix(".py") for n in names})
    return parts


def test_plugin_parts_import_only_downwards_in_their_documented_order():
    graph = import_graph()
    checked = 0
    for package_dir in sorted(p for p in (REPO / "plugins").iterdir() if p.is_dir()):
        subpackages = [p.name for p in package_dir.iterdir()
                       if p.is_dir() and (p / "__init__.py").exists()]
        if not subpackages:
            continue  # a flat plugin: test_no_import_cycles is its order
        package = f"plugins.{package_dir.name}"
        parts = documented_parts(package)
        assert parts, f"{package} has sub-packages but its docstring lists no parts"
        rank = {name: i for i, names in enumerate(parts) for name in names}
        members = {m for m in graph if m.startswith(package + ".")}
        unlisted = sorted({m.split(".")[2] for m in members} - rank.keys())
        assert not unlisted, f"{package}: {unlisted} in no documented part"
        upward = [f"{m} imports {n}" for m in sorted(members) for n in sorted(graph[m])
                  if n.startswith(package + ".")
                  and rank[n.split(".")[2]] > rank[m.split(".")[2]]]
        assert not upward, f"{package} imports upwards:\n" + "\n".join(upward)
        checked += 1
    assert checked, "no plugin with sub-packages was checked"
