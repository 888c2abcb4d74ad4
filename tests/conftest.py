"""Fixtures shared by every test package."""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path

import pytest

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
