"""Test vectors of the rs485_bms codec: every frame in tests/data/frames.json.

Tests ask for one of these fixtures and are parametrized by vector id:

* ``vector`` - every vector;
* ``good_vector`` - every vector whose response is a well-formed frame;
* ``broken_vector`` - the others (their ``expected`` is an ``error``);
* ``payload_vector`` - good vectors with something to decode (not a bare error answer);
* ``request_vector`` - every vector that quotes the request sent;
* ``exchange_vector`` - a quoted request with a well-formed answer.

``assert_expected(expected, actual)`` compares a decoded view with an ``expected`` block
field by field (floats to half a unit of the expected value's last digit).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

VECTORS_PATH = Path(__file__).resolve().parents[1] / "data/frames.json"
VECTORS: list[dict[str, Any]] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))

GOOD = [v for v in VECTORS if "error" not in v["expected"]]
SELECTIONS = {
    "vector": VECTORS,
    "good_vector": GOOD,
    "broken_vector": [v for v in VECTORS if "error" in v["expected"]],
    "payload_vector": [v for v in GOOD if not set(v["expected"]) <= {"rtn", "adr"}],
    "request_vector": [v for v in VECTORS if v["request"]],
    "exchange_vector": [v for v in GOOD if v["request"]],
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for name, vectors in SELECTIONS.items():
        if name in metafunc.fixturenames:
            metafunc.parametrize(name, vectors, ids=[v["id"] for v in vectors])


def _tolerance(expected: float) -> float:
    text = repr(expected)
    decimals = len(text.split(".")[1]) if "." in text and "e" not in text else 0
    return 0.5 * 10 ** -decimals


def _compare(expected: Any, actual: Any, path: str) -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict), path
        for key, value in expected.items():
            assert key in actual, f"{path}{key} missing"
            _compare(value, actual[key], f"{path}{key}.")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), (path, actual)
        for i, (e, a) in enumerate(zip(expected, actual)):
            _compare(e, a, f"{path}{i}.")
    elif isinstance(expected, float):
        assert isinstance(actual, int | float) and not isinstance(actual, bool), (path, actual)
        assert math.isclose(actual, expected, rel_tol=0, abs_tol=_tolerance(expected)), (
            path, expected, actual)
    else:
        assert type(actual) is type(expected) and actual == expected, (path, expected, actual)


@pytest.fixture
def assert_expected():
    return lambda expected, actual: _compare(expected, actual, "")
