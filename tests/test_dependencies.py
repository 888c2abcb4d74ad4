"""pyproject.toml's dependency lists say what runs: every runtime dependency is imported
by the runtime code (gateway/, plugins/), every third-party module that code imports is
a runtime dependency, and no runtime code imports a test-only one."""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
LOCAL = {"gateway", "plugins"}

#: Runtime dependencies that our code need not import itself: distribution -> (the
#: dependency that imports it, why we declare it). Each claim is checked below.
INDIRECT = {
    # pysnmp imports cryptography for SNMPv3 privacy (AES, rfc3826) but does not declare
    # it (only in its "dev" extra): without it every authPriv request fails to decrypt.
    "cryptography": "pysnmp",
}


def dist_name(requirement: str) -> str:
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert m, requirement
    return re.sub(r"[-_.]+", "-", m.group(1)).lower()


def import_names() -> dict[str, set[str]]:
    """Installed distribution (normalised name) -> the top-level modules it provides."""
    out: dict[str, set[str]] = {}
    for module, dists in md.packages_distributions().items():
        for d in dists:
            out.setdefault(dist_name(d), set()).add(module)
    return out


def imports_of(path: Path) -> set[str]:
    """Top-level names of every absolute import in the file, inside functions and
    try blocks included."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def runtime_imports() -> dict[str, set[str]]:
    """Third-party top-level module -> the runtime files that import it."""
    out: dict[str, set[str]] = {}
    for root in sorted(LOCAL):
        for path in sorted((REPO / root).rglob("*.py")):
            for name in imports_of(path):
                if name not in LOCAL and name not in sys.stdlib_module_names:
                    out.setdefault(name, set()).add(str(path.relative_to(REPO)))
    return out


RUNTIME = {dist_name(r) for r in PYPROJECT["project"]["dependencies"]}
TEST_ONLY = {dist_name(r) for r in PYPROJECT["project"]["optional-dependencies"]["test"]}


def modules_of(dist: str, names: dict[str, set[str]]) -> set[str]:
    assert dist in names, f"{dist} is not installed: run 'make venv'"
    return names[dist]


def test_every_runtime_dependency_is_imported_by_runtime_code():
    names = import_names()
    imported = set(runtime_imports())
    unused = {d for d in RUNTIME - set(INDIRECT) if not modules_of(d, names) & imported}
    assert not unused, f"runtime dependencies no runtime code imports: {sorted(unused)}"


def test_indirect_dependencies_are_runtime_ones_imported_by_what_they_name():
    names = import_names()
    for dist, user in INDIRECT.items():
        assert dist in RUNTIME and user in RUNTIME, (dist, user)
        files = [f for f in md.files(user) or () if f.suffix == ".py"]
        wanted = modules_of(dist, names)
        users = [f for f in files if imports_of(Path(f.locate())) & wanted]
        assert users, f"{user} does not import {dist}: drop it from INDIRECT"


def test_every_third_party_import_of_runtime_code_is_a_runtime_dependency():
    names = import_names()
    declared = set().union(*(modules_of(d, names) for d in RUNTIME))
    undeclared = {m: sorted(f) for m, f in runtime_imports().items() if m not in declared}
    assert not undeclared, f"imported but not a runtime dependency: {undeclared}"


def test_runtime_code_imports_no_test_only_dependency():
    names = import_names()
    test_modules = {m: d for d in TEST_ONLY - RUNTIME for m in modules_of(d, names)}
    offenders = {f"{test_modules[m]} ({m}): {sorted(files)}"
                 for m, files in runtime_imports().items() if m in test_modules}
    assert not offenders, f"runtime code imports test-only dependencies: {sorted(offenders)}"


def test_pymodbus_is_a_test_dependency_only():
    """The Modbus server is our own (plugins/modbus_tcp/protocol.py); pymodbus is the
    third-party client of tests/modbus_tcp."""
    assert "pymodbus" not in RUNTIME and "pymodbus" in TEST_ONLY
