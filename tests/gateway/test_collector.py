"""The garbage-collector policy (gateway/collector.py), driven without sleeping and
without touching the process's collector; and the real thing once, to show that a
frozen object stays alive and a cycle among frozen objects is still freed at the next
refreeze."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from gateway.collector import REFREEZE_S, SECOND_S, SETTLE_S, keep_collector, refreeze


class FakeCollector:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def collect(self, generation: int = 2) -> int:
        self.calls.append(f"collect{generation}")
        return 0

    def freeze(self) -> None:
        self.calls.append("freeze")

    def unfreeze(self) -> None:
        self.calls.append("unfreeze")

    def get_freeze_count(self) -> int:
        return 0


def run_policy(snapshot_after: int, sleeps_allowed: int) -> tuple[FakeCollector, list[float]]:
    fake = FakeCollector()
    slept: list[float] = []
    polls = {"n": 0}

    def has_snapshot() -> bool:
        polls["n"] += 1
        return polls["n"] > snapshot_after

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) >= sleeps_allowed:
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(keep_collector(has_snapshot, sleep=sleep, collector=fake))
    return fake, slept


def test_nothing_is_frozen_before_the_first_snapshot_and_the_settling_time():
    fake, slept = run_policy(snapshot_after=3, sleeps_allowed=4)
    assert slept == [1.0, 1.0, 1.0, SETTLE_S]
    assert fake.calls == []


def test_after_settling_everything_is_collected_then_frozen_and_again_every_hour():
    fake, slept = run_policy(snapshot_after=0, sleeps_allowed=4)
    assert slept == [SETTLE_S, SECOND_S, REFREEZE_S, REFREEZE_S]
    # the last unfreeze: stopped (cancelled), nothing stays frozen
    assert fake.calls == ["unfreeze", "collect2", "freeze"] * 3 + ["unfreeze"]


def test_frozen_objects_live_and_a_frozen_cycle_is_freed_at_the_next_refreeze():
    class Node:
        pass

    was_frozen = gc.get_freeze_count()
    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle: only the collector frees it
    alive = weakref.ref(a)
    try:
        refreeze()
        assert gc.get_freeze_count() > 0
        del a, b
        gc.collect()  # a full collection does not walk the permanent generation
        assert alive() is not None
        refreeze()
        assert alive() is None
    finally:
        if not was_frozen:
            gc.unfreeze()
