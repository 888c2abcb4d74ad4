"""Pylontech (US2000/US3000/UP2500..., VER 0x20, CID1 0x46).

Units on the wire: cells mV, temperatures 0.1 K with offset 2731, current signed
**100 mA** with + = charging, module voltage mV, capacities **mAh** (2 bytes when the
user-defined count P is 2, 3 bytes after the cycle count when P is 4 - the 2-byte fields
then read 0xFFFF). Sources: Pylontech RS485 protocol V2.8 / V3.3, captures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from plugins.rs485_bms.protocol.layout import (
    DECI,
    MILLI,
    Choice,
    Counted,
    Element,
    Fixed,
    Num,
    Text,
    Varying,
    kelvin,
)

KELVIN_OFFSET = 2731
TEMP_NOT_FITTED = 0x8000

_TEMP = kelvin(KELVIN_OFFSET)
_TEMP_ARGS = {"scale": _TEMP, "unknown": TEMP_NOT_FITTED}


@dataclass(frozen=True, slots=True, kw_only=True)
class PylonModule:
    """One module block of the 0x42 (analog) answer.

    ``remaining1_mah``/``full1_mah`` are the 2-byte fields, ``remaining2_mah``/``full2_mah``
    the 3-byte ones that follow the cycle count when P = 4; :attr:`remaining_mah` and
    :attr:`full_mah` pick the valid one. Temperatures (5 on US2000/US3000): BMS board,
    then the averages of cells 1-4, 5-8, 9-12, 13-15 (US3000B adds a MOSFET sensor).
    """

    FF_FORM: ClassVar[bool] = True

    cell_mv: tuple[int, ...]
    temp_dk: tuple[int | None, ...]  #: 0.1 K
    current_100ma: int  #: signed, + = charging
    pack_mv: int
    remaining1_mah: int
    user_defined_p: int
    full1_mah: int
    cycles: int
    remaining2_mah: int | None = None
    full2_mah: int | None = None

    LAYOUT: ClassVar[tuple[Element, ...]] = (
        Counted("cell_mv", count_key="cell_count"),
        Counted("temp_dk", key="temps_c", count_key="temp_count", **_TEMP_ARGS),
        Num("current_100ma", signed=True, key="current_a", scale=DECI),
        Num("pack_mv", key="pack_v", scale=MILLI),
        Num("remaining1_mah", key=""),
        Num("user_defined_p", 1),
        Num("full1_mah", key=""),
        Num("cycles"),
        Choice("user_defined_p", {
            2: (),
            4: (Num("remaining2_mah", 3, key=""), Num("full2_mah", 3, key="")),
        }),
    )

    @property
    def remaining_mah(self) -> int:
        return self.remaining1_mah if self.remaining2_mah is None else self.remaining2_mah

    @property
    def full_mah(self) -> int:
        return self.full1_mah if self.full2_mah is None else self.full2_mah

    def derived(self) -> dict[str, float | int | None]:
        full = self.full_mah
        return {
            "remaining_ah": self.remaining_mah / 1000,
            "full_ah": full / 1000,
            "capacity_field_bytes": 2 if self.remaining2_mah is None else 3,
            "soc_pct_calc": round(self.remaining_mah * 100 / full, 2) if full else None,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class PylonAlarm:
    """One module block of the 0x44 (alarm) answer.

    ``status`` holds the bytes after the three current/voltage alarm bytes: status 1-5
    as documented; US2000C/US3000C send a sixth (seen as 0).
    """

    FF_FORM: ClassVar[bool] = True

    cell_alarm: tuple[int, ...]
    temp_alarm: tuple[int, ...]
    charge_current_alarm: int
    pack_voltage_alarm: int
    discharge_current_alarm: int
    status: tuple[int, ...]

    LAYOUT: ClassVar[tuple[Element, ...]] = (
        Counted("cell_alarm", size=1, count_key="cell_count"),
        Counted("temp_alarm", size=1, count_key="temp_count"),
        Num("charge_current_alarm", 1),
        Num("pack_voltage_alarm", 1),
        Num("discharge_current_alarm", 1),
        Varying("status", lengths=(5, 6)),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class PylonSystemParameters:
    """0x47: alarm/protection limits. Currents in 100 mA (discharge limit negative)."""

    infoflag: int
    cell_high_mv: int
    cell_low_mv: int
    cell_under_mv: int
    charge_high_temp_dk: int | None
    charge_low_temp_dk: int | None
    charge_current_limit_100ma: int
    module_high_mv: int
    module_low_mv: int
    module_under_mv: int
    discharge_high_temp_dk: int | None
    discharge_low_temp_dk: int | None
    discharge_current_limit_100ma: int

    LAYOUT: ClassVar[tuple[Element, ...]] = (
        Num("infoflag", 1),
        Num("cell_high_mv", key="cell_high_v", scale=MILLI),
        Num("cell_low_mv", key="cell_low_v", scale=MILLI),
        Num("cell_under_mv", key="cell_under_v", scale=MILLI),
        Num("charge_high_temp_dk", key="charge_high_temp_c", **_TEMP_ARGS),
        Num("charge_low_temp_dk", key="charge_low_temp_c", **_TEMP_ARGS),
        Num("charge_current_limit_100ma", signed=True, key="charge_current_limit_a",
            scale=DECI),
        Num("module_high_mv", key="module_high_v", scale=MILLI),
        Num("module_low_mv", key="module_low_v", scale=MILLI),
        Num("module_under_mv", key="module_under_v", scale=MILLI),
        Num("discharge_high_temp_dk", key="discharge_high_temp_c", **_TEMP_ARGS),
        Num("discharge_low_temp_dk", key="discharge_low_temp_c", **_TEMP_ARGS),
        Num("discharge_current_limit_100ma", signed=True, key="discharge_current_limit_a",
            scale=DECI),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class PylonManufacturerInfo:
    """0x51: device name, software version, manufacturer (NUL- and '-'-padded).

    Over a link, the master answers 0x51 with *its own* identity whatever ADR was asked.
    """

    device_name: str
    software_version: tuple[int, int]
    manufacturer: str

    LAYOUT: ClassVar[tuple[Element, ...]] = (
        Text("device_name", 10, fill=b"\0"),
        Fixed("software_version", 2),
        Text("manufacturer", 20, fill=b"-"),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class PylonManagement:
    """0x92: charge/discharge management: voltage limits (mV), current limits (100 mA,
    signed) and the status byte (b7 charge enable, b6 discharge enable, b5/b4 charge
    immediately 1/2, b3 full-charge request)."""

    command_value: int
    charge_voltage_limit_mv: int
    discharge_voltage_limit_mv: int
    charge_current_limit_100ma: int
    discharge_current_limit_100ma: int
    status: int

    LAYOUT: ClassVar[tuple[Element, ...]] = (
        Num("command_value", 1),
        Num("charge_voltage_limit_mv", key="charge_voltage_limit_v", scale=MILLI),
        Num("discharge_voltage_limit_mv", key="discharge_voltage_limit_v", scale=MILLI),
        Num("charge_current_limit_100ma", signed=True, key="charge_current_limit_a",
            scale=DECI),
        Num("discharge_current_limit_100ma", signed=True, key="discharge_current_limit_a",
            scale=DECI),
        Num("status", 1, bits=((7, "charge_enable"), (6, "discharge_enable"),
                                (5, "charge_immediately_1"), (4, "charge_immediately_2"),
                                (3, "full_charge_request"))),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class PylonSerial:
    """0x93: the module's 16-character serial (forwarded by the master for slaves)."""

    command_value: int
    serial: str

    LAYOUT: ClassVar[tuple[Element, ...]] = (
        Num("command_value", 1),
        Text("serial", 16, fill=b"\0"),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class PylonFirmware:
    """0x96: manufacturer version (2 bytes) and main-line version (3 bytes)."""

    command_value: int
    manufacture_version: tuple[int, int]
    mainline_version: tuple[int, int, int]

    LAYOUT: ClassVar[tuple[Element, ...]] = (
        Num("command_value", 1),
        Fixed("manufacture_version", 2),
        Fixed("mainline_version", 3),
    )
