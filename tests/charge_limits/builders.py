"""Synthetic banks for the charge_limits tests: 16-cell modules with 4 cell sensors, a
MOSFET and an ambient sensor (the PACE layout), 100 Ah by default."""

from __future__ import annotations

from gateway.model import (
    BankSnapshot,
    BmsStatus,
    Condition,
    ModuleReading,
    ModuleStatus,
    Telemetry,
    TempRole,
)

ROLES = (TempRole.CELL,) * 4 + (TempRole.MOSFET, TempRole.AMBIENT)
NOW = 1000.0


def module(position: int, *, status: ModuleStatus = ModuleStatus.OK, cell_mv: int = 3300,
           high: tuple[int, int] | None = None, low: tuple[int, int] | None = None,
           cell_temp_dc: int = 250, design_mah: int | None = 100_000,
           protections: Condition = Condition.NONE, telemetry: bool = True) -> ModuleReading:
    """One module; ``high``/``low`` = (cell number, mV) of one cell off the others."""
    cells = [cell_mv] * 16
    for spot in (high, low):
        if spot is not None:
            cells[spot[0] - 1] = spot[1]
    t = Telemetry(cell_mv=tuple(cells), temp_dc=(cell_temp_dc,) * 4 + (300, 240),
                  temp_roles=ROLES, voltage_mv=sum(cells), current_ma=-5000,
                  design_mah=design_mah)
    return ModuleReading(bus="bus1", address=position, position=position, status=status,
                         updated_at=NOW - 1 if status is not ModuleStatus.NEVER_SEEN else None,
                         telemetry=t if telemetry and status is not ModuleStatus.NEVER_SEEN
                         else None, bms=BmsStatus(protections=protections))


def bank(*modules: ModuleReading) -> BankSnapshot:
    return BankSnapshot(seq=1, created_at=NOW, wall_time=1.7e9, modules=tuple(modules))


def healthy(n: int = 12, *, live: int | None = None) -> BankSnapshot:
    """``n`` modules, the first ``live`` of them ok, the others offline."""
    live = n if live is None else live
    return bank(*(module(p, status=ModuleStatus.OK if p <= live else ModuleStatus.OFFLINE)
                  for p in range(1, n + 1)))
