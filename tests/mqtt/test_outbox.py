"""The outbox: bounded, in order, counted drops, and the same after a reopen."""

from __future__ import annotations

import sqlite3

import pytest

from plugins.mqtt.outbox import Outbox
from plugins.mqtt.topic_map import Message


def ev(i: int) -> Message:
    return Message(topic="t/e", payload=f"e{i}".encode(), qos=1, kind="event")


def st(i: int) -> Message:
    return Message(topic="t/s", payload=f"s{i}".encode(), retain=True)


def drain(box: Outbox) -> list[bytes]:
    out = []
    while (entry := box.peek()) is not None:
        box.remove(entry[0])
        out.append(entry[1].payload)
    return out


@pytest.mark.parametrize("persist", [False, True])
def test_order_is_the_order_of_put_across_kinds(tmp_path, persist):
    box = Outbox(max_events=10, max_states=10, path=tmp_path / "q.db" if persist else None)
    for m in (st(1), ev(1), st(2), ev(2)):
        box.put(m)
    assert len(box) == 4 and box.depth("event") == 2
    assert drain(box) == [b"s1", b"e1", b"s2", b"e2"]
    box.close()


@pytest.mark.parametrize("persist", [False, True])
def test_each_bound_drops_its_own_oldest_and_counts(tmp_path, persist):
    box = Outbox(max_events=3, max_states=2, path=tmp_path / "q.db" if persist else None)
    for i in range(5):
        box.put(ev(i))
        box.put(st(i))
    assert box.dropped == {"event": 2, "state": 3}
    assert drain(box) == [b"e2", b"e3", b"s3", b"e4", b"s4"]
    box.close()


def test_no_state_history_keeps_events_only():
    box = Outbox(max_events=5, max_states=0)
    box.put(st(1))
    box.put(ev(1))
    assert drain(box) == [b"e1"] and box.dropped["state"] == 1


def test_a_reopened_file_gives_back_what_was_not_acknowledged(tmp_path):
    path = tmp_path / "state" / "mqtt_queue.sqlite3"
    box = Outbox(max_events=10, max_states=10, path=path)
    for i in range(4):
        box.put(ev(i))
    box.remove(box.peek()[0])  # e0 reached the broker
    # no close(): a crash leaves the file as it is
    again = Outbox(max_events=10, max_states=10, path=path)
    assert again.restored == 3
    again.put(ev(9))  # new ones go after the restored ones
    assert drain(again) == [b"e1", b"e2", b"e3", b"e9"]
    again.close()
    assert Outbox(max_events=10, max_states=10, path=path).restored == 0
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    box.close()


def test_a_smaller_bound_at_reopen_trims_the_oldest(tmp_path):
    path = tmp_path / "q.db"
    box = Outbox(max_events=10, max_states=10, path=path)
    for i in range(5):
        box.put(ev(i))
    box.close()
    small = Outbox(max_events=2, max_states=10, path=path)
    assert small.dropped["event"] == 3 and drain(small) == [b"e3", b"e4"]
    small.close()


def test_removing_anything_but_a_head_is_a_bug():
    box = Outbox(max_events=5, max_states=5)
    box.put(ev(1))
    box.put(ev(2))
    with pytest.raises(KeyError):
        box.remove(2)
