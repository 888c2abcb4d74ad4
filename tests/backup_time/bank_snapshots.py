"""Helpers of the backup_time tests: module readings and snapshots, by hand or from the
simulator's bank physics. Imported by the tests (no fixtures here)."""

from __future__ import annotations

from gateway.bank import make_bank_aggregates
from gateway.model import (
    BankSnapshot,
    LinkState,
    ModuleReading,
    ModuleStatus,
    Telemetry,
    TempRole,
)

from plugins.rs485_bms.sim.physics import PackState, SimBank

WALL0 = 1_780_000_000.0  #: the wall clock at simulator time 0 (2026-05-28)
ROLES = (TempRole.CELL,) * 4 + (TempRole.MOSFET, TempRole.AMBIENT)


def pack(current_ma: int, *, soc: int = 800, cells: tuple[int, ...] = (3300,) * 16,
         voltage_mv: int | None = None, temp: int = 250) -> PackState:
    """A 100 Ah pack's reading at ``soc`` per mille carrying ``current_ma``."""
    return PackState(cell_mv=cells, temp_dc=(temp,) * 6, current_ma=current_ma,
                     voltage_mv=sum(cells) if voltage_mv is None else voltage_mv,
                     remaining_mah=soc * 100, full_mah=100_000, design_mah=100_000,
                     cycles=1, soc_permille=soc, soh_permille=1000, balancing=(False,) * 16)


def reading(position: int, s: PackState | None, *, t: float,
            status: ModuleStatus = ModuleStatus.OK) -> ModuleReading:
    tel = None if s is None else Telemetry(
        cell_mv=s.cell_mv, temp_dc=s.temp_dc, temp_roles=ROLES, current_ma=s.current_ma,
        voltage_mv=s.voltage_mv, remaining_mah=s.remaining_mah, full_mah=s.full_mah,
        design_mah=s.design_mah, cycles=s.cycles, soc_permille=s.soc_permille,
        soh_permille=s.soh_permille)
    return ModuleReading(bus="sim", address=position, position=position, status=status,
                         link=LinkState.ONLINE, updated_at=t, telemetry=tel)


def snapshot_of(modules: list[ModuleReading], t: float, seq: int = 1, *,
                wall0: float = WALL0) -> BankSnapshot:
    return BankSnapshot(seq=seq, created_at=t, wall_time=wall0 + t, modules=tuple(modules),
                        bank=make_bank_aggregates(modules))


def sim_snapshot(bank: SimBank, t: float, seq: int = 1, *, wall0: float = WALL0
                 ) -> BankSnapshot:
    mods = [reading(i + 1, bank.state(p.address, t), t=t) for i, p in enumerate(bank.packs)]
    return snapshot_of(mods, t, seq, wall0=wall0)
