"""Plausible battery behaviour for the simulator: a deterministic function of time.

Each simulated pack's current is a sine: charge and discharge alternate over a
30-minute period (:attr:`SimPack.PERIOD_S`), with a per-pack amplitude (12-22 A) and
phase so that no two packs read the same. SOC is the integral of the current (clamped
to 0..100 %), cell voltages follow an LFP open-circuit curve plus an IR term and a fixed
per-cell spread, temperatures rise with current. All values are fixed-point integers in
the units of :mod:`gateway.model`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

#: LFP open-circuit voltage (mV per cell) by SOC (per mille): flat between 20 and 90 %.
_OCV = ((0, 2800), (50, 3100), (100, 3200), (200, 3250), (500, 3290), (900, 3330),
        (970, 3380), (1000, 3450))


def ocv_mv(soc_permille: float) -> float:
    soc = min(1000.0, max(0.0, soc_permille))
    for (s0, v0), (s1, v1) in zip(_OCV, _OCV[1:]):
        if soc <= s1:
            return v0 + (v1 - v0) * (soc - s0) / (s1 - s0)
    return float(_OCV[-1][1])  # pragma: no cover - soc is clamped to 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class PackState:
    cell_mv: tuple[int, ...]
    temp_dc: tuple[int, ...]  #: 4 cell sensors, MOSFET, ambient (PACE order)
    current_ma: int  #: + = charging
    voltage_mv: int
    remaining_mah: int
    full_mah: int
    design_mah: int
    cycles: int
    soc_permille: int
    soh_permille: int
    balancing: tuple[bool, ...]


class SimPack:
    """One simulated module. ``state(t)`` is pure: same ``t``, same answer."""

    PERIOD_S = 1800.0  #: one charge/discharge cycle

    def __init__(self, address: int, *, seed: int = 1, cells: int = 16,
                 design_mah: int = 100_000) -> None:
        rnd = random.Random(seed * 1000 + address)
        self.address = address
        self.cells = cells
        self.design_mah = design_mah
        self.full_mah = round(design_mah * rnd.uniform(0.93, 1.03) / 10) * 10  # 10 mAh steps
        self.soc0 = rnd.uniform(550, 850)  # per mille at t = 0
        self.phase = rnd.uniform(0, 2 * math.pi)
        self.amp_ma = rnd.uniform(12_000, 22_000)
        self.cell_offset = tuple(rnd.randint(-6, 6) for _ in range(cells))
        self.ambient_dc = rnd.randint(215, 265)
        self.cycles0 = rnd.randint(20, 400)
        self.ir_mohm = rnd.uniform(0.8, 1.4)  # per cell

    def current_ma(self, t: float) -> float:
        return self.amp_ma * math.sin(2 * math.pi * t / self.PERIOD_S + self.phase)

    def soc(self, t: float) -> float:
        # integral of current_ma over [0, t], in mAh, as per mille of full capacity
        w = 2 * math.pi / self.PERIOD_S
        charge_mas = self.amp_ma / w * (math.cos(self.phase) - math.cos(w * t + self.phase))
        return min(1000.0, max(0.0, self.soc0 + charge_mas / 3600 / self.full_mah * 1000))

    def state(self, t: float, *, cell_override: dict[int, int] | None = None) -> PackState:
        i = self.current_ma(t)
        soc = self.soc(t)
        base = ocv_mv(soc) + i / 1000 * self.ir_mohm
        cells = [round(base + off) for off in self.cell_offset]
        for cell, mv in (cell_override or {}).items():
            if 1 <= cell <= self.cells:
                cells[cell - 1] = mv
        heat = round(abs(i) / 1000 * 0.4)
        temps = tuple(self.ambient_dc + 20 + heat + k for k in range(4)) + (
            self.ambient_dc + 40 + 2 * heat, self.ambient_dc)
        top = max(cells)
        balancing = tuple(i > 0 and c >= top - 2 and soc > 900 for c in cells)
        return PackState(
            cell_mv=tuple(cells),
            temp_dc=temps,
            current_ma=round(i / 10) * 10,  # the wire carries 10 mA steps
            voltage_mv=sum(cells),
            remaining_mah=round(self.full_mah * soc / 1000 / 10) * 10,
            full_mah=self.full_mah,
            design_mah=self.design_mah,
            cycles=self.cycles0 + int(t // self.PERIOD_S),
            soc_permille=round(soc),
            soh_permille=round(1000 * self.full_mah / self.design_mah),
            balancing=balancing,
        )
