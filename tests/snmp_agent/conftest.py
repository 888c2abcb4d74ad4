"""Fixtures of the SNMP agent tests: a synthetic but realistic bank, and running agents.

The bank: two RS485 buses, twelve modules of 16 cells and 6 temperature sensors;
module 5 is stale, module 9 offline, module 12 never seen; several modules discharge
(negative current); two alarms are active. The RS485 poller is not involved: the
fixture feeds the hub directly, as the poller would.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import os
import shutil
import subprocess
import threading
import time
import types
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from gateway.hub import Hub
from gateway.model import (
    Alarm,
    BackupEstimate,
    BankSnapshot,
    BankState,
    DischargeRecord,
    Location,
    ModuleImbalance,
    BmsStatus,
    BusStatus,
    Condition,
    Fault,
    Identity,
    LinkCounters,
    LinkState,
    ModuleReading,
    ModuleStatus,
    RawFlag,
    Severity,
    State,
    Telemetry,
    TempRole,
)
from plugins.charge_limits.processor import ChargeLimitsProcessor
from plugins.charge_limits.settings import ChargeLimitsSettings

REPO = Path(__file__).resolve().parents[2]
MIBS = REPO / "mibs"
T0 = 1000.0  #: the fake monotonic clock's start
WALL0 = 1_795_000_000.0  #: a fixed wall clock (2026-11-19T...Z)
V3_USER = "nms"
V3_AUTH = "auth-pass-123"
V3_PRIV = "priv-pass-456"
COMMUNITY = "s3cret-ro"

ROLES = (TempRole.CELL, TempRole.CELL, TempRole.CELL, TempRole.CELL, TempRole.MOSFET,
         TempRole.AMBIENT)


def make_module(position: int, bus: str, address: int, *, status: ModuleStatus,
                now: float) -> ModuleReading:
    """One module with deterministic, position-dependent values."""
    if status is ModuleStatus.NEVER_SEEN:
        return ModuleReading(bus=bus, address=address, position=position, status=status,
                             link=LinkState.NEVER_SEEN,
                             counters=LinkCounters(timeouts=40 + position))
    cells = tuple(3280 + position * 3 + (i * 7) % 23 for i in range(16))
    if position == 3:
        cells = cells[:7] + (None,) + cells[8:]  # one unreadable cell: absent, never 0
    temps = tuple(215 + position * 4 + i * 3 for i in range(6))
    if position == 2:
        temps = (-85,) + temps[1:]  # below zero: the sign must survive
    current = (-1000 * position - 375) if position % 2 else (1500 * position + 20)
    age = {ModuleStatus.OK: 2.0, ModuleStatus.STALE: 45.0, ModuleStatus.OFFLINE: 300.0}[status]
    link = {ModuleStatus.OK: LinkState.ONLINE, ModuleStatus.STALE: LinkState.SUSPECT,
            ModuleStatus.OFFLINE: LinkState.OFFLINE}[status]
    return ModuleReading(
        bus=bus, address=address, position=position, status=status, link=link,
        updated_at=now - age,
        identity=Identity(serial=f"PACE{position:04d}", pack_serial=f"PK-{position:03d}",
                          model="LFP48-100", firmware="V2.5",
                          manufacturer="Pace" if position != 4 else None),
        telemetry=Telemetry(
            cell_mv=cells, temp_dc=temps, temp_roles=ROLES, current_ma=current,
            voltage_mv=sum(c for c in cells if c is not None) + (3300 if position == 3 else 0),
            remaining_mah=80_000 + position * 1000, full_mah=98_000 + position * 100,
            design_mah=100_000, cycles=120 + position, soc_permille=800 + position,
            soh_permille=980 - position),
        bms=BmsStatus(
            warnings=Condition.CELL_OVER_VOLTAGE | Condition.LOW_CAPACITY
            if position == 1 else Condition.NONE,
            protections=Condition.CHARGE_OVER_CURRENT if position == 6 else Condition.NONE,
            faults=Fault.SAMPLING_IC | Fault.REVERSE_CONNECTION if position == 7 else Fault.NONE,
            states=State.CHARGE_FET_ON | State.DISCHARGE_FET_ON
            | (State.DISCHARGING if current < 0 else State.CHARGING),
            balancing=tuple(i in (2, 9) for i in range(16)) if position != 8 else None,
            unclassified=(RawFlag(field="alarm_state", bit=5),) if position == 10 else ()),
        counters=LinkCounters(frames_ok=1000 + position, timeouts=position,
                              checksum_errors=position % 3, format_errors=1, rtn_errors=0,
                              wrong_address=0, no_data=0, garbage_bytes=2 * position),
    )


def make_modules(now: float) -> list[ModuleReading]:
    status = {5: ModuleStatus.STALE, 9: ModuleStatus.OFFLINE, 12: ModuleStatus.NEVER_SEEN}
    out = []
    for pos in range(1, 13):
        bus, address = ("bank1", pos) if pos <= 8 else ("bank2", pos - 8)
        out.append(make_module(pos, bus, address, status=status.get(pos, ModuleStatus.OK),
                               now=now))
    return out


def make_buses(now: float) -> list[BusStatus]:
    return [
        BusStatus(name="bank1", port="/dev/ttyUSB0", connected=True, last_cycle_ms=1840,
                  last_cycle_at=now - 1.5, cycles=321, reconnects=1,
                  counters=LinkCounters(frames_ok=5000, timeouts=12, checksum_errors=3,
                                        format_errors=2, rtn_errors=1, wrong_address=1,
                                        no_data=4, garbage_bytes=77)),
        BusStatus(name="bank2", port="socket://10.0.0.5:4001", connected=True,
                  last_cycle_ms=2210, last_cycle_at=now - 3.25, cycles=320, reconnects=0,
                  counters=LinkCounters(frames_ok=2 * 2**31 + 5, timeouts=400)),
    ]


ALARMS = (
    Alarm(seq=7, kind="cell_voltage_high", severity=Severity.MAJOR, position=1, sub_index=4,
          value=3651, threshold=3650, raised_at=T0 - 20.0, raised_wall_time=WALL0 - 20.0,
          text="module 1 cell 4 voltage 3.651 V above 3.650 V"),
    Alarm(seq=11, kind="module_offline", severity=Severity.CRITICAL, position=9, sub_index=0,
          value=None, threshold=None, raised_at=T0 - 300.0, raised_wall_time=WALL0 - 300.0,
          text="module 9 (bank2 address 1) stopped answering " + "x" * 40),
)


class AlarmInjector:
    """A hub processor that publishes a fixed set of active alarms (as the alarm rules
    will), so the alarm table is fed through the real hub path."""

    def __init__(self, alarms: Sequence[Alarm], last_seq: int) -> None:
        self.alarms = tuple(alarms)
        self.last_seq = last_seq

    def process(self, snapshot: BankSnapshot, now: float):
        return dataclasses.replace(snapshot, alarms=self.alarms,
                                   alarm_last_seq=self.last_seq), ()


#: backup_time figures for the walk tests. Real estimates carry minutes to EOD only while
#: discharging and minutes to full only while charging; this one carries both so that a
#: single walk covers every bmsBackup object.
BACKUP = BackupEstimate(
    state=BankState.DISCHARGING, on_battery_since=T0 - 600,
    on_battery_since_wall_time=WALL0 - 600, seconds_on_battery=600,
    discharge_current_ma=40_000, seconds_to_eod=7 * 3600 + 59, limited_by="capacity",
    seconds_to_full=5400, record_last=4,
    records=(DischargeRecord(
        number=4, started_wall_time=WALL0 - 90_000, ended_wall_time=WALL0 - 86_400,
        duration_s=3600, delivered_mah=40_000, delivered_wh=2080, soc_start_permille=980,
        soc_end_permille=930, voltage_min_mv=51_200, cell_min_mv=3180,
        cell_min_at=Location(position=2, index=7), temp_max_dc=312, eod_reached=False),),
    imbalance=(ModuleImbalance(position=1, imbalance_mv=12, today_mean_mv=11,
                               baseline_mv=9, rise_mv=2, days=6),))


class BackupInjector:
    def process(self, snapshot: BankSnapshot, now: float):
        return dataclasses.replace(snapshot, backup=BACKUP), ()


class FakeClock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def make_hub(clock: FakeClock) -> Hub:
    hub = Hub(clock=clock, wall_clock=lambda: WALL0 + (clock.now - T0))
    hub.add_processor(ChargeLimitsProcessor(ChargeLimitsSettings(rectifier_charge_a=200)))
    hub.add_processor(AlarmInjector(ALARMS, last_seq=13))
    hub.add_processor(BackupInjector())
    hub.update("rs485_bms", modules=make_modules(clock.now), buses=make_buses(clock.now))
    return hub


@pytest.fixture(scope="session")
def bank() -> types.SimpleNamespace:
    """The bank's builders and constants, for test modules (conftest is not importable)."""
    return types.SimpleNamespace(
        T0=T0, WALL0=WALL0, ALARMS=ALARMS, BACKUP=BACKUP, MIBS=MIBS, COMMUNITY=COMMUNITY, V3_USER=V3_USER,
        V3_AUTH=V3_AUTH, V3_PRIV=V3_PRIV, make_module=make_module, make_modules=make_modules,
        make_buses=make_buses, make_hub=make_hub, FakeClock=FakeClock, v2c_args=v2c_args,
        v3_args=v3_args, RunningAgent=RunningAgent)


@pytest.fixture
def bank_clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def bank_hub(bank_clock: FakeClock) -> Hub:
    return make_hub(bank_clock)


@pytest.fixture
def bank_snapshot(bank_hub: Hub) -> BankSnapshot:
    snap = bank_hub.latest
    assert snap is not None
    return snap


# ------------------------------------------------------------- running agents -------


class RunningAgent:
    """An agent running on its own event loop in a thread, bound to 127.0.0.1:<free>."""

    def __init__(self, settings: dict, *, state_dir: Path | None = None) -> None:
        from plugins.snmp_agent.agent import SnmpAgent
        from plugins.snmp_agent.settings import SnmpAgentSettings

        self.clock = FakeClock(T0)
        self.hub = make_hub(self.clock)
        self.settings = SnmpAgentSettings.model_validate(
            {"listen_address": "127.0.0.1", "port": 0, **settings})
        self.agent = SnmpAgent(self.settings, self.hub, clock=self.clock,
                               wall_clock=lambda: WALL0, state_dir=state_dir,
                               gateway_name="site-42-gw", software_version="0.1.0")
        self.loop = asyncio.new_event_loop()
        self._task: asyncio.Task | None = None
        self._thread = threading.Thread(target=self._run, name="snmp-agent", daemon=True)
        self._started = threading.Event()
        self.error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def main() -> None:
            self._task = asyncio.current_task()
            waiter = asyncio.ensure_future(self.agent.ready.wait())
            runner = asyncio.ensure_future(self.agent.run())
            done, _ = await asyncio.wait({waiter, runner}, return_when=asyncio.FIRST_COMPLETED)
            if runner in done:  # failed to start: report it before signalling
                waiter.cancel()
                self.error = runner.exception() or RuntimeError("agent stopped at start")
                self._started.set()
                return
            self._started.set()
            await runner

        try:
            self.loop.run_until_complete(main())
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # reported by start()
            self.error = exc
            self._started.set()
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def start(self) -> RunningAgent:
        self._thread.start()
        assert self._started.wait(20), "agent did not start"
        if self.error is not None:
            raise self.error
        return self

    @property
    def port(self) -> int:
        assert self.agent.address is not None
        return self.agent.address[1]

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def call(self, fn):
        """Run ``fn()`` on the agent's event loop and return its result."""
        result: concurrent.futures.Future = concurrent.futures.Future()

        def job() -> None:
            try:
                result.set_result(fn())
            except BaseException as exc:
                result.set_exception(exc)
        self.loop.call_soon_threadsafe(job)
        return result.result(10)

    def publish(self, modules, buses) -> None:
        """Publish a snapshot and wait until the agent serves it: the agent's table task
        makes the new table in slices while requests are answered from the old one
        (agent.py, _keep_table), so a request sent at once may still see the last."""
        seq = self.call(lambda: self.hub.update("rs485_bms", modules=modules,
                                                buses=buses).seq)
        deadline = time.monotonic() + 10
        while (self.call(lambda: self.agent._table_key) or (-1,))[0] < seq:
            assert time.monotonic() < deadline, "the agent never served the new snapshot"
            time.sleep(0.002)

    def stop(self) -> None:
        if self._thread.is_alive() and self._task is not None:
            self.loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(10)
        assert not self._thread.is_alive(), "agent did not stop"


@pytest.fixture(scope="session")
def v2c_agent() -> Iterator[RunningAgent]:
    """A v2c-only agent (no pysnmp loaded), community ``COMMUNITY``."""
    agent = RunningAgent({"v2c": {"community": COMMUNITY},
                          "system": {"location": "Shelter 3, rack B", "contact": "noc@example.net"}
                          }).start()
    yield agent
    agent.stop()


@pytest.fixture(scope="session")
def v3_agent(tmp_path_factory) -> Iterator[RunningAgent]:
    """An agent with v2c and an SNMPv3 authPriv user, engine state in a temp dir."""
    agent = RunningAgent(
        {"v2c": {"community": COMMUNITY},
         "v3_users": [{"name": V3_USER, "auth_key": V3_AUTH, "priv_key": V3_PRIV}]},
        state_dir=tmp_path_factory.mktemp("snmp-state")).start()
    yield agent
    agent.stop()


# ------------------------------------------------------------- net-snmp tools -------


@pytest.fixture(scope="session")
def snmp_env(tmp_path_factory) -> dict[str, str]:
    """Environment for the net-snmp tools: no user or system config, MIBs from mibs/."""
    home = tmp_path_factory.mktemp("netsnmp")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MIB", "SNMP"))}
    env.update(HOME=str(home), SNMPCONFPATH=str(home), SNMP_PERSISTENT_DIR=str(home))
    return env


@pytest.fixture(scope="session")
def snmp(snmp_env):
    """Run a net-snmp tool: ``snmp("snmpget", *args)`` -> CompletedProcess (text)."""
    def run(tool: str, *args: str, timeout: float = 20, check: bool = True
            ) -> subprocess.CompletedProcess:
        exe = shutil.which(tool)
        if exe is None:
            pytest.fail(f"{tool} is not installed: 'make test' installs the Debian packages")
        proc = subprocess.run([exe, *args], capture_output=True, text=True, env=snmp_env,
                              timeout=timeout)
        if check and proc.returncode != 0:
            pytest.fail(f"{tool} {' '.join(args)} failed ({proc.returncode}):\n"
                        f"{proc.stdout}\n{proc.stderr}")
        return proc
    return run


def v2c_args(agent: RunningAgent, community: str = COMMUNITY, *, timeout: float = 2,
             retries: int = 1) -> list[str]:
    """Options and agent address for a v2c net-snmp command (OIDs follow)."""
    return ["-v2c", "-c", community, "-t", str(timeout), "-r", str(retries), agent.target]


def v3_args(agent: RunningAgent, *, auth: str = V3_AUTH, priv: str | None = V3_PRIV,
            user: str = V3_USER, level: str = "authPriv", timeout: float = 2,
            retries: int = 1, extra: Sequence[str] = (), auth_protocol: str = "SHA-256",
            priv_protocol: str = "AES") -> list[str]:
    """Options and agent address for an SNMPv3 net-snmp command (OIDs follow); the
    protocols in net-snmp's spelling."""
    privacy = ["-x", priv_protocol, "-X", priv] if priv is not None else []
    return ["-v3", "-l", level, "-u", user, "-a", auth_protocol, "-A", auth, *privacy,
            "-t", str(timeout), "-r", str(retries), *extra, agent.target]
