"""The south component: one poller task per bus, plus in-process simulators."""

from __future__ import annotations

import asyncio
import logging

from gateway.app import GatewayContext

from plugins.rs485_bms.poller.link import ModuleLink
from plugins.rs485_bms.settings import BusSettings, Rs485Settings
from plugins.rs485_bms.poller.source import BusPoller

log = logging.getLogger(__name__)


class SimulatedPort:
    """A simulator bound to an ephemeral loopback TCP port; the poller connects to it."""

    def __init__(self, bus: BusSettings) -> None:
        from plugins.rs485_bms.sim.scenario import load_scenario
        from plugins.rs485_bms.sim.simulator import BankSimulator

        sim = bus.simulate
        assert sim is not None
        scenario = load_scenario(sim.scenario) if sim.scenario else None
        self.simulator = BankSimulator(
            family=bus.family, addresses=bus.simulated_addresses, baud=bus.baud,
            turnaround_ms=sim.turnaround_ms, seed=sim.seed, scenario=scenario)
        self.ready = asyncio.Event()
        self.port = 0

    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    async def run(self) -> None:
        async def started(port: int) -> None:
            self.port = port
            self.ready.set()
        await self.simulator.serve_tcp("127.0.0.1", 0, on_listening=started)


class Rs485Component:
    """Runs every bus of the ``rs485_bms`` section in one task group."""

    name = "rs485_bms"

    def __init__(self, context: GatewayContext, settings: Rs485Settings) -> None:
        self.settings = settings
        self.pollers: list[BusPoller] = []
        self.simulated: list[SimulatedPort] = []
        for bus in settings.buses:
            links = [
                ModuleLink(bus=bus.name, address=adr, position=pos,
                           present=not bus.discovering, offline_after=bus.offline_after,
                           retry_base_s=max(bus.poll_interval_s, 1.0),
                           retry_max_s=bus.offline_retry_max_s)
                for b, adr, pos in settings.positions() if b is bus
            ]
            port_url = None
            if bus.simulate is not None:
                sim = SimulatedPort(bus)
                self.simulated.append(sim)
                port_url = sim.url
            self.pollers.append(BusPoller(bus, links, hub=context.hub,
                                          stale_after_s=settings.stale_after_s,
                                          port_url=port_url, clock=context.clock))

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for sim in self.simulated:
                tg.create_task(sim.run(), name=f"simulator:{sim.simulator.family}")
                await sim.ready.wait()
                log.info("simulated %d-pack %s bank listening on %s",
                         len(sim.simulator.addresses), sim.simulator.family.value, sim.url())
            for poller in self.pollers:
                tg.create_task(poller.run(), name=poller.name)


def make_components(context: GatewayContext, settings: Rs485Settings) -> list[Rs485Component]:
    return [Rs485Component(context, settings)]
