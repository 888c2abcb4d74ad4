"""The Modbus register map: a pure function from a bank snapshot (and ``now``) to registers.

This module is the public contract of the ``modbus_tcp`` plugin. It defines

* the **bank block** at address 0 (map version, layout, bank figures, alarm summary,
  per-module bitmaps),
* one **module block** per configured bank position at
  ``MODULE_BLOCK_BASE + (position - 1) * MODULE_BLOCK_STRIDE`` (the address depends only
  on the position, never on discovery order or on which modules answer),
* the **SunSpec view** at 40000 (see :mod:`plugins.modbus_tcp.sunspec`),

and the rules every value follows: integers in fixed units with the unit in the name,
32-bit values in big-endian word order (high word first), unknown values as the SunSpec
"not implemented" sentinels. Addresses are Modbus protocol (PDU) addresses, 0-based.

:func:`make_image` builds every register of every unit from one snapshot;
:func:`read_registers` answers a read against an image. Both are pure. The Markdown in
``docs/register_map.md`` and the locked contract in
``tests/modbus_tcp/data/register_map.json`` are generated from the tables below::

    python -m plugins.modbus_tcp.register_map --markdown > docs/register_map.md
    python -m plugins.modbus_tcp.register_map --json > tests/modbus_tcp/data/register_map.json
"""

from __future__ import annotations

import argparse
import bisect
import enum
import functools
import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from gateway.leds import FAULT_CODE_TEXT, LedState, derive_leds, fault_code_bits
from gateway.model import (
    Alarm,
    BankSnapshot,
    BankState,
    Condition,
    Limit,
    LimitCause,
    Fault,
    ModuleStatus,
    Severity,
    State,
    TempRole,
)
from plugins.modbus_tcp import sunspec
from plugins.modbus_tcp.bank_view import (
    MAX_POSITIONS,
    BankStatus,
    BankView,
    DeviceInfo,
    ServedModule,
    make_bank_view,
)
from plugins.modbus_tcp.fields import SENTINELS, Field, Layout, div_round

#: Bumped on every change of an existing register (address, name, type, scale or
#: meaning). Appending registers at the end of a block also bumps it.
#: 2: bank_status 3, no live module (version 1 read 1 after a total bus loss);
#: 3: the LED view (led_* registers) at the end of the module block
#: 4: backup time registers appended to the bank block (bank state, time to EOD, the last
#: discharge record, the worst cell-imbalance rise)
#: 5: the charge and discharge limits appended to the bank block (charge_limits plugin)
MAP_VERSION = 5

BANK_BLOCK_START = 0
MODULE_BLOCK_BASE = 1000
MODULE_BLOCK_STRIDE = 200
SUNSPEC_BASE = 40000
MAX_CELLS = 32  #: cell voltage registers per module block
MAX_TEMPS = 16  #: temperature registers per module block
SERIAL_REGISTERS = 16  #: 32 ASCII characters

MAX_READ = 125  #: registers per FC03/FC04 request (Modbus application protocol)


class ExceptionCode(enum.IntEnum):
    """Modbus exception codes this server answers with."""

    ILLEGAL_FUNCTION = 0x01
    ILLEGAL_DATA_ADDRESS = 0x02
    ILLEGAL_DATA_VALUE = 0x03
    GATEWAY_PATH_UNAVAILABLE = 0x0A


#: Value of a module block's ``status`` register: 0 or a :class:`ModuleStatus` number.
NOT_CONFIGURED = 0


# -------------------------------------------------------------------- bit names --------

#: The module manual's words for each normalized flag (docs only; bit names come from
#: :mod:`gateway.model`, whose positions are part of the contract).
FLAG_TEXT: dict[str, str] = {
    # Condition (warnings: yellow ALM light flashing; protections: orange light on)
    "CELL_OVER_VOLTAGE": "cell voltage too high",
    "CELL_UNDER_VOLTAGE": "cell voltage too low",
    "PACK_OVER_VOLTAGE": "pack voltage too high",
    "PACK_UNDER_VOLTAGE": "battery (pack) voltage too low",
    "CHARGE_OVER_CURRENT": "charge overcurrent",
    "DISCHARGE_OVER_CURRENT": "discharge overcurrent",
    "SHORT_CIRCUIT": "short circuit / reverse connection",
    "CHARGE_HIGH_TEMP": "temperature too high while charging",
    "CHARGE_LOW_TEMP": "temperature too low while charging",
    "DISCHARGE_HIGH_TEMP": "temperature too high while discharging",
    "DISCHARGE_LOW_TEMP": "temperature too low while discharging",
    "MOSFET_HIGH_TEMP": "MOSFET temperature too high",
    "AMBIENT_HIGH_TEMP": "ambient temperature too high",
    "AMBIENT_LOW_TEMP": "ambient temperature too low",
    "LOW_CAPACITY": "capacity is low",
    "CHARGER_OVER_VOLTAGE": "charger voltage too high",
    # Fault (red ERR light; blink count while showing the alarm code)
    "VOLTAGE_SENSOR": "voltage sensor failure (ERR blinks 1x)",
    "TEMPERATURE_SENSOR": "temperature sensor failure (ERR blinks 2x)",
    "CHARGE_CIRCUIT": "charging circuit failure (ERR blinks 3x)",
    "DISCHARGE_CIRCUIT": "discharge circuit failure (ERR blinks 4x)",
    "BATTERY": "battery (cell) failure (ERR blinks 5x)",
    "SAMPLING_IC": "sampling IC communication failure (ERR blinks 6x)",
    "REVERSE_CONNECTION": "reverse connection / short circuit (highest priority)",
    "CURRENT_SENSOR": "current sensor failure",
    "HEATER": "heater failure",
    "CURRENT_LIMITER": "current limiter failure",
    "INTERNAL_COMMUNICATION": "internal communication failure",
    # State
    "CHARGE_FET_ON": "charge MOSFET on",
    "DISCHARGE_FET_ON": "discharge MOSFET on",
    "CHARGING": "charging",
    "DISCHARGING": "discharging",
    "CURRENT_LIMITER_ON": "current limiter on",
    "HEATER_ON": "heater on",
    "FULLY_CHARGED": "fully charged",
    "BALANCING": "balancing",
    "CHARGER_REVERSED": "charger reversed",
    "BUZZER_ON": "buzzer on",
    # LED view: the ERR light's flash counts
    **{f"CODE_{c}": f"{c} flashes: {text}" for c, text in FAULT_CODE_TEXT.items()},
}


def _flag_bits(flag_type: type[enum.IntFlag], first: int) -> tuple[str, ...]:
    names = {m.value.bit_length() - 1: m.name for m in flag_type if m.value}
    return tuple(names.get(b, "") for b in range(first, first + 16))


def _flag_pair(prefix: str, flag_type: type[enum.IntFlag], doc: str) -> list[Field]:
    return [
        Field(f"{prefix}_bits_0_15", "bitfield16", doc=f"{doc}, bits 0-15",
              bits=_flag_bits(flag_type, 0)),
        Field(f"{prefix}_bits_16_31", "bitfield16", doc=f"{doc}, bits 16-31",
              bits=_flag_bits(flag_type, 16)),
    ]


def _position_bitmap(prefix: str, doc: str) -> list[Field]:
    return [
        Field(f"{prefix}_{lo}_{lo + 15}", "bitfield16",
              doc=f"{doc}; bit n = position {lo}+n",
              bits=tuple(f"POSITION_{p}" for p in range(lo, lo + 16)))
        for lo in range(1, MAX_POSITIONS + 1, 16)
    ]


_MODULE_STATUS_VALUES = ((NOT_CONFIGURED, "not configured (no module at this position)"),) + tuple(
    (s.value, {
        ModuleStatus.OK: "ok: live data",
        ModuleStatus.STALE: "stale: the last good data is older than the stale age",
        ModuleStatus.OFFLINE: "offline: the module stopped answering",
        ModuleStatus.NEVER_SEEN: "never seen: no valid answer since start",
    }[s]) for s in ModuleStatus)

_SEVERITY_VALUES = tuple((s.value, s.name.lower()) for s in Severity)
_LED_VALUES = tuple((s.value, s.name.lower().replace("_", " ")) for s in LedState)
_LEDS = (("run", "RUN (green)"), ("alm", "ALM (1 Hz flash = yellow warning, steady = orange "
         "protection)"), ("err", "ERR (red)"), ("soc_1", "SOC1 (lowest)"), ("soc_2", "SOC2"),
         ("soc_3", "SOC3"), ("soc_4", "SOC4 (highest)"))
_SEVERITY_RANK = {Severity.CRITICAL: 5, Severity.MAJOR: 4, Severity.MINOR: 3,
                  Severity.WARNING: 2, Severity.INDETERMINATE: 1, Severity.CLEARED: 0}

_LIMITED_BY = {"capacity": 1, "module": 2, "voltage": 3}
_LIMITED_BY_VALUES = (
    (1, "capacity: the live modules' remaining charge runs out"),
    (2, "module: after the weakest modules cut off the rest cannot carry the load"),
    (3, "voltage: the bank voltage's trend reaches the EOD voltage first"))

# ------------------------------------------------------------------- the blocks --------

_LIMIT_CAUSES = tuple((c.value, c.name.lower().replace("_", " ")) for c in LimitCause)
_LIMITS_NOTE = ("not implemented while the charge_limits plugin is off")

#: The charge and discharge limits (docs/charge_limits.md), appended in map version 3.
LIMIT_FIELDS = [
    Field("cvl_mv", "uint16", "mV", "charge voltage limit: the configured float (or "
          f"equalise) voltage; {_LIMITS_NOTE}"),
    Field("cvl_cause", "enum16", doc="what set `cvl_mv`", values=_LIMIT_CAUSES),
    Field("ccl_ma", "uint32", "mA", "charge current limit for the bank now; 0 while "
          "`bank_status` is not 1 (cause 3 or 11); {_LIMITS_NOTE}"),
    Field("ccl_cause", "enum16", doc="what set `ccl_ma`", values=_LIMIT_CAUSES),
    Field("ccl_cause_position", "uint16", doc="module position that set `ccl_ma`, 0 = the "
          "bank"),
    Field("ccl_cause_index", "uint16", doc="cell or sensor number (1-based) that set "
          "`ccl_ma`, 0 = none"),
    Field("dcl_ma", "uint32", "mA", "discharge current limit for the bank now; 0 while "
          "`bank_status` is not 1 (cause 3 or 11); {_LIMITS_NOTE}"),
    Field("dcl_cause", "enum16", doc="what set `dcl_ma`", values=_LIMIT_CAUSES),
    Field("dcl_cause_position", "uint16", doc="module position that set `dcl_ma`, 0 = the "
          "bank"),
    Field("dcl_cause_index", "uint16", doc="cell or sensor number (1-based) that set "
          "`dcl_ma`, 0 = none"),
    Field("cutoff_mv", "uint16", "mV", "discharge voltage limit: the configured inverter "
          "cut-off voltage"),
    Field("eod_mv", "uint16", "mV", "the configured end-of-discharge voltage"),
    Field("limits_modules_counted", "uint16", doc="live modules the current limits count"),
    Field("rectifier_charge_ma", "uint32", "mA", "the configured rectifier charge current "
          "(not implemented when none is configured)"),
]


BANK_BLOCK = Layout("bank", [
    Field("map_version", "uint16", doc=f"version of this register map (now {MAP_VERSION})"),
    Field("module_slots", "uint16", doc=f"module positions in the map ({MAX_POSITIONS})"),
    Field("module_block_base", "uint16",
          doc=f"address of position 1's block ({MODULE_BLOCK_BASE})"),
    Field("module_block_stride", "uint16",
          doc=f"address distance between module blocks ({MODULE_BLOCK_STRIDE})"),
    Field("module_block_length", "uint16", doc="registers in a module block"),
    Field("bank_status", "enum16", doc="quality of the bank figures below",
          values=tuple((s.value, s.name.lower().replace("_", " ")) for s in BankStatus)),
    Field("snapshot_age_s", "uint16", "s", "age of the newest snapshot; saturates at 65534"),
    Field("snapshot_seq", "uint32", doc="sequence number of the newest snapshot (changes "
          "whenever new data arrives; a frozen value means a frozen gateway)"),
    Field("modules_configured", "uint16", doc="modules configured in the bank"),
    Field("modules_live", "uint16", doc="modules whose status register reads 1 (ok)"),
    Field("modules_alarmed", "uint16",
          doc="modules with an active alarm or a BMS protection/fault"),
    Field("current_ma", "int32", "mA", "bank current, sum over live modules; + = charging"),
    Field("power_w", "int32", "W", "bank power, sum of voltage x current over live modules; "
          "+ = charging"),
    Field("voltage_mean_mv", "uint16", "mV", "mean module voltage over live modules"),
    Field("voltage_min_mv", "uint16", "mV", "lowest module voltage"),
    Field("voltage_max_mv", "uint16", "mV", "highest module voltage"),
    Field("soc_permille", "uint16", "permille", "state of charge, capacity-weighted"),
    Field("soh_min_permille", "uint16", "permille", "lowest module state of health"),
    Field("remaining_mah", "uint32", "mAh", "remaining capacity, sum over live modules"),
    Field("full_mah", "uint32", "mAh", "full-charge capacity, sum over live modules"),
    Field("cell_min_mv", "uint16", "mV", "lowest cell voltage in the bank"),
    Field("cell_min_position", "uint16", doc="module position of the lowest cell"),
    Field("cell_min_index", "uint16", doc="cell number (1-based) of the lowest cell"),
    Field("cell_max_mv", "uint16", "mV", "highest cell voltage in the bank"),
    Field("cell_max_position", "uint16", doc="module position of the highest cell"),
    Field("cell_max_index", "uint16", doc="cell number (1-based) of the highest cell"),
    Field("temp_min_dc", "int16", "0.1 degC", "lowest temperature in the bank"),
    Field("temp_min_position", "uint16", doc="module position of the lowest temperature"),
    Field("temp_min_index", "uint16", doc="sensor number (1-based) of the lowest temperature"),
    Field("temp_max_dc", "int16", "0.1 degC", "highest temperature in the bank"),
    Field("temp_max_position", "uint16", doc="module position of the highest temperature"),
    Field("temp_max_index", "uint16", doc="sensor number (1-based) of the highest temperature"),
    Field("alarms_active", "uint16", doc="active alarms (bank and modules)"),
    Field("alarms_critical", "uint16", doc="active alarms of severity critical"),
    Field("alarms_major", "uint16", doc="active alarms of severity major"),
    Field("alarms_minor", "uint16", doc="active alarms of severity minor"),
    Field("alarms_warning", "uint16", doc="active alarms of severity warning"),
    Field("alarms_indeterminate", "uint16", doc="active alarms of severity indeterminate"),
    Field("alarm_worst_severity", "enum16",
          doc="worst active severity (ITU-ALARM-TC-MIB numbers as in the MIB; "
              "1 = cleared = no active alarm)", values=_SEVERITY_VALUES),
    Field("alarm_last_seq", "uint32", doc="sequence number of the last alarm raise or clear"),
    *_position_bitmap("modules_not_live", "module positions configured but not live "
                      "(status 2, 3 or 4)"),
    *_position_bitmap("modules_alarm", "module positions with an active alarm"),
    *_position_bitmap("modules_critical", "module positions with an active critical alarm"),
    *_position_bitmap("modules_major", "module positions with an active major alarm"),
    *_position_bitmap("modules_minor", "module positions with an active minor alarm"),
    *_position_bitmap("modules_warning", "module positions with an active warning alarm"),
    *_position_bitmap("modules_protection", "live module positions whose BMS reports a "
                      "protection (not implemented while no module is live)"),
    *_position_bitmap("modules_fault", "live module positions whose BMS reports a fault "
                      "(not implemented while no module is live)"),
    *_flag_pair("bank_warnings", Condition, "BMS warnings of any live module (OR; not "
                "implemented while no module is live)"),
    *_flag_pair("bank_protections", Condition, "BMS protections of any live module (OR; "
                "not implemented while no module is live)"),
    *_flag_pair("bank_faults", Fault, "BMS faults of any live module (OR; not implemented "
                "while no module is live)"),
    # backup time (the backup_time processor; not implemented while it is not enabled)
    Field("backup_state", "enum16", doc="what the bank does, from its current "
          "(docs/backup_time.md); not implemented while unknown or the bank status is not 1",
          values=tuple((s.value, s.name.lower()) for s in BankState)),
    Field("seconds_on_battery", "uint32", "s", "since the bank went on battery; 0 while it "
          "is not on battery"),
    Field("seconds_to_eod", "uint32", "s", "estimated time to the end-of-discharge voltage at "
          "the present load; only while discharging"),
    Field("estimate_limited_by", "enum16", doc="the bound that decided seconds_to_eod",
          values=_LIMITED_BY_VALUES),
    Field("discharge_current_ma", "uint32", "mA", "smoothed bank discharge current behind "
          "the estimate; only while discharging"),
    Field("seconds_to_full", "uint32", "s", "while charging: time to full at the present "
          "charge current (a lower bound: the charger tapers near full)"),
    Field("on_battery_since_epoch_s", "uint32", "s", "Unix time the bank went on battery; "
          "only while on battery"),
    Field("discharge_last_number", "uint32", doc="number of the newest discharge record "
          "(0 before the first); the registers below describe it"),
    Field("discharge_last_start_epoch_s", "uint32", "s", "Unix time the discharge began"),
    Field("discharge_last_duration_s", "uint32", "s", "how long the bank was on battery"),
    Field("discharge_last_mah", "uint32", "mAh", "charge delivered"),
    Field("discharge_last_wh", "uint32", "W", "energy delivered, in Wh"),
    Field("discharge_last_soc_start_permille", "uint16", "permille", "bank SOC at the start"),
    Field("discharge_last_soc_end_permille", "uint16", "permille", "bank SOC at the end"),
    Field("discharge_last_voltage_min_mv", "uint16", "mV", "lowest mean bank voltage"),
    Field("discharge_last_cell_min_mv", "uint16", "mV", "lowest cell voltage"),
    Field("discharge_last_cell_min_position", "uint16", doc="module position of that cell"),
    Field("discharge_last_cell_min_index", "uint16", doc="cell number (1-based) of that cell"),
    Field("discharge_last_temp_max_dc", "int16", "0.1 degC", "highest temperature"),
    Field("discharge_last_eod_reached", "enum16", doc="the bank reached the EOD voltage",
          values=((0, "no"), (1, "yes"))),
    Field("imbalance_rise_max_mv", "int16", "mV", "the largest rise of a module's daily mean "
          "cell imbalance over the trend window (alarm cell_imbalance_rising)"),
    Field("imbalance_rise_max_position", "uint16", doc="module position with that rise"),
    # -- charge and discharge limits (charge_limits plugin, docs/charge_limits.md)
    *LIMIT_FIELDS,
])

COUNTERS = ("frames_ok", "timeouts", "checksum_errors", "format_errors", "rtn_errors",
            "wrong_address", "no_data", "garbage_bytes")

MODULE_BLOCK = Layout("module", [
    Field("status", "enum16", doc="why the values below are (not) live; the values read "
          "as sentinels unless this is 1", values=_MODULE_STATUS_VALUES),
    Field("data_age_s", "uint16", "s", "age of the last good data; saturates at 65534"),
    Field("position", "uint16", doc="this block's bank position (constant)"),
    Field("bus_address", "uint16", doc="the module's DIP address on its bus"),
    Field("alarms_active", "uint16", doc="active alarms of this module"),
    Field("alarm_worst_severity", "enum16", doc="worst active severity of this module "
          "(1 = cleared = none)", values=_SEVERITY_VALUES),
    Field("voltage_mv", "uint16", "mV", "module voltage"),
    Field("current_ma", "int32", "mA", "module current; + = charging, - = discharging"),
    Field("soc_permille", "uint16", "permille", "state of charge"),
    Field("soh_permille", "uint16", "permille", "state of health"),
    Field("remaining_mah", "uint32", "mAh", "remaining capacity"),
    Field("full_mah", "uint32", "mAh", "full-charge capacity"),
    Field("design_mah", "uint32", "mAh", "design capacity"),
    Field("cycles", "uint16", doc="charge cycles"),
    Field("cell_count", "uint16", doc="cells the module reports"),
    Field("cell_min_mv", "uint16", "mV", "lowest cell voltage"),
    Field("cell_max_mv", "uint16", "mV", "highest cell voltage"),
    Field("temp_count", "uint16", doc="temperature sensors the module reports"),
    *_flag_pair("warnings", Condition, "BMS warnings"),
    *_flag_pair("protections", Condition, "BMS protections"),
    *_flag_pair("faults", Fault, "BMS faults"),
    *_flag_pair("states", State, "BMS operating states"),
    Field("bms_summary", "bitfield16", doc="summary of the BMS status",
          bits=("UNCLASSIFIED_FLAGS_PRESENT", "WARNING_ACTIVE", "PROTECTION_ACTIVE",
                "FAULT_ACTIVE") + ("",) * 12),
    Field("unclassified_count", "uint16",
          doc="BMS status bits the decoder could not classify"),
    Field("balancing_cells_1_16", "bitfield16", doc="cells being balanced; bit n = cell 1+n",
          bits=tuple(f"CELL_{c}" for c in range(1, 17))),
    Field("balancing_cells_17_32", "bitfield16", doc="cells being balanced; bit n = cell 17+n",
          bits=tuple(f"CELL_{c}" for c in range(17, 33))),
    *(Field(f"{c}", "uint32", doc=f"link counter {c} (always served for a configured "
            "module, whatever its status)") for c in COUNTERS),
    *(Field(f"cell_{i}_mv", "uint16", "mV", f"cell {i} voltage")
      for i in range(1, MAX_CELLS + 1)),
    *(Field(f"temp_{i}_dc", "int16", "0.1 degC", f"temperature sensor {i}")
      for i in range(1, MAX_TEMPS + 1)),
    *(Field(f"temp_{i}_role", "enum16", doc=f"what sensor {i} measures",
            values=tuple((r.value, r.name.lower()) for r in TempRole))
      for i in range(1, MAX_TEMPS + 1)),
    Field("serial", "string", size=SERIAL_REGISTERS, doc="module serial number, ASCII, "
          "2 characters per register, NUL-padded (last known, whatever the status)"),
    *(Field(f"led_{name}", "enum16", doc=f"what the {label} light shows (the LED view, "
            "docs/http.md); unknown while the module is not live", values=_LED_VALUES)
      for name, label in _LEDS),
    Field("led_err_codes", "bitfield16", doc="fault codes the ERR light flashes in turn "
          "after RESET; bit n = code n+1", bits=tuple(
              f"CODE_{c}" for c in range(1, 7)) + ("",) * 10),
])

assert MODULE_BLOCK.length <= MODULE_BLOCK_STRIDE
assert MODULE_BLOCK_BASE + MAX_POSITIONS * MODULE_BLOCK_STRIDE <= SUNSPEC_BASE
assert BANK_BLOCK.length <= MODULE_BLOCK_BASE


def module_block_start(position: int) -> int:
    """Address of the module block of bank ``position`` (1-based) in the bank unit."""
    if not 1 <= position <= MAX_POSITIONS:
        raise ValueError(f"position {position} is outside 1..{MAX_POSITIONS}")
    return MODULE_BLOCK_BASE + (position - 1) * MODULE_BLOCK_STRIDE


# ------------------------------------------------------------------- the image ---------


@dataclass(frozen=True, slots=True)
class Block:
    """Registers ``start .. start + len(values) - 1`` of one unit."""

    start: int
    values: tuple[int, ...]

    @property
    def end(self) -> int:
        return self.start + len(self.values)


@dataclass(frozen=True, slots=True, kw_only=True)
class RegisterImage:
    """Every register the server serves, for one snapshot at one instant."""

    bank_unit: tuple[Block, ...]  #: sorted by start
    module_units: Mapping[int, tuple[Block, ...]]  #: position -> blocks of that module's unit


def read_registers(blocks: Sequence[Block], address: int, count: int
                   ) -> tuple[int, ...] | ExceptionCode:
    """Answer a read of ``count`` registers at ``address`` (the Modbus rules: quantity
    1..125, else 03; every address mapped, within one block, else 02)."""
    if not 1 <= count <= MAX_READ:
        return ExceptionCode.ILLEGAL_DATA_VALUE
    starts = [b.start for b in blocks]
    i = bisect.bisect_right(starts, address) - 1
    if i < 0:
        return ExceptionCode.ILLEGAL_DATA_ADDRESS
    block = blocks[i]
    if address + count > block.end:
        return ExceptionCode.ILLEGAL_DATA_ADDRESS
    return block.values[address - block.start: address - block.start + count]


def _age(now: float, then: float | None) -> int | None:
    if then is None:
        return None
    return min(int(max(0.0, now - then)), 0xFFFE)


def _worst(alarms: Iterable[Alarm]) -> int:
    worst = Severity.CLEARED
    for a in alarms:
        if _SEVERITY_RANK[a.severity] > _SEVERITY_RANK[worst]:
            worst = a.severity
    return worst.value


def _bitmap(prefix: str, positions: Iterable[int]) -> dict[str, int]:
    words = [0] * (MAX_POSITIONS // 16)
    for p in positions:
        if 1 <= p <= MAX_POSITIONS:
            words[(p - 1) // 16] |= 1 << ((p - 1) % 16)
    return {f"{prefix}_{16 * i + 1}_{16 * i + 16}": w for i, w in enumerate(words)}


def _flags(prefix: str, value: int) -> dict[str, int]:
    return {f"{prefix}_bits_0_15": value & 0xFFFF, f"{prefix}_bits_16_31": value >> 16 & 0xFFFF}


@functools.lru_cache(maxsize=MAX_POSITIONS)
def _unconfigured_block(position: int) -> tuple[int, ...]:
    return MODULE_BLOCK.pack({"status": NOT_CONFIGURED, "position": position,
                              "alarms_active": 0, "alarm_worst_severity": Severity.CLEARED})


def make_module_values(s: ServedModule, now: float, alarms: Sequence[Alarm]) -> dict[str, object]:
    """Field values of one configured module's block."""
    m = s.reading
    v: dict[str, object] = {
        "status": s.status,
        "data_age_s": _age(now, m.updated_at),
        "position": m.position,
        "bus_address": m.address,
        "alarms_active": len(alarms),
        "alarm_worst_severity": _worst(alarms),
        "serial": m.identity.serial if m.identity else None,
    }
    for c in COUNTERS:
        v[c] = getattr(m.counters, c)
    if not s.live:
        return v
    t = m.telemetry
    if t is not None:
        v.update(
            voltage_mv=t.voltage_mv, current_ma=t.current_ma, soc_permille=t.soc_permille,
            soh_permille=t.soh_permille, remaining_mah=t.remaining_mah, full_mah=t.full_mah,
            design_mah=t.design_mah, cycles=t.cycles, cell_count=len(t.cell_mv),
            cell_min_mv=t.cell_min_mv, cell_max_mv=t.cell_max_mv, temp_count=len(t.temp_dc),
        )
        for i, mv in enumerate(t.cell_mv[:MAX_CELLS], start=1):
            v[f"cell_{i}_mv"] = mv
        for i, dc in enumerate(t.temp_dc[:MAX_TEMPS], start=1):
            v[f"temp_{i}_dc"] = dc
        for i, role in enumerate(t.temp_roles[:MAX_TEMPS], start=1):
            v[f"temp_{i}_role"] = role.value
    leds = derive_leds(t, m.bms)
    v.update(led_run=leds.run, led_alm=leds.alm, led_err=leds.err,
             led_err_codes=fault_code_bits(leds.fault_codes))
    if leds.soc is not None:
        v.update({f"led_soc_{i}": s for i, s in enumerate(leds.soc, start=1)})
    b = m.bms
    if b is not None:
        v.update(_flags("warnings", b.warnings))
        v.update(_flags("protections", b.protections))
        v.update(_flags("faults", b.faults))
        v.update(_flags("states", b.states))
        v["bms_summary"] = (bool(b.unclassified) | bool(b.warnings) << 1
                            | bool(b.protections) << 2 | bool(b.faults) << 3)
        v["unclassified_count"] = len(b.unclassified)
        if b.balancing is not None:
            bits = sum(1 << i for i, on in enumerate(b.balancing[:MAX_CELLS]) if on)
            v["balancing_cells_1_16"] = bits & 0xFFFF
            v["balancing_cells_17_32"] = bits >> 16
    return v


def _backup_values(v: dict[str, object], snap: BankSnapshot, *, live: bool) -> None:
    """The backup time registers: the records always, the present figures only while the
    bank figures are live."""
    e = snap.backup
    if e is None:
        return
    v["discharge_last_number"] = e.record_last
    if e.records:
        r = e.records[-1]
        v.update(
            discharge_last_start_epoch_s=int(r.started_wall_time),
            discharge_last_duration_s=r.duration_s, discharge_last_mah=r.delivered_mah,
            discharge_last_wh=r.delivered_wh,
            discharge_last_soc_start_permille=r.soc_start_permille,
            discharge_last_soc_end_permille=r.soc_end_permille,
            discharge_last_voltage_min_mv=r.voltage_min_mv,
            discharge_last_cell_min_mv=r.cell_min_mv,
            discharge_last_temp_max_dc=r.temp_max_dc,
            discharge_last_eod_reached=int(r.eod_reached))
        if r.cell_min_mv is not None and r.cell_min_at is not None:
            v["discharge_last_cell_min_position"] = r.cell_min_at.position
            v["discharge_last_cell_min_index"] = r.cell_min_at.index
    rises = [(m.rise_mv, -m.position) for m in e.imbalance if m.rise_mv is not None]
    if rises:
        rise, neg_position = max(rises)
        v["imbalance_rise_max_mv"] = rise
        v["imbalance_rise_max_position"] = -neg_position
    if not live or e.state is None:
        return
    v.update(
        backup_state=int(e.state), seconds_on_battery=e.seconds_on_battery,
        seconds_to_eod=e.seconds_to_eod,
        estimate_limited_by=_LIMITED_BY.get(e.limited_by or ""),
        discharge_current_ma=e.discharge_current_ma, seconds_to_full=e.seconds_to_full,
        on_battery_since_epoch_s=None if e.on_battery_since_wall_time is None
        else int(e.on_battery_since_wall_time))


def make_bank_values(view: BankView, now: float) -> dict[str, object]:
    v: dict[str, object] = {
        "map_version": MAP_VERSION, "module_slots": MAX_POSITIONS,
        "module_block_base": MODULE_BLOCK_BASE, "module_block_stride": MODULE_BLOCK_STRIDE,
        "module_block_length": MODULE_BLOCK.length, "bank_status": view.status,
    }
    snap = view.snapshot
    if snap is None:
        return v
    v.update(make_limit_values(view))
    alarms = snap.alarms
    by_severity = {s: [a for a in alarms if a.severity is s] for s in Severity}
    live = view.live
    v.update(
        snapshot_age_s=_age(now, snap.created_at),
        snapshot_seq=snap.seq,
        modules_configured=snap.bank.modules_configured,
        modules_live=len(live),
        modules_alarmed=snap.bank.modules_alarmed,
        alarms_active=len(alarms),
        alarms_critical=len(by_severity[Severity.CRITICAL]),
        alarms_major=len(by_severity[Severity.MAJOR]),
        alarms_minor=len(by_severity[Severity.MINOR]),
        alarms_warning=len(by_severity[Severity.WARNING]),
        alarms_indeterminate=len(by_severity[Severity.INDETERMINATE]),
        alarm_worst_severity=_worst(alarms),
        alarm_last_seq=snap.alarm_last_seq,
    )
    v.update(_bitmap("modules_not_live", (s.reading.position for s in view.modules if not s.live)))
    v.update(_bitmap("modules_alarm", (a.position for a in alarms)))
    for prefix, sev in (("modules_critical", Severity.CRITICAL), ("modules_major", Severity.MAJOR),
                        ("modules_minor", Severity.MINOR), ("modules_warning", Severity.WARNING)):
        v.update(_bitmap(prefix, (a.position for a in by_severity[sev])))
    reported = [m.bms for m in live if m.bms is not None]
    if reported:  # with no live BMS status the flags are unknown, not "none"
        v.update(_bitmap("modules_protection",
                         (m.position for m in live if m.bms is not None and m.bms.protections)))
        v.update(_bitmap("modules_fault",
                         (m.position for m in live if m.bms is not None and m.bms.faults)))
        warn = prot = fault = 0
        for b in reported:
            warn |= b.warnings
            prot |= b.protections
            fault |= b.faults
        v.update(_flags("bank_warnings", warn))
        v.update(_flags("bank_protections", prot))
        v.update(_flags("bank_faults", fault))
    _backup_values(v, snap, live=view.ok)
    if not view.ok:
        return v
    b = snap.bank
    power = view.power_uw()
    v.update(
        current_ma=b.current_ma,
        power_w=None if power is None else div_round(power, 1_000_000),
        voltage_mean_mv=b.voltage_mean_mv, voltage_min_mv=b.voltage_min_mv,
        voltage_max_mv=b.voltage_max_mv, soc_permille=b.soc_permille,
        soh_min_permille=b.soh_min_permille, remaining_mah=b.remaining_mah,
        full_mah=b.full_mah, cell_min_mv=b.cell_min_mv, cell_max_mv=b.cell_max_mv,
        temp_min_dc=b.temp_min_dc, temp_max_dc=b.temp_max_dc,
    )
    for key, loc in (("cell_min", b.cell_min_at), ("cell_max", b.cell_max_at),
                     ("temp_min", b.temp_min_at), ("temp_max", b.temp_max_at)):
        if loc is not None:
            v[f"{key}_position"] = loc.position
            v[f"{key}_index"] = loc.index
    return v


def _limit(prefix: str, limit: Limit) -> dict[str, object]:
    return {prefix: limit.value, f"{prefix[:3]}_cause": limit.cause.value,
            f"{prefix[:3]}_cause_position": limit.position,
            f"{prefix[:3]}_cause_index": limit.index}


def make_limit_values(view: BankView) -> dict[str, object]:
    """The limit registers: empty (not implemented) without limits in the snapshot. The
    current limits read 0 while the bank block's figures are not live (cause 3 with no
    module live, 11 with data not fresh): a rectifier or an inverter that follows them
    stops instead of acting on a stale figure or on a sentinel read as a number."""
    snap = view.snapshot
    lim = snap.charge_limits if snap is not None else None
    if lim is None:
        return {}
    v: dict[str, object] = {
        "cvl_mv": lim.cvl.value, "cvl_cause": lim.cvl.cause.value, "cutoff_mv": lim.cutoff_mv,
        "eod_mv": lim.eod_mv, "rectifier_charge_ma": lim.rectifier_ma,
    }
    if view.ok:
        v.update(_limit("ccl_ma", lim.ccl), **_limit("dcl_ma", lim.dcl),
                 limits_modules_counted=lim.modules_counted)
    else:
        cause = (LimitCause.NO_LIVE_MODULE if view.status is BankStatus.NO_LIVE_MODULES
                 else LimitCause.NOT_FRESH)
        for prefix in ("ccl_ma", "dcl_ma"):
            v.update(_limit(prefix, Limit(value=0, cause=cause, reason="")))
        v["limits_modules_counted"] = 0
    return v


#: The age registers: field name -> the time its age counts from, for the bank block
#: (from the :class:`BankView`) and a module block (from its :class:`ServedModule`).
#: They are the only registers that change with time alone while a module's served
#: status stays the same, so the live tables (:mod:`plugins.modbus_tcp.live_tables`)
#: rewrite just these, in place, once a second. A field with unit "s" missing here
#: fails tests/modbus_tcp/test_live_tables.py.
BANK_AGES: dict[str, Callable[[BankView], float | None]] = {
    "snapshot_age_s": lambda view: None if view.snapshot is None else view.snapshot.created_at,
}
MODULE_AGES: dict[str, Callable[[ServedModule], float | None]] = {
    "data_age_s": lambda s: s.reading.updated_at,
}


def age_value(now: float, then: float | None) -> int | None:
    """The value of an age register: whole seconds since ``then``, saturating."""
    return _age(now, then)


def alarms_by_position(snapshot: BankSnapshot | None) -> dict[int, tuple[Alarm, ...]]:
    """The snapshot's active alarms, grouped by module position (0 = bank)."""
    at: dict[int, list[Alarm]] = {}
    if snapshot is not None:
        for a in snapshot.alarms:
            at.setdefault(a.position, []).append(a)
    return {p: tuple(a) for p, a in at.items()}


def make_bank_registers(view: BankView, now: float) -> tuple[int, ...]:
    """The bank block's registers."""
    return BANK_BLOCK.pack(make_bank_values(view, now))


def make_module_registers(s: ServedModule, now: float, alarms: Sequence[Alarm]
                          ) -> tuple[int, ...]:
    """One configured module's block."""
    return MODULE_BLOCK.pack(make_module_values(s, now, alarms))


def unconfigured_registers(position: int) -> tuple[int, ...]:
    """The block of a position no module is configured at."""
    return _unconfigured_block(position)


def make_sunspec_registers(view: BankView, device: DeviceInfo) -> tuple[int, ...]:
    """The SunSpec view's registers."""
    return sunspec.make_sunspec_block(view, device, MAP_VERSION)


def served_by_position(view: BankView) -> dict[int, ServedModule]:
    """The configured modules of ``view`` by position (a repeated position: the last)."""
    return {s.reading.position: s for s in view.modules}


def make_image(snapshot: BankSnapshot | None, now: float, *, stale_after_s: float,
               device: DeviceInfo = DeviceInfo()) -> RegisterImage:
    """Every register of every unit for ``snapshot`` at monotonic time ``now``.

    Pure: the same arguments give the same image. ``stale_after_s`` is the age beyond
    which data the snapshot still calls live is served as stale. The server keeps the
    same registers up to date incrementally (:mod:`plugins.modbus_tcp.live_tables`); a
    test holds the two identical.
    """
    view = make_bank_view(snapshot, now, stale_after_s)
    bank = Block(BANK_BLOCK_START, make_bank_registers(view, now))
    alarms_at = alarms_by_position(snapshot)
    module_values: dict[int, tuple[int, ...]] = {
        p: make_module_registers(s, now, alarms_at.get(p, ()))
        for p, s in served_by_position(view).items()
    }
    modules = [Block(module_block_start(p),
                     module_values.get(p) or unconfigured_registers(p))
               for p in range(1, MAX_POSITIONS + 1)]
    sunspec_block = Block(SUNSPEC_BASE, make_sunspec_registers(view, device))
    module_units = {p: (bank, Block(MODULE_BLOCK_BASE, modules[p - 1].values))
                    for p in range(1, MAX_POSITIONS + 1)}
    return RegisterImage(bank_unit=(bank, *modules, sunspec_block), module_units=module_units)


# ------------------------------------------------------------- contract and docs -------


def _field_contract(f: Field, offset: int) -> dict[str, object]:
    d: dict[str, object] = {"offset": offset, "name": f.name, "type": f.type,
                            "registers": f.length}
    if f.unit:
        d["unit"] = f.unit
        d["scale"] = f.scale
    if f.bits:
        d["bits"] = {str(i): n for i, n in enumerate(f.bits) if n}
    if f.values:
        d["values"] = {str(k): n for k, n in f.values}
    return d


def contract() -> dict[str, object]:
    """The locked public contract: every register's address, name, type and scale."""
    return {
        "map_version": MAP_VERSION,
        "word_order": "big-endian (high word first)",
        "sentinels": {t: f"0x{v:X}" for t, v in SENTINELS.items()},
        "bank_block": {"start": BANK_BLOCK_START, "length": BANK_BLOCK.length,
                       "registers": [_field_contract(f, BANK_BLOCK.offsets[f.name])
                                     for f in BANK_BLOCK.fields]},
        "module_block": {"base": MODULE_BLOCK_BASE, "stride": MODULE_BLOCK_STRIDE,
                         "positions": MAX_POSITIONS, "length": MODULE_BLOCK.length,
                         "registers": [_field_contract(f, MODULE_BLOCK.offsets[f.name])
                                       for f in MODULE_BLOCK.fields]},
        "sunspec": sunspec.contract(),
    }


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _md_table(layout: Layout, base: int, address_label: str) -> list[str]:
    out = [f"| {address_label} | offset | name | type | unit | one count | description |",
           "|---:|---:|---|---|---|---|---|"]
    for f in layout.fields:
        off = layout.offsets[f.name]
        addr = f"{base + off}" if f.length == 1 else f"{base + off}-{base + off + f.length - 1}"
        out.append(f"| {addr} | {off} | `{f.name}` | {f.type} | {f.unit} | {f.scale} | "
                   f"{_md_escape(f.doc)} |")
    return out


def _md_details(layout: Layout) -> list[str]:
    """Bit and enumeration tables for the fields of ``layout`` that need them."""
    out: list[str] = []
    described: dict[tuple[str, ...], str] = {}
    for f in layout.fields:
        if f.bits:
            if f.bits[0].startswith(("POSITION_", "CELL_")):
                continue  # bit n = position/cell, said in the description
            if not any(f.bits):
                out += [f"**`{f.name}`**: reserved for flags added later; 0 whenever the "
                        "flags are known.", ""]
            elif f.bits in described:
                out += [f"**`{f.name}`**: the bits of `{described[f.bits]}`.", ""]
            else:
                described[f.bits] = f.name
                out += [f"**`{f.name}`**", "", "| bit | name | meaning |", "|---:|---|---|"]
                out += [f"| {i} | `{n}` | {FLAG_TEXT.get(n, n.lower().replace('_', ' '))} |"
                        for i, n in enumerate(f.bits) if n]
                out += ["", "Bits not listed are reserved and read 0.", ""]
        elif f.values and (not f.name.startswith(("temp_", "led_"))
                           or f.name in ("temp_1_role", "led_run")):
            label = {"temp_1_role": "temp_N_role", "led_run": "led_*"}.get(f.name, f.name)
            out += [f"**`{label}`** values: "
                    + ", ".join(f"{k} = {_md_escape(n)}" for k, n in f.values), ""]
    return out


def render_markdown() -> str:
    """``docs/register_map.md``, generated from the tables of this module."""
    last = module_block_start(MAX_POSITIONS)
    lines = [
        "# Modbus register map",
        "",
        "<!-- Generated by `python -m plugins.modbus_tcp.register_map --markdown`. Do not edit:",
        "     a test fails when this file differs from plugins/modbus_tcp/register_map.py. -->",
        "",
        f"Map version **{MAP_VERSION}** (register `map_version`, address 0). How to connect, the",
        "unit-ID scheme and examples are in [modbus.md](modbus.md).",
        "",
        "## Rules for every register",
        "",
        "- Addresses are Modbus protocol (PDU) addresses, starting at 0. Tools that count",
        "  from 1 (\"4x\" references, `mbpoll` without `-0`) add 1.",
        "- The same registers answer function 03 (read holding registers) and 04 (read input",
        "  registers). Every write function answers exception 01: the map is read-only.",
        "- A read must lie inside one block below; a read touching an address outside every",
        "  block answers exception 02, a quantity of 0 or more than 125 exception 03.",
        "- Integers in fixed units, the unit in the name (`_mv` millivolt, `_ma` milliampere,",
        "  `_mah` milliampere-hour, `_w` watt, `_dc` 0.1 °C, `_permille` 0.1 %, `_s` second).",
        "  Current and power are **positive while charging** and negative while discharging.",
        "- 32-bit values take two registers, **high word first** (big-endian word order;",
        "  `mbpoll -B`).",
        "- A value that is unknown, not live, or does not fit its type reads as the SunSpec",
        "  \"not implemented\" sentinel; strings read all NUL. A value is never wrapped or",
        "  clipped into a wrong one.",
        "",
        "  | type | sentinel |",
        "  |---|---|",
        *(f"  | {t} | `0x{SENTINELS[t]:X}` |" for t in
          ("int16", "uint16", "int32", "uint32", "enum16", "bitfield16")),
        "",
        "- Module values are live only while the module's `status` register reads 1 (ok);",
        "  for any other status every measurement, BMS flag and count reads as the sentinel,",
        "  and `data_age_s` says how old the last good data is. Link counters, alarm",
        "  registers and the serial number are served whatever the status.",
        "- Bank figures are live only while `bank_status` reads 1: data is flowing, from",
        "  at least one live module. Data the south side still calls live but that is",
        "  older than `stale_after_s` is served as stale (status 2), so a stopped poller",
        "  can never leave frozen values looking live; with no module live (every one",
        "  stale, offline or never seen, as after a total bus loss) it reads 3. A SCADA",
        "  alarming on `bank_status` != 1 sees a total bus loss.",
        "- Bitfields: bit 0 is the least significant bit of the register. A bitfield that",
        "  is unknown reads `0xFFFF` like any uint16 sentinel: check `status` first.",
        "",
        "## Layout",
        "",
        "| block | addresses | length |",
        "|---|---|---:|",
        f"| bank | {BANK_BLOCK_START}-{BANK_BLOCK_START + BANK_BLOCK.length - 1} | "
        f"{BANK_BLOCK.length} |",
        f"| module at position *p* (1-{MAX_POSITIONS}) | {MODULE_BLOCK_BASE} + (*p* - 1) x "
        f"{MODULE_BLOCK_STRIDE}, e.g. position 1: {MODULE_BLOCK_BASE}-"
        f"{MODULE_BLOCK_BASE + MODULE_BLOCK.length - 1}, position {MAX_POSITIONS}: {last}-"
        f"{last + MODULE_BLOCK.length - 1} | {MODULE_BLOCK.length} |",
        f"| SunSpec | {SUNSPEC_BASE}-{SUNSPEC_BASE + sunspec.LENGTH - 1} | {sunspec.LENGTH} |",
        "",
        "Every position 1-64 has its block, configured or not (`status` 0 = not configured),",
        "so the layout never moves when modules are added, removed or go offline. In a",
        f"module's own unit (see modbus.md) its block is at {MODULE_BLOCK_BASE} and the bank block",
        "at 0.",
        "",
        "## Bank block",
        "",
        *_md_table(BANK_BLOCK, BANK_BLOCK_START, "address"),
        "",
        *_md_details(BANK_BLOCK),
        "## Module block",
        "",
        f"Addresses for position 1; add ({MODULE_BLOCK_STRIDE} x (position - 1)) for the others.",
        "",
        *_md_table(MODULE_BLOCK, MODULE_BLOCK_BASE, "address (pos. 1)"),
        "",
        *_md_details(MODULE_BLOCK),
        *sunspec.render_markdown(),
    ]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m plugins.modbus_tcp.register_map",
        description="Print the Modbus register map as Markdown or as the locked JSON contract.")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--markdown", action="store_true", help="docs/register_map.md")
    group.add_argument("--json", action="store_true",
                       help="tests/modbus_tcp/data/register_map.json")
    args = parser.parse_args(argv)
    if args.markdown:
        sys.stdout.write(render_markdown())
    else:
        sys.stdout.write(json.dumps(contract(), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
