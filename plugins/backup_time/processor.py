"""The backup_time glue: the hub processor (keeps the pure core's state between
snapshots, no I/O) and the service that writes the state file outside the hub's path."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gateway.model import BankOnBattery, BankOnMains, BankSnapshot, Event

from plugins.backup_time import store, tracker
from plugins.backup_time.settings import BackupTimeSettings
from plugins.backup_time.tracker import BackupState

log = logging.getLogger(__name__)


class BackupProcessor:
    """Registered with the hub; puts ``snapshot.backup`` into every snapshot."""

    def __init__(self, settings: BackupTimeSettings, *, state: BackupState | None = None
                 ) -> None:
        self.settings = settings
        self.state = state or BackupState()
        self.last_saved_at: float | None = None
        self.wakeup = asyncio.Event()  #: set when a record or an outage begins or ends

    def process(self, snapshot: BankSnapshot, now: float
                ) -> tuple[BankSnapshot, Sequence[Event]]:
        out = tracker.step(self.state, snapshot, now, self.settings)
        self.state = out.state
        if out.records_changed:
            self.wakeup.set()
        for ev in out.events:
            if isinstance(ev, BankOnBattery):
                log.warning("bank on battery since %.0f s, %s", now - ev.since,
                            _remaining_text(ev.estimate.seconds_to_eod))
            elif isinstance(ev, BankOnMains):
                r = ev.record
                log.warning("bank back on mains after %d s on battery: %.1f Ah, %d Wh "
                            "delivered%s (discharge record %d)", r.duration_s,
                            r.delivered_mah / 1000, r.delivered_wh,
                            ", EOD reached" if r.eod_reached else "", r.number)
        return dataclasses.replace(snapshot, backup=out.estimate), out.events

    def apply(self, settings: BackupTimeSettings) -> None:
        self.settings = settings

    def snapshot_for_disk(self) -> dict[str, Any]:
        return store.dump(self.state)


def _remaining_text(seconds: int | None) -> str:
    return "time to EOD not known yet" if seconds is None else \
        f"{seconds // 60} min to EOD at the present load"


class BackupService:
    """Writes the state file: at once when a record or an on-battery event changed,
    otherwise every ``save_interval_s`` (the imbalance trend); and at shutdown."""

    name = "backup_time"

    def __init__(self, processor: BackupProcessor, *, state_dir: Path | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.processor = processor
        self.state_dir = state_dir
        self.clock = clock
        self.write_errors = 0

    async def run(self) -> None:
        if self.state_dir is None:
            log.info("backup_time: gateway.state_dir is not set: discharge records and the "
                     "imbalance trend are kept in memory only")
        p = self.processor
        try:
            while True:
                try:
                    async with asyncio.timeout(p.settings.save_interval_s):
                        await p.wakeup.wait()
                except TimeoutError:
                    pass
                p.wakeup.clear()
                if self.state_dir is not None:
                    await asyncio.shield(asyncio.to_thread(self._write,
                                                           p.snapshot_for_disk()))
        finally:
            if self.state_dir is not None:
                self._write(p.snapshot_for_disk())

    def _write(self, data: dict[str, Any]) -> None:
        assert self.state_dir is not None
        try:
            store.save(self.state_dir, data)
        except OSError as exc:
            self.write_errors += 1
            if self.write_errors == 1:
                log.error("backup_time: cannot write to %s: %s", self.state_dir, exc)
        self.processor.last_saved_at = self.clock()


def make_processor(settings: BackupTimeSettings, *, state_dir: Path | None, now: float,
                   wall_time: float) -> BackupProcessor:
    state = store.load_state(state_dir, now=now, wall_time=wall_time)
    if state.records or state.discharge is not None:
        log.info("backup_time: %d discharge record(s) restored from %s%s", len(state.records),
                 state_dir, "; a discharge was under way" if state.discharge else "")
    return BackupProcessor(settings, state=state)
