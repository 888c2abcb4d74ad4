"""EG4 LifePower4 (Qualtech BMS; VER 0x20, CID1 **0x4A**). Requests carry no INFO.

Units on the wire: cells mV, temperatures 0.1 K with offset 2731, current signed 10 mA
with + = charging, pack voltage **10 mV**, capacities 10 mAh, SOC/SOH in %. The
temperature count byte says 4 but 6 values follow (4 cells, environment, MOSFET), in
the 0x42 and in the 0x44 answer. P (15 in 0x42, 9 in 0x44) sits after the cycle count
and counts the fields that follow; other values are refused. Source: the EG4
LifePower4 communication protocol document and captures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from plugins.rs485_bms.protocol.layout import (
    CENTI,
    MILLI,
    Choice,
    Counted,
    Element,
    Fixed,
    Num,
    kelvin,
)

KELVIN_OFFSET = 2731
TEMP_NOT_FITTED = 0x8000
#: Temperature values beyond what the count byte says.
UNCOUNTED_TEMPS = 2

_TEMP = kelvin(KELVIN_OFFSET)


@dataclass(frozen=True, slots=True, kw_only=True)
class Eg4Pack:
    """The 0x42 answer's pack block."""

    FF_FORM: ClassVar[bool] = False

    cell_mv: tuple[int, ...]
    temp_dk: tuple[int | None, ...]  #: 0.1 K: cells 1-4, environment, MOSFET
    current_10ma: int  #: signed, + = charging
    pack_10mv: int
    remaining_10mah: int
    full_10mah: int
    cycles: int
    user_defined_p: int
    soc_pct: int
    soh_pct: int
    max_cell_mv: int
    min_cell_mv: int
    cell_delta_mv: int
    max_temp_dk: int | None
    min_temp_dk: int | None
    cum_charge_10mah: int
    cum_discharge_10mah: int
    cum_charge_wh: int
    cum_discharge_wh: int
    charge_hours: int
    discharge_hours: int
    charge_times: int
    discharge_times: int

    LAYOUT: ClassVar[tuple[Element, ...]] = (
        Counted("cell_mv", count_key="cell_count"),
        Counted("temp_dk", key="temps_c", scale=_TEMP, unknown=TEMP_NOT_FITTED,
                count_key="temp_count", extra=UNCOUNTED_TEMPS),
        Num("current_10ma", signed=True, key="current_a", scale=CENTI),
        Num("pack_10mv", key="pack_v", scale=CENTI),
        Num("remaining_10mah", key="remaining_ah", scale=CENTI),
        Num("full_10mah", key="full_ah", scale=CENTI),
        Num("cycles"),
        Num("user_defined_p", 1),
        Choice("user_defined_p", {15: (
            Num("soc_pct"),
            Num("soh_pct"),
            Num("max_cell_mv"),
            Num("min_cell_mv"),
            Num("cell_delta_mv"),
            Num("max_temp_dk", key="max_temp_c", scale=_TEMP, unknown=TEMP_NOT_FITTED),
            Num("min_temp_dk", key="min_temp_c", scale=_TEMP, unknown=TEMP_NOT_FITTED),
            Num("cum_charge_10mah", 4, key="cum_charge_ah", scale=CENTI),
            Num("cum_discharge_10mah", 4, key="cum_discharge_ah", scale=CENTI),
            Num("cum_charge_wh", 4, key="cum_charge_kwh", scale=MILLI),
            Num("cum_discharge_wh", 4, key="cum_discharge_kwh", scale=MILLI),
            Num("charge_hours", 4),
            Num("discharge_hours", 4),
            Num("charge_times", key="cum_charge_times"),
            Num("discharge_times", key="cum_discharge_times"),
        )}),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Eg4Alarm:
    """The 0x44 answer's pack block; the event and status bytes are kept raw (the
    reference material names them but does not give their bits)."""

    FF_FORM: ClassVar[bool] = False

    cell_alarm: tuple[int, ...]
    temp_alarm: tuple[int, ...]
    current_alarm: int
    pack_voltage_alarm: int
    user_defined_p: int
    balance_event: int
    voltage_event: int
    temperature_event: int
    current_event: int
    remaining_capacity_alarm: int
    fet_status: int
    system_status: int
    balance_status: int
    reserved: tuple[int]

    LAYOUT: ClassVar[tuple[Element, ...]] = (
        Counted("cell_alarm", size=1, count_key="cell_count"),
        Counted("temp_alarm", size=1, count_key="temp_count", extra=UNCOUNTED_TEMPS),
        Num("current_alarm", 1),
        Num("pack_voltage_alarm", 1),
        Num("user_defined_p", 1),
        Choice("user_defined_p", {9: (
            Num("balance_event", 1),
            Num("voltage_event", 1),
            Num("temperature_event", 2),
            Num("current_event", 1),
            Num("remaining_capacity_alarm", 1),
            Num("fet_status", 1),
            Num("system_status", 1),
            Num("balance_status", 4),
            Fixed("reserved", 1),
        )}),
    )
