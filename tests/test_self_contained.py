"""A clone of the repository passes its tests with nothing beside it.

The tests run from a copy of the repository in a temporary folder that holds nothing
else (no sibling folder of any name): collecting every test module (module-level
data loads happen then) and running every test module that reads a data file must
succeed there. A static check also refuses test code that climbs out of the repository.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: a path climbing above the repository: parents[N] of a test file with N >= its depth
_CLIMB = re.compile(r"parents\[(\d+)\]\.parent|[\"']\.\./")


def _tracked_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO, capture_output=True,
                             check=True).stdout
        return [Path(p) for p in out.decode().split("\0") if p]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: every file
        return [p.relative_to(REPO) for p in REPO.rglob("*") if p.is_file()
                and not {".venv", ".git", "__pycache__"} & set(p.relative_to(REPO).parts)]


def test_no_test_reads_outside_the_repository():
    offenders = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        if path == Path(__file__).resolve():
            continue  # the pattern itself
        for n, line in enumerate(path.read_text().splitlines(), start=1):
            if _CLIMB.search(line):
                offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not offenders, "tests reading outside the repository:\n" + "\n".join(offenders)


def test_the_static_check_sees_a_climb():
    assert _CLIMB.search('Path(__file__).resolve().parents[2].parent / "x.json"')
    assert _CLIMB.search('open("../frames.json")')
    assert not _CLIMB.search('Path(__file__).resolve().parents[1] / "data/frames.json"')


@pytest.mark.e2e
def test_tests_pass_from_a_copy_with_nothing_beside_it(tmp_path):
    copy = tmp_path / "clone" / "bms-gateway"
    for rel in _tracked_files():
        if (REPO / rel).is_file():
            (copy / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, copy / rel)
    assert list(copy.parent.iterdir()) == [copy]  # nothing beside the copy
    readers = sorted(str(p.relative_to(copy)) for p in (copy / "tests").rglob("test_*.py")
                     if re.search(r"data/|\"data\"", p.read_text()) and p.name != Path(__file__).name)
    assert "tests/rs485_bms/test_normalize.py" in readers
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    collected = subprocess.run([*base, "--collect-only", "tests"], cwd=copy, env=env,
                               capture_output=True, text=True, timeout=300)
    assert collected.returncode == 0, collected.stdout[-3000:] + collected.stderr[-3000:]
    ran = subprocess.run([*base, "-m", "not e2e", "-x", *readers], cwd=copy, env=env,
                         capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert " passed" in ran.stdout.splitlines()[-1]
