"""The processor in the hub, the event log, the persisted active set and restarts, the
settings as the config loader reports them. Fake clocks; nothing sleeps."""

from __future__ import annotations

import asyncio
import json

import pytest

from gateway.config import ConfigError, load_config
from gateway.hub import Hub
from gateway.model import AlarmCleared, AlarmRaised, ModuleStatus

from plugins.alarms.eventlog import EventLog, load_state, save_state
from plugins.alarms.processor import AlarmProcessor, dump_state, make_processor, restore_state
from plugins.alarms.service import AlarmService
from plugins.alarms.settings import AlarmsSettings

FAST = {"cell_voltage_high": {"raise_delay_s": 0, "clear_delay_s": 0}}


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_hub(clock: Clock, processor: AlarmProcessor, wall0: float) -> Hub:
    hub = Hub(clock=clock, wall_clock=lambda: wall0 + clock.now)
    hub.add_processor(processor)
    return hub


def drain(queue) -> list:
    out = []
    while (ev := queue.get_nowait()) is not None:
        out.append(ev)
    return out


def test_the_hub_publishes_the_table_and_queues_announced_events(alarm_bank):
    clock = Clock()
    p = AlarmProcessor(AlarmsSettings.model_validate(FAST))
    hub = make_hub(clock, p, alarm_bank.WALL0)
    q = hub.subscribe_events()
    m = alarm_bank.module
    snap = hub.update("rs485", modules=[m(1, now=clock.now), m(2, now=clock.now)])
    assert snap.alarms == () and snap.alarm_last_seq == 0 and drain(q) == []
    clock.now += 1
    snap = hub.update("rs485", modules=[m(1, now=clock.now, cell=(5, 3650)), m(2, now=clock.now)])
    (a,) = snap.alarms
    assert (a.seq, a.kind, a.position, a.sub_index, a.value) == (1, "cell_voltage_high", 1, 5, 3650)
    assert snap.alarm_last_seq == 1 and snap.bank.modules_alarmed == 1
    (ev,) = drain(q)
    assert isinstance(ev, AlarmRaised) and ev.alarm == a
    clock.now += 1
    snap = hub.update("rs485", modules=[m(1, now=clock.now), m(2, now=clock.now)])
    assert snap.alarms == () and snap.alarm_last_seq == 2
    (ev,) = drain(q)
    assert isinstance(ev, AlarmCleared) and ev.clear_seq == 2
    assert (ev.alarm.seq, ev.alarm.raised_at) == (a.seq, a.raised_at)
    assert ev.cleared_at == clock.now and ev.cleared_wall_time == alarm_bank.WALL0 + clock.now
    events = [r["event"] for r in p.take_journal()]
    assert events == ["raised", "cleared"]


def test_the_clear_notification_and_the_event_log_carry_the_value_at_clearing(alarm_bank):
    """The bmsAlarmCleared varbinds (value, threshold, text) and the log's "cleared"
    record say the same: the value at clearing and the clear level, not the raise's."""
    from plugins.snmp_agent import notifications, oid_map

    clock = Clock()
    p = AlarmProcessor(AlarmsSettings.model_validate(FAST))
    hub = make_hub(clock, p, alarm_bank.WALL0)
    q = hub.subscribe_events()
    m = alarm_bank.module
    hub.update("rs485", modules=[m(1, now=clock.now, cell=(5, 3650))])
    clock.now += 1
    hub.update("rs485", modules=[m(1, now=clock.now, cell=(5, 3420))])
    raised, cleared = drain(q)
    text = "module 1 cell 5 at 3.420 V <= 3.450 V (limit 3.600 V - 0.150 V)"
    assert (cleared.alarm.value, cleared.alarm.threshold, cleared.alarm.text) == (3420, 3450, text)
    trap = notifications.make_alarm_notification(cleared, 100)
    seq = raised.alarm.seq
    by_oid = {v.oid: v.value for v in trap.varbinds}
    assert by_oid[oid_map.ALARM_VALUE.oid + (seq,)] == 3420
    assert by_oid[oid_map.ALARM_THRESHOLD.oid + (seq,)] == 3450
    assert by_oid[oid_map.ALARM_TEXT.oid + (seq,)] in (text, text.encode())
    raise_trap = notifications.make_alarm_notification(raised, 99)
    assert {v.oid: v.value for v in raise_trap.varbinds}[oid_map.ALARM_VALUE.oid + (seq,)] == 3650
    records = {r["event"]: r for r in p.take_journal()}
    assert (records["cleared"]["value"], records["cleared"]["threshold"],
            records["cleared"]["text"]) == (3420, 3450, text)
    assert (records["raised"]["value"], records["raised"]["threshold"]) == (3650, 3600)


def test_storm_absorbed_alarms_are_in_the_table_and_the_log_but_not_queued(alarm_bank):
    clock = Clock()
    p = AlarmProcessor(AlarmsSettings.model_validate(FAST))
    hub = make_hub(clock, p, alarm_bank.WALL0)
    q = hub.subscribe_events()
    snap = hub.update("rs485", modules=[alarm_bank.module(i, now=clock.now, cells=[3700] * 16,
                                                          ) for i in range(1, 13)])
    assert len(snap.alarms) == 13
    assert [e.alarm.kind for e in drain(q)] == ["cell_voltage_high"] * 3 + ["alarm_storm"]
    journal = p.take_journal()
    assert len(journal) == 13 and sum(not r["notified"] for r in journal) == 9


def test_state_round_trip_and_silent_restart(alarm_bank, tmp_path):
    clock = Clock()
    m = alarm_bank.module
    p = AlarmProcessor(AlarmsSettings.model_validate(FAST))
    hub = make_hub(clock, p, alarm_bank.WALL0)
    hub.update("rs485", modules=[m(1, now=clock.now, cell=(5, 3650)),
                                 m(2, now=clock.now, cell=(1, 3700))])
    save_state(tmp_path, dump_state(p.state))
    before = {a.seq: a for a in hub.latest.alarms}

    # restart 1000 s later: both restored, numbered as before, nothing announced
    clock2 = Clock(5.0)
    wall0 = alarm_bank.WALL0 + 1000 + 100 - 5.0
    p2 = make_processor(AlarmsSettings.model_validate(FAST), state_dir=tmp_path,
                        now=clock2.now, wall_time=wall0 + clock2.now)
    hub2 = make_hub(clock2, p2, wall0)
    q = hub2.subscribe_events()
    snap = hub2.update("rs485", modules=[m(1, status=ModuleStatus.NEVER_SEEN),
                                         m(2, status=ModuleStatus.NEVER_SEEN)])
    assert {a.seq for a in snap.alarms} == set(before) and snap.alarm_last_seq == 2
    restored = {a.seq: a for a in snap.alarms}
    for seq, a in before.items():  # the same alarm, its raise time kept
        assert restored[seq].raised_wall_time == a.raised_wall_time
        assert restored[seq].raised_at == pytest.approx(clock2.now - 1000)
    assert drain(q) == []
    # module 1 still high: re-established silently; module 2 back to normal: cleared
    clock2.now += 1
    snap = hub2.update("rs485", modules=[m(1, now=clock2.now, cell=(5, 3660)),
                                         m(2, now=clock2.now)])
    (ev,) = drain(q)
    assert isinstance(ev, AlarmCleared) and ev.alarm.seq == restored[2].seq and ev.clear_seq == 3
    assert ev.alarm.raised_wall_time == restored[2].raised_wall_time and ev.alarm.value == 3302
    assert [a.seq for a in snap.alarms] == [1]
    records = p2.take_journal()
    assert [(r["event"], r["seq"]) for r in records] == [("confirmed", 1), ("cleared", 2)]
    # the next raise continues the numbering
    clock2.now += 1
    snap = hub2.update("rs485", modules=[m(1, now=clock2.now, cell=(5, 3660)),
                                         m(2, now=clock2.now, cell=(3, 3620))])
    assert [a.seq for a in snap.alarms] == [1, 4]


def test_the_log_keeps_the_numbering_when_the_state_file_is_lost(tmp_path):
    log = EventLog(tmp_path, max_bytes=10_000, files=3)
    log.append([{"event": "raised", "seq": 41}, {"event": "cleared", "seq": 41, "clear_seq": 42}])
    state = restore_state(load_state(tmp_path), now=0, wall_time=0, log_last_seq=log.last_seq())
    assert state.last_seq == 42 and state.trackers == {}


def test_event_log_rotation_is_bounded(tmp_path):
    log = EventLog(tmp_path, max_bytes=10_000, files=3)
    for i in range(200):
        log.append([{"event": "raised", "seq": i + 1, "text": "x" * 200}])
    files = sorted(tmp_path.iterdir())
    assert [f.name for f in files] == ["alarms.jsonl", "alarms.jsonl.1", "alarms.jsonl.2"]
    assert all(f.stat().st_size <= 10_000 for f in files)
    seqs = [r["seq"] for r in log.read()]
    assert seqs == list(range(seqs[0], 201)) and seqs[0] > 1  # oldest gone, order kept
    assert log.last_seq() == 200
    for line in (tmp_path / "alarms.jsonl").read_text().splitlines():
        json.loads(line)


def test_unreadable_state_is_ignored_with_a_warning(tmp_path, caplog):
    (tmp_path / "alarms_state.json").write_text("{not json")
    assert load_state(tmp_path) is None
    assert "ignoring unreadable" in caplog.text


def test_service_writes_the_log_and_the_active_set(alarm_bank, tmp_path):
    clock = Clock()
    settings = AlarmsSettings.model_validate(FAST)
    p = make_processor(settings, state_dir=tmp_path, now=clock.now, wall_time=alarm_bank.WALL0)
    hub = make_hub(clock, p, alarm_bank.WALL0)
    service = AlarmService(p, hub, state_dir=tmp_path, clock=clock,
                           wall_clock=lambda: alarm_bank.WALL0 + clock.now)
    p.record(service.started_record())
    hub.update("rs485", modules=[alarm_bank.module(3, now=clock.now, cell=(2, 3700))])
    asyncio.run(service.flush())
    records = EventLog(tmp_path, max_bytes=10_000, files=2).read()
    assert [r["event"] for r in records] == ["started", "raised"]
    raised = records[1]
    assert (raised["seq"], raised["kind"], raised["module"], raised["sub_index"],
            raised["severity"], raised["value"], raised["threshold"], raised["notified"]) == (
        1, "cell_voltage_high", 3, 2, "major", 3700, 3600, True)
    assert raised["time"].endswith("Z") and raised["text"].startswith("module 3 cell 2")
    state = load_state(tmp_path)
    assert state["last_seq"] == 1 and [a["seq"] for a in state["alarms"]] == [1]


def test_without_a_state_directory_nothing_is_kept(alarm_bank):
    clock = Clock()
    p = make_processor(AlarmsSettings.model_validate(FAST), state_dir=None, now=0, wall_time=0)
    hub = make_hub(clock, p, alarm_bank.WALL0)
    hub.update("rs485", modules=[alarm_bank.module(3, now=clock.now, cell=(2, 3700))])
    assert len(hub.latest.alarms) == 1 and list(p.journal) == []


def test_config_errors_name_file_line_and_key(tmp_path):
    cfg = tmp_path / "gw.yaml"
    cfg.write_text("alarms:\n"
                   "  cell_voltage_high:\n"
                   "    raise_v: 3.40\n"
                   "  soc_low: {raise_pct: 20, clear_pct: 10}\n"
                   "  bms_severity: {fault_heater: urgent}\n"
                   "  storm: {max_individal: 3}\n")
    with pytest.raises(ConfigError) as info:
        load_config(cfg, {"alarms": AlarmsSettings})
    problems = [str(p) for p in info.value.problems]
    assert problems[0].startswith(f"{cfg}:2: alarms.cell_voltage_high: clear_v (3.45) must be "
                                  "below raise_v (3.4)")
    assert problems[1].startswith(f"{cfg}:4: alarms.soc_low: clear_pct (10.0) must be above")
    assert problems[2].startswith(f"{cfg}:5: alarms.bms_severity.fault_heater: Input should be")
    assert problems[3] == (f"{cfg}:6: alarms.storm.max_individal: unknown key; did you mean "
                           "'max_individual'?")


def test_a_rule_given_in_the_file_keeps_its_other_defaults():
    s = AlarmsSettings.model_validate({"cell_voltage_high": {"raise_v": 3.55}})
    r = s.cell_voltage_high
    assert (r.raise_level, r.clear_level, r.raise_delay_s, r.clear_delay_s, r.severity) == (
        3550, 3450, 5, 10, "major")
