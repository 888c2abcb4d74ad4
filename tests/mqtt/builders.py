"""Snapshots for the pure-core tests (no I/O, no clock but the one passed in)."""

from __future__ import annotations

import dataclasses

from gateway.bank import make_bank_aggregates
from gateway.model import (
    BankSnapshot,
    BmsStatus,
    Condition,
    Identity,
    LinkState,
    ModuleReading,
    ModuleStatus,
    Telemetry,
    TempRole,
)

WALL0 = 1_795_000_000.0
ROLES = (TempRole.CELL, TempRole.CELL, TempRole.MOSFET, TempRole.AMBIENT)


def module(address: int, *, now: float, status: ModuleStatus = ModuleStatus.OK,
           age_s: float = 1.0, voltage_mv: int | None = 52_800, stale_after_s: float = 30,
           identity: Identity | None = None, cells: tuple = (3300,) * 16) -> ModuleReading:
    seen = status is not ModuleStatus.NEVER_SEEN
    return ModuleReading(
        bus="bank1", address=address, position=address, status=status,
        link=LinkState.ONLINE if status is ModuleStatus.OK else LinkState.OFFLINE,
        updated_at=now - age_s if seen else None, stale_after_s=stale_after_s,
        identity=identity or Identity(serial=f"SN{address:04d}", model="US5000",
                                      firmware="V1.7", manufacturer="Pace"),
        telemetry=Telemetry(cell_mv=cells, temp_dc=(251, 249, 330, None), temp_roles=ROLES,
                            current_ma=-12_340, voltage_mv=voltage_mv, remaining_mah=70_000,
                            full_mah=100_000, design_mah=100_000, cycles=12,
                            soc_permille=700, soh_permille=985) if seen else None,
        bms=BmsStatus(warnings=Condition.CELL_OVER_VOLTAGE) if seen else None)


def snapshot(modules, now: float, seq: int = 1) -> BankSnapshot:
    mods = tuple(sorted(modules, key=lambda m: m.position))
    return BankSnapshot(seq=seq, created_at=now, wall_time=WALL0 + now, modules=mods,
                        bank=make_bank_aggregates(mods))


def repoll(m: ModuleReading, now: float, **changes) -> ModuleReading:
    """``m`` after a new poll at ``now`` (telemetry fields in ``changes``)."""
    t = dataclasses.replace(m.telemetry, **changes) if changes else m.telemetry
    return dataclasses.replace(m, updated_at=now, telemetry=t)
