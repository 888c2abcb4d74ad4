"""The recent alarm events, read from the alarms plugin's event log file.

The file format is the alarms plugin's documented contract (docs/alarms.md, "Event log
and restarts"): ``alarms.jsonl`` in ``gateway.state_dir``, one JSON object per line,
rotated to ``alarms.jsonl.1``, ``.2``, ... This module reads that format and nothing
else of the alarms plugin, so the two plugins never import each other. Blocking file
I/O: the server calls :func:`read_recent_events` in a worker thread.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

LOG_NAME = "alarms.jsonl"  #: docs/alarms.md
TAIL_BYTES = 262_144  #: how much of each file's end is read


def _tail_lines(path: Path) -> list[str]:
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        start = max(0, size - TAIL_BYTES)
        f.seek(start)
        data = f.read()
    lines = data.decode("utf-8", "replace").splitlines()
    return lines[1:] if start and lines else lines  # the first may be cut


def read_recent_events(state_dir: Path | None, limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` newest event records, newest first; [] without a state directory
    or before the first event. Lines that are not JSON objects (a crash mid-write) are
    skipped."""
    if state_dir is None or limit <= 0:
        return []
    out: list[dict[str, Any]] = []
    for path in (state_dir / LOG_NAME, state_dir / f"{LOG_NAME}.1"):
        try:
            lines = _tail_lines(path)
        except FileNotFoundError:
            continue
        for line in reversed(lines):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                out.append(record)
                if len(out) >= limit:
                    return out
    return out
