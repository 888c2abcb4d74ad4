"""The backup_time state file in the gateway's state directory: discharge records, the
discharge under way and the daily imbalance statistics, as one JSON document.

``backup_time.json`` is replaced atomically (written to a temporary file, flushed and
synced, then renamed over the old one), so a crash leaves the old or the new file, never
half of one. Plain blocking I/O: the service calls :func:`save` from a worker thread;
:func:`load` runs once at start.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from gateway.model import DischargeRecord, Location
from gateway.state_files import read_json, write_json

from plugins.backup_time.tracker import BackupState, DayStat, Discharge

log = logging.getLogger(__name__)

FILE_NAME = "backup_time.json"
VERSION = 1


def _record(data: dict[str, Any]) -> DischargeRecord:
    at = data.get("cell_min_at")
    return DischargeRecord(**{**data, "cell_min_at": None if at is None else Location(**at)})


def dump(state: BackupState) -> dict[str, Any]:
    """What survives a restart. The discharge under way keeps only wall times: the
    monotonic clock starts again with the process."""
    d = state.discharge
    discharge = None
    if d is not None:
        discharge = {k: v for k, v in asdict(d).items()
                     if k not in ("started_at", "last_at", "last_current_ma", "last_power_mw")}
    return {
        "version": VERSION,
        "record_last": state.record_last,
        "records": [asdict(r) for r in state.records],
        "discharge": discharge,
        "trend": {str(p): [[s.day, s.total_mv, s.count] for s in stats]
                  for p, stats in sorted(state.trend.items())},
    }


def restore(data: dict[str, Any] | None, *, now: float, wall_time: float) -> BackupState:
    """The state to start from. A discharge that was under way is marked restored: it
    continues if the bank is still on battery once its state is known, else it is
    closed at the last time it was seen."""
    if not data:
        return BackupState()
    records = tuple(_record(r) for r in data.get("records", ()))
    record_last = max([int(data.get("record_last", 0))] + [r.number for r in records])
    trend = {int(p): tuple(DayStat(int(day), int(total), int(count))
                           for day, total, count in stats)
             for p, stats in data.get("trend", {}).items()}
    discharge = None
    raw = data.get("discharge")
    if raw:
        at = raw.get("cell_min_at")
        started_wall = float(raw["started_wall_time"])
        discharge = Discharge(**{
            **raw, "cell_min_at": None if at is None else Location(**at),
            "started_at": now - max(0.0, wall_time - started_wall),
            "last_at": now, "last_current_ma": 0, "last_power_mw": None})
    return BackupState(records=records, record_last=record_last, trend=trend,
                       discharge=discharge, restored_discharge=discharge is not None)


def save(directory: Path, data: dict[str, Any]) -> None:
    write_json(directory / FILE_NAME, data)


def load(directory: Path) -> dict[str, Any] | None:
    return read_json(directory / FILE_NAME, version=VERSION, log=log, owner="backup_time",
                     without="records")


def load_state(directory: Path | None, *, now: float, wall_time: float) -> BackupState:
    if directory is None:
        return BackupState()
    data = load(directory)
    try:
        return restore(data, now=now, wall_time=wall_time)
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("backup_time: ignoring %s: %s", directory / FILE_NAME, exc)
        return BackupState()
