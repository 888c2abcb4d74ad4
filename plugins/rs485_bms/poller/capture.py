"""The bus recorder: what a port wrote and read, into a rotating capture file.

The poll loop never waits for the disk. :class:`RecordingTransport` (the port, as the
poller sees it) hands each write and read to :meth:`BusRecorder.sent` /
:meth:`BusRecorder.received` with its wall-clock time: one append to a bounded queue.
A worker thread turns them into records (:class:`~..protocol.capture.CaptureTranscriber`
decodes every answer) and writes them. When the queue is full (the disk stalls) records
are dropped and counted; when a write fails (full disk, unwritable file) the problem is
logged once, the records are counted as lost, and writing is tried again every
:data:`RETRY_S` seconds; neither ever reaches the poller.

Rotation: when a line would take the file past ``max_bytes`` the file becomes
``FILE.1`` (``FILE.1`` becomes ``FILE.2``, ...), the oldest beyond ``files`` is deleted,
and the new file starts with its own header, so every file can be decoded and replayed
on its own. Each start of the gateway begins a new file too (the last run's file becomes
``FILE.1``): a file holds one stretch of recording.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from plugins.rs485_bms.protocol import PROFILES
from plugins.rs485_bms.protocol.capture import (
    CaptureHeader,
    CaptureTranscriber,
    encode_header,
    encode_record,
)
from plugins.rs485_bms.settings import BusSettings, CaptureSettings
from plugins.rs485_bms.poller.transport import SerialTransport

log = logging.getLogger(__name__)

QUEUE_ITEMS = 8192  #: writes and reads waiting for the worker (a few seconds of a busy bus)
RETRY_S = 10.0  #: after a failed write, the next attempt waits this long
_CLOSE_WAIT_S = 2.0  #: how long closing waits for the worker to write what is queued

_SENT, _RECEIVED, _QUIET, _CLOSED = "tx", "rx", "quiet", "closed"


@dataclass(slots=True)
class CaptureCounters:
    records: int = 0  #: lines written
    dropped: int = 0  #: records lost because the queue was full
    lost: int = 0  #: records lost because writing failed
    write_errors: int = 0  #: failed writes (each then waits RETRY_S)


class CaptureFile:
    """A size-bounded, rotating capture file (blocking I/O: the worker's side)."""

    def __init__(self, path: Path, *, max_bytes: int, files: int,
                 header: Callable[[], str]) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.files = files
        self.header = header  #: makes the header line of a new file
        self._f: IO[bytes] | None = None
        self._size = 0

    def rotated(self, n: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{n}")

    def write(self, line: str) -> None:
        data = line.encode("ascii")
        if self._f is not None and self._size + len(data) > self.max_bytes:
            self._rotate()
        if self._f is None:
            self._open()
        assert self._f is not None
        self._f.write(data)
        self._size += len(data)

    def flush(self) -> None:
        if self._f is not None:
            self._f.flush()

    def close(self) -> None:
        f, self._f = self._f, None
        if f is not None:
            try:
                f.close()
            except OSError:  # the last buffered bytes could not be written: already counted
                pass

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = self.path.open("ab")
        try:
            size = f.seek(0, os.SEEK_END)
            if size:  # a file of an earlier run (or of before a failed write): keep it
                f.close()
                self._shift()
                f = self.path.open("ab")
            header = self.header().encode("ascii")
            f.write(header)
            size = len(header)
        except OSError:
            f.close()
            raise
        self._f, self._size = f, size

    def _rotate(self) -> None:
        self.close()
        self._shift()

    def _shift(self) -> None:
        if self.files == 1:
            self.path.unlink(missing_ok=True)
            return
        self.rotated(self.files - 1).unlink(missing_ok=True)
        for n in range(self.files - 2, 0, -1):
            if self.rotated(n).exists():
                os.replace(self.rotated(n), self.rotated(n + 1))
        if self.path.exists():
            os.replace(self.path, self.rotated(1))


class BusRecorder:
    """Records one bus. :meth:`sent`, :meth:`received` and :meth:`quiet` are called by
    the poll loop and only append to a bounded queue; the worker thread does the rest."""

    def __init__(self, settings: CaptureSettings, *, bus: str, family: str, baud: int,
                 wall_clock: Callable[[], float] = time.time,
                 queue_items: int = QUEUE_ITEMS) -> None:
        self.settings = settings
        self.bus = bus
        self.wall_clock = wall_clock
        self.counters = CaptureCounters()
        self._transcriber = CaptureTranscriber(PROFILES[family])

        def header() -> str:
            return encode_header(CaptureHeader(bus=bus, family=family, baud=baud,
                                               started=wall_clock()))
        self.file = CaptureFile(settings.file, max_bytes=settings.max_bytes,
                                files=settings.files, header=header)
        self._queue: queue.Queue[tuple[str, float, bytes] | None] = queue.Queue(queue_items)
        self._thread: threading.Thread | None = None
        self._failing = False  #: the last write failed (logged once until one works)
        self._retry_at = 0.0
        self._full_logged = False
        self._lock = threading.Lock()  # counters are read from the event loop's thread

    # --------------------------------------------------------------- poll loop side --
    def sent(self, data: bytes) -> None:
        self._put(_SENT, data)

    def received(self, data: bytes) -> None:
        self._put(_RECEIVED if data else _QUIET, data)

    def port_closed(self) -> None:
        self._put(_CLOSED, b"")

    def _put(self, kind: str, data: bytes) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, daemon=True,
                                            name=f"capture:{self.bus}")
            self._thread.start()
        try:
            self._queue.put_nowait((kind, self.wall_clock(), data))
        except queue.Full:
            with self._lock:
                self.counters.dropped += 1
            if not self._full_logged:
                self._full_logged = True
                log.warning("bus %s: capture to %s cannot keep up; records are dropped "
                            "(and counted) while its queue is full", self.bus,
                            self.settings.file)

    def close(self) -> None:
        """Write what is queued (waiting at most a moment) and stop the worker."""
        if self._thread is None:
            return
        try:
            self._queue.put((_CLOSED, self.wall_clock(), b""), timeout=_CLOSE_WAIT_S)
            self._queue.put(None, timeout=_CLOSE_WAIT_S)
        except queue.Full:
            pass
        self._thread.join(_CLOSE_WAIT_S)
        self._thread = None
        c = self.counters
        log.info("bus %s: capture %s closed: %d records written, %d dropped, %d lost",
                 self.bus, self.settings.file, c.records, c.dropped, c.lost)

    def wrap(self, transport: SerialTransport) -> RecordingTransport:
        return RecordingTransport(transport, self)

    # ------------------------------------------------------------------ worker side --
    def _work(self) -> None:
        t = self._transcriber
        while True:
            item = self._queue.get()
            if item is None:
                break
            kind, at, data = item
            if kind == _SENT:
                records = t.sent(data, at)
            elif kind == _RECEIVED:
                records = t.received(data, at)
            elif kind == _QUIET:
                records = t.quiet(at)
            else:
                records = t.close(at)
            for record in records:
                self._write(encode_record(record))
            if self._queue.empty():
                self._flush()
        self._flush()
        self.file.close()

    def _write(self, line: str) -> None:
        if self._failing and self.wall_clock() < self._retry_at:
            with self._lock:
                self.counters.lost += 1
            return
        try:
            self.file.write(line)
        except OSError as exc:
            self._failed(exc)
            with self._lock:
                self.counters.lost += 1
            return
        with self._lock:
            self.counters.records += 1
        if self._failing:
            self._failing = False
            log.info("bus %s: writing the capture %s works again", self.bus,
                     self.settings.file)

    def _flush(self) -> None:
        try:
            self.file.flush()
        except OSError as exc:
            self._failed(exc)

    def _failed(self, exc: OSError) -> None:
        with self._lock:
            self.counters.write_errors += 1
        self.file.close()
        self._retry_at = self.wall_clock() + RETRY_S
        if not self._failing:
            self._failing = True
            log.warning("bus %s: cannot write the capture %s (%s); polling goes on, the "
                        "records are lost (and counted), writing is retried every %g s",
                        self.bus, self.settings.file, exc.strerror or exc, RETRY_S)


def make_recorder(settings: BusSettings) -> BusRecorder | None:
    """The recorder of a bus whose settings ask for one."""
    if settings.capture is None:
        return None
    return BusRecorder(settings.capture, bus=settings.name, family=settings.family.value,
                       baud=settings.baud)


class RecordingTransport:
    """A port that tells a :class:`BusRecorder` every byte it writes and reads."""

    def __init__(self, inner: SerialTransport, recorder: BusRecorder) -> None:
        self.inner = inner
        self.recorder = recorder
        self.url = inner.url
        self.baud = inner.baud

    @property
    def is_open(self) -> bool:
        return self.inner.is_open

    async def open(self) -> None:
        await self.inner.open()

    async def write(self, data: bytes) -> None:
        self.recorder.sent(data)
        await self.inner.write(data)

    async def read(self, max_wait_s: float) -> bytes:
        data = await self.inner.read(max_wait_s)
        self.recorder.received(data)
        return data

    async def read_frame(self, first_wait_s: float, *, gap_s: float, limit_s: float) -> bytes:
        data = await self.inner.read_frame(first_wait_s, gap_s=gap_s, limit_s=limit_s)
        self.recorder.received(data)
        return data

    async def discard_input(self) -> int:
        """As the port's own, but the dropped bytes are recorded too."""
        n = 0
        while data := await self.inner.read(0):  # what is there, without waiting
            self.recorder.received(data)
            n += len(data)
        return n

    async def close(self) -> None:
        self.recorder.port_closed()
        await self.inner.close()
