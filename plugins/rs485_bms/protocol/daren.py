"""Daren / Basen DR48100JC (DR-1363; VER **0x22**, CID1 0x4A, 19200 Bd).

Same framing, unrelated 0x42 payload: SOC and pack voltage come first, temperatures are
**signed 0.1 degC** (no Kelvin offset), full capacity precedes remaining capacity, and
15 status words, a machine-status byte and an IO-status word close the answer. Current
is signed 10 mA; the one public implementation (dbus-serialbattery ``daren_485.py``)
publishes it unchanged as battery current, i.e. + = charging, and we do the same; no
public capture with a non-zero current exists to confirm it. Sources: cpttinkering/
daren-485 README (BASEN protocol document plus a decompiled vendor tool), captures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from plugins.rs485_bms.protocol.layout import (
    CENTI,
    DECI,
    Counted,
    Element,
    Fixed,
    Num,
    Text,
)

TEMP_NOT_FITTED = 0x8000

#: The 16-bit status words after the cycle count, in wire order.
STATUS_WORDS = (
    "voltage_status", "current_status", "temperature_status", "alarm_status",
    "fet_status", "cell_ov_protect_low", "cell_uv_protect_low", "cell_ov_alarm_low",
    "cell_uv_alarm_low", "balance_low", "balance_high", "cell_ov_protect_high",
    "cell_uv_protect_high", "cell_ov_alarm_high", "cell_uv_alarm_high",
)

_DC = {"signed": True, "scale": DECI, "unknown": TEMP_NOT_FITTED}


@dataclass(frozen=True, slots=True, kw_only=True)
class DarenAnalog:
    """The 0x42 answer (one pack; there is no COMMAND echo)."""

    infoflag: int
    soc_bp: int  #: basis points, 0.01 %
    pack_10mv: int
    cell_mv: tuple[int, ...]
    env_temp_dc: int | None  #: signed 0.1 degC
    pack_temp_dc: int | None  #: pack average
    mos_temp_dc: int | None
    temp_dc: tuple[int | None, ...]  #: cell sensors
    current_10ma: int  #: signed, + = charging (see the module docstring)
    internal_resistance_raw: int  #: unit undocumented
    soh_pct: int
    user_defined_p: int
    full_10mah: int
    remaining_10mah: int
    cycles: int
    voltage_status: int
    current_status: int
    temperature_status: int
    alarm_status: int
    fet_status: int
    cell_ov_protect_low: int
    cell_uv_protect_low: int
    cell_ov_alarm_low: int
    cell_uv_alarm_low: int
    balance_low: int
    balance_high: int
    cell_ov_protect_high: int
    cell_uv_protect_high: int
    cell_ov_alarm_high: int
    cell_uv_alarm_high: int
    machine_status: int
    io_status: int

    LAYOUT: ClassVar[tuple[Element, ...]] = (
        Num("infoflag", 1),
        Num("soc_bp", key="soc_pct", scale=CENTI),
        Num("pack_10mv", key="pack_v", scale=CENTI),
        Counted("cell_mv", count_key="cell_count"),
        Num("env_temp_dc", key="env_temp_c", **_DC),
        Num("pack_temp_dc", key="pack_temp_c", **_DC),
        Num("mos_temp_dc", key="mos_temp_c", **_DC),
        Counted("temp_dc", key="temps_c", count_key="temp_count", **_DC),
        Num("current_10ma", signed=True, key="current_a", scale=CENTI),
        Num("internal_resistance_raw"),
        Num("soh_pct"),
        Num("user_defined_p", 1),
        Num("full_10mah", key="full_ah", scale=CENTI),
        Num("remaining_10mah", key="remaining_ah", scale=CENTI),
        Num("cycles"),
        *(Num(name) for name in STATUS_WORDS),
        Num("machine_status", 1),
        Num("io_status"),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class DarenManufacturerInfo:
    """0x51: three 10-character fields, a 3-byte software and a 2-byte boot version."""

    hardware_type: str
    product_code: str
    project_code: str
    software_version: tuple[int, int, int]
    boot_version: tuple[int, int]

    LAYOUT: ClassVar[tuple[Element, ...]] = (
        Text("hardware_type", 10),
        Text("product_code", 10),
        Text("project_code", 10),
        Fixed("software_version", 3),
        Fixed("boot_version", 2),
    )
