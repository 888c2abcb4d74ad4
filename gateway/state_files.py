"""The small JSON files plugins keep in ``gateway.state_dir`` (the alarm engine's active
set, the backup_time discharge records): written whole and atomically, so that a power
cut leaves the old file or the new one, never half of either; read back only when they
are of the version the plugin writes, with a warning (never a crash) otherwise."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` through a temporary file, synced, then renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(data, f, separators=(",", ":"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: Path, *, version: int, log: logging.Logger, owner: str,
              without: str) -> dict[str, Any] | None:
    """The object in ``path`` if it is there, readable and of ``version``; else None,
    logging (as ``owner``) why the plugin starts ``without`` it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("%s: ignoring unreadable %s (%s); starting without %s", owner, path, exc,
                    without)
        return None
    if not isinstance(data, dict) or data.get("version") != version:
        log.warning("%s: ignoring %s: unknown format", owner, path)
        return None
    return data
