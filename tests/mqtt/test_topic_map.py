"""The pure core: snapshot + now -> topics and payloads, with an injected clock."""

from __future__ import annotations

import json

from gateway.model import (
    Alarm,
    AlarmCleared,
    AlarmRaised,
    ModuleStatus,
    Severity,
)

from plugins.mqtt.topic_map import Layout, Planner, event_message, module_state

from .builders import WALL0, module, repoll, snapshot

LAYOUT = Layout("bms", "site-1")


def by_topic(messages):
    return {m.topic: m for m in messages}


def test_a_state_message_carries_every_value_with_its_age_and_quality(clock):
    m = module(1, now=clock.now, age_s=2.5)
    doc = module_state(m, snapshot([m], clock.now), clock.now)
    assert doc["status"] == "ok" and doc["age_s"] == 2.5
    assert doc["time"] == "2026-11-18T11:23:20.000Z"  # WALL0 + 1000 s
    assert doc["updated_time"] == "2026-11-18T11:23:17.500Z"
    values = doc["values"]
    assert values["voltage_mv"] == {"value": 52_800, "age_s": 2.5, "quality": "ok"}
    assert values["current_ma"]["value"] == -12_340  # + = charging, as everywhere
    assert values["temp_dc"]["value"] == [251, 249, 330, None]  # unknown stays None
    assert values["warnings"]["value"] == ["cell_over_voltage"]
    assert all(v["age_s"] == 2.5 for v in values.values())


def test_an_unknown_value_is_null_with_quality_unknown_never_zero(clock):
    m = module(1, now=clock.now, voltage_mv=None)
    doc = module_state(m, snapshot([m], clock.now), clock.now)
    assert doc["values"]["voltage_mv"] == {"value": None, "age_s": 1.0, "quality": "unknown"}


def test_a_stale_module_is_published_at_once_without_its_old_values(clock):
    planner = Planner(LAYOUT, min_interval_s=60)
    m = module(1, now=clock.now, stale_after_s=5)
    first = by_topic(planner.plan(snapshot([m], clock.now), clock.now))
    assert first["bms/site-1/bank1/1/availability"].payload == b"online"
    clock.advance(10)  # no new poll: the data outlives stale_after_s, well within 60 s
    out = by_topic(planner.plan(snapshot([m], clock.now, seq=2), clock.now))
    doc = json.loads(out["bms/site-1/bank1/1/state"].payload)
    assert doc["status"] == "stale" and doc["values"] == {} and doc["age_s"] == 11.0
    avail = out["bms/site-1/bank1/1/availability"]
    assert (avail.payload, avail.qos, avail.retain) == (b"offline", 1, True)
    bank = json.loads(out["bms/site-1/bank/state"].payload)
    assert bank["modules_online"] == 0 and bank["voltage_mean_mv"] is None
    clock.advance(10)  # still stale: nothing new to say
    assert planner.plan(snapshot([m], clock.now, seq=3), clock.now) == []


def test_a_new_poll_is_one_message_an_unchanged_one_waits_for_its_interval(clock):
    planner = Planner(LAYOUT, min_interval_s=0, unchanged_interval_s=30)
    m = module(1, now=clock.now)
    assert "bms/site-1/bank1/1/state" in by_topic(planner.plan(snapshot([m], clock.now),
                                                              clock.now))
    clock.advance(1)  # the hub's tick: same data, no poll
    assert planner.plan(snapshot([m], clock.now, 2), clock.now) == []
    clock.advance(1)
    m = repoll(m, clock.now, voltage_mv=52_900)  # a poll with a new value
    out = by_topic(planner.plan(snapshot([m], clock.now, 3), clock.now))
    assert json.loads(out["bms/site-1/bank1/1/state"].payload)["values"]["voltage_mv"][
        "value"] == 52_900
    assert "bms/site-1/bank1/1/availability" not in out  # unchanged: not repeated
    clock.advance(1)
    m = repoll(m, clock.now)  # a poll with the same values
    assert planner.plan(snapshot([m], clock.now, 4), clock.now) == []
    clock.advance(30)
    m = repoll(m, clock.now)
    out = by_topic(planner.plan(snapshot([m], clock.now, 5), clock.now))
    assert json.loads(out["bms/site-1/bank1/1/state"].payload)["age_s"] == 0.0


def test_min_interval_limits_state_messages_per_module(clock):
    planner = Planner(LAYOUT, min_interval_s=10, unchanged_interval_s=0)
    m = module(1, now=clock.now)
    planner.plan(snapshot([m], clock.now), clock.now)
    for i in range(9):
        clock.advance(1)
        m = repoll(m, clock.now, voltage_mv=53_000 + i)
        assert planner.plan(snapshot([m], clock.now, i + 2), clock.now) == []
    clock.advance(1)
    m = repoll(m, clock.now, voltage_mv=53_100)
    out = by_topic(planner.plan(snapshot([m], clock.now, 20), clock.now))
    assert json.loads(out["bms/site-1/bank1/1/state"].payload)["values"]["voltage_mv"][
        "value"] == 53_100


def test_state_messages_are_retained_with_the_configured_qos(clock):
    planner = Planner(LAYOUT, state_qos=1)
    m = module(1, now=clock.now)
    out = by_topic(planner.plan(snapshot([m], clock.now), clock.now))
    for topic in ("bms/site-1/bank1/1/state", "bms/site-1/bank/state"):
        assert (out[topic].retain, out[topic].qos, out[topic].kind) == (True, 1, "state")
    assert json.loads(out["bms/site-1/alarms/active"].payload) == {"alarm_last_seq": 0,
                                                                  "alarms": []}


def test_alarm_events_are_qos1_with_the_time_they_happened():
    alarm = Alarm(seq=7, kind="cell_voltage_high", severity=Severity.MAJOR, position=2,
                  sub_index=7, value=3700, threshold=3600, raised_at=5.0,
                  raised_wall_time=WALL0 + 5, text="cell 7 of module 2 at 3.700 V")
    raised = event_message(LAYOUT, AlarmRaised(alarm=alarm))
    cleared = event_message(LAYOUT, AlarmCleared(alarm=alarm, cleared_at=9.0,
                                                 cleared_wall_time=WALL0 + 9, clear_seq=8))
    for msg in (raised, cleared):
        assert (msg.topic, msg.qos, msg.retain, msg.kind) == (
            "bms/site-1/alarms/event", 1, False, "event")
    r, c = json.loads(raised.payload), json.loads(cleared.payload)
    assert (r["event"], r["seq"], r["ts"], r["module"], r["value"]) == (
        "raised", 7, WALL0 + 5, 2, 3700)
    assert (c["event"], c["seq"], c["clear_seq"], c["ts"]) == ("cleared", 7, 8, WALL0 + 9)
    assert c["raised_time"] == r["time"]


def test_never_seen_modules_say_so_and_are_unavailable(clock):
    planner = Planner(LAYOUT)
    m = module(3, now=clock.now, status=ModuleStatus.NEVER_SEEN)
    out = by_topic(planner.plan(snapshot([m], clock.now), clock.now))
    doc = json.loads(out["bms/site-1/bank1/3/state"].payload)
    assert (doc["status"], doc["age_s"], doc["values"]) == ("never_seen", None, {})
    assert out["bms/site-1/bank1/3/availability"].payload == b"offline"


def test_the_bank_message_carries_the_limits_and_the_backup_estimate(clock):
    import dataclasses

    from gateway.model import BackupEstimate, BankState, ChargeLimits, Limit, LimitCause
    from plugins.mqtt.topic_map import bank_state

    snap = snapshot([module(1, now=clock.now), module(2, now=clock.now)], clock.now)
    plain = bank_state(snap, clock.now)
    assert plain["charge_limits"] is None and plain["backup"] is None  # no processor: null
    limits = ChargeLimits(
        computed_at=clock.now, cvl=Limit(value=53_250, cause=LimitCause.FLOAT, reason="float"),
        ccl=Limit(value=0, cause=LimitCause.PROTECTION, reason="module 2 charge protection",
                  position=2),
        dcl=Limit(value=200_000, cause=LimitCause.CAPACITY, reason="1.0 C of 200 Ah"),
        eod_mv=40_500, cutoff_mv=40_300, modules_counted=2, modules_configured=2,
        capacity_mah=200_000, module_ccl_ma=20_000)
    backup = BackupEstimate(state=BankState.CHARGING, seconds_on_battery=0,
                            seconds_to_full=3600)
    state = bank_state(dataclasses.replace(snap, charge_limits=limits, backup=backup),
                       clock.now)
    assert state["charge_limits"]["ccl"] == {"ma": 0, "cause": "protection",
                                             "reason": "module 2 charge protection"}
    assert state["backup"] == {"state": "charging", "seconds_on_battery": 0,
                               "seconds_to_eod": None, "seconds_to_full": 3600,
                               "limited_by": None, "record_last": 0}
    json.dumps(state)  # the payload is JSON
