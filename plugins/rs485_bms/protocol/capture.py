"""Bus capture files: what crossed an RS485 bus, one JSON object per line (sans-IO).

A capture file starts with a header line and then holds one record per frame, in the
order the bytes crossed the port::

    {"capture":"bms-gateway","version":1,"bus":"bank1","family":"pace_v25","baud":9600,"started":"2026-12-03T08:46:12.123456Z"}
    {"t":"2026-12-03T08:46:12.130211Z","dir":"tx","frame":"~25014642E00201FD30\\r","result":"request"}
    {"t":"2026-12-03T08:46:12.331007Z","dir":"rx","frame":"~25014600F07A...\\r","result":"ok"}

* ``t``: wall-clock time (UTC, microseconds) the poller wrote the request, or read the
  last byte of the received frame.
* ``dir``: ``tx`` (the gateway sent it) or ``rx`` (it arrived).
* ``frame``: the raw bytes, each byte one character (ISO 8859-1, so garbage and
  collisions survive exactly; JSON escapes the CR as ``\\r``). Empty for a timeout.
* ``result``: ``request`` for what we sent; for what arrived ``ok`` (the answer to the
  request in flight, decoded with the bus's family), an error kind of
  :mod:`.errors` (``chksum``, ``lchksum``, ``truncated``, ``rtn``, ``address``,
  ``layout``, ...), or one of :data:`RX_RESULTS`: ``timeout`` (nothing arrived before the
  poller's deadline), ``late`` (a frame after the deadline), ``garbage`` (bytes outside
  any frame), ``echo``, ``foreign`` (another master's request), ``intra_pack``,
  ``unsolicited``.

:class:`CaptureTranscriber` turns what a port wrote and read into records (it decodes
each answer itself, so recording needs nothing from the poller but the bytes);
:func:`read_capture` reads records back, reporting bad lines with file and line number;
:func:`exchanges` groups records into request/answer exchanges for the replay.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from plugins.rs485_bms.protocol.errors import ProtocolError
from plugins.rs485_bms.protocol.frame import EOI, MAX_FRAME_BYTES, SOI, Frame, parse_frame
from plugins.rs485_bms.protocol.profiles import Profile, decode_info
from plugins.rs485_bms.protocol.session import INTRA_PACK_RTN, is_foreign_request

FORMAT = "bms-gateway"  #: the value of the header's ``capture`` key
VERSION = 1
TX, RX = "tx", "rx"
REQUEST = "request"
OK = "ok"
#: results of received bytes besides ``ok`` and the error kinds of the codec
RX_RESULTS = ("timeout", "late", "garbage", "echo", "foreign", "intra_pack", "unsolicited")


class CaptureFormatError(ValueError):
    """A line that is no capture header or record."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CaptureHeader:
    bus: str
    family: str
    baud: int
    started: float  #: wall-clock seconds (Unix time)


@dataclass(frozen=True, slots=True, kw_only=True)
class CaptureRecord:
    at: float  #: wall-clock seconds (Unix time)
    direction: str  #: ``tx`` or ``rx``
    raw: bytes
    result: str


def iso_time(at: float) -> str:
    dt = datetime.datetime.fromtimestamp(at, tz=datetime.timezone.utc)
    return dt.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _parse_time(text: object) -> float:
    if not isinstance(text, str):
        raise CaptureFormatError(f"the time {text!r} is not a string")
    try:
        dt = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise CaptureFormatError(f"{text!r} is not an ISO 8601 time") from None
    if dt.tzinfo is None:
        raise CaptureFormatError(f"the time {text!r} has no time zone")
    return dt.timestamp()


def encode_header(header: CaptureHeader) -> str:
    """The header line (with its newline)."""
    return json.dumps({"capture": FORMAT, "version": VERSION, "bus": header.bus,
                       "family": header.family, "baud": header.baud,
                       "started": iso_time(header.started)}, separators=(",", ":")) + "\n"


def encode_record(record: CaptureRecord) -> str:
    """One record line (with its newline); pure ASCII."""
    return json.dumps({"t": iso_time(record.at), "dir": record.direction,
                       "frame": record.raw.decode("latin-1"), "result": record.result},
                      separators=(",", ":")) + "\n"


def parse_line(line: str) -> CaptureHeader | CaptureRecord:
    """One line (newline optional); :class:`CaptureFormatError` saying what is wrong."""
    try:
        data = json.loads(line)
    except ValueError as exc:
        raise CaptureFormatError(f"not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(data, dict):
        raise CaptureFormatError("not a JSON object")
    if "capture" in data:
        if data["capture"] != FORMAT or data.get("version") != VERSION:
            raise CaptureFormatError(f"a capture header of an unknown format "
                                     f"({data.get('capture')!r} version {data.get('version')!r})")
        bus, family, baud = data.get("bus"), data.get("family"), data.get("baud")
        if not isinstance(bus, str) or not isinstance(family, str):
            raise CaptureFormatError("the header's bus and family must be strings")
        if isinstance(baud, bool) or not isinstance(baud, int) or baud <= 0:
            raise CaptureFormatError(f"the header's baud {baud!r} is not a positive integer")
        return CaptureHeader(bus=bus, family=family, baud=baud,
                             started=_parse_time(data.get("started")))
    missing = [k for k in ("t", "dir", "frame", "result") if k not in data]
    if missing:
        raise CaptureFormatError(f"a record without {', '.join(missing)}")
    direction, frame, result = data["dir"], data["frame"], data["result"]
    if direction not in (TX, RX):
        raise CaptureFormatError(f"dir is {direction!r}, not 'tx' or 'rx'")
    if not isinstance(frame, str):
        raise CaptureFormatError("frame is not a string")
    try:
        raw = frame.encode("latin-1")
    except UnicodeEncodeError:
        raise CaptureFormatError("frame holds a character beyond one byte") from None
    if not isinstance(result, str) or not result:
        raise CaptureFormatError("result is not a word")
    return CaptureRecord(at=_parse_time(data["t"]), direction=direction, raw=raw,
                         result=result)


def is_capture_line(line: str) -> bool:
    """Whether ``line`` (a file's first line) is a capture header."""
    try:
        return isinstance(parse_line(line), CaptureHeader)
    except CaptureFormatError:
        return False


@dataclass(slots=True)
class Capture:
    """What :func:`read_capture` found: the first header, the records, and the problems
    (``file:line: message``) of the lines it skipped."""

    header: CaptureHeader | None = None
    records: list[CaptureRecord] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    corrupt: int = 0  #: lines skipped as corrupt (an incomplete last line is not counted)


def read_capture(lines: Iterable[str], *, source: str, into: Capture | None = None
                 ) -> Capture:
    """Read a capture file's lines (as a text file yields them, newlines kept).

    A line that is no header or record is reported as ``source:N: ...`` and skipped; a
    last line without its newline that does not parse is a capture cut while it was
    being written: reported as such, skipped, not counted as corrupt. Later headers
    (files read one after the other) must name the same family.
    """
    capture = into if into is not None else Capture()
    pending: tuple[int, str] | None = None  # the previous line, parsed once the next is seen
    for number, line in enumerate(lines, start=1):
        if pending is not None:
            _take(capture, source, *pending, last=False)
        pending = (number, line)
    if pending is not None:
        _take(capture, source, *pending, last=True)
    return capture


def _take(capture: Capture, source: str, number: int, line: str, *, last: bool) -> None:
    if not line.strip():
        return
    try:
        item = parse_line(line)
    except CaptureFormatError as exc:
        if last and not line.endswith("\n"):
            capture.problems.append(f"{source}:{number}: the last line is incomplete (the "
                                    "capture was cut while being written); skipped")
        else:
            capture.corrupt += 1
            capture.problems.append(f"{source}:{number}: {exc}; skipped")
        return
    if isinstance(item, CaptureHeader):
        if capture.header is None:
            capture.header = item
        elif item.family != capture.header.family:
            capture.corrupt += 1
            capture.problems.append(f"{source}:{number}: a header of family {item.family}, "
                                    f"the capture so far is {capture.header.family}; skipped")
        return
    if capture.header is None:
        capture.corrupt += 1
        capture.problems.append(f"{source}:{number}: a record before any capture header; "
                                "skipped")
        return
    capture.records.append(item)


# ------------------------------------------------------------------ transcribing -----

class CaptureTranscriber:
    """What a port wrote and read, turned into records (sans-IO: times are passed in).

    :meth:`sent` for every write, :meth:`received` for every read that returned bytes,
    :meth:`quiet` for a read that returned nothing (the poller's wait ran out: the
    deadline of the request in flight passed), :meth:`close` when the port closes. Each
    returns the records it completed. Received bytes are split exactly as the codec's
    reader splits them, and every byte lands in exactly one record.
    """

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self._request: Frame | None = None
        self._request_wire = b""
        self._heard = False  #: bytes arrived since the request was sent
        self._answered = False  #: its answer (or an RTN error) arrived
        self._timed_out = False
        self._garbage = bytearray()
        self._partial = bytearray()  # from '~', while a frame is being received

    def sent(self, data: bytes, at: float) -> list[CaptureRecord]:
        out = self._end_transaction(at)
        result = REQUEST
        try:
            frame = parse_frame(data)
        except ProtocolError as exc:
            frame, result = None, exc.kind
        self._request, self._request_wire = frame, data
        self._heard = self._answered = self._timed_out = False
        out.append(CaptureRecord(at=at, direction=TX, raw=data, result=result))
        return out

    def received(self, data: bytes, at: float) -> list[CaptureRecord]:
        if data:
            self._heard = True
        out: list[CaptureRecord] = []
        pos, end = 0, len(data)
        while pos < end:
            if not self._partial:
                start = data.find(SOI, pos)
                if start < 0:
                    self._garbage += data[pos:]
                    break
                self._garbage += data[pos:start]
                out.extend(self._flush_garbage(at))
                self._partial += SOI
                pos = start + 1
                continue
            cr, soi = data.find(EOI, pos), data.find(SOI, pos)
            stops = [i for i in (cr, soi) if i >= 0]
            stop = min(stops) if stops else end
            room = MAX_FRAME_BYTES - 1 - len(self._partial)
            if stop - pos > room:
                self._partial += data[pos:pos + room]
                out.append(self._rx(at, bytes(self._partial), "overflow"))
                self._partial.clear()
                self._garbage += data[pos + room:stop]
                pos = stop
                continue
            self._partial += data[pos:stop]
            if stop == end:
                break
            if stop == soi:
                out.append(self._rx(at, bytes(self._partial), "interrupted"))
                self._partial[:] = SOI
            else:
                self._partial += EOI
                raw = bytes(self._partial)
                self._partial.clear()
                out.append(self._rx(at, raw, self._classify(raw)))
            pos = stop + 1
        return out

    def quiet(self, at: float) -> list[CaptureRecord]:
        """A read returned nothing: the poller's wait ran out."""
        out = self._flush(at)
        if self._request is not None and not self._answered and not self._timed_out:
            self._timed_out = True
            if not self._heard:
                out.append(CaptureRecord(at=at, direction=RX, raw=b"", result="timeout"))
        return out

    def close(self, at: float) -> list[CaptureRecord]:
        out = self._end_transaction(at)
        self._request = None
        return out

    def _end_transaction(self, at: float) -> list[CaptureRecord]:
        out = self._flush(at)
        if (self._request is not None and not self._heard and not self._answered
                and not self._timed_out):
            out.append(CaptureRecord(at=at, direction=RX, raw=b"", result="timeout"))
        return out

    def _flush(self, at: float) -> list[CaptureRecord]:
        out = self._flush_garbage(at)
        if self._partial:
            out.append(self._rx(at, bytes(self._partial), "truncated"))
            self._partial.clear()
        return out

    def _flush_garbage(self, at: float) -> list[CaptureRecord]:
        if not self._garbage:
            return []
        raw = bytes(self._garbage)
        self._garbage.clear()
        return [self._rx(at, raw, "garbage")]

    def _rx(self, at: float, raw: bytes, result: str) -> CaptureRecord:
        return CaptureRecord(at=at, direction=RX, raw=raw, result=result)

    def _classify(self, raw: bytes) -> str:
        try:
            frame = parse_frame(raw)
        except ProtocolError as exc:
            return exc.kind
        request = self._request
        if frame.cid2 == INTRA_PACK_RTN:
            return "intra_pack"
        if request is not None and raw == self._request_wire:
            return "echo"
        if is_foreign_request(frame):
            return "foreign"
        if request is None or self._answered:
            return "unsolicited"
        if self._timed_out:
            return "late"
        if frame.adr != request.adr:
            return "address"
        if frame.cid1 != request.cid1:
            return "cid"
        self._answered = True
        if frame.rtn != 0:
            return "rtn"
        if request.cid2 not in self.profile.commands:
            return OK
        try:
            decode_info(self.profile, request.cid2, frame,
                        all_packs=request.info[:1] == b"\xff")
        except ProtocolError as exc:
            return exc.kind
        return OK


# ------------------------------------------------------------------ exchanges ---------

@dataclass(frozen=True, slots=True, kw_only=True)
class Exchange:
    """One request as recorded, and what arrived after it until the next request."""

    request: Frame
    sent_at: float
    request_bytes: int  #: its length on the wire
    replies: tuple[CaptureRecord, ...]  #: received records with bytes, in order

    @property
    def key(self) -> tuple[int, int, bytes]:
        """What the replay matches a request by: address, command and its INFO."""
        return self.request.adr, self.request.cid2, self.request.info


def exchanges(records: Iterable[CaptureRecord]) -> Iterator[Exchange]:
    """The request/answer exchanges, in order. Received bytes before the first request
    (a capture that starts mid-exchange) and requests we could not parse are left out;
    a timeout record contributes no bytes: the exchange's silence is the answer."""
    request: Frame | None = None
    sent_at, size = 0.0, 0
    replies: list[CaptureRecord] = []
    for record in records:
        if record.direction == TX:
            if request is not None:
                yield Exchange(request=request, sent_at=sent_at, request_bytes=size,
                               replies=tuple(replies))
            replies = []
            try:
                request = parse_frame(record.raw)
            except ProtocolError:
                request = None
            sent_at, size = record.at, len(record.raw)
        elif request is not None and record.raw:
            replies.append(record)
    if request is not None:
        yield Exchange(request=request, sent_at=sent_at, request_bytes=size,
                       replies=tuple(replies))
