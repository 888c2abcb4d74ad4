"""Bus capture and replay: the record format, the transcriber, the recorder's file
handling (rotation, failures, a full queue), the replaying bank, and the commands that
read captures (``decode``, ``simulate --replay``)."""

from __future__ import annotations

import io
import json
import logging
import threading

import pytest

from gateway import cli
from plugins.rs485_bms.poller.capture import BusRecorder, CaptureFile
from plugins.rs485_bms.protocol import PACE_V25, Frame, encode_frame, make_request
from plugins.rs485_bms.protocol.capture import (
    CaptureFormatError,
    CaptureHeader,
    CaptureRecord,
    CaptureTranscriber,
    encode_header,
    encode_record,
    exchanges,
    parse_line,
    read_capture,
)
from plugins.rs485_bms.settings import CaptureSettings
from plugins.rs485_bms.sim.replay import ReplayBank, ReplayError, load_replay
from plugins.rs485_bms.sim.simulator import BankSimulator

T0 = 1_764_751_572.25  # 2025-12-03T08:46:12.25Z
HEADER = CaptureHeader(bus="bank1", family="pace_v25", baud=9600, started=T0)


def request(adr: int, cid2: int = 0x42) -> Frame:
    return make_request(PACE_V25, cid2, adr)


def answer_wire(adr: int, sim: BankSimulator | None = None, cid2: int = 0x42) -> bytes:
    """A simulated pack's real answer to ``cid2``."""
    sim = sim or BankSimulator(family="pace_v25", addresses=[1, 2, 3], turnaround_ms=0)
    (emission,) = sim.respond(request(adr, cid2), 1.0)
    return emission.data


# ------------------------------------------------------------------ record format ---

@pytest.mark.parametrize("raw", [
    b"~25014642E00201FD30\r",
    b"",  # a timeout
    bytes(range(256)),  # garbage and collisions keep every byte
    b"~2501\xff\x00\x7f\r",
], ids=["frame", "empty", "every_byte", "collision"])
def test_record_round_trip(raw):
    record = CaptureRecord(at=T0 + 0.123456, direction="rx", raw=raw, result="chksum")
    line = encode_record(record)
    assert line.endswith("\n") and line.count("\n") == 1 and line.isascii()
    assert parse_line(line) == record


def test_header_round_trip_and_time_is_utc_with_microseconds():
    line = encode_header(HEADER)
    assert '"started":"2025-12-03T08:46:12.250000Z"' in line
    assert parse_line(line) == HEADER


@pytest.mark.parametrize("line,message", [
    ("{not json", "not JSON"),
    ("[1, 2]", "not a JSON object"),
    ('{"t": "2025-12-03T08:46:12Z", "dir": "tx", "frame": "~"}', "without result"),
    ('{"t": "2025-12-03T08:46:12Z", "dir": "up", "frame": "~", "result": "ok"}', "'up'"),
    ('{"t": "yesterday", "dir": "tx", "frame": "~", "result": "ok"}', "ISO 8601"),
    ('{"t": "2025-12-03T08:46:12", "dir": "tx", "frame": "~", "result": "ok"}', "time zone"),
    ('{"t": "2025-12-03T08:46:12Z", "dir": "tx", "frame": "\\u20ac", "result": "ok"}',
     "beyond one byte"),
    ('{"capture": "bms-gateway", "version": 9}', "unknown format"),
])
def test_bad_lines_say_what_is_wrong(line, message):
    with pytest.raises(CaptureFormatError, match=message):
        parse_line(line)


def _lines(records: list[CaptureRecord]) -> list[str]:
    return [encode_header(HEADER)] + [encode_record(r) for r in records]


RECORDS = [
    CaptureRecord(at=T0 + 1, direction="tx", raw=b"~25014642E00201FD30\r", result="request"),
    CaptureRecord(at=T0 + 1.2, direction="rx", raw=b"", result="timeout"),
    CaptureRecord(at=T0 + 2, direction="tx", raw=b"~25014642E00201FD30\r", result="request"),
]


def test_read_capture_round_trip():
    capture = read_capture(_lines(RECORDS), source="cap.jsonl")
    assert capture.header == HEADER
    assert capture.records == RECORDS
    assert capture.problems == [] and capture.corrupt == 0


def test_a_truncated_last_line_is_reported_and_skipped_but_not_corrupt():
    lines = _lines(RECORDS)
    lines[-1] = lines[-1][:25]  # cut while being written: no newline
    capture = read_capture(lines, source="cap.jsonl")
    assert capture.records == RECORDS[:-1]
    assert capture.problems == ["cap.jsonl:4: the last line is incomplete (the capture was "
                                "cut while being written); skipped"]
    assert capture.corrupt == 0


def test_a_corrupt_line_is_reported_with_file_and_line_and_skipped():
    lines = _lines(RECORDS)
    lines.insert(2, '{"t": "2025-12-03T08:46:13Z", "dir": "tx"}\n')
    lines.insert(3, "garbled \x00 text\n")
    capture = read_capture(lines, source="cap.jsonl")
    assert capture.records == RECORDS  # the lines around them are kept
    assert capture.corrupt == 2
    assert capture.problems[0] == "cap.jsonl:3: a record without frame, result; skipped"
    assert capture.problems[1].startswith("cap.jsonl:4: not JSON")
    assert capture.problems[1].endswith("; skipped")


def test_records_before_any_header_are_corrupt():
    capture = read_capture([encode_record(RECORDS[0])], source="x")
    assert capture.records == [] and capture.corrupt == 1
    assert capture.problems == ["x:1: a record before any capture header; skipped"]


# ------------------------------------------------------------------ transcriber -----

def transcribe(steps) -> list[tuple[str, bytes, str]]:
    """Run (kind, data) steps through a transcriber; the records as (dir, raw, result)."""
    t = CaptureTranscriber(PACE_V25)
    out: list[CaptureRecord] = []
    for i, (kind, data) in enumerate(steps):
        at = T0 + i
        out += (t.sent(data, at) if kind == "tx" else t.received(data, at) if data
                else t.quiet(at))
    out += t.close(T0 + len(steps))
    return [(r.direction, r.raw, r.result) for r in out]


def test_transcriber_classifies_answers_and_errors():
    q1, q2, q3 = (request(a).wire for a in (1, 2, 3))
    a1, a2 = answer_wire(1), answer_wire(2)
    bad = a2[:30] + (b"0" if a2[30:31] != b"0" else b"1") + a2[31:]  # in INFO
    rtn = encode_frame(Frame(ver=0x25, adr=3, cid1=0x46, cid2=0x04))
    assert transcribe([("tx", q1), ("rx", b"\x00\xff" + a1)]) == [
        ("tx", q1, "request"), ("rx", b"\x00\xff", "garbage"), ("rx", a1, "ok")]
    assert transcribe([("tx", q2), ("rx", bad)])[1:] == [("rx", bad, "chksum")]
    assert transcribe([("tx", q2), ("rx", a1)])[1:] == [("rx", a1, "address")]
    assert transcribe([("tx", q3), ("rx", rtn)])[1:] == [("rx", rtn, "rtn")]
    assert transcribe([("tx", q1), ("rx", q1), ("rx", a1), ("rx", a1)])[1:] == [
        ("rx", q1, "echo"), ("rx", a1, "ok"), ("rx", a1, "unsolicited")]


def test_transcriber_timeouts_late_answers_and_truncation():
    q1, a1 = request(1).wire, answer_wire(1)
    # nothing, the deadline passes, then the answer comes after all
    assert transcribe([("tx", q1), ("rx", b""), ("rx", a1), ("rx", b"")]) == [
        ("tx", q1, "request"), ("rx", b"", "timeout"), ("rx", a1, "late")]
    # no empty read before the next request: the timeout is noted then
    assert transcribe([("tx", q1), ("tx", q1)]) == [
        ("tx", q1, "request"), ("rx", b"", "timeout"), ("tx", q1, "request"),
        ("rx", b"", "timeout")]
    # the line goes quiet in the middle of the answer
    assert transcribe([("tx", q1), ("rx", a1[:30]), ("rx", b"")])[1:] == [
        ("rx", a1[:30], "truncated")]
    # a new '~' before the CR
    assert transcribe([("tx", q1), ("rx", a1[:30] + a1)])[1:] == [
        ("rx", a1[:30], "interrupted"), ("rx", a1, "ok")]


def test_transcriber_keeps_every_byte_however_the_reads_split_them():
    q1, a1 = request(1).wire, answer_wire(1)
    stream = b"noise" + a1[:40] + b"\r" + a1 + b"tail"
    whole = transcribe([("tx", q1), ("rx", stream)])
    one_by_one = transcribe([("tx", q1)] + [("rx", stream[i:i + 1]) for i in range(len(stream))])
    assert [r[1:] for r in whole] == [r[1:] for r in one_by_one]
    assert b"".join(raw for d, raw, _ in whole if d == "rx") == stream
    assert [result for _, _, result in whole] == ["request", "garbage", "truncated", "ok",
                                                  "garbage"]


def test_transcriber_reports_a_layout_error_of_the_bus_family():
    q1 = request(1).wire
    short = encode_frame(Frame(ver=0x25, adr=1, cid1=0x46, cid2=0, info=b"\x00\x01\x10"))
    assert transcribe([("tx", q1), ("rx", short)])[1][2] in ("length", "layout")


def test_exchanges_group_replies_until_the_next_request():
    q1, a1 = request(1).wire, answer_wire(1)
    records = [CaptureRecord(at=T0, direction="rx", raw=a1, result="unsolicited"),
               CaptureRecord(at=T0 + 1, direction="tx", raw=q1, result="request"),
               CaptureRecord(at=T0 + 1.1, direction="rx", raw=b"", result="timeout"),
               CaptureRecord(at=T0 + 1.5, direction="rx", raw=a1, result="late"),
               CaptureRecord(at=T0 + 2, direction="tx", raw=q1, result="request")]
    first, second = exchanges(records)
    assert first.key == (1, 0x42, b"\x01") and first.sent_at == T0 + 1
    assert [r.raw for r in first.replies] == [a1]
    assert second.replies == ()


# ------------------------------------------------------------------ replay bank -----

def _exchange_records(adr: int, answers: list[bytes | None], *, start: float = T0,
                      delay_s: float = 0.1) -> list[CaptureRecord]:
    out = []
    q = request(adr).wire
    for i, a in enumerate(answers):
        at = start + i
        out.append(CaptureRecord(at=at, direction="tx", raw=q, result="request"))
        if a is None:
            out.append(CaptureRecord(at=at + 0.5, direction="rx", raw=b"", result="timeout"))
        else:
            end = at + len(q) / 960 + delay_s + len(a) / 960
            out.append(CaptureRecord(at=end, direction="rx", raw=a, result="ok"))
    return out


def test_replay_cycles_through_the_recorded_answers_and_then_starts_over():
    first, second = b"~first\r", b"~second\r"
    bank = ReplayBank(HEADER, exchanges(_exchange_records(1, [first, None, second])))
    got = [bank.respond(request(1)) for _ in range(4)]
    assert [[r.data for r in g] for g in got] == [[first], [], [second], [first]]
    assert got[0][0].delay_s == pytest.approx(0.1)  # the recorded think time


def test_replay_does_not_answer_what_it_never_recorded(caplog):
    bank = ReplayBank(HEADER, exchanges(_exchange_records(1, [b"~a\r"])))
    with caplog.at_level(logging.WARNING):
        assert bank.respond(request(2)) == [] and bank.respond(request(2)) == []
        assert bank.respond(request(1, 0x44)) == []
    assert bank.unrecorded == 3
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2  # once per address and command
    assert "no answer to adr 2 cid2 0x42" in warnings[0]
    assert bank.addresses == [1]


def test_replay_of_nothing_is_an_error(tmp_path):
    path = tmp_path / "cap.jsonl"
    path.write_text(encode_header(HEADER))
    with pytest.raises(ReplayError, match="no request"):
        load_replay([path])
    path.write_text("hello\n")
    with pytest.raises(ReplayError, match="no capture header"):
        load_replay([path])


def test_replay_reads_rotated_files_oldest_first(tmp_path):
    a, b = b"~older\r", b"~newer\r"
    (tmp_path / "cap.jsonl.1").write_text("".join(_lines(_exchange_records(1, [a]))))
    (tmp_path / "cap.jsonl").write_text("".join(_lines(_exchange_records(1, [b],
                                                                         start=T0 + 5))))
    bank, capture = load_replay([tmp_path / "cap.jsonl.1", tmp_path / "cap.jsonl"])
    assert [bank.respond(request(1))[0].data for _ in range(2)] == [a, b]
    assert capture.problems == []


def test_the_simulator_serves_a_replay_through_its_normal_path():
    bank = ReplayBank(HEADER, exchanges(_exchange_records(2, [answer_wire(2)])))
    sim = BankSimulator(family="pace_v25", addresses=bank.addresses, baud=9600,
                        turnaround_ms=0, replay=bank)
    (emission,) = sim.respond(request(2), 0.0)
    assert emission.data == answer_wire(2) and not emission.drop


# ------------------------------------------------------------------ recorder --------

class ManualClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def _recorder(tmp_path, **settings) -> BusRecorder:
    return BusRecorder(CaptureSettings(file=tmp_path / "cap.jsonl", **settings), bus="bank1",
                       family="pace_v25", baud=9600, wall_clock=ManualClock())


def test_recorder_writes_a_capture_that_reads_back(tmp_path):
    rec = _recorder(tmp_path)
    q, a = request(1).wire, answer_wire(1)
    rec.sent(q)
    rec.received(a[:50])
    rec.received(a[50:])
    rec.sent(q)
    rec.received(b"")
    rec.close()
    with open(tmp_path / "cap.jsonl", newline="") as f:
        capture = read_capture(f, source="cap")
    assert capture.header.bus == "bank1" and capture.problems == []
    assert [(r.direction, r.raw, r.result) for r in capture.records] == [
        ("tx", q, "request"), ("rx", a, "ok"), ("tx", q, "request"), ("rx", b"", "timeout")]
    assert rec.counters.records == 4 and rec.counters.lost == rec.counters.dropped == 0


def test_rotation_bounds_the_files_and_each_file_stands_alone(tmp_path):
    rec = _recorder(tmp_path, max_bytes=10_000, files=3)
    q, a = request(1).wire, answer_wire(1)
    for _ in range(200):  # about 60 kB
        rec.sent(q)
        rec.received(a)
    rec.close()
    files = sorted(tmp_path.iterdir())
    assert [f.name for f in files] == ["cap.jsonl", "cap.jsonl.1", "cap.jsonl.2"]
    for f in files:
        assert f.stat().st_size <= 10_000
        with open(f, newline="") as lines:
            capture = read_capture(lines, source=f.name)
        assert capture.header is not None and capture.problems == []
        assert capture.records
    bank, _ = load_replay(files[::-1])
    assert bank.addresses == [1]


def test_each_start_begins_a_new_file_and_keeps_the_last_one(tmp_path):
    for adr in (1, 2):
        rec = _recorder(tmp_path)
        rec.sent(request(adr).wire)
        rec.close()
    assert sorted(f.name for f in tmp_path.iterdir()) == ["cap.jsonl", "cap.jsonl.1"]
    older, _ = load_replay([tmp_path / "cap.jsonl.1"])
    newer, _ = load_replay([tmp_path / "cap.jsonl"])
    assert (older.addresses, newer.addresses) == ([1], [2])


def test_an_unwritable_capture_is_logged_once_counted_and_never_raises(tmp_path, caplog):
    (tmp_path / "cap.jsonl").mkdir()  # a directory where the file should be
    rec = _recorder(tmp_path)
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            rec.sent(request(1).wire)
        rec.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "cannot write the capture" in warnings[0].getMessage()
    assert rec.counters.records == 0 and rec.counters.lost >= 5
    assert rec.counters.write_errors == 1  # then it waits RETRY_S before trying again


def test_a_full_disk_is_logged_once_and_writing_resumes_when_it_works(tmp_path, caplog,
                                                                      monkeypatch):
    rec = _recorder(tmp_path)
    failing = [True]
    real_write = CaptureFile.write

    def write(self, line):
        if failing[0]:
            raise OSError(28, "No space left on device")
        real_write(self, line)
    monkeypatch.setattr(CaptureFile, "write", write)
    with caplog.at_level(logging.INFO):
        rec.sent(request(1).wire)
        rec.received(b"")
        rec.close()  # the worker has seen both: one failure, then a lost record
        failing[0] = False
        rec.wall_clock.now += 60  # past the retry wait
        rec.sent(request(1).wire)
        rec.close()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("No space left on device" in m for m in messages) == 1
    assert any("works again" in m for m in messages)
    assert rec.counters.write_errors == 1 and rec.counters.records >= 1


def test_a_full_queue_drops_and_counts_and_never_blocks(tmp_path, caplog):
    rec = _recorder(tmp_path, files=1)
    rec.file = CaptureFile(tmp_path / "cap.jsonl", max_bytes=10_000_000, files=1,
                           header=lambda: encode_header(HEADER))
    gate = threading.Event()
    real_write = rec.file.write

    def stalled(line):  # the disk hangs
        gate.wait(10)
        real_write(line)
    rec.file.write = stalled
    rec._queue.maxsize = 4
    with caplog.at_level(logging.WARNING):
        for _ in range(50):
            rec.sent(request(1).wire)  # returns at once although nothing is written
    assert rec.counters.dropped >= 40
    assert sum("cannot keep up" in r.getMessage() for r in caplog.records) == 1
    gate.set()
    rec.close()


# ------------------------------------------------------------------ commands --------

def _capture_file(tmp_path) -> str:
    q, a = request(1).wire, answer_wire(1)
    records = [CaptureRecord(at=T0, direction="tx", raw=q, result="request"),
               CaptureRecord(at=T0 + 0.2, direction="rx", raw=a, result="ok"),
               CaptureRecord(at=T0 + 1, direction="tx", raw=q, result="request"),
               CaptureRecord(at=T0 + 1.5, direction="rx", raw=b"", result="timeout"),
               CaptureRecord(at=T0 + 2, direction="rx", raw=b"\xff\x00", result="garbage")]
    path = tmp_path / "cap.jsonl"
    lines = _lines(records)
    lines.insert(3, "oops\n")
    path.write_text("".join(lines))
    return str(path)


def test_decode_reads_a_capture_file_with_the_flag(tmp_path, capsys):
    path = _capture_file(tmp_path)
    status = cli.main(["decode", "--json", "--capture", path])
    captured = capsys.readouterr()
    views = [json.loads(line) for line in captured.out.splitlines()]
    assert status == 1  # a corrupt line and garbage
    assert f"{path}:4: not JSON" in captured.err
    assert [(v["dir"], v["result"]) for v in views] == [
        ("tx", "request"), ("rx", "ok"), ("tx", "request"), ("rx", "timeout"),
        ("rx", "garbage")]
    assert views[0]["type"] == "request" and views[0]["t"] == "2025-12-03T08:46:12.250000Z"
    assert views[1]["cell_mv"] and views[1]["adr"] == 1  # paired with the request
    assert views[3]["frame"] == "" and "error" not in views[3]
    assert views[4]["frame"] == "\\xff\\x00" and views[4]["error"]


def test_decode_recognises_a_capture_on_stdin(tmp_path, capsys, monkeypatch):
    with open(_capture_file(tmp_path)) as f:
        monkeypatch.setattr("sys.stdin", io.StringIO(f.read()))
    status = cli.main(["decode"])
    out = capsys.readouterr().out
    assert status == 1
    assert out.startswith("2025-12-03T08:46:12.250000Z tx request ~25014642E00201FD30\n")
    assert "2025-12-03T08:46:13.750000Z rx timeout\n" in out
    assert "cell_mv" in out


def test_decode_of_a_plain_log_on_stdin_still_works(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("12:00 sent ~25014642E00201FD30\n"))
    assert cli.main(["decode", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["type"] == "request"


def test_simulate_replay_refuses_bad_input(gateway_cmd, subprocess_env, tmp_path):
    import subprocess

    def simulate(*argv):
        return subprocess.run([*gateway_cmd, "simulate", "--listen", "tcp://127.0.0.1:0",
                               *argv], env=subprocess_env, capture_output=True, text=True,
                              timeout=30)
    empty = tmp_path / "empty.jsonl"
    empty.write_text(encode_header(HEADER))
    out = simulate("--replay", str(empty))
    assert out.returncode == 78 and "the capture holds no request" in out.stderr
    out = simulate("--replay", str(tmp_path / "missing.jsonl"))
    assert out.returncode == 1 and "missing.jsonl" in out.stderr
    out = simulate("--replay", str(empty), "--scenario", "x.yaml")
    assert out.returncode == 2 and "no --scenario" in out.stderr


# ------------------------------------------------------------------ in the poller ---

async def _poll(sim: BankSimulator, bus: dict, until) -> tuple:
    """Poll ``sim`` over loopback TCP with a real BusPoller until ``until(snapshot)``."""
    import asyncio

    from gateway.hub import Hub
    from plugins.rs485_bms.poller.link import ModuleLink
    from plugins.rs485_bms.poller.source import BusPoller
    from plugins.rs485_bms.settings import BusSettings

    ready = asyncio.get_running_loop().create_future()

    async def listening(port: int) -> None:
        ready.set_result(port)
    server = asyncio.create_task(sim.serve_tcp("127.0.0.1", 0, on_listening=listening))
    settings = BusSettings(name="t", port=f"socket://127.0.0.1:{await ready}",
                           family="pace_v25", baud=38400, addresses=sim.addresses,
                           timeout_ms=200, byte_timeout_ms=50, gap_ms=0, retries=0,
                           poll_interval_s=0.05, **bus)
    hub = Hub()
    # never offline: every module is polled every cycle, so the order of requests does
    # not depend on back-off timing (the gateway test covers going offline)
    links = [ModuleLink(bus="t", address=a, position=i + 1, offline_after=100)
             for i, a in enumerate(sim.addresses)]
    poller = BusPoller(settings, links, hub=hub, stale_after_s=5)
    task = asyncio.create_task(poller.run())
    watch = hub.watch()
    try:
        while True:
            snap = await asyncio.wait_for(watch.next(), 15)
            if until(snap):
                return snap, poller
    finally:
        watch.close()
        for t in (task, server):
            t.cancel()
        await asyncio.gather(task, server, return_exceptions=True)


def _counters(snap) -> list[tuple]:
    return [(m.address, m.link, m.counters.timeouts, m.counters.checksum_errors,
             m.counters.frames_ok) for m in snap.modules]


def test_a_recorded_poll_replays_to_the_same_module_states_and_counters(tmp_path):
    """In process: a poller records a bank with a silent and a garbling pack; a poller
    of the replay of that capture ends with the same states and counters."""
    import asyncio

    from plugins.rs485_bms.sim.scenario import Scenario

    capture = tmp_path / "cap.jsonl"
    sim = BankSimulator(family="pace_v25", addresses=[1, 2, 3], baud=38400, turnaround_ms=0,
                        scenario=Scenario.model_validate({"steps": [
                            {"at_s": 0.5, "packs": [2], "fault": "silence"},
                            {"at_s": 0.5, "packs": [3], "fault": "corrupt"}]}))
    done = lambda s: s.buses and s.buses[0].cycles >= 8  # noqa: E731
    original, poller = asyncio.run(_poll(sim, {"capture": {"file": str(capture)}}, done))
    assert poller.recorder.counters.records > 0 and poller.recorder.counters.lost == 0
    bank, _ = load_replay([capture])
    replay = BankSimulator(family="pace_v25", addresses=bank.addresses, baud=bank.baud,
                           turnaround_ms=0, replay=bank)
    replayed, _ = asyncio.run(_poll(replay, {}, done))
    assert _counters(replayed) == _counters(original)
    assert original.modules[1].counters.timeouts > 0
    assert original.modules[2].counters.checksum_errors > 0


def test_an_unwritable_capture_never_stops_the_poller(tmp_path):
    import asyncio

    from gateway.model import ModuleStatus

    (tmp_path / "cap.jsonl").mkdir()
    sim = BankSimulator(family="pace_v25", addresses=[1, 2], baud=38400, turnaround_ms=0)
    snap, poller = asyncio.run(_poll(
        sim, {"capture": {"file": str(tmp_path / "cap.jsonl")}},
        lambda s: s.buses and s.buses[0].cycles >= 3))
    assert all(m.status is ModuleStatus.OK for m in snap.modules)
    assert poller.recorder.counters.write_errors >= 1
    assert poller.recorder.counters.records == 0
