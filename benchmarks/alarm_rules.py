"""CPU time of the alarm rules per snapshot, against the same rules made to forget.

The rules run inside the hub's publish, on the event loop, once per snapshot. The bank
here is what `snmp_latency.py` and `snmp_walk.py` poll: 2 buses x 15 modules of 16 cells,
every rule at its default. Each snapshot changes one module (its counters, its age and
its current move), as the poller's publishes do, 10 ms apart; the first 90 s of such
snapshots fill the duplicate-address window before anything is timed. Then the same
snapshots are evaluated twice: as the gateway does, and with the rules' per-module
memo (``rules._MEMO``) emptied before every snapshot, so that every module's
observations are made again each time, as when a snapshot changes every module.

Prints the details, then as its last line:
``alarm rules per snapshot: <ratio>x the CPU of the same rules without their memo``
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.bank import make_bank_aggregates  # noqa: E402
from gateway.model import (  # noqa: E402
    BankSnapshot,
    BmsStatus,
    BusStatus,
    LinkCounters,
    LinkState,
    ModuleReading,
    ModuleStatus,
    Telemetry,
    TempRole,
)

from plugins.alarms import rules  # noqa: E402
from plugins.alarms.settings import AlarmsSettings  # noqa: E402

BUSES, PACKS, STEP_S = 2, 15, 0.01
WARMUP, TIMED = 9000, 3000
ROLES = (TempRole.CELL,) * 4 + (TempRole.MOSFET, TempRole.AMBIENT)


def module(position: int) -> ModuleReading:
    bus = (position - 1) // PACKS
    return ModuleReading(
        bus=f"bank{bus + 1}", address=(position - 1) % PACKS + 1, position=position,
        status=ModuleStatus.OK, link=LinkState.ONLINE, updated_at=0.0,
        telemetry=Telemetry(
            cell_mv=tuple(3300 + (position + i) % 5 for i in range(16)),
            temp_dc=(250, 252, 251, 253, 330, 240), temp_roles=ROLES, current_ma=-5000,
            voltage_mv=52_850, remaining_mah=70_000, full_mah=100_000,
            design_mah=100_000, cycles=10, soc_permille=700, soh_permille=960),
        bms=BmsStatus(), counters=LinkCounters(frames_ok=100))


def snapshots(count: int, start: float, mods: dict[int, ModuleReading]):
    """``count`` snapshots from ``start``, each with the next module polled."""
    t = start
    for i in range(count):
        t += STEP_S
        p = i % len(mods) + 1
        m = mods[p]
        mods[p] = dataclasses.replace(
            m, updated_at=t,
            counters=dataclasses.replace(m.counters, frames_ok=m.counters.frames_ok + 1),
            telemetry=dataclasses.replace(m.telemetry, current_ma=-5000 - i % 7))
        modules = tuple(mods.values())
        buses = tuple(BusStatus(name=f"bank{b + 1}", port="socket://127.0.0.1:4001",
                                connected=True, last_cycle_ms=300, last_cycle_at=t - 0.1)
                      for b in range(BUSES))
        yield t, BankSnapshot(seq=i + 1, created_at=t, wall_time=1.8e9 + t, modules=modules,
                              buses=buses, bank=make_bank_aggregates(modules))


def run(state: rules.AlarmState, settings: AlarmsSettings, snaps, *, forget: bool
        ) -> tuple[float, rules.AlarmState]:
    """CPU seconds per snapshot of :func:`rules.evaluate` over ``snaps``."""
    spent = 0.0
    for now, snap in snaps:
        if forget:
            rules._MEMO.clear()
        started = time.process_time()
        state = rules.evaluate(state, snap, now, settings).state
        spent += time.process_time() - started
    return spent / len(snaps), state


def main() -> None:
    settings = AlarmsSettings()
    mods = {p: module(p) for p in range(1, BUSES * PACKS + 1)}
    _, state = run(rules.AlarmState(), settings, list(snapshots(WARMUP, 0.0, mods)),
                   forget=False)
    timed = list(snapshots(TIMED, WARMUP * STEP_S, mods))
    kept, _ = run(state, settings, timed, forget=False)
    forgot, _ = run(state, settings, timed, forget=True)
    samples = max(len(s) for s in state.samples.values())
    print(f"{BUSES}x{PACKS} modules, {TIMED} snapshots, up to {samples} counter samples "
          "per module in the duplicate-address window")
    print(f"rules as the gateway runs them: {kept * 1e3:.3f} ms CPU per snapshot")
    print(f"rules with their memo emptied : {forgot * 1e3:.3f} ms CPU per snapshot")
    print(f"alarm rules per snapshot: {kept / forgot:.2f}x the CPU of the same rules "
          "without their memo")


if __name__ == "__main__":
    main()
