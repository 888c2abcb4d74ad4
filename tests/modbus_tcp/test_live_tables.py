"""The incrementally kept tables serve exactly what a from-scratch build serves."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect

import pytest

from gateway.model import Alarm, LinkCounters, ModuleStatus, Severity
from plugins.modbus_tcp import register_map as rm
from plugins.modbus_tcp import sunspec
from plugins.modbus_tcp.live_tables import LiveTables
from plugins.modbus_tcp.protocol import Table, UnitScheme, compile_tables

STALE_AFTER = 60.0
SCHEMES = {
    "bank unit only": UnitScheme(),
    "module units": UnitScheme(bank_unit_id=7, direct_unit_ids=False, module_unit_id_base=100),
}


def dump(tables: dict[int, Table]) -> dict[int, list[tuple[int, int, bytes]]]:
    return {unit: [(s, e, bytes(d)) for s, e, d in zip(t.starts, t.ends, t.data, strict=True)]
            for unit, t in sorted(tables.items())}


def scratch(snapshot, now: float, scheme: UnitScheme, device) -> dict[int, Table]:
    image = rm.make_image(snapshot, now, stale_after_s=STALE_AFTER, device=device)
    return compile_tables(image, scheme)


def scenario(mb, clock, hub, processor):
    """Snapshots and clock steps: yields a label after each change."""
    yield "no snapshot yet"
    hub.update("rs485_bms", modules=mb.make_bank(clock.now))
    yield "first snapshot"
    for step in (0.3, 0.4, 0.31, 0.5, 1.0, 0.999, 0.002):  # ages cross whole seconds
        clock.advance(step)
        yield f"clock +{step}"
    bank = {m.position: m for m in hub.latest.modules}
    # the poller publishes after each module: one reading changes at a time
    for p in (1, 2, mb.TROUBLED):
        clock.advance(0.25)
        bank[p] = mb.make_module(p, clock.now, age_s=0.0)
        hub.update("rs485_bms", modules=list(bank.values()))
        yield f"module {p} polled"
    # a counter moves without new telemetry
    bank[4] = dataclasses.replace(bank[4], counters=LinkCounters(frames_ok=9, timeouts=3))
    hub.update("rs485_bms", modules=list(bank.values()))
    yield "counters of 4"
    # goes offline, comes back
    bank[6] = dataclasses.replace(bank[6], status=ModuleStatus.OFFLINE)
    hub.update("rs485_bms", modules=list(bank.values()))
    yield "6 offline"
    clock.advance(1.5)
    bank[6] = mb.make_module(6, clock.now, age_s=0.0)
    hub.update("rs485_bms", modules=list(bank.values()))
    yield "6 back"
    # never-seen module answers for the first time; the stale one recovers
    bank[mb.NEVER_SEEN] = mb.make_module(mb.NEVER_SEEN, clock.now, age_s=0.0)
    bank[mb.STALE] = mb.make_module(mb.STALE, clock.now, age_s=0.0)
    hub.update("rs485_bms", modules=list(bank.values()))
    yield "never seen and stale come back"
    # a module whose own stale age runs out with time alone
    bank[9] = dataclasses.replace(mb.make_module(9, clock.now, age_s=0.0), stale_after_s=3.0)
    hub.update("rs485_bms", modules=list(bank.values()))
    yield "9 with its own stale age"
    for _ in range(4):
        clock.advance(1.0)
        yield "clock +1 (9 goes stale)"
    # alarms raised, changed, cleared
    raised = Alarm(seq=50, kind="cell_voltage_high", severity=Severity.CRITICAL, position=2,
                   sub_index=4, value=3650, threshold=3600, raised_at=clock.now,
                   raised_wall_time=1.7e9, text="cell 4 of module 2 high")
    processor.alarms = (*processor.alarms, raised)
    hub.update("rs485_bms", modules=list(bank.values()))
    yield "critical alarm on 2"
    processor.alarms = (dataclasses.replace(raised, severity=Severity.MAJOR),)
    hub.update("rs485_bms", modules=list(bank.values()))
    yield "alarms changed"
    processor.alarms = ()
    hub.update("rs485_bms", modules=list(bank.values()))
    yield "alarms cleared"
    # a module removed from the configuration, one added at a far position
    del bank[12]
    bank[40] = mb.make_module(40, clock.now, age_s=0.0)
    hub.update("rs485_bms", modules=list(bank.values()))
    yield "12 removed, 40 added"
    # the poller stops: everything ages past the server's stale guard, then a total loss
    for step in (30.0, 29.5, 1.0, 0.6):
        clock.advance(step)
        yield f"no publish, clock +{step}"
    hub.update("rs485_bms", modules=[dataclasses.replace(m, status=ModuleStatus.OFFLINE)
                                     for m in bank.values()])
    yield "every module offline"
    clock.advance(70_000)
    yield "ages saturate"
    bank = {m.position: m for m in mb.make_bank(clock.now)}
    hub.update("rs485_bms", modules=list(bank.values()))
    yield "everything back"


@pytest.mark.parametrize("scheme", SCHEMES.values(), ids=SCHEMES.keys())
def test_live_tables_equal_a_build_from_scratch_at_every_step(mb, clock, scheme):
    hub, processor = mb.make_hub(clock, mb.make_alarms(clock.now))
    live = LiveTables(scheme, stale_after_s=STALE_AFTER, device=mb.DEVICE)
    tables = live.tables
    for label in scenario(mb, clock, hub, processor):
        live.update(hub.latest, clock.now)
        assert live.tables is tables  # compiled once, patched in place
        assert dump(live.tables) == dump(scratch(hub.latest, clock.now, scheme, mb.DEVICE)), \
            label


def test_only_the_module_that_changed_is_packed_again(mb, clock):
    hub, _ = mb.make_hub(clock)
    live = LiveTables(UnitScheme(), stale_after_s=STALE_AFTER)
    live.update(hub.update("rs485_bms", modules=mb.make_bank(clock.now)), clock.now)
    assert live.repacked == 12
    clock.advance(1.0)
    live.update(hub.latest, clock.now)
    assert live.repacked == 0  # a second passed: ages rewritten in place
    bank = list(hub.latest.modules)
    bank[0] = mb.make_module(1, clock.now, age_s=0.0)
    live.update(hub.update("rs485_bms", modules=bank), clock.now)
    assert live.repacked == 1


#: registers in seconds that are figures of the snapshot (docs/backup_time.md), not ages
SNAPSHOT_FIGURES = {"seconds_on_battery", "seconds_to_eod", "seconds_to_full",
                    "on_battery_since_epoch_s", "discharge_last_start_epoch_s",
                    "discharge_last_duration_s"}


def test_every_age_register_is_kept_up_to_date():
    """A register counting seconds changes with time alone: it must be in the age tables
    the live tables rewrite each second (register_map.BANK_AGES / MODULE_AGES)."""
    for layout, ages in ((rm.BANK_BLOCK, rm.BANK_AGES), (rm.MODULE_BLOCK, rm.MODULE_AGES)):
        timed = {f.name for f in layout.fields if f.unit == "s" or f.name.endswith("_s")}
        assert timed - SNAPSHOT_FIGURES == set(ages), layout.name
    # the snapshot figures are the backup_time processor's, computed with each snapshot
    # (the hub republishes at least once a second): the map counts no time for them
    assert SNAPSHOT_FIGURES <= {f.name for f in rm.BANK_BLOCK.fields}
    assert not {f.name for f in rm.BANK_BLOCK.fields} & set(rm.BANK_AGES) & SNAPSHOT_FIGURES
    # the SunSpec view is a function of the bank view alone: no time, no age register
    assert "now" not in inspect.signature(sunspec.make_sunspec_block).parameters


def test_the_run_loop_brings_the_tables_up_to_date_when_a_snapshot_arrives(make_server):
    rs = make_server()
    rs.publish()
    seq = rs.hub.latest.seq

    async def rendered() -> None:
        while rs.server._rendered_seq != seq:
            await asyncio.sleep(0)

    asyncio.run_coroutine_threadsafe(asyncio.wait_for(rendered(), 5), rs.loop).result(10)


def test_between_its_steps_an_update_writes_nothing_and_an_overtaken_one_never(mb, clock):
    """The run loop packs a snapshot's blocks in steps: a request between two steps reads
    the tables as they were, the last step writes everything at once, and an update
    overtaken by another one (a request's, a second behind) writes nothing."""
    hub, _ = mb.make_hub(clock, ())
    scheme = UnitScheme()
    live = LiveTables(scheme, stale_after_s=STALE_AFTER, device=mb.DEVICE)
    hub.update("rs485_bms", modules=mb.make_bank(clock.now))
    live.update(hub.latest, clock.now)
    first = hub.latest
    bank = {m.position: m for m in first.modules}
    clock.advance(0.25)
    bank[1] = mb.make_module(1, clock.now, age_s=0.0)
    bank[2] = mb.make_module(2, clock.now, age_s=0.0)
    hub.update("rs485_bms", modules=list(bank.values()))
    steps = live.steps(hub.latest, clock.now)
    next(steps)
    next(steps)  # some blocks packed, nothing written yet
    assert dump(live.tables) == dump(scratch(first, clock.now - 0.25, scheme, mb.DEVICE))
    for _ in steps:
        pass
    assert live.updated
    assert dump(live.tables) == dump(scratch(hub.latest, clock.now, scheme, mb.DEVICE))

    clock.advance(0.25)
    bank[3] = mb.make_module(3, clock.now, age_s=0.0)
    hub.update("rs485_bms", modules=list(bank.values()))
    older = hub.latest
    steps = live.steps(older, clock.now)
    next(steps)
    clock.advance(0.25)
    bank[4] = mb.make_module(4, clock.now, age_s=0.0)
    hub.update("rs485_bms", modules=list(bank.values()))
    live.update(hub.latest, clock.now)  # a request brought the tables further meanwhile
    for _ in steps:
        pass
    assert not live.updated
    assert dump(live.tables) == dump(scratch(hub.latest, clock.now, scheme, mb.DEVICE))
