"""Fixtures shared by every test package."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import sys
import types
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Property tests check results, never speed: a loaded 2-core CI machine must not fail
# them by a deadline or the too-slow health check (speed lives in benchmarks/).
settings.register_profile("bms-gateway", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("bms-gateway")

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


class FakeClock:
    """An injected monotonic clock: tests move time, nothing sleeps."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def gateway_cmd() -> list[str]:
    """The installed console script (the venv's), as a user would run it."""
    exe = BIN / "bms-gateway"
    assert exe.exists(), f"{exe} missing: install the project with 'make venv'"
    return [str(exe)]


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def require_tool():
    """Path of a Debian tool the test needs; fails (never skips) when it is missing."""
    def find(name: str) -> str:
        path = shutil.which(name)
        if path is None:
            pytest.fail(f"{name} is not installed: 'make test' installs the Debian packages")
        return path
    return find


def load_fault_proxy() -> types.ModuleType:
    """tests/faultproxy.py, loaded by path (the tests directory is no package)."""
    name = "bms_gateway_fault_proxy"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "tests/faultproxy.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def fault_proxy():
    """``fault_proxy(upstream_port)``: a started :class:`FaultProxy` to
    127.0.0.1:``upstream_port``, closed at the end of the test."""
    proxies = []

    def start(upstream_port: int, *, port: int = 0):
        proxy = load_fault_proxy().FaultProxy(("127.0.0.1", upstream_port), port=port)
        proxies.append(proxy)
        return proxy
    yield start
    for proxy in proxies:
        proxy.close()
