"""Every alarm kind the rules can raise: its stable name, its scope, and its words.

The names are part of the public contracts (``bmsAlarmKind`` in the MIB, the event log):
never rename one. Each is at most 32 characters (the MIB's SIZE (1..32)).

BMS-reported conditions keep the module manual's vocabulary: the LED table's warnings
(yellow ALM light) and protections (orange light), the red ERR light's fault list with
its blink count, "reverse connection, short circuit".
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gateway.model import Condition, Fault

MAX_KIND = 32
MAX_TEXT = 64


class Scope(enum.Enum):
    MODULE = "module"  #: one battery module (position >= 1)
    BANK = "bank"  #: the bank as a whole (position 0)
    BUS = "bus"  #: one RS485 bus (position 0, sub-index = the bus's number)
    GATEWAY = "gateway"  #: the alarm engine itself (position 0)


class Family(enum.Enum):
    THRESHOLD = "threshold"  #: a measured value against raise/clear levels
    COMM = "comm"  #: communication with a module or a bus
    BMS = "bms"  #: a warning, protection or fault the module's BMS reports
    STORM = "storm"  #: the summary of an alarm storm


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    scope: Scope
    family: Family
    unit: str | None = None  #: unit of Alarm.value and Alarm.threshold


# Threshold kinds: name -> (scope, unit of the value). The rule that raises each is the
# settings field of the same name (plugins/alarms/settings.py).
THRESHOLDS: dict[str, tuple[Scope, str]] = {
    "cell_voltage_high": (Scope.MODULE, "mV"),
    "cell_voltage_low": (Scope.MODULE, "mV"),
    "cell_spread_high": (Scope.MODULE, "mV"),
    "cell_imbalance_rising": (Scope.MODULE, "mV"),  #: from the backup_time trend
    "pack_voltage_high": (Scope.MODULE, "mV"),
    "pack_voltage_low": (Scope.MODULE, "mV"),
    "bank_voltage_high": (Scope.BANK, "mV"),
    "bank_voltage_low": (Scope.BANK, "mV"),
    "bank_voltage_eod": (Scope.BANK, "mV"),
    "charge_current_high": (Scope.MODULE, "mA"),
    "discharge_current_high": (Scope.MODULE, "mA"),
    "charge_temp_high": (Scope.MODULE, "0.1 degC"),
    "charge_temp_low": (Scope.MODULE, "0.1 degC"),
    "discharge_temp_high": (Scope.MODULE, "0.1 degC"),
    "discharge_temp_low": (Scope.MODULE, "0.1 degC"),
    "mosfet_temp_high": (Scope.MODULE, "0.1 degC"),
    "mosfet_temp_low": (Scope.MODULE, "0.1 degC"),
    "ambient_temp_high": (Scope.MODULE, "0.1 degC"),
    "ambient_temp_low": (Scope.MODULE, "0.1 degC"),
    "soc_low": (Scope.MODULE, "per mille"),
    "bank_soc_low": (Scope.BANK, "per mille"),
    "soh_low": (Scope.MODULE, "per mille"),
    "data_age_high": (Scope.BUS, "s"),
}

COMM: dict[str, tuple[Scope, str | None]] = {
    "module_stale": (Scope.MODULE, "s"),
    "module_offline": (Scope.MODULE, "s"),
    "bus_down": (Scope.BUS, None),
    "duplicate_address": (Scope.MODULE, "answers"),
}

#: Rules on the live charge limits that the charge_limits plugin puts in the snapshot:
#: value = the configured rectifier charge current, threshold = the live CCL.
LIMITS: dict[str, tuple[Scope, str]] = {
    "rectifier_above_ccl": (Scope.BANK, "mA"),
}

#: Conditions in the manual's words (LED table); the same words serve the warning and
#: the protection of a condition.
CONDITION_WORDS: dict[Condition, str] = {
    Condition.CELL_OVER_VOLTAGE: "cell voltage is too high",
    Condition.CELL_UNDER_VOLTAGE: "cell voltage is too low",
    Condition.PACK_OVER_VOLTAGE: "pack voltage is too high",
    Condition.PACK_UNDER_VOLTAGE: "battery voltage is too low",
    Condition.CHARGE_OVER_CURRENT: "charge overcurrent",
    Condition.DISCHARGE_OVER_CURRENT: "discharge overcurrent",
    Condition.SHORT_CIRCUIT: "short circuit, reverse connection",
    Condition.CHARGE_HIGH_TEMP: "temperature is too high (charge)",
    Condition.CHARGE_LOW_TEMP: "temperature is too low (charge)",
    Condition.DISCHARGE_HIGH_TEMP: "temperature is too high (discharge)",
    Condition.DISCHARGE_LOW_TEMP: "temperature is too low (discharge)",
    Condition.MOSFET_HIGH_TEMP: "MOSFET temperature is too high",
    Condition.AMBIENT_HIGH_TEMP: "ambient temperature is too high",
    Condition.AMBIENT_LOW_TEMP: "ambient temperature is too low",
    Condition.LOW_CAPACITY: "capacity is low",
    Condition.CHARGER_OVER_VOLTAGE: "charger voltage is too high",
}

#: Faults in the manual's words, with the ERR light's blink count where the manual gives one.
FAULT_WORDS: dict[Fault, str] = {
    Fault.VOLTAGE_SENSOR: "voltage sensor failure (ERR 1x)",
    Fault.TEMPERATURE_SENSOR: "temperature sensor failure (ERR 2x)",
    Fault.CHARGE_CIRCUIT: "charging circuit failure (ERR 3x)",
    Fault.DISCHARGE_CIRCUIT: "discharge circuit failure (ERR 4x)",
    Fault.BATTERY: "battery failure (ERR 5x)",
    Fault.SAMPLING_IC: "sampling IC communication failure (ERR 6x)",
    Fault.REVERSE_CONNECTION: "reverse connection, short circuit",
    Fault.CURRENT_SENSOR: "current sensor failure",
    Fault.HEATER: "heater failure",
    Fault.CURRENT_LIMITER: "current limiter failure",
    Fault.INTERNAL_COMMUNICATION: "internal communication failure",
}

WARNING_PREFIX = "warn_"
PROTECTION_PREFIX = "protect_"
FAULT_PREFIX = "fault_"
UNCLASSIFIED = "bms_unclassified_flag"
STORM = "alarm_storm"


def _flag_name(flag: enum.Flag) -> str:
    assert flag.name is not None
    return flag.name.lower()


def warning_kind(condition: Condition) -> str:
    return WARNING_PREFIX + _flag_name(condition)


def protection_kind(condition: Condition) -> str:
    return PROTECTION_PREFIX + _flag_name(condition)


def fault_kind(fault: Fault) -> str:
    return FAULT_PREFIX + _flag_name(fault)


def _singles(flags: type[enum.IntFlag]) -> list:
    return [f for f in flags if f.value and f.value & (f.value - 1) == 0]


#: BMS kinds: name -> (group, words). Groups: warning, protection, fault, unclassified.
BMS: dict[str, tuple[str, str]] = {
    **{warning_kind(c): ("warning", CONDITION_WORDS[c]) for c in _singles(Condition)},
    **{protection_kind(c): ("protection", CONDITION_WORDS[c]) for c in _singles(Condition)},
    **{fault_kind(f): ("fault", FAULT_WORDS[f]) for f in _singles(Fault)},
    UNCLASSIFIED: ("unclassified", "unclassified BMS flag"),
}

KINDS: dict[str, Kind] = {
    **{n: Kind(n, s, Family.THRESHOLD, u) for n, (s, u) in THRESHOLDS.items()},
    **{n: Kind(n, s, Family.COMM, u) for n, (s, u) in COMM.items()},
    **{n: Kind(n, s, Family.THRESHOLD, u) for n, (s, u) in LIMITS.items()},
    **{n: Kind(n, Scope.MODULE, Family.BMS, "bit" if n == UNCLASSIFIED else None)
       for n in BMS},
    STORM: Kind(STORM, Scope.GATEWAY, Family.STORM, "modules"),
}

assert all(len(k) <= MAX_KIND for k in KINDS), [k for k in KINDS if len(k) > MAX_KIND]
