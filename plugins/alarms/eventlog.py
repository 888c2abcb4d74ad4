"""The alarm event log and the persisted active set, in the gateway's state directory.

* ``alarms.jsonl``: one JSON object per line, one line per event (raised, cleared,
  confirmed, updated, started, reloaded). When a write would take the file past
  ``max_bytes`` it is rotated: ``alarms.jsonl`` -> ``alarms.jsonl.1`` -> ... and the
  oldest beyond ``files`` is deleted, so the log's size is bounded.
* ``alarms_state.json``: the active alarms and the last sequence number, replaced
  atomically (write to a temporary file, then rename). Read once at start.

Plain blocking file I/O: the alarm service runs these functions in a worker thread, never
on the event loop's hot path.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gateway.state_files import read_json, write_json

log = logging.getLogger(__name__)

LOG_NAME = "alarms.jsonl"
STATE_NAME = "alarms_state.json"
STATE_VERSION = 1
_TAIL_BYTES = 65_536  # how much of the log's end is read to recover the last sequence number


def iso_time(wall_time: float) -> str:
    dt = datetime.datetime.fromtimestamp(wall_time, tz=datetime.timezone.utc)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class EventLog:
    """An append-only JSON-lines file with size-bounded rotation."""

    def __init__(self, directory: Path, *, max_bytes: int, files: int) -> None:
        self.directory = directory
        self.path = directory / LOG_NAME
        self.max_bytes = max_bytes
        self.files = files

    def configure(self, *, max_bytes: int, files: int) -> None:
        self.max_bytes = max_bytes
        self.files = files

    def rotated(self, n: int) -> Path:
        return self.path.with_name(f"{LOG_NAME}.{n}")

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps(r, separators=(",", ":"), ensure_ascii=False) + "\n"
                 for r in records]
        for line in lines:
            data = line.encode("utf-8")
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                size = 0
            if size and size + len(data) > self.max_bytes:
                self.rotate()
            with self.path.open("ab") as f:
                f.write(data)

    def rotate(self) -> None:
        oldest = self.rotated(self.files - 1) if self.files > 1 else self.path
        if self.files > 1:
            oldest.unlink(missing_ok=True)
            for n in range(self.files - 2, 0, -1):
                src = self.rotated(n)
                if src.exists():
                    os.replace(src, self.rotated(n + 1))
            os.replace(self.path, self.rotated(1))
        else:
            self.path.unlink(missing_ok=True)

    def last_seq(self) -> int:
        """The highest sequence number in the newest log lines (0 without a log)."""
        best = 0
        for path in (self.path, self.rotated(1)):
            try:
                with path.open("rb") as f:
                    f.seek(0, os.SEEK_END)
                    size = f.tell()
                    f.seek(max(0, size - _TAIL_BYTES))
                    tail = f.read().decode("utf-8", "replace").splitlines()
            except FileNotFoundError:
                continue
            for line in tail:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line cut by the tail window or by a crash
                if isinstance(record, dict):
                    for k in ("seq", "clear_seq", "last_seq"):
                        v = record.get(k)
                        if isinstance(v, int):
                            best = max(best, v)
            if best:
                break
        return best

    def read(self) -> list[dict[str, Any]]:
        """Every record, oldest first (rotated files included)."""
        out: list[dict[str, Any]] = []
        paths = [self.rotated(n) for n in range(self.files - 1, 0, -1)] + [self.path]
        for path in paths:
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                continue
            for line in text.splitlines():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out


def save_state(directory: Path, data: dict[str, Any]) -> None:
    write_json(directory / STATE_NAME, {"version": STATE_VERSION, **data})


def load_state(directory: Path) -> dict[str, Any] | None:
    return read_json(directory / STATE_NAME, version=STATE_VERSION, log=log, owner="alarms",
                     without="the active set")
