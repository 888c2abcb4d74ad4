"""The hub processor: keeps the rules' state between snapshots; thin glue, no I/O.

For every snapshot the hub assembles, :meth:`AlarmProcessor.process` runs the pure rules
(:func:`plugins.alarms.rules.evaluate`), puts the active alarms and the last sequence
number into the snapshot, returns the announced raises and clears as hub events (the
SNMP agent turns them into notifications) and queues every transition for the event log.
Writing the log and the state file is the alarm service's job (service.py), outside the
hub's update path.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway.model import Alarm, AlarmCleared, AlarmRaised, BankSnapshot, Event, Severity

from plugins.alarms import rules
from plugins.alarms.eventlog import EventLog, iso_time, load_state
from plugins.alarms.rules import Action, AlarmState, Key, Tracker, Transition
from plugins.alarms.settings import AlarmsSettings

log = logging.getLogger(__name__)

JOURNAL_MAX = 10_000  #: log records kept in memory when the disk cannot keep up


class AlarmProcessor:
    """Registered with the hub; one per gateway."""

    def __init__(self, settings: AlarmsSettings, *, state: AlarmState | None = None,
                 journaling: bool = True) -> None:
        self.settings = settings
        self.state = state or AlarmState()
        self.journaling = journaling
        self.journal: collections.deque[dict[str, Any]] = collections.deque(maxlen=JOURNAL_MAX)
        self.journal_dropped = 0
        self.dirty = False  #: the active set changed since it was last saved
        self.wakeup = asyncio.Event()
        self.last_evaluated_at: float | None = None

    # ------------------------------------------------------------------ the hub ----
    def process(self, snapshot: BankSnapshot, now: float
                ) -> tuple[BankSnapshot, Sequence[Event]]:
        outcome = rules.evaluate(self.state, snapshot, now, self.settings)
        self.state = outcome.state
        self.last_evaluated_at = now
        events: list[Event] = []
        for t in outcome.transitions:
            if t.action in (Action.RAISED, Action.CLEARED, Action.UPDATED):
                self.dirty = True
            if t.notify and t.action is Action.RAISED:
                events.append(AlarmRaised(alarm=t.alarm))
            elif t.notify and t.action is Action.CLEARED:
                assert t.clear_seq is not None
                events.append(AlarmCleared(alarm=t.alarm, cleared_at=t.at,
                                           cleared_wall_time=t.wall_time,
                                           clear_seq=t.clear_seq))
            self.record(transition_record(t))
            _log_transition(t)
        snap = dataclasses.replace(snapshot, alarms=self.state.alarms,
                                   alarm_last_seq=self.state.last_seq)
        return snap, events

    # ------------------------------------------------------------------ settings ---
    def apply(self, settings: AlarmsSettings, *, wall_time: float) -> None:
        """New thresholds (SIGHUP); the next snapshot is evaluated with them."""
        self.settings = settings
        self.record({"time": iso_time(wall_time), "event": "reloaded",
                     "last_seq": self.state.last_seq})

    # ------------------------------------------------------------------ journal ----
    def record(self, record: dict[str, Any]) -> None:
        if not self.journaling:
            return
        if len(self.journal) == self.journal.maxlen:
            self.journal_dropped += 1
        self.journal.append(record)
        self.wakeup.set()

    def take_journal(self) -> list[dict[str, Any]]:
        out = list(self.journal)
        self.journal.clear()
        return out


def _log_transition(t: Transition) -> None:
    a = t.alarm
    if t.action is Action.RAISED:
        log.warning("alarm raised #%d %s (%s): %s%s", a.seq, a.kind, a.severity.name.lower(),
                    a.text, "" if t.notify else " [storm: not announced]")
    elif t.action is Action.CLEARED:
        log.info("alarm cleared #%d %s: %s (%s)", a.seq, a.kind, a.text, t.reason)


def alarm_record(a: Alarm) -> dict[str, Any]:
    return {"seq": a.seq, "kind": a.kind, "severity": a.severity.name.lower(),
            "module": a.position, "sub_index": a.sub_index, "value": a.value,
            "threshold": a.threshold, "text": a.text,
            "raised_time": iso_time(a.raised_wall_time)}


def transition_record(t: Transition) -> dict[str, Any]:
    r: dict[str, Any] = {"time": iso_time(t.wall_time), "event": t.action.value,
                         **alarm_record(t.alarm), "notified": t.notify}
    if t.action is Action.CLEARED:
        r["clear_seq"] = t.clear_seq
        r["reason"] = t.reason
        r["duration_s"] = round(max(0.0, t.at - t.alarm.raised_at), 3)
    return r


# ------------------------------------------------------------------ persistence ------


def dump_state(state: AlarmState) -> dict[str, Any]:
    """The part of the state that survives a restart: the active set and the last seq."""
    alarms = []
    for key, t in sorted(state.trackers.items(), key=lambda kv: kv[0]):
        a = t.alarm
        if a is None:
            continue
        alarms.append({"key": list(key), "seq": a.seq, "kind": a.kind,
                       "severity": int(a.severity), "position": a.position,
                       "sub_index": a.sub_index, "value": a.value, "threshold": a.threshold,
                       "raised_wall_time": a.raised_wall_time, "text": a.text,
                       "notified": t.notified, "flapping": t.flapping})
    return {"last_seq": state.last_seq, "alarms": alarms}


def restore_state(data: dict[str, Any] | None, *, now: float, wall_time: float,
                  log_last_seq: int = 0) -> AlarmState:
    """The state to start from: the persisted active alarms, marked restored, and a last
    sequence number no lower than any the event log already used."""
    last_seq = log_last_seq
    trackers: dict[Key, Tracker] = {}
    if data is not None:
        last_seq = max(last_seq, int(data.get("last_seq", 0)))
        for item in data.get("alarms", ()):
            try:
                kind, position, detail = item["key"]
                raised_wall = float(item["raised_wall_time"])
                alarm = Alarm(seq=int(item["seq"]), kind=str(item["kind"]),
                              severity=Severity(int(item["severity"])),
                              position=int(item["position"]), sub_index=int(item["sub_index"]),
                              value=item.get("value"), threshold=item.get("threshold"),
                              raised_at=now - max(0.0, wall_time - raised_wall),
                              raised_wall_time=raised_wall, text=str(item["text"]))
                key = (str(kind), int(position), str(detail))
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("alarms: skipping an unreadable persisted alarm %r (%s)", item, exc)
                continue
            trackers[key] = Tracker(alarm=alarm, notified=bool(item.get("notified", True)),
                                    flapping=bool(item.get("flapping", False)), restored=True)
            last_seq = max(last_seq, alarm.seq)
    return AlarmState(last_seq=last_seq, trackers=trackers)


def make_processor(settings: AlarmsSettings, *, state_dir: Path | None, now: float,
                   wall_time: float) -> AlarmProcessor:
    """The processor for a start: the active set restored from ``state_dir`` if any."""
    data, log_seq = None, 0
    if state_dir is not None:
        data = load_state(state_dir)
        log_seq = EventLog(state_dir, max_bytes=settings.event_log.max_bytes,
                           files=settings.event_log.files).last_seq()
    state = restore_state(data, now=now, wall_time=wall_time, log_last_seq=log_seq)
    if state.trackers:
        log.info("alarms: %d active alarm(s) restored from %s; they are not announced again "
                 "and clear if their condition is gone", len(state.trackers), state_dir)
    return AlarmProcessor(settings, state=state, journaling=state_dir is not None)
