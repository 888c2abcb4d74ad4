"""Configuration of the ``alarms`` plugin (the ``alarms:`` YAML section).

Every rule has a severity, a raise delay and a clear delay, and can be switched off with
``enabled: false``. Threshold rules add a raise level and a clear level in the unit their
key names (``raise_v``/``clear_v`` volts, ``_mv`` millivolts, ``_a`` amperes, ``_degc``
degrees Celsius, ``_pct`` percent, ``_s`` seconds). A key given in the file replaces
that key of the built-in default and leaves the rule's other keys at their defaults, so
``cell_voltage_high: {raise_v: 3.55}`` keeps the default clear level and delays.

The defaults are for a 48 V bank of 16-cell LiFePO4 modules in parallel (docs/alarms.md
explains where each number comes from; the module manual's rectifier table gives float
53.25 V, equalize 54.75 V, low-voltage alarm 42.0 V, end of discharge 40.5 V and the
inverter cut-off 40.3 V).
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar, Literal

import pydantic

from gateway.config import Section
from gateway.model import Severity

from plugins.alarms import catalog

SeverityName = Literal["critical", "major", "minor", "warning"]

SEVERITIES: dict[str, Severity] = {
    "critical": Severity.CRITICAL, "major": Severity.MAJOR, "minor": Severity.MINOR,
    "warning": Severity.WARNING,
}



class Rule(Section):
    """What every alarm rule has."""

    enabled: bool = pydantic.Field(True, description="false switches the alarm off")
    severity: SeverityName = pydantic.Field(description="critical, major, minor or warning")
    raise_delay_s: float = pydantic.Field(
        0.0, ge=0, le=86_400,
        description="the condition must hold this long, without a break, before the alarm "
        "is raised")
    clear_delay_s: float = pydantic.Field(
        0.0, ge=0, le=86_400,
        description="the condition must be gone this long, without a break, before the "
        "alarm clears")

    @property
    def level(self) -> Severity:
        return SEVERITIES[self.severity]


class Threshold(Rule):
    """A rule on a measured value, with separate raise and clear levels (hysteresis)."""

    UNIT: ClassVar[str]  #: suffix of the level keys
    SCALE: ClassVar[float]  #: from the key's unit to the model's integer unit
    HIGH: ClassVar[bool]  #: raised above the level (True) or below it (False)

    def _levels(self) -> tuple[float, float]:
        return getattr(self, f"raise_{self.UNIT}"), getattr(self, f"clear_{self.UNIT}")

    @pydantic.model_validator(mode="after")
    def _hysteresis(self) -> Threshold:
        raise_at, clear_at = self._levels()
        if self.HIGH and not clear_at < raise_at:
            raise ValueError(f"clear_{self.UNIT} ({clear_at}) must be below raise_{self.UNIT} "
                             f"({raise_at}): the alarm is raised above the level")
        if not self.HIGH and not clear_at > raise_at:
            raise ValueError(f"clear_{self.UNIT} ({clear_at}) must be above raise_{self.UNIT} "
                             f"({raise_at}): the alarm is raised below the level")
        return self

    @functools.cached_property
    def raise_level(self) -> int:
        """The raise level in the model's integer unit (mV, mA, 0.1 degC, per mille, s)."""
        return round(self._levels()[0] * self.SCALE)

    @functools.cached_property
    def clear_level(self) -> int:
        return round(self._levels()[1] * self.SCALE)


class VoltsHigh(Threshold):
    UNIT, SCALE, HIGH = "v", 1000, True
    raise_v: float = pydantic.Field(gt=0, le=1000)
    clear_v: float = pydantic.Field(gt=0, le=1000)


class VoltsLow(Threshold):
    UNIT, SCALE, HIGH = "v", 1000, False
    raise_v: float = pydantic.Field(ge=0, le=1000)
    clear_v: float = pydantic.Field(gt=0, le=1000)


class MilliVoltsHigh(Threshold):
    UNIT, SCALE, HIGH = "mv", 1, True
    raise_mv: int = pydantic.Field(gt=0, le=5000)
    clear_mv: int = pydantic.Field(ge=0, le=5000)


class AmpsHigh(Threshold):
    UNIT, SCALE, HIGH = "a", 1000, True
    raise_a: float = pydantic.Field(gt=0, le=100_000)
    clear_a: float = pydantic.Field(ge=0, le=100_000)


class DegCHigh(Threshold):
    UNIT, SCALE, HIGH = "degc", 10, True
    raise_degc: float = pydantic.Field(ge=-273, le=1000)
    clear_degc: float = pydantic.Field(ge=-273, le=1000)


class DegCLow(Threshold):
    UNIT, SCALE, HIGH = "degc", 10, False
    raise_degc: float = pydantic.Field(ge=-273, le=1000)
    clear_degc: float = pydantic.Field(ge=-273, le=1000)


class PercentLow(Threshold):
    UNIT, SCALE, HIGH = "pct", 10, False
    raise_pct: float = pydantic.Field(ge=0, le=100)
    clear_pct: float = pydantic.Field(gt=0, le=100)


class SecondsHigh(Threshold):
    UNIT, SCALE, HIGH = "s", 1, True
    raise_s: float = pydantic.Field(gt=0, le=86_400)
    clear_s: float = pydantic.Field(ge=0, le=86_400)


class DuplicateAddressRule(Rule):
    """Answers of one module keep arriving garbled while the rest of its bus is clean."""

    window_s: float = pydantic.Field(
        60, ge=5, le=3600, description="the counters' growth is measured over this window")
    min_garbled: int = pydantic.Field(
        3, ge=1, le=1000, description="garbled answers (checksum or format errors) of the "
        "module within the window, at least")
    garbled_ratio: float = pydantic.Field(
        0.5, gt=0, le=1, description="...and at least this share of the module's answers")
    others_max_ratio: float = pydantic.Field(
        0.1, ge=0, lt=1, description="while at most this share of the other modules' answers "
        "on the same bus is garbled (else it is line noise, not an address collision)")


class FlapSettings(Section):
    """Flap damping: an alarm raised ``max_raises`` times within ``window_s`` is
    flapping; it then clears only after its condition has been gone ``hold_s``."""

    max_raises: int = pydantic.Field(3, ge=2, le=1000)
    window_s: float = pydantic.Field(600, gt=0, le=86_400)
    hold_s: float = pydantic.Field(300, ge=0, le=86_400)


class StormSettings(Section):
    """Storm damping: per alarm kind, at most ``max_individual`` module alarms are
    announced within ``window_s``; more of the same kind are summarised in one
    ``alarm_storm`` alarm (they stay in the alarm table and the event log)."""

    max_individual: int = pydantic.Field(3, ge=1, le=1000)
    window_s: float = pydantic.Field(60, gt=0, le=86_400)


class EventLogSettings(Section):
    """The JSON-lines event log in the gateway's state directory."""

    max_bytes: int = pydantic.Field(1_000_000, ge=10_000, le=1_000_000_000,
                                    description="rotate the log when it would grow past this")
    files: int = pydantic.Field(5, ge=1, le=100, description="rotated files kept, the live "
                                "one included")


#: Built-in defaults of every rule; see docs/alarms.md for the origin of each number.
DEFAULT_RULES: dict[str, dict[str, Any]] = {
    # cells (16 in series per module)
    "cell_voltage_high": dict(raise_v=3.60, clear_v=3.45, raise_delay_s=5, clear_delay_s=10,
                              severity="major"),
    "cell_voltage_low": dict(raise_v=2.80, clear_v=3.00, raise_delay_s=5, clear_delay_s=10,
                             severity="major"),
    "cell_spread_high": dict(raise_mv=100, clear_mv=60, raise_delay_s=60, clear_delay_s=60,
                             severity="minor"),
    # the rise of a module's daily mean cell imbalance over the backup_time trend window
    "cell_imbalance_rising": dict(raise_mv=20, clear_mv=10, raise_delay_s=3600,
                                  clear_delay_s=3600, severity="minor"),
    # module and bank voltage (the manual's rectifier table)
    "pack_voltage_high": dict(raise_v=56.0, clear_v=55.25, raise_delay_s=10, clear_delay_s=30,
                              severity="major"),
    "pack_voltage_low": dict(raise_v=42.0, clear_v=44.0, raise_delay_s=10, clear_delay_s=30,
                             severity="major"),
    "bank_voltage_high": dict(raise_v=56.0, clear_v=55.25, raise_delay_s=10, clear_delay_s=30,
                              severity="major"),
    "bank_voltage_low": dict(raise_v=42.0, clear_v=44.0, raise_delay_s=10, clear_delay_s=30,
                             severity="major"),
    "bank_voltage_eod": dict(raise_v=40.5, clear_v=44.0, raise_delay_s=0, clear_delay_s=30,
                             severity="critical"),
    # currents (100 Ah modules; the manual: charging typically 0.2 C, at most 1 C)
    "charge_current_high": dict(raise_a=50, clear_a=45, raise_delay_s=10, clear_delay_s=30,
                                severity="minor"),
    "discharge_current_high": dict(raise_a=100, clear_a=90, raise_delay_s=5, clear_delay_s=30,
                                   severity="major"),
    # temperatures: cell sensors with charge and discharge limits, MOSFET, ambient
    "charge_temp_high": dict(raise_degc=50, clear_degc=45, raise_delay_s=30, clear_delay_s=60,
                             severity="major"),
    "charge_temp_low": dict(raise_degc=0, clear_degc=3, raise_delay_s=30, clear_delay_s=60,
                            severity="major"),
    "discharge_temp_high": dict(raise_degc=60, clear_degc=55, raise_delay_s=30,
                                clear_delay_s=60, severity="major"),
    "discharge_temp_low": dict(raise_degc=-20, clear_degc=-15, raise_delay_s=30,
                               clear_delay_s=60, severity="major"),
    "mosfet_temp_high": dict(raise_degc=80, clear_degc=70, raise_delay_s=30, clear_delay_s=60,
                             severity="major"),
    "mosfet_temp_low": dict(raise_degc=-30, clear_degc=-25, raise_delay_s=30,
                            clear_delay_s=60, severity="minor"),
    "ambient_temp_high": dict(raise_degc=45, clear_degc=40, raise_delay_s=60, clear_delay_s=60,
                              severity="minor"),
    "ambient_temp_low": dict(raise_degc=-5, clear_degc=0, raise_delay_s=60, clear_delay_s=60,
                             severity="minor"),
    # capacity
    "soc_low": dict(raise_pct=20, clear_pct=25, raise_delay_s=30, clear_delay_s=30,
                    severity="minor"),
    "bank_soc_low": dict(raise_pct=30, clear_pct=35, raise_delay_s=30, clear_delay_s=30,
                         severity="major"),
    "soh_low": dict(raise_pct=80, clear_pct=82, raise_delay_s=60, clear_delay_s=60,
                    severity="minor"),
    # the data itself
    "data_age_high": dict(raise_s=60, clear_s=30, raise_delay_s=0, clear_delay_s=0,
                          severity="major"),
    # communication
    "module_stale": dict(severity="minor"),
    "module_offline": dict(severity="major"),
    "bus_down": dict(severity="critical", raise_delay_s=5, clear_delay_s=5),
    "duplicate_address": dict(severity="major"),
    # what the BMS reports
    "bms_warning": dict(severity="warning", clear_delay_s=10),
    "bms_protection": dict(severity="major", clear_delay_s=10),
    "bms_fault": dict(severity="critical", clear_delay_s=30),
    "bms_unclassified": dict(severity="minor", clear_delay_s=30),
    # the charge limits (charge_limits plugin): the rectifier set above the live CCL
    "rectifier_above_ccl": dict(severity="major", raise_delay_s=10, clear_delay_s=30),
}

DEFAULT_BMS_SEVERITY: dict[str, SeverityName] = {
    "protect_short_circuit": "critical",
    "warn_short_circuit": "major",
}


def _rule(model: type[Rule], name: str) -> Any:
    return pydantic.Field(default_factory=lambda: model(**DEFAULT_RULES[name]))


class AlarmsSettings(Section):
    """The ``alarms:`` section."""

    cell_voltage_high: VoltsHigh = _rule(VoltsHigh, "cell_voltage_high")
    cell_voltage_low: VoltsLow = _rule(VoltsLow, "cell_voltage_low")
    cell_spread_high: MilliVoltsHigh = _rule(MilliVoltsHigh, "cell_spread_high")
    cell_imbalance_rising: MilliVoltsHigh = _rule(MilliVoltsHigh, "cell_imbalance_rising")
    pack_voltage_high: VoltsHigh = _rule(VoltsHigh, "pack_voltage_high")
    pack_voltage_low: VoltsLow = _rule(VoltsLow, "pack_voltage_low")
    bank_voltage_high: VoltsHigh = _rule(VoltsHigh, "bank_voltage_high")
    bank_voltage_low: VoltsLow = _rule(VoltsLow, "bank_voltage_low")
    bank_voltage_eod: VoltsLow = _rule(VoltsLow, "bank_voltage_eod")
    charge_current_high: AmpsHigh = _rule(AmpsHigh, "charge_current_high")
    discharge_current_high: AmpsHigh = _rule(AmpsHigh, "discharge_current_high")
    charge_temp_high: DegCHigh = _rule(DegCHigh, "charge_temp_high")
    charge_temp_low: DegCLow = _rule(DegCLow, "charge_temp_low")
    discharge_temp_high: DegCHigh = _rule(DegCHigh, "discharge_temp_high")
    discharge_temp_low: DegCLow = _rule(DegCLow, "discharge_temp_low")
    mosfet_temp_high: DegCHigh = _rule(DegCHigh, "mosfet_temp_high")
    mosfet_temp_low: DegCLow = _rule(DegCLow, "mosfet_temp_low")
    ambient_temp_high: DegCHigh = _rule(DegCHigh, "ambient_temp_high")
    ambient_temp_low: DegCLow = _rule(DegCLow, "ambient_temp_low")
    soc_low: PercentLow = _rule(PercentLow, "soc_low")
    bank_soc_low: PercentLow = _rule(PercentLow, "bank_soc_low")
    soh_low: PercentLow = _rule(PercentLow, "soh_low")
    data_age_high: SecondsHigh = _rule(SecondsHigh, "data_age_high")
    charging_above_a: float = pydantic.Field(
        1.0, ge=0, le=10_000, description="a module charges while its current is above this "
        "(the charge temperature limits apply); otherwise the discharge limits apply")

    module_stale: Rule = _rule(Rule, "module_stale")
    module_offline: Rule = _rule(Rule, "module_offline")
    never_seen_after_s: float = pydantic.Field(
        60, ge=0, le=86_400, description="a configured module that has not answered this "
        "long after start is offline")
    bus_down: Rule = _rule(Rule, "bus_down")
    duplicate_address: DuplicateAddressRule = _rule(DuplicateAddressRule, "duplicate_address")

    bms_warning: Rule = _rule(Rule, "bms_warning")
    bms_protection: Rule = _rule(Rule, "bms_protection")
    bms_fault: Rule = _rule(Rule, "bms_fault")
    bms_unclassified: Rule = _rule(Rule, "bms_unclassified")
    bms_severity: dict[str, SeverityName] = pydantic.Field(
        default_factory=lambda: dict(DEFAULT_BMS_SEVERITY),
        description="severity of single BMS alarm kinds, overriding their group's")

    rectifier_above_ccl: Rule = _rule(Rule, "rectifier_above_ccl")

    flap: FlapSettings = pydantic.Field(default_factory=FlapSettings)
    storm: StormSettings = pydantic.Field(default_factory=StormSettings)
    event_log: EventLogSettings = pydantic.Field(default_factory=EventLogSettings)
    removed_after_s: float = pydantic.Field(
        60, ge=0, le=86_400, description="an alarm of a module or bus that has left the "
        "configuration clears after this long")
    evaluate_interval_s: float = pydantic.Field(
        1.0, ge=0.1, le=60, description="re-evaluate at least this often when no new data "
        "arrives (delays expire on time, data age grows)")

    @pydantic.model_validator(mode="before")
    @classmethod
    def _merge_defaults(cls, data: Any) -> Any:
        """A rule given in the file replaces only the keys it names."""
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for name, default in DEFAULT_RULES.items():
            given = out.get(name)
            if isinstance(given, dict):
                out[name] = {**default, **given}
        return out

    @pydantic.field_validator("bms_severity")
    @classmethod
    def _bms_kinds(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(k for k in value if k not in catalog.BMS)
        if unknown:
            raise ValueError(f"not a BMS alarm kind: {', '.join(unknown)} (kinds are "
                             "warn_*, protect_*, fault_* and bms_unclassified_flag; see "
                             "docs/alarms.md)")
        return value

    def threshold(self, kind: str) -> Threshold:
        rule = getattr(self, kind)
        assert isinstance(rule, Threshold)
        return rule

    def bms_rule(self, kind: str) -> tuple[Rule, Severity]:
        """The rule of a BMS kind (its group's) and its severity."""
        group = catalog.BMS[kind][0]
        rule: Rule = getattr(self, f"bms_{group}")
        name = self.bms_severity.get(kind)
        return rule, SEVERITIES[name] if name else rule.level

    def rule_of(self, kind: str) -> Rule | None:
        """The rule that governs ``kind``; None for kinds no rule raises."""
        if kind in catalog.BMS:
            return self.bms_rule(kind)[0]
        rule = getattr(self, kind, None)
        return rule if isinstance(rule, Rule) else None

    def enabled(self, kind: str) -> bool:
        if kind == catalog.STORM:
            return True
        rule = self.rule_of(kind)
        return rule is not None and rule.enabled
