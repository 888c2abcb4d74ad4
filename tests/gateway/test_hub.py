"""The hub and the bank aggregates: pure, injected clock, nothing sleeps."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.bank import make_bank_aggregates
from gateway.hub import EventQueue, Hub
from gateway.model import (
    Alarm,
    AlarmRaised,
    BmsStatus,
    Fault,
    Location,
    ModuleReading,
    ModuleStatus,
    Severity,
    Telemetry,
)


def module(pos, *, status=ModuleStatus.OK, cells=(3300, 3310), temps=(250, 260), current=-1000,
           voltage=52000, soc=500, full=100_000, soh=990, bms=None):
    return ModuleReading(
        bus="bus1", address=pos + 1, position=pos, status=status,
        telemetry=Telemetry(cell_mv=cells, temp_dc=temps, current_ma=current, voltage_mv=voltage,
                            soc_permille=soc, full_mah=full, remaining_mah=None if full is None else full * soc // 1000,
                            soh_permille=soh),
        bms=bms,
    )


def test_aggregates_use_live_modules_only_with_locations():
    mods = [
        module(1, cells=(3300, 3290), temps=(250, 300), current=-2000, voltage=52000, soc=400),
        module(2, cells=(3350, 3300), temps=(-55, 260), current=1500, voltage=53000, soc=800,
               full=50_000, soh=970),
        module(3, status=ModuleStatus.STALE, cells=(1, 4000), temps=(-400, 900), current=99999),
        ModuleReading(bus="bus1", address=5, position=4),
    ]
    agg = make_bank_aggregates(mods)
    assert agg.current_ma == -500
    assert (agg.voltage_min_mv, agg.voltage_max_mv, agg.voltage_mean_mv) == (52000, 53000, 52500)
    assert agg.cell_min_mv == 3290 and agg.cell_min_at == Location(position=1, index=2)
    assert agg.cell_max_mv == 3350 and agg.cell_max_at == Location(position=2, index=1)
    assert agg.temp_min_dc == -55 and agg.temp_min_at == Location(position=2, index=1)
    assert agg.temp_max_dc == 300 and agg.temp_max_at == Location(position=1, index=2)
    # capacity-weighted: (400*100 + 800*50) / 150 = 533.3
    assert agg.soc_permille == 533
    assert agg.soh_min_permille == 970
    assert (agg.modules_configured, agg.modules_online) == (4, 2)


def test_aggregates_unknown_stays_none():
    agg = make_bank_aggregates([ModuleReading(bus="b", address=2, position=1)])
    assert agg.current_ma is None and agg.soc_permille is None and agg.cell_min_at is None
    assert agg.modules_online == 0 and agg.modules_configured == 1


def test_soc_plain_mean_when_a_capacity_is_unknown():
    agg = make_bank_aggregates([module(1, soc=400, full=None), module(2, soc=600)])
    assert agg.soc_permille == 500


def test_alarmed_counts_bms_faults_and_alarms():
    mods = [module(1, bms=BmsStatus(faults=Fault.SAMPLING_IC)), module(2), module(3)]
    assert make_bank_aggregates(mods, alarmed_positions=[3, 3, 9]).modules_alarmed == 2


def test_hub_assembles_sources_and_counts_seq(clock):
    hub = Hub(clock=clock, wall_clock=lambda: 1.7e9)
    hub.update("a", modules=[module(2)])
    clock.advance(1)
    snap = hub.update("b", modules=[module(1)])
    assert [m.position for m in snap.modules] == [1, 2]
    assert snap.seq == 2 and snap.created_at == clock.now and hub.latest is snap
    assert hub.last_update_at == clock.now


class RaiseOnce:
    def __init__(self):
        self.done = False

    def process(self, snap, now):
        if self.done:
            return snap, ()
        self.done = True
        alarm = Alarm(seq=1, kind="cell_voltage_high", severity=Severity.MAJOR, position=1,
                      raised_at=now, raised_wall_time=0.0, text="x")
        return dataclasses.replace(snap, alarms=(alarm,), alarm_last_seq=1), (AlarmRaised(alarm=alarm),)


def test_processors_alarms_carry_over_and_events_are_queued(clock):
    hub = Hub(clock=clock)
    hub.add_processor(RaiseOnce())
    q = hub.subscribe_events(maxsize=4)
    s1 = hub.update("a", modules=[module(1), module(2)])
    assert s1.bank.modules_alarmed == 1 and len(q) == 1
    s2 = hub.update("a", modules=[module(1), module(2)])
    assert s2.alarms == s1.alarms and s2.alarm_last_seq == 1  # state carried over
    assert isinstance(q.get_nowait(), AlarmRaised) and q.get_nowait() is None


def test_event_queue_is_bounded_and_counts_drops():
    q = EventQueue(2)
    for i in range(5):
        q.put(i)
    assert q.dropped == 3 and [q.get_nowait(), q.get_nowait()] == [3, 4]
    with pytest.raises(ValueError):
        EventQueue(0)


def test_watch_is_latest_wins(clock):
    async def scenario():
        hub = Hub(clock=clock)
        w = hub.watch()
        hub.update("a", modules=[module(1)])
        hub.update("a", modules=[module(1)])
        first = await w.next()
        assert first.seq == 2  # the slow reader skipped seq 1, the hub never waited
        waiter = asyncio.ensure_future(w.next())
        await asyncio.sleep(0)
        assert not waiter.done()
        hub.update("a", modules=[module(1)])
        assert (await waiter).seq == 3
        w.close()
        q = hub.subscribe_events(1)
        getter = asyncio.ensure_future(q.get())
        await asyncio.sleep(0)
        q.put("ev")
        assert await getter == "ev"
    asyncio.run(scenario())


def test_model_helpers():
    m = module(1, cells=(None, 3300, 3200))
    assert m.telemetry.cell_min_mv == 3200 and m.telemetry.cell_max_mv == 3300
    assert m.telemetry.voltage_v == 52.0 and m.telemetry.current_a == -1.0
    assert m.age_s(5.0) is None and m.is_live
    assert dataclasses.replace(m, updated_at=10.0).age_s(12.5) == 2.5
    assert Telemetry().cell_min_mv is None and Telemetry().voltage_v is None
    snap_hub = Hub(clock=lambda: 0.0)
    snap = snap_hub.update("x", modules=[m])
    assert snap.module(1) is snap.modules[0] and snap.module(7) is None


def test_hub_ages_data_even_when_the_source_stalls(clock):
    """A source that stops publishing cannot keep its last values live."""
    hub = Hub(clock=clock)
    m = dataclasses.replace(module(1), updated_at=clock(), stale_after_s=5.0)
    assert hub.update("bus", modules=[m]).modules[0].status is ModuleStatus.OK
    clock.advance(5.0)
    assert hub.republish().modules[0].status is ModuleStatus.OK
    clock.advance(0.01)
    snap = hub.republish()  # what the 1 s tick does while the source is silent
    assert snap.modules[0].status is ModuleStatus.STALE
    assert snap.bank.modules_online == 0 and snap.bank.current_ma is None


def test_tick_republishes(clock):
    async def scenario():
        hub = Hub(clock=clock)
        hub.update("a", modules=[module(1)])
        task = asyncio.ensure_future(hub.tick(period_s=0.001))
        w = hub.watch()
        first = await w.next()
        second = await w.next()
        task.cancel()
        assert second.seq > first.seq
    asyncio.run(scenario())


def test_oldest_source_update_drives_the_watchdog(clock):
    hub = Hub(clock=clock)
    assert hub.oldest_source_update() is None
    hub.update("a", modules=[])
    clock.advance(10)
    hub.update("b", modules=[])
    assert hub.oldest_source_update() == clock() - 10


def reference_extreme(modules, values_of, lowest):
    """The lowest (highest) known value and its first place, by a plain scan."""
    found = [(v if lowest else -v, n, i) for n, m in enumerate(modules)
             for i, v in enumerate(values_of(m), start=1) if v is not None]
    if not found:
        return None, None
    v, n, i = min(found)
    return (v if lowest else -v), Location(position=modules[n].position, index=i)


CELLS = st.lists(st.one_of(st.none(), st.integers(3200, 3210)), max_size=6).map(tuple)


@given(st.lists(st.tuples(CELLS, CELLS, st.booleans()), max_size=6))
def test_extremes_keep_the_first_module_and_index_on_ties(rows):
    mods = [module(p, cells=cells, temps=temps,
                   status=ModuleStatus.OK if live else ModuleStatus.STALE)
            for p, (cells, temps, live) in enumerate(rows, start=1)]
    agg = make_bank_aggregates(mods)
    live = [m for m in mods if m.status is ModuleStatus.OK]
    cells, temps = (lambda m: m.telemetry.cell_mv), (lambda m: m.telemetry.temp_dc)
    assert (agg.cell_min_mv, agg.cell_min_at) == reference_extreme(live, cells, True)
    assert (agg.cell_max_mv, agg.cell_max_at) == reference_extreme(live, cells, False)
    assert (agg.temp_min_dc, agg.temp_min_at) == reference_extreme(live, temps, True)
    assert (agg.temp_max_dc, agg.temp_max_at) == reference_extreme(live, temps, False)


def test_with_alarms_the_bank_is_what_a_full_count_gives(clock):
    """With alarms active the hub counts the alarmed modules again; the other figures
    are those it made before the processors ran."""
    hub = Hub(clock=clock)
    hub.add_processor(RaiseOnce())
    mods = [module(1), module(2, bms=BmsStatus(faults=Fault.SAMPLING_IC)), module(3)]
    snap = hub.update("a", modules=mods)
    assert snap.bank == make_bank_aggregates(snap.modules, alarmed_positions=[1])
    assert snap.bank.modules_alarmed == 2
