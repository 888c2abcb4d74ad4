"""The alarm service: the processor's clock tick and its disk writer (role "service").

* **Tick.** Delays must expire and data age must grow even when no new snapshot arrives
  (a slow poll interval, a stuck poller): when the hub's latest snapshot is older than
  ``evaluate_interval_s``, the service asks it to publish again, which re-runs the rules.
* **Disk.** Log records and the active set are written by a worker thread, batched,
  outside the hub's update path; at shutdown whatever is pending is written before the
  service returns.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from gateway.hub import Hub

from plugins.alarms.eventlog import EventLog, iso_time, save_state
from plugins.alarms.processor import AlarmProcessor, alarm_record, dump_state

log = logging.getLogger(__name__)


class AlarmService:
    name = "alarms"

    def __init__(self, processor: AlarmProcessor, hub: Hub, *, state_dir: Path | None,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.processor = processor
        self.hub = hub
        self.clock = clock
        self.wall_clock = wall_clock
        self.state_dir = state_dir
        ev = processor.settings.event_log
        self.event_log = (EventLog(state_dir, max_bytes=ev.max_bytes, files=ev.files)
                          if state_dir is not None else None)
        self.write_errors = 0
        self._write_failing = False
        #: one writer thread: writes happen in order, and a write that has begun (or is
        #: queued) is finished even when the service is cancelled at shutdown
        self._writer: concurrent.futures.ThreadPoolExecutor | None = None
        self._inflight: concurrent.futures.Future[None] | None = None

    def apply(self) -> None:
        """Take the event-log settings of the processor's (reloaded) settings."""
        if self.event_log is not None:
            ev = self.processor.settings.event_log
            self.event_log.configure(max_bytes=ev.max_bytes, files=ev.files)

    def started_record(self) -> dict:
        restored = self.processor.state.alarms
        return {"time": iso_time(self.wall_clock()), "event": "started",
                "last_seq": self.processor.state.last_seq,
                "restored": [alarm_record(a) for a in restored]}

    async def run(self) -> None:
        p = self.processor
        if self.event_log is None:
            log.warning("alarms: gateway.state_dir is not set: no event log, and active "
                        "alarms are announced again after a restart")
        p.record(self.started_record())
        try:
            while True:
                interval = p.settings.evaluate_interval_s
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval):
                        await p.wakeup.wait()
                p.wakeup.clear()
                latest = self.hub.latest
                if latest is not None and self.clock() - latest.created_at >= interval:
                    self.hub.republish()
                await self.flush()
        finally:
            self.close()

    def _pending(self) -> tuple[list[dict], dict | None]:
        p = self.processor
        records = p.take_journal()
        state = None
        if p.dirty:
            p.dirty = False
            state = dump_state(p.state)
        return records, state

    async def flush(self) -> None:
        if self.state_dir is None:
            self.processor.take_journal()
            return
        records, state = self._pending()
        if records or state is not None:
            if self._writer is None:
                self._writer = concurrent.futures.ThreadPoolExecutor(
                    1, thread_name_prefix="alarm-log")
            self._inflight = self._writer.submit(self._write, records, state)
            await asyncio.shield(asyncio.wrap_future(self._inflight))

    def close(self) -> None:
        """Finish the write under way, then write what is left (shutdown)."""
        if self._writer is not None:
            self._writer.shutdown(wait=True)  # runs a write still queued, never drops it
            self._writer = None
        self._inflight = None
        self.flush_sync()

    def flush_sync(self) -> None:
        if self.state_dir is None:
            return
        records, state = self._pending()
        state = dump_state(self.processor.state)  # always leave the latest set on disk
        self._write(records, state)

    def _write(self, records: list[dict], state: dict | None) -> None:
        assert self.state_dir is not None and self.event_log is not None
        try:
            if records:
                self.event_log.append(records)
            if state is not None:
                save_state(self.state_dir, state)
        except OSError as exc:
            self.write_errors += 1
            if not self._write_failing:
                log.error("alarms: cannot write to %s: %s (alarms keep working; the log "
                          "misses these events)", self.state_dir, exc)
            self._write_failing = True
            if state is not None:
                self.processor.dirty = True  # try the active set again next time
        else:
            if self._write_failing:
                log.info("alarms: writing to %s works again", self.state_dir)
            self._write_failing = False
