"""Incremental frame reader: feed it bytes as they come, take complete frames out.

It synchronises on ``~`` and ends a frame at CR. Bytes outside any frame are counted
as garbage (:attr:`FrameReader.garbage`). Nothing is ever raised at the caller: bad
frames come out as :class:`~.errors.ProtocolError` *values*, in order with the good
ones, so a poller can count them and carry on. The buffer never holds more than one
frame's worth (:data:`~.frame.MAX_FRAME_BYTES`):

* a new ``~`` before the CR ends the partial frame as an :class:`InterruptedFrameError`
  and starts a new one;
* no CR within the longest legal frame gives a :class:`FrameTooLongError`; the rest of
  that run, up to the next ``~``, is garbage;
* :meth:`FrameReader.flush` (call it when the line has gone quiet) turns a partial
  frame into a :class:`TruncatedError`.
"""

from __future__ import annotations

from plugins.rs485_bms.protocol.errors import (
    FrameTooLongError,
    InterruptedFrameError,
    ProtocolError,
    TruncatedError,
)
from plugins.rs485_bms.protocol.frame import EOI, MAX_FRAME_BYTES, SOI, Frame, parse_frame

ReaderEvent = Frame | ProtocolError


class FrameReader:
    """Turns a byte stream into frames and protocol errors (sans-IO)."""

    def __init__(self) -> None:
        self._partial = bytearray()  # from '~', while a frame is being received
        self.garbage = 0  #: bytes seen outside any frame since the last take_garbage()

    @property
    def pending(self) -> int:
        """Bytes of the frame being received (0 between frames)."""
        return len(self._partial)

    def take_garbage(self) -> int:
        """Return the garbage count and reset it."""
        count, self.garbage = self.garbage, 0
        return count

    def feed(self, data: bytes) -> list[ReaderEvent]:
        """Consume ``data``; return the frames and errors it completed, in order."""
        events: list[ReaderEvent] = []
        pos, end = 0, len(data)
        while pos < end:
            if not self._partial:
                start = data.find(SOI, pos)
                if start < 0:
                    self.garbage += end - pos
                    break
                self.garbage += start - pos
                self._partial += SOI
                pos = start + 1
                continue
            stop = _first_of(data, pos, end)
            room = MAX_FRAME_BYTES - 1 - len(self._partial)  # keep one byte for the CR
            if stop - pos > room:
                self._partial += data[pos:pos + room]
                events.append(FrameTooLongError(
                    f"no CR within {MAX_FRAME_BYTES} bytes", raw=self._take()))
                self.garbage += stop - pos - room
                pos = stop
                continue
            self._partial += data[pos:stop]
            if stop == end:
                break
            if data[stop:stop + 1] == SOI:
                events.append(InterruptedFrameError(
                    "a new '~' arrived before the CR", raw=self._take()))
                self._partial += SOI
            else:
                self._partial += EOI
                events.append(_parse(self._take()))
            pos = stop + 1
        return events

    def flush(self) -> list[ReaderEvent]:
        """End a partial frame (the line went quiet): a :class:`TruncatedError`, or nothing."""
        if not self._partial:
            return []
        return [TruncatedError("the line went quiet before the CR", raw=self._take())]

    def _take(self) -> bytes:
        frame = bytes(self._partial)
        self._partial.clear()
        return frame


def _first_of(data: bytes, pos: int, end: int) -> int:
    """Index of the first ``~`` or CR in ``data[pos:end]``, or ``end``."""
    cr = data.find(EOI, pos)
    soi = data.find(SOI, pos)
    found = [i for i in (cr, soi) if i >= 0]
    return min(found) if found else end


def _parse(raw: bytes) -> ReaderEvent:
    try:
        return parse_frame(raw)
    except ProtocolError as exc:
        return exc
