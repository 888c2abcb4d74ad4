"""A recorded bus played back as a bank (``bms-gateway simulate --replay FILE``).

Pure core: :meth:`ReplayBank.respond` takes a request and returns the bytes the
recording holds for it, each with its delay; the simulator's servers put them on the
wire at the recorded baud rate, exactly as they do for simulated packs.

* A request is matched by its address, command (CID2) and INFO (so ``FF`` and a single
  pack's request are told apart). Its answer is what arrived after the recorded request
  until the next request, byte for byte: a good answer, garbled or truncated frames,
  an answer from another address, garbage, a late answer (it then comes late again),
  or nothing at all (a recorded timeout: silence again).
* Timing: each reply keeps the gap that preceded it in the recording (after the end of
  the request's own wire time, or after the previous reply), so a slow BMS stays slow
  and a late answer stays late.
* Repeated requests take the successive recorded answers to that request, so values
  move as they moved on the recorded bus; after the last one the recording starts over
  at the first (the replay runs for as long as it is polled).
* A request the recording never saw is not answered (the poller sees a timeout, as
  from an address where no module sits); the first one of each address and command is
  logged, and all are counted in :attr:`ReplayBank.unrecorded`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from plugins.rs485_bms.protocol import Frame
from plugins.rs485_bms.protocol.capture import (
    Capture,
    CaptureHeader,
    Exchange,
    exchanges,
    read_capture,
)

log = logging.getLogger(__name__)

BITS_PER_BYTE = 10  # 8N1
MAX_GAP_S = 10.0  #: a recorded gap longer than this (a clock step) is replayed as this


class ReplayError(ValueError):
    """The capture cannot be replayed (no header, nothing recorded)."""


@dataclass(frozen=True, slots=True)
class Reply:
    delay_s: float  #: after the end of the request (or of the previous reply)
    data: bytes


class ReplayBank:
    def __init__(self, header: CaptureHeader, recorded: Iterable[Exchange]) -> None:
        self.header = header
        self.family = header.family
        self.baud = header.baud
        self._answers: dict[tuple[int, int, bytes], list[tuple[Reply, ...]]] = {}
        for exchange in recorded:
            self._answers.setdefault(exchange.key, []).append(self._replies(exchange))
        if not self._answers:
            raise ReplayError("the capture holds no request")
        self._next: dict[tuple[int, int, bytes], int] = {}
        self.unrecorded = 0  #: requests the recording has no answer for
        self._unrecorded_seen: set[tuple[int, int]] = set()

    @property
    def addresses(self) -> list[int]:
        """The addresses the recording polled."""
        return sorted({adr for adr, _, _ in self._answers})

    @property
    def exchanges(self) -> int:
        return sum(len(v) for v in self._answers.values())

    def _wire_s(self, nbytes: int) -> float:
        return nbytes * BITS_PER_BYTE / self.baud

    def _replies(self, exchange: Exchange) -> tuple[Reply, ...]:
        out = []
        previous_end = exchange.sent_at + self._wire_s(exchange.request_bytes)
        for record in exchange.replies:
            # a record's time is when its last byte was read: it began a wire time earlier
            began = record.at - self._wire_s(len(record.raw))
            gap = min(MAX_GAP_S, max(0.0, began - previous_end))
            out.append(Reply(gap, record.raw))
            previous_end = max(previous_end, record.at)
        return tuple(out)

    def respond(self, request: Frame) -> list[Reply]:
        """The recorded replies to ``request`` (none: silence)."""
        key = (request.adr, request.cid2, request.info)
        answers = self._answers.get(key)
        if answers is None:
            self.unrecorded += 1
            if (request.adr, request.cid2) not in self._unrecorded_seen:
                self._unrecorded_seen.add((request.adr, request.cid2))
                log.warning("replay: the recording has no answer to adr %d cid2 0x%02X "
                            "(INFO %s): not answered", request.adr, request.cid2,
                            request.info.hex().upper() or "empty")
            return []
        i = self._next.get(key, 0)
        self._next[key] = (i + 1) % len(answers)
        return list(answers[i])


def load_replay(paths: Iterable[Path | str]) -> tuple[ReplayBank, Capture]:
    """The bank of one or more capture files, read oldest first; with what was read
    (its ``problems`` list the skipped lines). OSError if a file cannot be read,
    :class:`ReplayError` if there is nothing to replay."""
    capture = Capture()
    for path in paths:
        with open(path, encoding="ascii", errors="replace", newline="") as f:
            read_capture(f, source=str(path), into=capture)
    if capture.header is None:
        raise ReplayError("no capture header: not a capture file")
    return ReplayBank(capture.header, exchanges(capture.records)), capture
