"""Vendor decodes -> the vendor-neutral model (:mod:`gateway.model`).

Units: cell and pack voltage in mV, current in mA with **+ = charging** (every family
already sends it that way; only the step differs: 10 mA, or 100 mA on Pylontech),
capacities in mAh, temperatures in 0.1 degC (0.1 K minus 2730 on PACE, 2731 on the
others, Daren already in signed 0.1 degC), SOC/SOH in per mille - from the frame where
it carries them, else computed (SOC = remaining/full, capped at 1000; SOH = full/design,
which may exceed 1000 on new packs). Unknown is ``None``, never 0.

Status bits map to the manual's vocabulary (:class:`~gateway.model.Condition` as
warning or protection, :class:`~gateway.model.Fault`, :class:`~gateway.model.State`).
A set bit this module cannot classify with confidence - undocumented, reserved,
configuration rather than condition, or read differently by the sources (see
docs/protocol.md) - becomes a :class:`~gateway.model.RawFlag`; none is dropped. Per
quantity alarm bytes (0x01 below the lower limit, 0x02 above the upper) are warnings
where the quantity says which condition it is; otherwise their bits are raw flags too.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from functools import singledispatch
from typing import Any

from gateway.model import (
    BmsStatus,
    Condition,
    Fault,
    Identity,
    RawFlag,
    State,
    Telemetry,
    TempRole,
)

from plugins.rs485_bms.protocol import (
    DarenAnalog,
    DarenManufacturerInfo,
    Eg4Alarm,
    Eg4Pack,
    PaceAlarm,
    PacePack,
    PaceSerial,
    PaceVersion,
    PylonAlarm,
    PylonFirmware,
    PylonManufacturerInfo,
    PylonModule,
    PylonSerial,
    SeplosAlarm,
    SeplosManufacturerInfo,
    SeplosPack,
)
from plugins.rs485_bms.protocol import daren, eg4, pace, pylontech, seplos

C, F, S = Condition, Fault, State
WARN, PROT, FAULT, STATE = "warnings", "protections", "faults", "states"
Bits = Mapping[int, tuple[str, enum.IntFlag]]

ALARM_LOW, ALARM_HIGH = 0x01, 0x02

# ---------------------------------------------------------------------------------------
# Telemetry


def _ratio_permille(numerator: int, denominator: int) -> int | None:
    if denominator <= 0:
        return None
    return (2000 * numerator + denominator) // (2 * denominator)


def _soc(remaining: int, full: int) -> int | None:
    soc = _ratio_permille(remaining, full)
    return None if soc is None else min(soc, 1000)


def _celsius(temps_dk: Sequence[int | None], offset: int) -> tuple[int | None, ...]:
    return tuple(None if t is None else t - offset for t in temps_dk)


def _roles(count: int, layouts: Mapping[int, tuple[TempRole, ...]]) -> tuple[TempRole, ...]:
    """Sensor roles for ``count`` sensors where the vendor documents that count, else OTHER."""
    return layouts.get(count, (TempRole.OTHER,) * count)


_CELLS4 = (TempRole.CELL,) * 4
PACE_ROLES = {6: (*_CELLS4, TempRole.MOSFET, TempRole.AMBIENT)}
PYLON_ROLES = {5: (TempRole.BOARD, *_CELLS4), 6: (TempRole.BOARD, *_CELLS4, TempRole.MOSFET)}
SEPLOS_ROLES = {6: (*_CELLS4, TempRole.AMBIENT, TempRole.MOSFET)}  # "power" = MOSFET board
EG4_ROLES = SEPLOS_ROLES  # cells 1-4, environment, MOSFET


@singledispatch
def normalize_telemetry(block: Any) -> Telemetry:
    """The :class:`Telemetry` of one pack block (a ``PackAnswer``'s ``packs`` item, or a
    Daren 0x42 answer)."""
    raise TypeError(f"no telemetry in {type(block).__name__}")


@normalize_telemetry.register
def _(block: PacePack) -> Telemetry:
    return Telemetry(
        cell_mv=block.cell_mv,
        temp_dc=_celsius(block.temp_dk, pace.KELVIN_OFFSET),
        temp_roles=_roles(len(block.temp_dk), PACE_ROLES),
        current_ma=block.current_10ma * 10,
        voltage_mv=block.pack_mv,
        remaining_mah=block.remaining_10mah * 10,
        full_mah=block.full_10mah * 10,
        design_mah=block.design_10mah * 10,
        cycles=block.cycles,
        soc_permille=(block.soc_pct * 10 if block.soc_pct is not None
                      else _soc(block.remaining_10mah, block.full_10mah)),
        soh_permille=(block.soh_pct * 10 if block.soh_pct is not None
                      else _ratio_permille(block.full_10mah, block.design_10mah)),
    )


@normalize_telemetry.register
def _(block: PylonModule) -> Telemetry:
    return Telemetry(
        cell_mv=block.cell_mv,
        temp_dc=_celsius(block.temp_dk, pylontech.KELVIN_OFFSET),
        temp_roles=_roles(len(block.temp_dk), PYLON_ROLES),
        current_ma=block.current_100ma * 100,
        voltage_mv=block.pack_mv,
        remaining_mah=block.remaining_mah,
        full_mah=block.full_mah,
        cycles=block.cycles,
        soc_permille=_soc(block.remaining_mah, block.full_mah),
    )


@normalize_telemetry.register
def _(block: SeplosPack) -> Telemetry:
    return Telemetry(
        cell_mv=block.cell_mv,
        temp_dc=_celsius(block.temp_dk, seplos.KELVIN_OFFSET),
        temp_roles=_roles(len(block.temp_dk), SEPLOS_ROLES),
        current_ma=block.current_10ma * 10,
        voltage_mv=block.pack_10mv * 10,
        remaining_mah=block.remaining_10mah * 10,
        full_mah=block.full_10mah * 10,
        design_mah=block.design_10mah * 10,
        cycles=block.cycles,
        soc_permille=block.soc_permille,
        soh_permille=block.soh_permille,
    )


@normalize_telemetry.register
def _(block: Eg4Pack) -> Telemetry:
    return Telemetry(
        cell_mv=block.cell_mv,
        temp_dc=_celsius(block.temp_dk, eg4.KELVIN_OFFSET),
        temp_roles=_roles(len(block.temp_dk), EG4_ROLES),
        current_ma=block.current_10ma * 10,
        voltage_mv=block.pack_10mv * 10,
        remaining_mah=block.remaining_10mah * 10,
        full_mah=block.full_10mah * 10,
        cycles=block.cycles,
        soc_permille=block.soc_pct * 10,
        soh_permille=block.soh_pct * 10,
    )


@normalize_telemetry.register
def _(block: DarenAnalog) -> Telemetry:
    return Telemetry(
        cell_mv=block.cell_mv,
        temp_dc=(block.env_temp_dc, block.pack_temp_dc, block.mos_temp_dc, *block.temp_dc),
        temp_roles=(TempRole.AMBIENT, TempRole.OTHER, TempRole.MOSFET,
                    *(TempRole.CELL,) * len(block.temp_dc)),
        current_ma=block.current_10ma * 10,
        voltage_mv=block.pack_10mv * 10,
        remaining_mah=block.remaining_10mah * 10,
        full_mah=block.full_10mah * 10,
        cycles=block.cycles,
        soc_permille=(block.soc_bp + 5) // 10,
        soh_permille=block.soh_pct * 10,
    )


# ---------------------------------------------------------------------------------------
# Status


class _Flags:
    """Collects classified flags and raw ones while a status block is read."""

    def __init__(self) -> None:
        self.sets: dict[str, Any] = {WARN: C.NONE, PROT: C.NONE, FAULT: F.NONE, STATE: S.NONE}
        self.raw: list[RawFlag] = []

    def bits(self, field: str, value: int, table: Bits | None = None, *,
             alarm: bool = True) -> None:
        """Classify each set bit of ``value`` by ``table``; the others become raw flags
        (``alarm=False`` for fields that hold states or configuration, not trouble)."""
        for bit in range(value.bit_length()):
            if value >> bit & 1:
                known = (table or {}).get(bit)
                if known is None:
                    self.raw.append(RawFlag(field=field, bit=bit, alarm=alarm))
                else:
                    self.sets[known[0]] |= known[1]

    def alarm(self, field: str, value: int, low: Condition | None,
              high: Condition | None) -> None:
        """A per-quantity alarm byte: a warning where the level names a condition."""
        level = {ALARM_LOW: low, ALARM_HIGH: high}.get(value)
        if level is not None:
            self.sets[WARN] |= level
        else:
            self.bits(field, value)

    def cells(self, alarms: Sequence[int]) -> None:
        for i, value in enumerate(alarms, 1):
            self.alarm(f"cell_alarm_{i}", value, C.CELL_UNDER_VOLTAGE, C.CELL_OVER_VOLTAGE)

    def temps(self, alarms: Sequence[int], roles: Sequence[TempRole]) -> None:
        """Only MOSFET and ambient sensors name a condition; a cell sensor's alarm could be
        the charge or the discharge limit, so it stays raw."""
        for i, (value, role) in enumerate(zip(alarms, roles), 1):
            low, high = _TEMP_CONDITIONS.get(role, (None, None))
            self.alarm(f"temp_alarm_{i}", value, low, high)

    def status(self, balancing: tuple[bool, ...] | None = None) -> BmsStatus:
        if balancing is not None and any(balancing):
            self.sets[STATE] |= S.BALANCING
        return BmsStatus(warnings=self.sets[WARN], protections=self.sets[PROT],
                         faults=self.sets[FAULT], states=self.sets[STATE],
                         balancing=balancing, unclassified=tuple(self.raw))


_TEMP_CONDITIONS: dict[TempRole, tuple[Condition | None, Condition | None]] = {
    TempRole.MOSFET: (None, C.MOSFET_HIGH_TEMP),
    TempRole.AMBIENT: (C.AMBIENT_LOW_TEMP, C.AMBIENT_HIGH_TEMP),
}


def _per_cell(low_byte: int, high_byte: int, cells: int) -> tuple[bool, ...]:
    """One flag per cell from two bytes: cells 1-8 in the first, 9-16 in the second,
    bit 0 = the lowest cell of each."""
    word = low_byte | high_byte << 8
    return tuple(bool(word >> i & 1) for i in range(min(cells, 16)))


# PACE 0x44 (2018 document, 2023 V3.1 additions; disputed bits left out, see docs).
PACE_PROTECT1: Bits = {
    0: (PROT, C.CELL_OVER_VOLTAGE), 1: (PROT, C.CELL_UNDER_VOLTAGE),
    2: (PROT, C.PACK_OVER_VOLTAGE), 3: (PROT, C.PACK_UNDER_VOLTAGE),
    4: (PROT, C.CHARGE_OVER_CURRENT), 5: (PROT, C.DISCHARGE_OVER_CURRENT),
    6: (PROT, C.SHORT_CIRCUIT), 7: (PROT, C.CHARGER_OVER_VOLTAGE),
}
PACE_PROTECT2: Bits = {
    0: (PROT, C.CHARGE_HIGH_TEMP), 1: (PROT, C.DISCHARGE_HIGH_TEMP),
    2: (PROT, C.CHARGE_LOW_TEMP), 3: (PROT, C.DISCHARGE_LOW_TEMP),
    4: (PROT, C.MOSFET_HIGH_TEMP), 5: (PROT, C.AMBIENT_HIGH_TEMP),
    6: (PROT, C.AMBIENT_LOW_TEMP), 7: (STATE, S.FULLY_CHARGED),
}
#: Bits 0 (limiter on / off: opposite readings), 3 (pack power supply / discharging),
#: 5 (AC in / charging), 6 (shutdown) and 7 (heart / heater) stay raw.
PACE_INSTRUCTION: Bits = {
    1: (STATE, S.CHARGE_FET_ON), 2: (STATE, S.DISCHARGE_FET_ON),
    4: (STATE, S.CHARGER_REVERSED),
}
#: Control state holds configuration (buzzer/LED/limiter enabled, lock, test mode) and the
#: disputed bits 1/2: all raw.
PACE_CONTROL: Bits = {}
#: Bit 3 ("communication fault", which link is not said) stays raw.
PACE_FAULT: Bits = {
    0: (FAULT, F.CHARGE_CIRCUIT), 1: (FAULT, F.DISCHARGE_CIRCUIT),
    2: (FAULT, F.TEMPERATURE_SENSOR), 4: (FAULT, F.BATTERY), 5: (FAULT, F.SAMPLING_IC),
    6: (FAULT, F.CURRENT_LIMITER), 7: (FAULT, F.HEATER),
}
PACE_WARN1: Bits = {
    0: (WARN, C.CELL_OVER_VOLTAGE), 1: (WARN, C.CELL_UNDER_VOLTAGE),
    2: (WARN, C.PACK_OVER_VOLTAGE), 3: (WARN, C.PACK_UNDER_VOLTAGE),
    4: (WARN, C.CHARGE_OVER_CURRENT), 5: (WARN, C.DISCHARGE_OVER_CURRENT),
}
PACE_WARN2: Bits = {
    0: (WARN, C.CHARGE_HIGH_TEMP), 1: (WARN, C.DISCHARGE_HIGH_TEMP),
    2: (WARN, C.CHARGE_LOW_TEMP), 3: (WARN, C.DISCHARGE_LOW_TEMP),
    4: (WARN, C.AMBIENT_HIGH_TEMP), 5: (WARN, C.AMBIENT_LOW_TEMP),
    6: (WARN, C.MOSFET_HIGH_TEMP), 7: (WARN, C.LOW_CAPACITY),
}
# Pylontech 0x44 status 1-5. Status 1 = protections (the alarm bytes carry the warnings).
PYLON_STATUS: tuple[Bits, ...] = (
    {0: (PROT, C.PACK_OVER_VOLTAGE), 1: (PROT, C.CELL_UNDER_VOLTAGE),
     2: (PROT, C.CHARGE_OVER_CURRENT), 4: (PROT, C.DISCHARGE_OVER_CURRENT),
     5: (PROT, C.DISCHARGE_HIGH_TEMP), 6: (PROT, C.CHARGE_HIGH_TEMP),
     7: (PROT, C.PACK_UNDER_VOLTAGE)},
    # b0 pre-charge FET and b3 "using module power" stay raw
    {1: (STATE, S.CHARGE_FET_ON), 2: (STATE, S.DISCHARGE_FET_ON)},
    # b0 buzzer (on or enabled?) and b6 (discharge current / AC fail) stay raw
    {3: (STATE, S.FULLY_CHARGED), 5: (STATE, S.HEATER_ON), 7: (STATE, S.CHARGING)},
    # status 4/5: cell 1-8 / 9-16 voltage error (> 4.2 V or < 1 V): a cell fault
    {bit: (FAULT, F.BATTERY) for bit in range(8)},
    {bit: (FAULT, F.BATTERY) for bit in range(8)},
)

# Seplos V2 0x44 (V2.0 document table 13). Event 4 bits 4/5 (power temperature alarm /
# protection) are given in opposite order by the sources: raw.
SEPLOS_BITS: dict[str, Bits] = {
    "alarm_event1": {0: (FAULT, F.VOLTAGE_SENSOR), 1: (FAULT, F.TEMPERATURE_SENSOR),
                     2: (FAULT, F.CURRENT_SENSOR), 5: (FAULT, F.CHARGE_CIRCUIT),
                     6: (FAULT, F.DISCHARGE_CIRCUIT), 7: (FAULT, F.CURRENT_LIMITER)},
    "alarm_event2": {0: (WARN, C.CELL_OVER_VOLTAGE), 1: (PROT, C.CELL_OVER_VOLTAGE),
                     2: (WARN, C.CELL_UNDER_VOLTAGE), 3: (PROT, C.CELL_UNDER_VOLTAGE),
                     4: (WARN, C.PACK_OVER_VOLTAGE), 5: (PROT, C.PACK_OVER_VOLTAGE),
                     6: (WARN, C.PACK_UNDER_VOLTAGE), 7: (PROT, C.PACK_UNDER_VOLTAGE)},
    "alarm_event3": {0: (WARN, C.CHARGE_HIGH_TEMP), 1: (PROT, C.CHARGE_HIGH_TEMP),
                     2: (WARN, C.CHARGE_LOW_TEMP), 3: (PROT, C.CHARGE_LOW_TEMP),
                     4: (WARN, C.DISCHARGE_HIGH_TEMP), 5: (PROT, C.DISCHARGE_HIGH_TEMP),
                     6: (WARN, C.DISCHARGE_LOW_TEMP), 7: (PROT, C.DISCHARGE_LOW_TEMP)},
    "alarm_event4": {0: (WARN, C.AMBIENT_HIGH_TEMP), 1: (PROT, C.AMBIENT_HIGH_TEMP),
                     2: (WARN, C.AMBIENT_LOW_TEMP), 3: (PROT, C.AMBIENT_LOW_TEMP),
                     6: (STATE, S.HEATER_ON)},
    "alarm_event5": {0: (WARN, C.CHARGE_OVER_CURRENT), 1: (PROT, C.CHARGE_OVER_CURRENT),
                     2: (WARN, C.DISCHARGE_OVER_CURRENT), 3: (PROT, C.DISCHARGE_OVER_CURRENT),
                     5: (PROT, C.SHORT_CIRCUIT)},
    "alarm_event6": {2: (WARN, C.LOW_CAPACITY), 3: (PROT, C.LOW_CAPACITY),
                     5: (FAULT, F.REVERSE_CONNECTION)},
    "on_off_state": {0: (STATE, S.DISCHARGE_FET_ON), 1: (STATE, S.CHARGE_FET_ON),
                     2: (STATE, S.CURRENT_LIMITER_ON), 3: (STATE, S.HEATER_ON)},
    "system_state": {0: (STATE, S.DISCHARGING), 1: (STATE, S.CHARGING)},
    "disconnect1": {}, "disconnect2": {}, "alarm_event7": {}, "alarm_event8": {},
}


@singledispatch
def normalize_status(block: Any) -> BmsStatus:
    """The :class:`BmsStatus` of one alarm block (a 0x44 ``PackAnswer``'s ``packs`` item,
    or a Daren 0x42 answer, which carries its status words)."""
    raise TypeError(f"no BMS status in {type(block).__name__}")


#: Per-quantity alarm bytes after the temperatures: (condition if low, if high). Seplos
#: and EG4 send one current byte for both directions, so it names no condition.
_QUANTITY_ALARMS: dict[str, tuple[Condition | None, Condition | None]] = {
    "charge_current_alarm": (None, C.CHARGE_OVER_CURRENT),
    "current_alarm": (None, None),
    "pack_voltage_alarm": (C.PACK_UNDER_VOLTAGE, C.PACK_OVER_VOLTAGE),
    "discharge_current_alarm": (None, C.DISCHARGE_OVER_CURRENT),
}


def _quantities(flags: _Flags, block: Any, roles: Mapping[int, tuple[TempRole, ...]]) -> None:
    """The per-quantity alarm bytes every family's 0x44 block starts with."""
    flags.cells(block.cell_alarm)
    flags.temps(block.temp_alarm, _roles(len(block.temp_alarm), roles))
    for name, (low, high) in _QUANTITY_ALARMS.items():
        if hasattr(block, name):
            flags.alarm(name, getattr(block, name), low, high)


@normalize_status.register
def _(block: PaceAlarm) -> BmsStatus:
    flags = _Flags()
    _quantities(flags, block, PACE_ROLES)
    for name, table in (("protect1", PACE_PROTECT1), ("protect2", PACE_PROTECT2),
                        ("fault_state", PACE_FAULT), ("warn1", PACE_WARN1),
                        ("warn2", PACE_WARN2)):
        flags.bits(name, getattr(block, name), table)
    for name, table in (("instruction_state", PACE_INSTRUCTION),
                        ("control_state", PACE_CONTROL)):
        flags.bits(name, getattr(block, name), table, alarm=False)
    for name in ("balance1", "balance2"):  # which cell each bit is: disputed
        flags.bits(name, getattr(block, name), alarm=False)
    if block.balance1 or block.balance2:
        flags.sets[STATE] |= S.BALANCING
    for i, value in enumerate(block.extra_status, 1):
        flags.bits(f"extra_status_{i}", value)
    return flags.status()


@normalize_status.register
def _(block: PylonAlarm) -> BmsStatus:
    flags = _Flags()
    _quantities(flags, block, PYLON_ROLES)
    for i, value in enumerate(block.status):
        flags.bits(f"status{i + 1}", value, PYLON_STATUS[i] if i < len(PYLON_STATUS) else None,
                   alarm=i not in (1, 2))  # status 2 and 3 hold FET and operating states
    return flags.status()


@normalize_status.register
def _(block: SeplosAlarm) -> BmsStatus:
    flags = _Flags()
    _quantities(flags, block, SEPLOS_ROLES)
    for name, table in SEPLOS_BITS.items():
        flags.bits(name, getattr(block, name), table,
                   alarm=name not in ("on_off_state", "system_state", "balance1", "balance2"))
    for i, value in enumerate(block.reserved, 1):
        flags.bits(f"reserved_{i}", value, alarm=False)  # non-zero on healthy packs
    return flags.status(_per_cell(block.balance1, block.balance2, len(block.cell_alarm)))


@normalize_status.register
def _(block: Eg4Alarm) -> BmsStatus:
    flags = _Flags()
    _quantities(flags, block, EG4_ROLES)
    for name in ("balance_event", "voltage_event", "temperature_event", "current_event",
                 "remaining_capacity_alarm"):
        flags.bits(name, getattr(block, name))
    for name in ("fet_status", "system_status", "balance_status"):
        flags.bits(name, getattr(block, name), alarm=False)
    flags.bits("reserved_1", block.reserved[0], alarm=False)
    return flags.status()


@normalize_status.register
def _(block: DarenAnalog) -> BmsStatus:
    flags = _Flags()
    for name in (*daren.STATUS_WORDS, "machine_status", "io_status"):
        state = name in ("fet_status", "balance_low", "balance_high", "machine_status",
                         "io_status")
        flags.bits(name, getattr(block, name), alarm=not state)
    return flags.status()


# ---------------------------------------------------------------------------------------
# Identity


def _text(value: str | None) -> str | None:
    return value or None


def _version(parts: Sequence[int]) -> str:
    return ".".join(str(p) for p in parts)


@singledispatch
def merge_identity(answer: Any, identity: Identity | None = None) -> Identity:
    """``identity`` updated with what ``answer`` (an identification answer) says."""
    raise TypeError(f"no identity in {type(answer).__name__}")


def _merged(identity: Identity | None, **fields: str | None) -> Identity:
    base = identity or Identity()
    values = {name: getattr(base, name) for name in
              ("serial", "pack_serial", "model", "firmware", "manufacturer")}
    values.update(fields)
    return Identity(**values)


@merge_identity.register
def _(answer: PaceVersion, identity: Identity | None = None) -> Identity:
    return _merged(identity, firmware=_text(answer.version))


@merge_identity.register
def _(answer: PaceSerial, identity: Identity | None = None) -> Identity:
    return _merged(identity, serial=_text(answer.bms_serial),
                   pack_serial=_text(answer.pack_serial))


@merge_identity.register
def _(answer: PylonManufacturerInfo, identity: Identity | None = None) -> Identity:
    return _merged(identity, model=_text(answer.device_name),
                   firmware=_version(answer.software_version),
                   manufacturer=_text(answer.manufacturer))


@merge_identity.register
def _(answer: PylonSerial, identity: Identity | None = None) -> Identity:
    return _merged(identity, serial=_text(answer.serial))


@merge_identity.register
def _(answer: PylonFirmware, identity: Identity | None = None) -> Identity:
    # 0x96: the main-line version is the firmware; the manufacture version follows it
    return _merged(identity, firmware=f"{_version(answer.mainline_version)} "
                   f"(manufacture version {_version(answer.manufacture_version)})")


@merge_identity.register
def _(answer: SeplosManufacturerInfo, identity: Identity | None = None) -> Identity:
    # the third field carries the CAN-protocol setting, not a manufacturer
    return _merged(identity, model=_text(answer.device_name),
                   firmware=_version(answer.software_version))


@merge_identity.register
def _(answer: DarenManufacturerInfo, identity: Identity | None = None) -> Identity:
    parts = (answer.hardware_type, answer.product_code, answer.project_code)
    return _merged(identity, model=_text(" ".join(p for p in parts if p)),
                   firmware=_version(answer.software_version))
