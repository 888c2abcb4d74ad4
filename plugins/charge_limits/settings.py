"""Configuration of the ``charge_limits`` plugin (the ``charge_limits:`` YAML section).

The defaults are the module manual's rectifier table for a 48 V LiFePO4 bank ("Switching
power supply system lithium iron battery parameter setting": float 53.25 V, equalised
54.75 V, charge current typically 0.2 C and at most 1 C, EOD 40.5 V, inverter cut-off
40.3 V) and the thresholds the alarm defaults use for the cells and their temperatures
(docs/charge_limits.md gives the origin of each number and every formula).
"""

from __future__ import annotations

import functools

import pydantic

from gateway.config import Section


class CellTaper(Section):
    """Derating as the worst cell approaches its limit: the full rate up to ``full_v``,
    zero from ``zero_v`` on, linear between."""

    full_v: float = pydantic.Field(gt=0, le=5, description="the full rate up to here (V)")
    zero_v: float = pydantic.Field(gt=0, le=5, description="no current from here on (V)")


class TempTaper(Section):
    """Derating with temperature: the full rate at ``full_degc``, zero at ``zero_degc``
    (beyond it, farther from ``full_degc``), linear between."""

    full_degc: float = pydantic.Field(ge=-60, le=120, description="the full rate here (degC)")
    zero_degc: float = pydantic.Field(ge=-60, le=120, description="no current here (degC)")


def _cell(full_v: float, zero_v: float):
    return pydantic.Field(default_factory=lambda: CellTaper(full_v=full_v, zero_v=zero_v))


def _temp(full_degc: float, zero_degc: float):
    return pydantic.Field(
        default_factory=lambda: TempTaper(full_degc=full_degc, zero_degc=zero_degc))


class ChargeLimitsSettings(Section):
    """The ``charge_limits:`` section."""

    float_v: float = pydantic.Field(
        53.25, ge=40, le=60, description="float charge voltage: the CVL (manual: 53.25 V)")
    equalise_v: float = pydantic.Field(
        54.75, ge=40, le=60, description="equalised charge voltage (manual: 54.75 V)")
    equalise: bool = pydantic.Field(
        False, description="true: the CVL is equalise_v instead of float_v")
    eod_v: float = pydantic.Field(
        40.5, ge=30, le=60, description="end of discharge, served as is (manual: 40.5 V)")
    cutoff_v: float = pydantic.Field(
        40.3, ge=30, le=60, description="inverter cut-off voltage, served as the discharge "
        "voltage limit (manual: 40.3 V)")
    module_capacity_ah: float = pydantic.Field(
        100, gt=0, le=10_000, description="nominal capacity of one module (Ah), used where "
        "the BMS does not report a design capacity")
    capacity_from_bms: bool = pydantic.Field(
        True, description="use the design capacity a module's BMS reports when it reports "
        "one; false: always module_capacity_ah")
    charge_c_rate: float = pydantic.Field(
        0.2, gt=0, le=5, description="charge current per Ah of live capacity, in C "
        "(manual: typical 0.2 C)")
    charge_c_rate_max: float = pydantic.Field(
        1.0, gt=0, le=5, description="the highest charge rate the modules allow, in C "
        "(manual: at most 1 C); charge_c_rate may not exceed it")
    discharge_c_rate_max: float = pydantic.Field(
        1.0, gt=0, le=5, description="discharge current per Ah of live capacity, in C (the "
        "discharge_current_high alarm's 100 A for a 100 Ah module)")
    charge_max_a: float | None = pydantic.Field(
        None, gt=0, le=100_000, description="a bank-wide ceiling on the CCL (cabling, "
        "breaker, fuse), A; none = no ceiling")
    discharge_max_a: float | None = pydantic.Field(
        None, gt=0, le=100_000, description="a bank-wide ceiling on the DCL, A; none = no "
        "ceiling")
    charge_cell_taper: CellTaper = _cell(3.45, 3.60)
    discharge_cell_taper: CellTaper = _cell(3.00, 2.80)
    charge_cold_taper: TempTaper = _temp(10, 0)
    charge_hot_taper: TempTaper = _temp(45, 50)
    discharge_cold_taper: TempTaper = _temp(-10, -20)
    discharge_hot_taper: TempTaper = _temp(55, 60)
    rectifier_charge_a: float | None = pydantic.Field(
        None, gt=0, le=100_000, description="the charge current limit set on the rectifier, "
        "A; the alarms plugin's rectifier_above_ccl rule compares it with the live CCL; "
        "none = not known, no alarm")

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> ChargeLimitsSettings:
        problems = []
        if self.charge_c_rate > self.charge_c_rate_max:
            problems.append(f"charge_c_rate ({self.charge_c_rate:g} C) must not exceed "
                            f"charge_c_rate_max ({self.charge_c_rate_max:g} C)")
        if not self.cutoff_v <= self.eod_v < self.float_v <= self.equalise_v:
            problems.append("the voltages must satisfy cutoff_v <= eod_v < float_v <= "
                            f"equalise_v (now {self.cutoff_v:g} <= {self.eod_v:g} < "
                            f"{self.float_v:g} <= {self.equalise_v:g})")
        for name, high in (("charge_cell_taper", True), ("discharge_cell_taper", False)):
            t = getattr(self, name)
            if (t.zero_v <= t.full_v) if high else (t.zero_v >= t.full_v):
                problems.append(f"{name}: zero_v ({t.zero_v:g}) must be "
                                f"{'above' if high else 'below'} full_v ({t.full_v:g})")
        for name, high in (("charge_cold_taper", False), ("charge_hot_taper", True),
                           ("discharge_cold_taper", False), ("discharge_hot_taper", True)):
            t = getattr(self, name)
            if (t.zero_degc <= t.full_degc) if high else (t.zero_degc >= t.full_degc):
                problems.append(f"{name}: zero_degc ({t.zero_degc:g}) must be "
                                f"{'above' if high else 'below'} full_degc ({t.full_degc:g})")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # the settings in the model's integer units -------------------------------------
    # C-rates in parts per million of C: 1 C on 100 Ah (100 000 mAh) is 100 000 mA, so
    # mA = mAh x rate_ppm // 1 000 000, exact to the configured digits
    @functools.cached_property
    def charge_rate_ppm(self) -> int:
        return round(self.charge_c_rate * 1_000_000)

    @functools.cached_property
    def charge_rate_max_ppm(self) -> int:
        return round(self.charge_c_rate_max * 1_000_000)

    @functools.cached_property
    def discharge_rate_ppm(self) -> int:
        return round(self.discharge_c_rate_max * 1_000_000)

    @functools.cached_property
    def module_capacity_mah(self) -> int:
        return round(self.module_capacity_ah * 1000)
