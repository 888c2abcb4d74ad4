"""BusPoller's publishing and its one-line cycle summary (no port, no sleeping)."""

from __future__ import annotations

from gateway.hub import Hub
from gateway.model import Telemetry

from plugins.rs485_bms.poller.link import ModuleLink
from plugins.rs485_bms.settings import BusSettings
from plugins.rs485_bms.poller.source import BusPoller

T0 = 500.0


def poller(name: str, positions: list[int], hub: Hub) -> BusPoller:
    settings = BusSettings(name=name, port="socket://127.0.0.1:1",
                           addresses=",".join(str(p) for p in positions))
    links = [ModuleLink(bus=name, address=p, position=p) for p in positions]
    return BusPoller(settings, links, hub=hub, stale_after_s=30, clock=lambda: T0)


def test_the_summary_says_the_figures_are_the_banks_and_never_shows_unknown_as_zero():
    hub = Hub(clock=lambda: T0, wall_clock=lambda: 0.0)
    a, b = poller("a", [1, 2], hub), poller("b", [3], hub)
    a.links[0].succeeded(T0, Telemetry(cell_mv=(3300, 3310), voltage_mv=52_800,
                                       current_ma=None, soc_permille=None), None)
    b.links[0].succeeded(T0, Telemetry(cell_mv=(3290,), voltage_mv=52_600), None)
    for p in (a, b):
        p.state.connected = True
        p.publish()
    line = a.summary()
    assert "1/2 live" in line and "1 never_seen" in line and "1 online" in line
    # bank-wide figures, labelled so; the unknown current and SOC are '-', not 0
    assert line.endswith("bank 52.70 V, - A, SOC - %, cells 3290-3310 mV")


def test_another_master_on_the_line_is_warned_about_once(caplog):
    p = poller("a", [1], Hub(clock=lambda: T0, wall_clock=lambda: 0.0))
    p._note_foreign_requests()
    assert "another master" not in caplog.text
    p.session.counters.foreign_requests = 2
    p._note_foreign_requests()
    p.session.counters.foreign_requests = 5
    p._note_foreign_requests()
    assert caplog.text.count("bus a: another master is polling on this line") == 1


def test_modules_polled_close_together_go_out_in_one_deferred_publish():
    """A fast bus publishes after a module at most every PUBLISH_EVERY_S: the first at
    once, the next ones together when the interval has passed, and an explicit publish
    (a cycle's end) at once, taking the deferred one with it."""
    import asyncio

    from plugins.rs485_bms.poller.source import PUBLISH_EVERY_S

    now = {"t": T0}
    hub = Hub(clock=lambda: now["t"], wall_clock=lambda: 0.0)
    settings = BusSettings(name="a", port="socket://127.0.0.1:1", addresses="1-3")
    links = [ModuleLink(bus="a", address=p, position=p) for p in (1, 2, 3)]
    p = BusPoller(settings, links, hub=hub, stale_after_s=30, clock=lambda: now["t"])
    p.state.connected = True

    async def scenario() -> list[int]:
        seqs = []
        p._module_polled()  # the first: at once
        seqs.append(hub.latest.seq)
        now["t"] += PUBLISH_EVERY_S / 4
        links[1].succeeded(now["t"], Telemetry(cell_mv=(3300,), voltage_mv=3300), None)
        p._module_polled()  # too soon: held
        now["t"] += PUBLISH_EVERY_S / 4
        p._module_polled()  # still held, and no second timer
        seqs.append(hub.latest.seq)
        assert p._publish_later is not None
        now["t"] += PUBLISH_EVERY_S
        await asyncio.sleep(PUBLISH_EVERY_S * 1.5)  # the deferred publish fires
        seqs.append(hub.latest.seq)
        assert hub.latest.module(2).is_live  # what was held went out
        now["t"] += PUBLISH_EVERY_S
        p._module_polled()  # the interval has passed: at once again
        seqs.append(hub.latest.seq)
        now["t"] += 0.01
        p._module_polled()  # held ...
        p.publish()  # ... until a cycle's end publishes, which takes it along
        seqs.append(hub.latest.seq)
        assert p._publish_later is None
        await asyncio.sleep(PUBLISH_EVERY_S * 1.5)
        seqs.append(hub.latest.seq)  # nothing more went out
        return seqs

    assert asyncio.run(scenario()) == [1, 1, 2, 3, 4, 4]


def test_a_deferred_publish_in_the_middle_of_a_module_shows_it_as_before_its_poll():
    """The interval may end while a module is half polled (its counters moved, its new
    reading not yet in): the deferred publish goes out on time, with that module's
    counters as they were when its poll began, so nothing reads it as polled."""
    import asyncio

    from gateway.model import LinkCounters
    from plugins.rs485_bms.poller.source import PUBLISH_EVERY_S

    now = {"t": T0}
    hub = Hub(clock=lambda: now["t"], wall_clock=lambda: 0.0)
    p = poller("a", [1, 2], hub)
    p.clock = lambda: now["t"]
    busy = p.links[1]

    async def scenario() -> None:
        p._module_polled()
        assert hub.latest.seq == 1
        p._module_polled()  # held: a timer is set
        p._polling = (busy, busy.counters)  # module 2's poll begins ...
        busy.count(frames_ok=1)  # ... its first answer is in, its reading not yet
        await asyncio.sleep(PUBLISH_EVERY_S * 1.5)
        assert hub.latest.seq == 2  # on time
        assert hub.latest.module(2).counters == LinkCounters()  # as before its poll
        p._polling = None
        p.publish()
        assert hub.latest.module(2).counters.frames_ok == 1

    asyncio.run(scenario())
