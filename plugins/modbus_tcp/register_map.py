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

from gateway.model import (
    Alarm,
    BankSnapshot,
    Condition,
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
MAP_VERSION = 2  #: 2: bank_status 3, no live module (version 1 read 1 after a total bus loss)

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
_SEVERITY_RANK = {Severity.CRITICAL: 5, Severity.MAJOR: 4, Severity.MINOR: 3,
                  Severity.WARNING: 2, Severity.INDETERMINATE: 1, Severity.CLEARED: 0}

# ------------------------------------------------------------------- the blocks --------

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


def make_bank_values(view: BankView, now: float) -> dict[str, object]:
    v: dict[str, object] = {
        "map_version": MAP_VERSION, "module_slots": MAX_POSITIONS,
        "module_block_base": MODULE_BLOCK_BASE, "module_block_stride": MODULE_BLOCK_STRIDE,
        "module_block_length": MODULE_BLOCK.length, "bank_status": view.status,
    }
    snap = view.snapshot
    if snap is None:
        return v
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
        elif f.values and (not f.name.startswith("temp_") or f.name == "temp_1_role"):
            label = "temp_N_role" if f.name == "temp_1_role" else f.name
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
