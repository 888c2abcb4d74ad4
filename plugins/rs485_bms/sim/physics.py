"""Battery physics for the simulator: one bank of packs in parallel, deterministic in time.

The model (docs/polling.md, "The simulator's bank model"):

* **Bank current.** While the mains is on, a rectifier feeds the site load and charges
  the bank: constant current (0.1 C per pack) until the fullest pack reaches 95 % SOC,
  then tapering linearly to a float trickle (0.4 A per pack) at 100 %. During a
  scenario's ``mains_failure`` the rectifier stops and the site load (``load_a``) draws
  from the bank.
* **Sharing.** Packs in parallel share the bank current in proportion to their
  conductance (1 / internal resistance), so they all carry the bank's sign. A pack
  whose SOC reached 0 % is cut off by its low-voltage protection (0 A) and a full one
  takes no more charge; the others carry their share.
* **SOC** integrates each pack's current against its full capacity (1 s steps from the
  simulator's start; remaining capacity = SOC x full capacity).
* **Voltages.** Each cell is the LFP open-circuit voltage of its pack's SOC plus a fixed
  per-cell offset plus the IR drop (pack current x per-cell resistance); the pack
  voltage is the sum of its cells.
* **Temperatures** rise with the pack's current above its ambient.

``SimBank.state(address, t)`` is a pure function of ``t``: the integration runs from
0 s in fixed steps and keeps checkpoints, so any order of questions gets the same
answers. All values are fixed-point integers in the units of :mod:`gateway.model`.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

#: LFP open-circuit voltage (mV per cell) by SOC (per mille): a steep knee below 10 %,
#: flat between 20 and 90 %, rising again at the top. 0 % is 2.5 V per cell (40.0 V per
#: 16-cell pack), so a pack under load passes the bank's 40.5 V EOD just before empty.
_OCV = ((0, 2500), (20, 2900), (50, 3050), (100, 3150), (200, 3230), (500, 3290),
        (900, 3330), (970, 3380), (1000, 3450))

STEP_S = 1.0  #: integration step
CHECKPOINT_S = 60.0  #: a checkpoint of every pack's SOC each minute
CHECKPOINTS_KEPT = 1440  #: a day of them; older questions integrate again from 0 s
CHARGE_C = 0.1  #: the rectifier's charge current limit, per pack, in C
TAPER_FROM = 950  #: per mille: above this the charge current tapers
FLOAT_MA = 400  #: the float trickle per pack at 100 %


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


@dataclass(frozen=True, slots=True)
class Outage:
    """A mains failure: from ``at_s`` to ``until_s`` (None: to the end) the rectifier is
    off and the site load ``load_ma`` draws from the bank."""

    at_s: float
    until_s: float | None
    load_ma: float

    def active(self, t: float) -> bool:
        return t >= self.at_s and (self.until_s is None or t < self.until_s)


class SimPack:
    """One simulated module: its fixed properties and how it reports a moment."""

    def __init__(self, address: int, *, seed: int = 1, cells: int = 16,
                 design_mah: int = 100_000) -> None:
        rnd = random.Random(seed * 1000 + address)
        self.address = address
        self.cells = cells
        self.design_mah = design_mah
        self.full_mah = round(design_mah * rnd.uniform(0.93, 1.03) / 10) * 10  # 10 mAh steps
        self.soc0 = rnd.uniform(550, 850)  # per mille at t = 0
        rnd.uniform(0, 2 * math.pi)  # (draws kept so the other properties stay as they were)
        rnd.uniform(12_000, 22_000)
        self.cell_offset = tuple(rnd.randint(-6, 6) for _ in range(cells))
        self.ambient_dc = rnd.randint(215, 265)
        self.cycles0 = rnd.randint(20, 400)
        self.ir_mohm = rnd.uniform(0.8, 1.4)  # per cell

    @property
    def resistance_mohm(self) -> float:
        return self.ir_mohm * self.cells

    def report(self, soc: float, current_ma: float, discharged_mah: float, *,
               cell_override: dict[int, int] | None = None) -> PackState:
        """What the pack reports at ``soc`` (per mille) carrying ``current_ma``."""
        base = ocv_mv(soc) + current_ma / 1000 * self.ir_mohm
        cells = [round(base + off) for off in self.cell_offset]
        for cell, mv in (cell_override or {}).items():
            if 1 <= cell <= self.cells:
                cells[cell - 1] = mv
        heat = round(abs(current_ma) / 1000 * 0.4)
        temps = tuple(self.ambient_dc + 20 + heat + k for k in range(4)) + (
            self.ambient_dc + 40 + 2 * heat, self.ambient_dc)
        top = max(cells)
        balancing = tuple(current_ma > 0 and c >= top - 2 and soc > 900 for c in cells)
        return PackState(
            cell_mv=tuple(cells),
            temp_dc=temps,
            current_ma=round(current_ma / 10) * 10,  # the wire carries 10 mA steps
            voltage_mv=sum(cells),
            remaining_mah=round(self.full_mah * soc / 1000 / 10) * 10,
            full_mah=self.full_mah,
            design_mah=self.design_mah,
            cycles=self.cycles0 + int(discharged_mah // self.full_mah),
            soc_permille=round(soc),
            soh_permille=round(1000 * self.full_mah / self.design_mah),
            balancing=balancing,
        )

    def state(self, t: float, *, cell_override: dict[int, int] | None = None) -> PackState:
        """The pack alone on the rectifier (a bank of one, mains on)."""
        return SimBank([self]).state(self.address, t, cell_override=cell_override)


@dataclass(frozen=True, slots=True)
class _Point:
    t: float
    soc: tuple[float, ...]
    discharged_mah: tuple[float, ...]


class SimBank:
    """Packs in parallel on one bus, a rectifier and a site load."""

    def __init__(self, packs: Sequence[SimPack], *, outages: Sequence[Outage] = ()) -> None:
        self.packs = list(packs)
        self.index = {p.address: i for i, p in enumerate(self.packs)}
        self.outages = tuple(outages)
        self.conductance = tuple(1 / p.resistance_mohm for p in self.packs)
        self._origin = _Point(0.0, tuple(p.soc0 for p in self.packs),
                              tuple(0.0 for _ in self.packs))
        self._checkpoints: list[_Point] = [self._origin]
        self._cursor = self._origin  #: the newest whole step reached
        self._memo: tuple[float, _Point] | None = None

    # ------------------------------------------------------------------ the model ---
    def mains_on(self, t: float) -> bool:
        return not any(o.active(t) for o in self.outages)

    def bank_current_ma(self, t: float, soc: Sequence[float]) -> float:
        """+ = charging. Mains on: the rectifier's charge current; off: -load."""
        for o in self.outages:
            if o.active(t):
                return -o.load_ma
        limit = sum(CHARGE_C * p.full_mah for p in self.packs)  # mA: 0.1 C of mAh
        top = max(soc) if soc else 0.0
        if top <= TAPER_FROM:
            return limit
        trickle = FLOAT_MA * len(self.packs)
        frac = max(0.0, (1000 - top) / (1000 - TAPER_FROM))
        return trickle + (limit - trickle) * frac

    def currents_ma(self, t: float, soc: Sequence[float]) -> tuple[float, ...]:
        """Each pack's share of the bank current: by conductance over the packs that
        conduct in that direction (not cut off empty when discharging, not full when
        charging)."""
        bank = self.bank_current_ma(t, soc)
        if bank < 0:
            conducting = [s > 0 for s in soc]
        else:
            conducting = [s < 1000 for s in soc]
        if not any(conducting):
            # every pack cut off: a discharge stops; the float trickle still flows
            if bank < 0:
                return tuple(0.0 for _ in soc)
            conducting = [True for _ in soc]
        g = sum(c for c, on in zip(self.conductance, conducting) if on)
        return tuple(bank * c / g if on else 0.0 for c, on in zip(self.conductance, conducting))

    def _advance(self, p: _Point, dt: float) -> _Point:
        currents = self.currents_ma(p.t, p.soc)
        soc = tuple(min(1000.0, max(0.0, s + i * dt / 3600 / pk.full_mah * 1000))
                    for s, i, pk in zip(p.soc, currents, self.packs))
        out = tuple(d + max(0.0, -i) * dt / 3600
                    for d, i in zip(p.discharged_mah, currents))
        return _Point(p.t + dt, soc, out)

    def _point(self, t: float) -> _Point:
        """Every pack's SOC at ``t``: whole steps along the one chain from 0 s (from the
        newest checkpoint or the last whole step reached before ``t``), then a part step."""
        t = max(0.0, t)
        if self._memo is not None and self._memo[0] == t:
            return self._memo[1]
        cps = self._checkpoints
        p = cps[max(0, bisect.bisect_right([c.t for c in cps], t) - 1)]
        if self._cursor.t <= t and self._cursor.t > p.t:
            p = self._cursor
        while p.t + STEP_S <= t:
            p = self._advance(p, STEP_S)
            p = _Point(round(p.t, 6), p.soc, p.discharged_mah)
            if p.t % CHECKPOINT_S == 0 and p.t > cps[-1].t:
                cps.append(p)
                if len(cps) > CHECKPOINTS_KEPT:
                    del cps[1]  # the origin stays
        if p.t > self._cursor.t:
            self._cursor = p
        q = self._advance(p, t - p.t) if t > p.t else p
        self._memo = (t, q)
        return q

    # ------------------------------------------------------------------ answers -----
    def soc(self, t: float) -> tuple[float, ...]:
        return self._point(t).soc

    def state(self, address: int, t: float, *,
              cell_override: dict[int, int] | None = None) -> PackState:
        p = self._point(t)
        i = self.index[address]
        current = self.currents_ma(t, p.soc)[i]
        return self.packs[i].report(p.soc[i], current, p.discharged_mah[i],
                                    cell_override=cell_override)
