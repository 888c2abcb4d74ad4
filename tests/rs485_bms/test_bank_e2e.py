"""The simulator and the poller across real byte streams (TCP socket and pty), one test
per injected fault: no crash, the right module state and counters, nothing stale served
as live, and recovery when the fault ends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Callable

import pytest

from gateway.hub import Hub
from gateway.model import (
    BankSnapshot,
    BusPolling,
    Condition,
    Fault,
    LinkState,
    ModuleStatus,
)

from plugins.rs485_bms.poller.link import ModuleLink
from plugins.rs485_bms.sim.scenario import Scenario
from plugins.rs485_bms.settings import BusSettings
from plugins.rs485_bms.sim.simulator import BankSimulator
from plugins.rs485_bms.poller.source import BusPoller

pytestmark = pytest.mark.e2e

BAUD = 38400  # fast enough for short tests, still paced at wire speed
#: answers start about 5 ms after a request (65 ms with the delay fault); 1 s leaves room
#: for a loaded CI box to stall this process without a healthy module timing out. Tests
#: that wait for many timeouts (silent probes, late or misaddressed answers) use:
SHORT_TIMEOUT_MS = 300


class Bank:
    """A simulator and a poller connected by a real byte stream, in one event loop."""

    def __init__(self, *, steps=(), packs=3, family="pace_v25", mode="per_address",
                 stale_after_s=5.0, sim_addresses=None, **bus) -> None:
        sim_addresses = sim_addresses or list(range(1, packs + 1))
        self.sim = BankSimulator(family=family, addresses=sim_addresses, baud=BAUD,
                                 turnaround_ms=0, scenario=Scenario.model_validate(
                                     {"steps": list(steps)}))
        self.hub = Hub()
        self.settings = dict(name="t", family=family, baud=BAUD, mode=mode,
                             addresses=sim_addresses, timeout_ms=1000,
                             byte_timeout_ms=50, gap_ms=0, retries=0, poll_interval_s=0.05,
                             offline_after=2, offline_retry_max_s=0.2, reconnect_max_s=0.2)
        self.settings.update(bus)
        self.stale_after_s = stale_after_s
        self.snapshots: list[BankSnapshot] = []

    def make_poller(self, url: str) -> BusPoller:
        bus = BusSettings(port=url, **self.settings)
        links = [ModuleLink(bus="t", address=a, position=i + 1, present=not bus.discovering,
                            offline_after=bus.offline_after, retry_base_s=0.05,
                            retry_max_s=bus.offline_retry_max_s)
                 for i, a in enumerate(bus.effective_addresses)]
        self.poller = BusPoller(bus, links, hub=self.hub, stale_after_s=self.stale_after_s)
        return self.poller

    async def until(self, predicate: Callable[[BankSnapshot], bool], timeout_s: float = 15
                    ) -> BankSnapshot:
        """Collect snapshots until one satisfies ``predicate`` (a backstop, not a timing
        assertion: every condition here is reached well before it)."""
        watch = self.hub.watch()
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                snap = await asyncio.wait_for(watch.next(), max(0.01, deadline - time.monotonic()))
                self.snapshots.append(snap)
                if predicate(snap):
                    return snap
        finally:
            watch.close()

    @contextlib.asynccontextmanager
    async def running(self, transport: str = "tcp"):
        tasks = []
        if transport == "tcp":
            ready = asyncio.get_running_loop().create_future()

            async def listening(port: int) -> None:
                ready.set_result(port)
            tasks.append(asyncio.create_task(self.sim.serve_tcp("127.0.0.1", 0,
                                                                on_listening=listening)))
            url = f"socket://127.0.0.1:{await ready}"
        else:
            # the poller opens the link, as a user is told to: it survives transport_drop
            tmp = tempfile.TemporaryDirectory()
            self.pty_link = os.path.join(tmp.name, "ttyBMS")
            self.pty_paths: list[str] = []
            ready = asyncio.get_running_loop().create_future()

            async def pty_ready(path: str) -> None:
                self.pty_paths.append(path)
                if not ready.done():
                    ready.set_result(path)
            tasks.append(asyncio.create_task(self.sim.serve_pty(on_ready=pty_ready,
                                                                link=self.pty_link)))
            await ready
            url = self.pty_link
        tasks.append(asyncio.create_task(self.make_poller(url).run()))
        try:
            yield self
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if transport != "tcp":
                tmp.cleanup()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def statuses(snap: BankSnapshot) -> list[ModuleStatus]:
    return [m.status for m in snap.modules]


def all_ok(snap: BankSnapshot) -> bool:
    return all(s is ModuleStatus.OK for s in statuses(snap))


def assert_matches_wire(bank: Bank, snap: BankSnapshot) -> None:
    """Served values equal what the simulated packs put on the wire: scale and sign."""
    for m in snap.modules:
        sent = bank.sim.sent[m.address]
        t = m.telemetry
        assert t.cell_mv == sent.cell_mv
        assert t.voltage_mv == sent.voltage_mv
        assert t.current_ma == sent.current_ma  # + = charging, 10 mA steps on PACE
        assert t.temp_dc == sent.temp_dc
        assert t.remaining_mah == sent.remaining_mah and t.full_mah == sent.full_mah


@pytest.mark.parametrize("transport", ["tcp", "pty"])
def test_healthy_bank_online_with_exact_values(transport):
    async def scenario():
        bank = Bank()
        async with bank.running(transport):
            snap = await bank.until(lambda s: all_ok(s) and s.buses[0].cycles >= 2
                                    and all(m.identity for m in s.modules))
            # compare with what the simulator sent last: stop the poller first
            bank.poller.publish()
            snap = bank.hub.latest
        assert_matches_wire(bank, snap)
        m1 = snap.modules[0]
        assert m1.identity.serial == bank.sim.identity(1)["serial"]
        assert m1.identity.firmware == "P16S100A-SIM-1.00"
        assert m1.counters.timeouts == 0 and m1.counters.frames_ok >= 4
        assert snap.bank.modules_online == 3 and snap.buses[0].connected
    run(scenario())


def test_auto_addresses_find_the_modules_and_place_them_by_address():
    """addresses: auto probes 1..15 once; the three packs at DIP 3, 5 and 6 are found
    (5 only on the second probe: it is silent at first), each at its address's position;
    the silent addresses count no timeouts and never appear as modules."""
    async def scenario():
        # the first probe of all 15 addresses takes about 4 s (12 silent ones at 0.3 s);
        # pack 5 is silent for 5 s, the second probe begins at 6 s
        bank = Bank(sim_addresses=[3, 5, 6], addresses="auto", discover_interval_s=6,
                    timeout_ms=SHORT_TIMEOUT_MS,
                    steps=[{"until_s": 5.0, "packs": [5], "fault": "silence"}])
        async with bank.running():
            snap = await bank.until(lambda s: [m.address for m in s.modules] == [3, 6]
                                    and all_ok(s))
            assert [m.position for m in snap.modules] == [3, 6]
            assert snap.bank.modules_configured == 2
            assert snap.buses[0].counters.timeouts == 0  # 13 silent probes
            await bank.until(lambda s: len(s.modules) == 3 and all_ok(s))
            bank.poller.publish()  # what the simulator sent last, as in the healthy test
            snap = bank.hub.latest
        assert [(m.address, m.position) for m in snap.modules] == [(3, 3), (5, 5), (6, 6)]
        assert snap.modules[1].counters.timeouts == 0  # never polled before it was found
        assert_matches_wire(bank, snap)
    run(scenario())


def test_auto_takes_a_garbled_answer_as_a_module_and_keeps_cycling_when_none_is_found():
    """A module whose answers arrive garbled is there (never seen until its data is
    good); a bus where nobody answers still completes (empty) cycles, so its status and
    cycle age stay fresh while the next probe is far away."""
    async def scenario():
        bank = Bank(sim_addresses=[4], addresses="auto", timeout_ms=SHORT_TIMEOUT_MS,
                    steps=[{"until_s": 3.0, "packs": [4], "fault": "corrupt"}])
        async with bank.running():
            snap = await bank.until(lambda s: [m.address for m in s.modules] == [4])
            assert statuses(snap) == [ModuleStatus.NEVER_SEEN]
            snap = await bank.until(all_ok)
        assert snap.modules[0].position == 4 and snap.modules[0].counters.checksum_errors >= 1

        # nobody answers, so no answer can be timed out by a stall: the shortest timeout
        bank = Bank(sim_addresses=[4], addresses="auto", timeout_ms=150,
                    steps=[{"packs": [4], "fault": "silence"}])
        async with bank.running():
            snap = await bank.until(lambda s: s.buses[0].cycles >= 3)
        assert snap.modules == () and snap.buses[0].counters.timeouts == 0
    run(scenario())


def test_master_mode_reads_the_bank_through_pack_1():
    async def scenario():
        bank = Bank(mode="master", packs=4)
        async with bank.running():
            snap = await bank.until(lambda s: all_ok(s) and s.buses[0].cycles >= 2)
        assert snap.bank.modules_online == 4
        assert [m.telemetry.cell_mv == bank.sim.sent[m.address].cell_mv
                for m in snap.modules].count(True) >= 3  # the last FF answer
    run(scenario())


def test_master_mode_a_silent_slave_goes_offline_on_its_own(caplog):
    """Issue 12: the master leaves a silent slave out (one pack less). Which block is
    whose cannot be read from the answer, so the poller asks each module at its own
    address: the silent slave goes offline on its own, the others keep updating with
    their own values, and when the slave is back the master's full answer is used."""
    caplog.set_level(logging.INFO, logger="plugins.rs485_bms.poller.source")

    async def scenario():
        bank = Bank(mode="master", packs=4, timeout_ms=SHORT_TIMEOUT_MS,
                    steps=[{"until_s": 4.0, "packs": [3], "fault": "silence"}])
        async with bank.running():
            snap = await bank.until(lambda s: s.modules[2].status is ModuleStatus.NEVER_SEEN
                                    and s.modules[2].counters.timeouts >= 2
                                    and all(statuses(s)[i] is ModuleStatus.OK
                                            for i in (0, 1, 3)))
            assert snap.modules[2].telemetry is None
            for i in (0, 1, 3):  # each module's own values, never another's block
                assert snap.modules[i].telemetry.cell_mv == bank.sim.sent[i + 1].cell_mv
            bus = snap.buses[0]
            assert bus.polling is BusPolling.MASTER and bus.master_fallbacks == 0
            assert bus.counters.format_errors == 0
            snap = await bank.until(lambda s: all_ok(s) and s.modules[2].link
                                    is LinkState.ONLINE)
            before = snap.modules[0].counters.frames_ok
            snap = await bank.until(lambda s: s.modules[0].counters.frames_ok >= before + 2)
        assert snap.bank.modules_online == 4 and snap.buses[0].polling is BusPolling.MASTER
        assert "the master reports 3 of 4 packs" in caplog.text
        assert "the master reports all 4 packs again" in caplog.text
    run(scenario())


def test_master_mode_a_silent_slave_reaches_offline_while_the_others_update():
    async def scenario():
        bank = Bank(mode="master", packs=4, timeout_ms=SHORT_TIMEOUT_MS,
                    steps=[{"at_s": 0.5, "packs": [2], "fault": "silence"}])
        async with bank.running():
            await bank.until(all_ok)
            snap = await bank.until(lambda s: s.modules[1].status is ModuleStatus.OFFLINE)
            assert [statuses(snap)[i] for i in (0, 2, 3)] == [ModuleStatus.OK] * 3
            updated = [snap.modules[i].updated_at for i in (0, 2, 3)]
            snap = await bank.until(lambda s: all(
                s.modules[i].updated_at > u for i, u in zip((0, 2, 3), updated)))
        assert snap.modules[1].status is ModuleStatus.OFFLINE
    run(scenario())


def test_master_mode_falls_back_to_one_by_one_when_the_master_is_silent(caplog):
    """The master (pack 1) is silent for several cycles: after master_fallback_after
    cycles the modules are polled at their own addresses (pack 1 offline, the others
    online), the bus status says so, and master mode returns once the master answers."""
    async def scenario():
        bank = Bank(mode="master", packs=3, timeout_ms=SHORT_TIMEOUT_MS,
                    master_fallback_after=2, master_retry_s=1,
                    steps=[{"until_s": 4.0, "packs": [1], "fault": "silence"}])
        async with bank.running():
            snap = await bank.until(lambda s: s.buses[0].polling
                                    is BusPolling.MASTER_FALLBACK
                                    and statuses(s)[1:] == [ModuleStatus.OK] * 2)
            assert snap.modules[0].status is ModuleStatus.NEVER_SEEN
            assert snap.buses[0].master_fallbacks == 1
            assert snap.buses[0].counters.timeouts >= 2
            for m in snap.modules[1:]:
                assert m.telemetry.cell_mv == bank.sim.sent[m.address].cell_mv
            snap = await bank.until(lambda s: s.buses[0].polling is BusPolling.MASTER
                                    and all_ok(s))
        assert snap.buses[0].master_fallbacks == 1
        assert ("the master (address 1) gave no usable answer for 2 cycles in a row: "
                "polling the modules one by one") in caplog.text
        assert "the master answers again: back to master mode" in caplog.text
    run(scenario())


def test_master_mode_falls_back_when_the_master_answers_garbled():
    async def scenario():
        bank = Bank(mode="master", packs=3, master_fallback_after=2,
                    steps=[{"packs": [1], "fault": "corrupt", "commands": [0x42]}])
        async with bank.running():
            snap = await bank.until(lambda s: s.buses[0].polling
                                    is BusPolling.MASTER_FALLBACK
                                    and statuses(s)[1:] == [ModuleStatus.OK] * 2)
        assert snap.modules[0].counters.checksum_errors >= 1  # its own, addressed, 0x42
    run(scenario())


def test_master_mode_all_zero_slave_has_no_data_the_others_do():
    async def scenario():
        bank = Bank(mode="master", packs=4,
                    steps=[{"until_s": 1.5, "packs": [2], "fault": "all_zero"}])
        async with bank.running():
            snap = await bank.until(lambda s: s.modules[1].counters.no_data >= 2)
            assert snap.modules[1].status is ModuleStatus.NEVER_SEEN
            assert snap.modules[1].telemetry is None
            assert [statuses(snap)[i] for i in (0, 2, 3)] == [ModuleStatus.OK] * 3
            assert snap.buses[0].counters.format_errors == 0
            snap = await bank.until(all_ok)
        assert snap.modules[1].counters.no_data >= 2
    run(scenario())


def test_master_mode_flags_of_a_slave_reach_that_module_only():
    async def scenario():
        bank = Bank(mode="master", packs=4, steps=[{
            "packs": [3], "fault": "flags",
            "flags": {"protect1": 0x01, "fault_state": 0x20, "warn2": 0x80}}])
        async with bank.running():
            snap = await bank.until(lambda s: all_ok(s) and s.buses[0].cycles >= 2)
        bms = snap.modules[2].bms
        assert Condition.CELL_OVER_VOLTAGE in bms.protections
        assert Fault.SAMPLING_IC in bms.faults
        assert Condition.LOW_CAPACITY in bms.warnings
        for i in (0, 1, 3):
            m = snap.modules[i].bms
            assert not m.protections and not m.faults and not m.warnings
        assert snap.bank.modules_alarmed == 1
    run(scenario())


def test_master_mode_faults_of_the_master_hit_the_whole_answer():
    async def scenario():
        bank = Bank(mode="master", packs=3,
                    steps=[{"until_s": 1.2, "packs": [1], "fault": "corrupt"}])
        async with bank.running():
            snap = await bank.until(lambda s: s.buses[0].counters.checksum_errors >= 2)
            assert statuses(snap) == [ModuleStatus.NEVER_SEEN] * 3
            await bank.until(all_ok)
    run(scenario())


def test_silent_pack_never_seen_then_recovers():
    async def scenario():
        bank = Bank(steps=[{"at_s": 0, "until_s": 1.5, "packs": [2], "fault": "silence"}])
        async with bank.running():
            snap = await bank.until(lambda s: s.modules[1].counters.timeouts >= 2
                                    and s.modules[0].status is ModuleStatus.OK)
            assert snap.modules[1].status is ModuleStatus.NEVER_SEEN
            assert snap.modules[1].telemetry is None
            snap = await bank.until(all_ok)
        assert snap.modules[1].link is LinkState.ONLINE
    run(scenario())


def test_pack_going_silent_is_never_served_as_live():
    async def scenario():
        bank = Bank(steps=[{"at_s": 1.0, "until_s": 3.0, "packs": [3], "fault": "silence"}],
                    stale_after_s=0.6)
        async with bank.running():
            await bank.until(all_ok)
            snap = await bank.until(lambda s: s.modules[2].status is ModuleStatus.OFFLINE)
            assert snap.modules[2].telemetry is not None  # last values kept, labelled
            await bank.until(lambda s: s.modules[2].status is ModuleStatus.OK)
        # every snapshot that served pack 3 as live had fresh data
        for s in bank.snapshots:
            m = s.modules[2]
            if m.status is ModuleStatus.OK:
                assert s.created_at - m.updated_at <= 0.6
        links = [s.modules[2].link for s in bank.snapshots]
        assert LinkState.SUSPECT in links and LinkState.OFFLINE in links
    run(scenario())


def test_delayed_answer_within_timeout_is_fine():
    async def scenario():
        bank = Bank(steps=[{"packs": [1], "fault": "delay", "delay_ms": 60}])
        async with bank.running():
            snap = await bank.until(lambda s: all_ok(s) and s.buses[0].cycles >= 2)
        assert snap.modules[0].counters.timeouts == 0
    run(scenario())


def test_late_answer_times_out_and_is_discarded_as_garbage():
    async def scenario():
        bank = Bank(timeout_ms=SHORT_TIMEOUT_MS,
                    steps=[{"until_s": 2.5, "packs": [1], "fault": "late", "delay_ms": 500}])
        async with bank.running():
            snap = await bank.until(lambda s: s.modules[0].counters.timeouts >= 2
                                    and s.buses[0].counters.garbage_bytes > 0)
            assert snap.modules[1].counters.wrong_address == 0  # late, not misaddressed
            # a late 0x42 answer is never taken for the next request's (0x44) answer
            assert snap.modules[0].counters.format_errors == 0
            assert snap.modules[0].status is ModuleStatus.NEVER_SEEN
            assert snap.modules[1].status is ModuleStatus.OK
            await bank.until(all_ok)
    run(scenario())


@pytest.mark.parametrize(("fault", "counter"), [
    ("corrupt", "checksum_errors"),
    ("truncate", "format_errors"),
    ("wrong_address", "wrong_address"),
    ("all_zero", "no_data"),
])
def test_bad_answers_are_counted_and_the_pack_recovers(fault, counter):
    async def scenario():
        # a misaddressed answer is waited past until the timeout: short ones here
        bank = Bank(timeout_ms=SHORT_TIMEOUT_MS,
                    steps=[{"until_s": 2.5, "packs": [2], "fault": fault, "commands": [0x42]}])
        async with bank.running():
            snap = await bank.until(lambda s: getattr(s.modules[1].counters, counter) >= 2)
            assert snap.modules[1].status is ModuleStatus.NEVER_SEEN
            assert all(s is ModuleStatus.OK for s in statuses(snap)[::2])
            snap = await bank.until(all_ok)
        assert getattr(snap.modules[0].counters, counter) == 0
    run(scenario())


def test_adr00_answers_of_an_rs232_console_port_are_taken_and_counted():
    """A console port answers with ADR 00 whatever the module's address: the answers pair
    with the request in flight, the module is online, and the bus counts them."""
    async def scenario():
        bank = Bank(steps=[{"packs": [2], "fault": "wrong_address", "wrong_address": 0}])
        async with bank.running():
            snap = await bank.until(lambda s: all_ok(s) and s.buses[0].cycles >= 2)
        pack2 = snap.modules[1]
        assert pack2.telemetry is not None and pack2.counters.wrong_address == 0
        assert pack2.counters.adr0_answers >= 4  # 0x42 and 0x44 of two cycles, identity
        assert snap.modules[0].counters.adr0_answers == 0
        assert snap.buses[0].counters.adr0_answers == pack2.counters.adr0_answers
    run(scenario())


def test_duplicate_address_collision_is_garbage_not_data():
    async def scenario():
        bank = Bank(steps=[{"until_s": 1.2, "packs": [2], "fault": "duplicate_address"}])
        async with bank.running():
            snap = await bank.until(
                lambda s: s.modules[1].counters.checksum_errors
                + s.modules[1].counters.format_errors >= 2)
            assert snap.modules[1].telemetry is None
            await bank.until(all_ok)
    run(scenario())


def test_bms_flags_are_decoded_in_the_manuals_words():
    async def scenario():
        bank = Bank(steps=[{"packs": [3], "fault": "flags",
                            "flags": {"protect1": 0x01, "fault_state": 0x20, "warn2": 0x80}}])
        async with bank.running():
            snap = await bank.until(lambda s: all_ok(s))
        bms = snap.modules[2].bms
        assert Condition.CELL_OVER_VOLTAGE in bms.protections
        assert Fault.SAMPLING_IC in bms.faults
        assert Condition.LOW_CAPACITY in bms.warnings
        assert not snap.modules[0].bms.protections and not snap.modules[0].bms.faults
        assert snap.bank.modules_alarmed == 1
    run(scenario())


def test_cell_ramp_is_served_as_it_moves():
    async def scenario():
        bank = Bank(steps=[{"packs": [1], "fault": "cell_ramp", "cell": 5, "from_mv": 3400,
                            "to_mv": 3700, "duration_s": 1.5}])
        async with bank.running():
            first = await bank.until(lambda s: all_ok(s))
            last = await bank.until(lambda s: s.modules[0].telemetry.cell_mv[4] == 3700)
        assert first.modules[0].telemetry.cell_mv[4] < 3700
        assert last.bank.cell_max_mv == 3700 and last.bank.cell_max_at.position == 1
        assert last.bank.cell_max_at.index == 5
    run(scenario())


@pytest.mark.parametrize("transport", ["tcp", "pty"])
def test_transport_drop_serves_stale_then_reconnects(transport):
    async def scenario():
        bank = Bank(steps=[{"at_s": 1.0, "until_s": 1.6, "fault": "transport_drop"}])
        async with bank.running(transport):
            await bank.until(all_ok)
            down = await bank.until(lambda s: not s.buses[0].connected)
            assert all(st is ModuleStatus.STALE for st in statuses(down))
            assert all(m.telemetry is not None for m in down.modules)
            up = await bank.until(lambda s: s.buses[0].connected and all_ok(s))
            assert up.buses[0].reconnects >= 1
            assert bank.sim.t() >= 1.6  # not before the drop ended
        if transport == "pty":  # a new pseudo-terminal behind the same link
            assert len(bank.pty_paths) == 2
    run(scenario())


def test_no_port_at_all_is_not_a_crash():
    async def scenario():
        bank = Bank()
        poller = bank.make_poller("socket://127.0.0.1:9")  # nothing listens on discard
        task = asyncio.create_task(poller.run())
        try:
            snap = await bank.until(lambda s: s.seq >= 2)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert not snap.buses[0].connected
        assert statuses(snap) == [ModuleStatus.NEVER_SEEN] * 3
    run(scenario())


def test_two_buses_two_families_in_one_gateway():
    from gateway.app import Gateway
    from gateway.cli import config_models
    from gateway.config import config_from_mapping
    from gateway.plugins import make_plugin_manager

    pm, _ = make_plugin_manager()
    fast = {"baud": 115200, "poll_interval_s": 0.1, "gap_ms": 0}
    cfg = config_from_mapping({"gateway": {"watchdog": False}, "rs485_bms": {"buses": [
        {"name": "a", "simulate": {"packs": 2, "turnaround_ms": 0}, **fast},
        {"name": "b", "family": "pylontech",
         "simulate": {"packs": 3, "first_address": 2, "turnaround_ms": 0}, **fast},
    ]}}, config_models(pm))
    gw = Gateway(cfg, pm)

    async def scenario():
        async def when_all_live():
            watch = gw.hub.watch()
            while True:
                snap = await watch.next()
                if snap.bank.modules_online == 5:
                    return
        await gw.run(shutdown_trigger=when_all_live, install_signal_handlers=False)
        return gw.hub.latest

    snap = run(scenario())
    assert [(m.position, m.bus, m.address) for m in snap.modules] == [
        (1, "a", 1), (2, "a", 2), (3, "b", 2), (4, "b", 3), (5, "b", 4)]
    assert [b.name for b in snap.buses] == ["a", "b"]
    # Pylontech reports current in 100 mA steps, PACE in 10 mA: both normalized to mA
    assert all(m.telemetry.current_ma % 10 == 0 for m in snap.modules)
    assert all(m.telemetry.current_ma % 100 == 0 for m in snap.modules if m.bus == "b")


def test_master_mode_never_guesses_which_block_is_which():
    """The master reports 4 packs, 3 are configured: no module gets another's data."""
    async def scenario():
        bank = Bank(mode="master", packs=4, addresses=[1, 3, 4])
        async with bank.running():
            snap = await bank.until(lambda s: s.buses[0].counters.format_errors >= 2)
        assert all(m.telemetry is None for m in snap.modules)
        assert statuses(snap) == [ModuleStatus.NEVER_SEEN] * 3
    run(scenario())


def test_a_stalled_poller_cannot_keep_values_live():
    async def scenario():
        bank = Bank(stale_after_s=0.5)
        async with bank.running():
            await bank.until(all_ok)
        # the poller is gone (as if hung); the hub's tick keeps ageing its last values
        ticker = asyncio.create_task(bank.hub.tick(period_s=0.05))
        try:
            snap = await bank.until(lambda s: all(st is ModuleStatus.STALE for st in statuses(s)))
        finally:
            ticker.cancel()
        assert snap.bank.modules_online == 0
    run(scenario())


def test_zero_poll_interval_does_not_spin_when_nothing_is_due():
    async def scenario():
        bank = Bank(steps=[{"fault": "silence"}], poll_interval_s=0, offline_retry_max_s=0.5)
        async with bank.running():
            await asyncio.sleep(1.0)
            cycles = bank.poller.state.cycles
        assert cycles < 60  # each never-seen module waits out its back-off
    run(scenario())
