"""PACE protocol V2.5 (VER 0x25, CID1 0x46) and its clones: Jakiper, EASUN, Revov, Gobel,
SOK, TDT, Hubble, SUNPRO...

Units on the wire: cells mV, temperatures 0.1 K with offset **2730** (0x8000 = sensor
not fitted), current signed 10 mA with **+ = charging**, pack voltage mV, capacities
10 mAh. Sources: PACE RS232 protocol 2018-07-05 and V3.1 (2023), captures in
``frames.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from plugins.rs485_bms.protocol.layout import (
    CENTI,
    MILLI,
    Counted,
    Element,
    Num,
    Tail,
    Text,
    Varying,
    kelvin,
)

#: PACE documents convert 0.1 K to degC with 2730 (the other vendors use 2731).
KELVIN_OFFSET = 2730
#: Raw temperature meaning "no such sensor" (2023 document).
TEMP_NOT_FITTED = 0x8000

_TEMP = kelvin(KELVIN_OFFSET)


def _computed_pct(numerator: int, denominator: int) -> float | None:
    return round(numerator * 100 / denominator, 2) if denominator else None


@dataclass(frozen=True, slots=True, kw_only=True)
class PacePack:
    """One pack block of the 0x42 (analog) answer.

    The user-defined count P does *not* select the layout on PACE (P = 0/2/3/9 seen with
    unrelated tails). After design capacity comes an extension tail, a prefix of the 2023
    table: 0 bytes (classic), 1 (SOC only), 9 (up to cumulative discharge, the table
    before its 2022-12 revision), 14 (up to the independent current) or 22 (the whole
    table); its fields are ``None`` when absent. In an FF answer every block has the same
    tail. 0, 1 and 14 are seen in captures.
    """

    FF_FORM: ClassVar[bool] = True

    cell_mv: tuple[int, ...]
    temp_dk: tuple[int | None, ...]  #: 0.1 K; None = sensor not fitted
    current_10ma: int  #: signed, + = charging
    pack_mv: int
    remaining_10mah: int
    user_defined_p: int
    full_10mah: int
    cycles: int
    design_10mah: int
    soc_pct: int | None = None
    cum_charge_raw: int | None = None  #: documented as 1 Ah; captures show filler (0x4E204E20)
    cum_discharge_raw: int | None = None  #: likewise
    soh_pct: int | None = None
    port_mv: int | None = None  #: "independent total voltage 1" (second measurement)
    port_current_10ma: int | None = None  #: "independent current 1", signed
    summary_remaining_10mah: int | None = None
    summary_full_10mah: int | None = None

    LAYOUT: ClassVar[tuple[Element, ...]] = (
        Counted("cell_mv", count_key="cell_count"),
        Counted("temp_dk", key="temps_c", scale=_TEMP, unknown=TEMP_NOT_FITTED,
                count_key="temp_count"),
        Num("current_10ma", signed=True, key="current_a", scale=CENTI),
        Num("pack_mv", key="pack_v", scale=MILLI),
        Num("remaining_10mah", key="remaining_ah", scale=CENTI),
        Num("user_defined_p", 1),
        Num("full_10mah", key="full_ah", scale=CENTI),
        Num("cycles"),
        Num("design_10mah", key="design_ah", scale=CENTI),
        Tail((
            Num("soc_pct", 1),
            Num("cum_charge_raw", 4),
            Num("cum_discharge_raw", 4),
            Num("soh_pct", 1),
            Num("port_mv", key="port_v", scale=MILLI),
            Num("port_current_10ma", signed=True, key="port_current_a", scale=CENTI),
            Num("summary_remaining_10mah", 4, key="summary_remaining_ah", scale=CENTI),
            Num("summary_full_10mah", 4, key="summary_full_ah", scale=CENTI),
        ), lengths=(0, 1, 9, 14, 22)),
    )

    def derived(self) -> dict[str, float | None]:
        """SOC = remaining/full and SOH = full/design where the tail does not carry them."""
        view: dict[str, float | None] = {}
        if self.soc_pct is None:
            view["soc_pct_calc"] = _computed_pct(self.remaining_10mah, self.full_10mah)
        if self.soh_pct is None:
            view["soh_pct_calc"] = _computed_pct(self.full_10mah, self.design_10mah)
        return view


@dataclass(frozen=True, slots=True, kw_only=True)
class PaceAlarm:
    """One pack block of the 0x44 (alarm and status) answer.

    Alarm bytes: 0x00 normal, 0x01 below the lower limit, 0x02 above the upper limit,
    0x80-0xEF user-defined, 0xF0 other fault. The nine status bytes are kept raw (the
    bit meanings live in ``normalize.py``); ``extra_status`` holds what newer firmware
    appends after warn 2, one revision of the document at a time: nothing (2018), fault
    status 8 (1 byte, seen on TDT and other packs), + indication status 9 (2), + active
    balance 1/2 (4), + fault status 10 (5 bytes, V3.1).
    """

    FF_FORM: ClassVar[bool] = True

    cell_alarm: tuple[int, ...]
    temp_alarm: tuple[int, ...]
    charge_current_alarm: int
    pack_voltage_alarm: int
    discharge_current_alarm: int
    protect1: int
    protect2: int
    instruction_state: int
    control_state: int
    fault_state: int
    balance1: int
    balance2: int
    warn1: int
    warn2: int
    extra_status: tuple[int, ...] = ()

    LAYOUT: ClassVar[tuple[Element, ...]] = (
        Counted("cell_alarm", size=1, count_key="cell_count"),
        Counted("temp_alarm", size=1, count_key="temp_count"),
        *(Num(name, 1) for name in (
            "charge_current_alarm", "pack_voltage_alarm", "discharge_current_alarm",
            "protect1", "protect2", "instruction_state", "control_state", "fault_state",
            "balance1", "balance2", "warn1", "warn2")),
        Varying("extra_status", lengths=(0, 1, 2, 4, 5)),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class PacePackCount:
    """0x90: the number of packs the addressed pack speaks for (1 unless group master)."""

    pack_count: int

    LAYOUT: ClassVar[tuple[Element, ...]] = (Num("pack_count", 1),)


@dataclass(frozen=True, slots=True, kw_only=True)
class PaceSwitchState:
    """0x9A / 0x9B (charge / discharge MOSFET control): the instruction-state byte after
    the command. Sent even with RTN 09 when the pack refused the command."""

    instruction_state: int

    LAYOUT: ClassVar[tuple[Element, ...]] = (Num("instruction_state", 1, key="status_byte"),)


@dataclass(frozen=True, slots=True, kw_only=True)
class PaceCapacity:
    """0xA6: capacities of the answering pack itself."""

    remaining_10mah: int
    full_10mah: int
    design_10mah: int

    LAYOUT: ClassVar[tuple[Element, ...]] = (
        Num("remaining_10mah", key="remaining_ah", scale=CENTI),
        Num("full_10mah", key="full_ah", scale=CENTI),
        Num("design_10mah", key="design_ah", scale=CENTI),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class PaceVersion:
    """0xC1: the 20-character "software version" (e.g. ``P16S100A-1812-1.00``), plus a
    20-character Bluetooth name on 2023 firmware."""

    version: str
    bluetooth_name: str | None = None

    LAYOUT: ClassVar[tuple[Element, ...]] = (
        Text("version", 20, key="text"),
        Tail((Text("bluetooth_name", 20),), lengths=(0, 20)),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class PaceSerial:
    """0xC2: the 20-character BMS production information (its serial) and, usually, the
    20-character PACK production information."""

    bms_serial: str
    pack_serial: str | None = None

    LAYOUT: ClassVar[tuple[Element, ...]] = (
        Text("bms_serial", 20),
        Tail((Text("pack_serial", 20),), lengths=(0, 20)),
    )
