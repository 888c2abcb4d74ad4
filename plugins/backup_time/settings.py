"""Configuration of the ``backup_time`` plugin (the ``backup_time:`` YAML section).

The defaults suit a 48 V bank of 100 Ah LiFePO4 modules in parallel; the EOD voltage is
the module manual's power-supply table (end of discharge 40.5 V; the inverter cuts off at
40.3 V, the low-voltage alarm is at 42.0 V). docs/backup_time.md explains each key.
"""

from __future__ import annotations

import pydantic

from gateway.config import Section


class BackupTimeSettings(Section):
    """The ``backup_time:`` section."""

    dead_band_a: float = pydantic.Field(
        2.0, gt=0, le=1000, description="bank current within +-this is idle (sensor offsets "
        "of the modules add up); at or below -this the bank discharges")
    floating_below_a: float = pydantic.Field(
        10.0, gt=0, le=10_000, description="a charge current from the dead band up to this "
        "is floating (a rectifier holding a full bank); above it the bank charges")
    debounce_s: float = pydantic.Field(
        10.0, ge=0, le=3600, description="a new bank state must hold this long, without "
        "a break, before it is taken (its start time is when it began)")
    smoothing_window_s: float = pydantic.Field(
        300.0, ge=1, le=86_400, description="the bank current behind the estimates is its "
        "time-weighted mean over this window (within the present state)")
    settle_s: float = pydantic.Field(
        60.0, ge=0, le=3600, description="the voltage trend ignores the first seconds of a "
        "discharge (the step of the IR drop when the load moves to the bank)")
    voltage_trend_min_mv_per_min: float = pydantic.Field(
        30.0, gt=0, le=100_000, description="the voltage path bounds the estimate only "
        "while the bank voltage falls faster than this (LFP is flat in the middle)")
    eod_v: float = pydantic.Field(
        40.5, gt=0, le=1000, description="end-of-discharge bank voltage (the manual's "
        "power-supply table: 40.5 V)")
    module_max_discharge_a: float | None = pydantic.Field(
        100.0, gt=0, le=100_000, description="the most one module delivers before its "
        "over-current protection trips (1 C of a 100 Ah module); null = no limit")
    records_kept: int = pydantic.Field(
        20, ge=1, le=1000, description="discharge records kept (the newest)")
    trend_days: int = pydantic.Field(
        14, ge=2, le=366, description="days of cell-imbalance history kept per module")
    save_interval_s: float = pydantic.Field(
        300.0, ge=1, le=86_400, description="the imbalance trend is saved at most this "
        "often; records and on-battery changes are saved at once")

    @pydantic.model_validator(mode="after")
    def _bands(self) -> BackupTimeSettings:
        if not self.floating_below_a > self.dead_band_a:
            raise ValueError(f"floating_below_a ({self.floating_below_a:g}) must be above "
                             f"dead_band_a ({self.dead_band_a:g})")
        return self

    @property
    def dead_band_ma(self) -> int:
        return round(self.dead_band_a * 1000)

    @property
    def floating_below_ma(self) -> int:
        return round(self.floating_below_a * 1000)

    @property
    def eod_mv(self) -> int:
        return round(self.eod_v * 1000)

    @property
    def module_limit_ma(self) -> float | None:
        a = self.module_max_discharge_a
        return None if a is None else a * 1000

    @property
    def min_slope_mv_per_s(self) -> float:
        return self.voltage_trend_min_mv_per_min / 60
