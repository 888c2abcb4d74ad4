"""The per-module state machine, driven by an injected clock."""

from __future__ import annotations

import pytest

from gateway.model import LinkState, ModuleStatus, Telemetry

from plugins.rs485_bms.poller.link import ModuleLink

TEL = Telemetry(cell_mv=(3300,), voltage_mv=52800, current_ma=-1500)


def make(**kw):
    return ModuleLink(bus="b", address=2, position=1, offline_after=3, retry_base_s=5,
                      retry_max_s=40, **kw)


def test_never_seen_until_first_success_with_backoff(clock):
    link = make()
    assert link.status(clock(), stale_after_s=30) is ModuleStatus.NEVER_SEEN
    assert link.due(clock())
    assert link.failed(clock()) is LinkState.NEVER_SEEN
    assert link.state is LinkState.NEVER_SEEN
    assert not link.due(clock() + 4.9) and link.due(clock() + 5)
    link.failed(clock())
    assert link.next_try_at == clock() + 10  # doubles
    assert link.reading(clock(), stale_after_s=30).telemetry is None


def test_online_suspect_offline_and_back(clock):
    link = make()
    assert link.succeeded(clock(), TEL, None) is LinkState.NEVER_SEEN
    assert link.state is LinkState.ONLINE and link.status(clock(), stale_after_s=30) is ModuleStatus.OK
    clock.advance(5)
    link.failed(clock())
    assert link.state is LinkState.SUSPECT and link.due(clock())  # suspect is retried every cycle
    assert link.status(clock(), stale_after_s=30) is ModuleStatus.OK  # data still fresh
    link.failed(clock())
    assert link.state is LinkState.SUSPECT
    link.failed(clock())
    assert link.state is LinkState.OFFLINE
    assert link.status(clock(), stale_after_s=30) is ModuleStatus.OFFLINE
    assert link.next_try_at == clock() + 5
    link.failed(clock())
    assert link.next_try_at == clock() + 10
    for _ in range(10):
        link.failed(clock())
    assert link.next_try_at == clock() + 40  # capped
    assert link.succeeded(clock(), TEL, None) is LinkState.OFFLINE
    assert link.state is LinkState.ONLINE and link.failures == 0 and link.due(clock())


def test_values_turn_stale_at_the_configured_age(clock):
    link = make()
    link.succeeded(clock(), TEL, None)
    clock.advance(30)
    assert link.status(clock(), stale_after_s=30) is ModuleStatus.OK
    clock.advance(0.001)
    r = link.reading(clock(), stale_after_s=30)
    assert r.status is ModuleStatus.STALE and r.telemetry == TEL  # kept, marked stale
    assert r.age_s(clock()) == pytest.approx(30.001)


def test_transport_down_serves_stale_at_once(clock):
    link = make()
    link.succeeded(clock(), TEL, None)
    assert link.status(clock(), stale_after_s=30, transport_up=False) is ModuleStatus.STALE


def test_counters_accumulate(clock):
    link = make()
    link.count(timeouts=2, garbage_bytes=7)
    link.count(timeouts=1)
    assert link.counters.timeouts == 3 and link.counters.garbage_bytes == 7


def test_identity_schedule(clock):
    link = make()
    assert link.identity_due(clock(), 3600)
    link.identity_at = clock()
    assert not link.identity_due(clock() + 3599, 3600) and link.identity_due(clock() + 3600, 3600)
