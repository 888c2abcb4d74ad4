"""Seplos V2 (EMU10xx/11xx, 1101-SPxx; VER 0x20, CID1 0x46).

Units on the wire: cells mV, temperatures 0.1 K with offset 2731, current signed 10 mA
with + = charging, pack and port voltage **10 mV**, capacities 10 mAh, SOC and SOH in
**0.1 %**. The user-defined count P is 10 in every 0x42 answer and 20 in every 0x44
answer documented or captured; other values are refused rather than guessed. Sources:
Seplos BMS communication protocol V2.0, openbms-monitor, captures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from plugins.rs485_bms.protocol.layout import (
    CENTI,
    DECI,
    MILLI,
    Choice,
    Counted,
    Element,
    Fixed,
    Num,
    Text,
    kelvin,
)

KELVIN_OFFSET = 2731
TEMP_NOT_FITTED = 0x8000

_TEMP = kelvin(KELVIN_OFFSET)


@dataclass(frozen=True, slots=True, kw_only=True)
class SeplosPack:
    """The 0x42 (telemetry) answer's pack block.

    Temperatures (6 on 16S packs): cells 1-4, environment, power (MOSFET board).
    Note the order after P: full, SOC, design, cycles, SOH, port voltage. The four
    reserved words are firmware-specific (16.06: current offset and idle current in mA,
    charged and discharged energy in 0.1 kWh; others send zeros or other values).
    """

    FF_FORM: ClassVar[bool] = False

    cell_mv: tuple[int, ...]
    temp_dk: tuple[int | None, ...]  #: 0.1 K
    current_10ma: int  #: signed, + = charging
    pack_10mv: int
    remaining_10mah: int
    user_defined_p: int
    full_10mah: int
    soc_permille: int
    design_10mah: int
    cycles: int
    soh_permille: int
    port_10mv: int
    reserved: tuple[int, int, int, int]

    LAYOUT: ClassVar[tuple[Element, ...]] = (
        Counted("cell_mv", count_key="cell_count"),
        Counted("temp_dk", key="temps_c", scale=_TEMP, unknown=TEMP_NOT_FITTED,
                count_key="temp_count"),
        Num("current_10ma", signed=True, key="current_a", scale=CENTI),
        Num("pack_10mv", key="pack_v", scale=CENTI),
        Num("remaining_10mah", key="remaining_ah", scale=CENTI),
        Num("user_defined_p", 1),
        Choice("user_defined_p", {10: (
            Num("full_10mah", key="full_ah", scale=CENTI),
            Num("soc_permille", key="soc_pct", scale=DECI),
            Num("design_10mah", key="design_ah", scale=CENTI),
            Num("cycles"),
            Num("soh_permille", key="soh_pct", scale=DECI),
            Num("port_10mv", key="port_v", scale=CENTI),
            Fixed("reserved", 4, size=2, key="reserved_raw"),
        )}),
    )


#: The 20 status bytes of the 0x44 answer, in wire order.
ALARM_STATUS_FIELDS = (
    "alarm_event1", "alarm_event2", "alarm_event3", "alarm_event4", "alarm_event5",
    "alarm_event6", "on_off_state", "balance1", "balance2", "system_state", "disconnect1",
    "disconnect2", "alarm_event7", "alarm_event8",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SeplosAlarm:
    """The 0x44 (alarm) answer's pack block: cell and temperature alarm bytes, ONE
    current and ONE voltage alarm byte, P = 20, then 20 bit-field bytes (raw here; their
    meanings live in ``normalize.py``)."""

    FF_FORM: ClassVar[bool] = False

    cell_alarm: tuple[int, ...]
    temp_alarm: tuple[int, ...]
    current_alarm: int
    pack_voltage_alarm: int
    user_defined_p: int
    alarm_event1: int
    alarm_event2: int
    alarm_event3: int
    alarm_event4: int
    alarm_event5: int
    alarm_event6: int
    on_off_state: int
    balance1: int
    balance2: int
    system_state: int
    disconnect1: int
    disconnect2: int
    alarm_event7: int
    alarm_event8: int
    reserved: tuple[int, ...]

    LAYOUT: ClassVar[tuple[Element, ...]] = (
        Counted("cell_alarm", size=1, count_key="cell_count"),
        Counted("temp_alarm", size=1, count_key="temp_count"),
        Num("current_alarm", 1),
        Num("pack_voltage_alarm", 1),
        Num("user_defined_p", 1),
        Choice("user_defined_p", {20: (
            *(Num(name, 1) for name in ALARM_STATUS_FIELDS),
            Fixed("reserved", 6),
        )}),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class SeplosManufacturerInfo:
    """0x51: device name, software version and a 20-character field that Seplos uses
    for its CAN-protocol setting (e.g. ``CANProtocol:Sofar``), not for a manufacturer."""

    device_name: str
    software_version: tuple[int, int]
    manufacturer: str

    LAYOUT: ClassVar[tuple[Element, ...]] = (
        Text("device_name", 10),
        Fixed("software_version", 2),
        Text("manufacturer", 20),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class SeplosIntraPack:
    """A 0x5A record: the 32-byte summary a Seplos master polls from each slave on the
    pack bus. Not an answer to us; decoded so that sniffed traffic can be read."""

    flag: int
    max_cell_mv: int
    min_cell_mv: int
    max_temp_dk: int | None
    min_temp_dk: int | None
    current_10ma: int  #: signed, + = charging
    pack_10mv: int
    remaining_10mah: int
    full_10mah: int
    soc_permille: int
    port_10mv: int
    alarm_events: tuple[int, int, int, int, int, int]
    switch_state: int
    alarm_event7: int
    alarm_event8: int
    system_status: int

    LAYOUT: ClassVar[tuple[Element, ...]] = (
        Num("flag"),
        Num("max_cell_mv", key="max_cell_v", scale=MILLI),
        Num("min_cell_mv", key="min_cell_v", scale=MILLI),
        Num("max_temp_dk", key="max_cell_temp_c", scale=_TEMP, unknown=TEMP_NOT_FITTED),
        Num("min_temp_dk", key="min_cell_temp_c", scale=_TEMP, unknown=TEMP_NOT_FITTED),
        Num("current_10ma", signed=True, key="current_a", scale=CENTI),
        Num("pack_10mv", key="pack_v", scale=CENTI),
        Num("remaining_10mah", key="remaining_ah", scale=CENTI),
        Num("full_10mah", key="full_ah", scale=CENTI),
        Num("soc_permille", key="soc_pct", scale=DECI),
        Num("port_10mv", key="port_v", scale=CENTI),
        Fixed("alarm_events", 6),
        Num("switch_state", 1),
        Num("alarm_event7", 1),
        Num("alarm_event8", 1),
        Num("system_status", 1),
    )
