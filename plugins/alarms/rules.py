"""The alarm rules, pure: ``evaluate(state, snapshot, now, settings) -> Outcome``.

No clock, no I/O, no globals: the same state, snapshot, time and settings always give the
same new state and the same transitions. The processor (processor.py) is the thin glue
that keeps the state between snapshots and hands the transitions north.

How one evaluation works:

1. **Observe.** Every rule looks at the snapshot and says, for each alarm it governs
   (identified by a :data:`Key`: kind, module position, detail), where the value stands:
   beyond the raise level (``RAISE``), at or beyond the clear level (``CLEAR``), between
   the two (``BAND``: hysteresis, nothing changes) or ``UNKNOWN`` (no trustworthy data).
   Only live data is looked at: a module whose status is not OK yields no value or BMS
   observation at all, so its alarms of those kinds are frozen - never raised from stale
   data and never cleared for lack of data (its communication alarm says why). A bus
   whose port is down freezes the communication alarms of its modules and its data age;
   when the port is back they stay frozen for each module until its first poll since
   (its answer counters move), and the bus's data age counts from the port's return, so
   a recovery announces the ``bus_down`` clear and not a raise and clear of
   ``module_stale`` for every module not yet polled again.
2. **Step.** Each alarm's tracker moves: a raise needs the condition to hold without a
   break for the raise delay; a clear needs it gone without a break for the clear delay
   (extended to the flap hold while the alarm is flapping). ``BAND`` and ``UNKNOWN`` stop
   the running timer.
3. **Number and damp.** Raises, then clears, take the next sequence numbers in key
   order. Module alarms of one kind beyond the storm limit are absorbed into one
   ``alarm_storm`` summary: they are raised and cleared like the others (alarm table,
   event log) but not announced. A clear reports the alarm as it ends: the value at
   clearing, the clear level it reached as threshold, and a text that says both (never
   the raise's value).
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace

from gateway.model import (
    Alarm,
    BankSnapshot,
    BusStatus,
    Condition,
    Fault,
    LimitCause,
    LinkCounters,
    ModuleImbalance,
    ModuleReading,
    ModuleStatus,
    Severity,
    TempRole,
)

from plugins.alarms import catalog
from plugins.alarms.catalog import Family, Scope
from plugins.alarms.settings import AlarmsSettings, Rule, Threshold

Key = tuple[str, int, str]
"""An alarm's identity: (kind, module position or 0, detail). The detail tells apart
alarms of one kind on one position: the bus name for bus alarms, ``field:bit`` for an
unclassified BMS flag, the summarised kind for ``alarm_storm``; otherwise empty."""


class Level(enum.Enum):
    RAISE = "raise"  #: the condition holds (beyond the raise level)
    BAND = "band"  #: between the clear and the raise level: no change either way
    CLEAR = "clear"  #: the condition is gone (at or beyond the clear level)
    UNKNOWN = "unknown"  #: no trustworthy data: running timers stop, nothing changes


@dataclass(frozen=True, slots=True)
class Observation:
    level: Level
    severity: Severity
    raise_delay_s: float = 0.0
    clear_delay_s: float = 0.0
    value: int | None = None
    threshold: int | None = None
    sub_index: int = 0
    text: str = ""
    #: what a clear on this observation says: the value now, the level it reached
    clear_text: str = ""
    clear_threshold: int | None = None


@dataclass(frozen=True, slots=True)
class Tracker:
    """One alarm's state between evaluations."""

    alarm: Alarm | None = None  #: the active alarm, None while inactive
    pending_since: float | None = None  #: when the condition began to hold (inactive)
    clearing_since: float | None = None  #: when the condition went away (active)
    absent_since: float | None = None  #: when its module or bus left the snapshot
    raise_times: tuple[float, ...] = ()  #: recent raises, for flap detection
    flapping: bool = False
    notified: bool = True  #: announced north (False: absorbed into a storm summary)
    restored: bool = False  #: loaded from disk at start, not yet seen to hold again


@dataclass(frozen=True, slots=True)
class Sample:
    """A module's answer counters at one time (for the duplicate-address rule)."""

    t: float
    ok: int
    garbled: int


@dataclass(frozen=True, slots=True)
class AlarmState:
    started_at: float | None = None  #: time of the first evaluation
    last_seq: int = 0
    trackers: Mapping[Key, Tracker] = field(default_factory=dict)
    storm_raises: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    samples: Mapping[int, tuple[Sample, ...]] = field(default_factory=dict)
    #: buses whose port was down at the last evaluation
    buses_down: frozenset[str] = frozenset()
    #: buses whose port came back, and when, until their first poll cycle since
    buses_back: Mapping[str, float] = field(default_factory=dict)
    #: modules of a bus that came back, not polled since: position -> their count of
    #: poll outcomes (:func:`poll_outcomes`) when the port came back
    awaiting_poll: Mapping[int, int] = field(default_factory=dict)

    @property
    def alarms(self) -> tuple[Alarm, ...]:
        """The active alarms, in sequence order."""
        return tuple(sorted((t.alarm for t in self.trackers.values() if t.alarm is not None),
                            key=lambda a: a.seq))


class Action(enum.Enum):
    RAISED = "raised"
    CLEARED = "cleared"
    UPDATED = "updated"  #: a storm summary's count changed (same seq, not announced)
    CONFIRMED = "confirmed"  #: an alarm restored at start holds again (not announced)


@dataclass(frozen=True, slots=True)
class Transition:
    action: Action
    key: Key
    alarm: Alarm
    notify: bool  #: announce north (notifications); False = table and log only
    at: float
    wall_time: float
    clear_seq: int | None = None  #: for CLEARED: the sequence number of the clear
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Outcome:
    state: AlarmState
    transitions: tuple[Transition, ...]


# ------------------------------------------------------------------ observing --------


def _compare(rule: Threshold, value: int) -> Level:
    if rule.HIGH:
        if value >= rule.raise_level:
            return Level.RAISE
        return Level.CLEAR if value <= rule.clear_level else Level.BAND
    if value <= rule.raise_level:
        return Level.RAISE
    return Level.CLEAR if value >= rule.clear_level else Level.BAND


def _threshold(rule: Threshold, value: int | None, text: str, *, sub_index: int = 0,
               subject: str = "", fmt: Callable[[int], str] = str) -> Observation:
    """A threshold observation. ``subject`` and ``fmt`` word its clear: "``subject``
    ``fmt(value)`` <= ``fmt(clear level)`` (limit ``fmt(raise level)`` - ``fmt(hysteresis)``)"."""
    level = Level.UNKNOWN if value is None else _compare(rule, value)
    clear_text = ""
    if value is not None and subject:
        op, sign = ("<=", "-") if rule.HIGH else (">=", "+")
        hysteresis = abs(rule.raise_level - rule.clear_level)
        clear_text = (f"{subject} {fmt(value)} {op} {fmt(rule.clear_level)} "
                      f"(limit {fmt(rule.raise_level)} {sign} {fmt(hysteresis)})")
    return Observation(level, rule.level, rule.raise_delay_s, rule.clear_delay_s, value,
                       rule.raise_level, sub_index, text, clear_text,
                       None if value is None else rule.clear_level)


def _rule_obs(rule: Rule, level: Level, text: str = "", *, severity: Severity | None = None,
              value: int | None = None, threshold: int | None = None,
              sub_index: int = 0, clear_text: str = "",
              clear_threshold: int | None = None) -> Observation:
    return Observation(level, severity or rule.level, rule.raise_delay_s, rule.clear_delay_s,
                       value, threshold, sub_index, text, clear_text, clear_threshold)


def _worst(values: Iterable[tuple[int, int | None]], high: bool) -> tuple[int, int] | None:
    """(1-based index, value) of the highest (``high``) or lowest known value."""
    best: tuple[int, int] | None = None
    for i, v in values:
        if v is not None and (best is None or (v > best[1] if high else v < best[1])):
            best = (i, v)
    return best


def _v(mv: int, digits: int) -> str:
    return f"{mv / 1000:.{digits}f} V"


def _c(dc: int) -> str:
    return f"{dc / 10:.1f} C"


def _pct(permille: int) -> str:
    return f"{permille / 10:.1f} %"


def _a(ma: int) -> str:
    return f"{ma / 1000:.1f} A"


def _mv(mv: int) -> str:
    return f"{mv} mV"


def _s(seconds: int) -> str:
    return f"{seconds} s"


#: (part, position) -> (the settings, what the part's observations follow, the
#: observations, the keys among them at the raise level): the latest per module and part only, so the memo stays as small as the
#: bank (see _Observer.remembered)
_MEMO: dict[tuple[str, int],
            tuple[object, object, dict[Key, Observation], frozenset[Key]]] = {}
_MEMO_MAX = 4096  #: entries remembered (a bank has at most a few hundred modules)


class _Observer:
    """Collects the observations of one snapshot."""

    def __init__(self, snapshot: BankSnapshot, now: float, started_at: float,
                 settings: AlarmsSettings, samples: Mapping[int, tuple[Sample, ...]], *,
                 awaiting_poll: Collection[int] = (),
                 buses_back: Mapping[str, float] | None = None) -> None:
        self.snap = snapshot
        self.awaiting_poll = awaiting_poll
        self.buses_back = buses_back or {}
        self.now = now
        self.started_at = started_at
        self.s = settings
        self.samples = samples
        self.obs: dict[Key, Observation] = {}
        self.raising: set[Key] = set()  #: the keys of ``obs`` at the raise level
        self.buses: dict[str, tuple[int, BusStatus]] = {}
        for i, b in enumerate(snapshot.buses, start=1):
            self.buses.setdefault(b.name, (i, b))

    def put(self, kind: str, position: int, observation: Observation, detail: str = "") -> None:
        if self.s.enabled(kind):
            key = (kind, position, detail)
            self.obs[key] = observation
            if observation.level is Level.RAISE:
                self.raising.add(key)
            else:
                self.raising.discard(key)

    def bus_up(self, name: str) -> bool:
        bus = self.buses.get(name)
        return bus is None or bus[1].connected

    def run(self) -> dict[Key, Observation]:
        for m in self.snap.modules:
            self.comm(m)
            if m.status is ModuleStatus.OK and m.telemetry is not None:
                self.module_values(m)
                self.imbalance_trend(m.position)  # follows the backup figures, not telemetry
            if m.status is ModuleStatus.OK and m.bms is not None:
                self.bms(m)
        self.duplicates()
        self.bank()
        self.limits()
        for name, (number, bus) in self.buses.items():
            self.bus(name, number, bus)
        return self.obs

    def remembered(self, part: str, position: int, depends: object,
                   observe: Callable[[], None]) -> None:
        """The observations ``observe()`` puts, remembered per part and module while the
        settings and ``depends`` (everything they are made from) stay the same: the
        poller publishes after each module, so most snapshots change one module and the
        others' observations are what they were. A pure function's memo: ``depends``
        must hold every input of ``observe``, the time included where it is used."""
        hit = _MEMO.get((part, position))
        if hit is not None and hit[0] is self.s and hit[1] == depends:
            self.obs.update(hit[2])
            self.raising.update(hit[3])  # the parts observe kinds of their own: no overlap
            return
        outer, self.obs = self.obs, {}
        outer_raising, self.raising = self.raising, set()
        try:
            observe()
        finally:
            found, self.obs = self.obs, outer
            raising, self.raising = self.raising, outer_raising
        outer.update(found)
        self.raising.update(raising)
        if len(_MEMO) >= _MEMO_MAX:
            _MEMO.clear()
        _MEMO[(part, position)] = (self.s, depends, found, frozenset(raising))

    # --------------------------------------------------------------- module values --
    def module_values(self, m: ModuleReading) -> None:
        """:meth:`values`, remembered while the module's telemetry stays the same
        (nothing in them depends on the time)."""
        self.remembered("values", m.position, m.telemetry, lambda: self.values(m))

    def _on(self, kind: str) -> Threshold | None:
        rule = self.s.threshold(kind)
        return rule if rule.enabled else None

    def values(self, m: ModuleReading) -> None:
        t = m.telemetry
        assert t is not None
        p = m.position
        cells = list(enumerate(t.cell_mv, start=1))
        for kind, high in (("cell_voltage_high", True), ("cell_voltage_low", False)):
            rule = self._on(kind)
            if rule is None:
                continue
            worst = _worst(cells, high)
            if worst is None:
                self.put(kind, p, _threshold(rule, None, ""))
                continue
            i, mv = worst
            self.put(kind, p, _threshold(
                rule, mv, f"module {p} cell {i} at {_v(mv, 3)}, limit {_v(rule.raise_level, 3)}",
                sub_index=i, subject=f"module {p} cell {i} at", fmt=lambda x: _v(x, 3)))
        rule = self._on("cell_spread_high")
        if rule is not None:
            top, bottom = _worst(cells, True), _worst(cells, False)
            if top is None or bottom is None:
                self.put("cell_spread_high", p, _threshold(rule, None, ""))
            else:
                spread = top[1] - bottom[1]
                self.put("cell_spread_high", p, _threshold(
                    rule, spread, f"module {p} cell spread {spread} mV (cells {top[0]}/"
                    f"{bottom[0]}), limit {rule.raise_level} mV", sub_index=top[0],
                    subject=f"module {p} cell spread", fmt=_mv))
        for kind in ("pack_voltage_high", "pack_voltage_low"):
            rule = self._on(kind)
            if rule is not None:
                mv = t.voltage_mv
                self.put(kind, p, _threshold(
                    rule, mv, "" if mv is None else
                    f"module {p} voltage {_v(mv, 2)}, limit {_v(rule.raise_level, 2)}",
                    subject=f"module {p} voltage", fmt=lambda x: _v(x, 2)))
        current = t.current_ma
        for kind, sign, what in (("charge_current_high", 1, "charge"),
                                 ("discharge_current_high", -1, "discharge")):
            rule = self._on(kind)
            if rule is not None:
                ma = None if current is None else max(0, sign * current)
                self.put(kind, p, _threshold(
                    rule, ma, "" if ma is None else
                    f"module {p} {what} current {ma / 1000:.1f} A, limit "
                    f"{rule.raise_level / 1000:.1f} A", subject=f"module {p} {what}", fmt=_a))
        self.temperatures(m)
        for kind, value, what in (("soc_low", t.soc_permille, "SOC"),
                                  ("soh_low", t.soh_permille, "SOH")):
            rule = self._on(kind)
            if rule is not None:
                self.put(kind, p, _threshold(
                    rule, value, "" if value is None else
                    f"module {p} {what} {_pct(value)}, limit {_pct(rule.raise_level)}",
                    subject=f"module {p} {what}", fmt=_pct))

    def imbalance_trend(self, p: int) -> None:
        """The rise of the module's daily mean cell imbalance that the backup_time
        processor puts into the snapshot; unknown without it or with under 2 days."""
        rule = self._on("cell_imbalance_rising")
        if rule is None:
            return
        backup = self.snap.backup
        trend = backup.module_imbalance(p) if backup is not None else None
        self.remembered("imbalance", p, trend, lambda: self._imbalance(rule, p, trend))

    def _imbalance(self, rule: Threshold, p: int, trend: ModuleImbalance | None) -> None:
        rise = None if trend is None else trend.rise_mv
        self.put("cell_imbalance_rising", p, _threshold(
            rule, rise, "" if trend is None or rise is None else
            f"module {p} cell imbalance up {rise} mV in {trend.days - 1} d, now "
            f"{trend.today_mean_mv} mV, limit {rule.raise_level} mV",
            subject=f"module {p} cell imbalance rise", fmt=_mv))

    def temperatures(self, m: ModuleReading) -> None:
        t = m.telemetry
        assert t is not None
        p = m.position
        by_role: dict[TempRole, list[tuple[int, int | None]]] = {}
        for i, (dc, role) in enumerate(zip(t.temp_dc, t.temp_roles), start=1):
            by_role.setdefault(role, []).append((i, dc))
        current = t.current_ma
        charging = None if current is None else current > self.s.charging_above_a * 1000
        cell = by_role.get(TempRole.CELL, [])
        for kind, high, applies, what in (
            ("charge_temp_high", True, True, "cell, charging"),
            ("charge_temp_low", False, True, "cell, charging"),
            ("discharge_temp_high", True, False, "cell"),
            ("discharge_temp_low", False, False, "cell"),
        ):
            rule = self._on(kind)
            if rule is None:
                continue
            worst = _worst(cell, high)
            if worst is None or charging is None:
                self.put(kind, p, _threshold(rule, None, ""))
            elif charging is not applies:  # the other set of limits applies now
                self.put(kind, p, _rule_obs(
                    rule, Level.CLEAR, threshold=rule.raise_level,
                    clear_text=f"module {p} {'charge' if applies else 'discharge'} "
                    f"temperature limits no longer apply ({'not ' if applies else ''}charging)"))
            else:
                i, dc = worst
                self.put(kind, p, _threshold(
                    rule, dc, f"module {p} sensor {i} ({what}) {_c(dc)}, limit "
                    f"{_c(rule.raise_level)}", sub_index=i, subject=f"module {p} sensor {i}",
                    fmt=_c))
        for kind, role, high, what in (
            ("mosfet_temp_high", TempRole.MOSFET, True, "MOSFET"),
            ("mosfet_temp_low", TempRole.MOSFET, False, "MOSFET"),
            ("ambient_temp_high", TempRole.AMBIENT, True, "ambient"),
            ("ambient_temp_low", TempRole.AMBIENT, False, "ambient"),
        ):
            rule = self._on(kind)
            if rule is None:
                continue
            worst = _worst(by_role.get(role, []), high)
            if worst is None:
                self.put(kind, p, _threshold(rule, None, ""))
            else:
                i, dc = worst
                self.put(kind, p, _threshold(
                    rule, dc, f"module {p} sensor {i} ({what}) {_c(dc)}, limit "
                    f"{_c(rule.raise_level)}", sub_index=i, subject=f"module {p} sensor {i}",
                    fmt=_c))

    # ---------------------------------------------------------------------- BMS -----
    def bms(self, m: ModuleReading) -> None:
        b = m.bms
        assert b is not None
        #: unknown bits of trouble fields; unknown state/config bits are kept but no alarm
        unknown = tuple(raw for raw in b.unclassified if raw.alarm)
        if not (b.warnings or b.protections or b.faults or unknown):
            return
        p = m.position
        flags: list[tuple[str, str]] = []
        for c in Condition:
            if c.value and c.value & (c.value - 1) == 0:
                if c in b.warnings:
                    flags.append((catalog.warning_kind(c), "warning"))
                if c in b.protections:
                    flags.append((catalog.protection_kind(c), "protection"))
        for f in Fault:
            if f.value and f.value & (f.value - 1) == 0 and f in b.faults:
                flags.append((catalog.fault_kind(f), "fault"))
        for kind, group in flags:
            rule, severity = self.s.bms_rule(kind)
            self.put(kind, p, _rule_obs(rule, Level.RAISE, f"module {p} BMS {group}: "
                                        f"{catalog.BMS[kind][1]}", severity=severity))
        rule, severity = self.s.bms_rule(catalog.UNCLASSIFIED)
        for raw in unknown:
            self.put(catalog.UNCLASSIFIED, p, _rule_obs(
                rule, Level.RAISE, f"module {p} unclassified BMS flag {raw.field} bit {raw.bit}",
                severity=severity, value=raw.bit), detail=f"{raw.field}:{raw.bit}")

    # ------------------------------------------------------------ communication -----
    def comm(self, m: ModuleReading) -> None:
        p = m.position
        s = self.s
        age = m.age_s(self.now)
        age_s = None if age is None else int(age)
        if not self.bus_up(m.bus) or p in self.awaiting_poll:
            # the bus alarm says it all, or the bus is back and this module has not had
            # its turn yet: freeze
            stale = offline = Level.UNKNOWN
        elif m.status is ModuleStatus.OK:
            stale = offline = Level.CLEAR
        elif m.status is ModuleStatus.STALE:
            stale, offline = Level.RAISE, Level.CLEAR
        elif m.status is ModuleStatus.OFFLINE:
            stale, offline = Level.CLEAR, Level.RAISE
        elif self.now - self.started_at >= s.never_seen_after_s:
            stale, offline = Level.CLEAR, Level.RAISE
        else:  # never seen yet, still within the start-up grace
            stale = offline = Level.UNKNOWN
        self.remembered("comm", p, (m.bus, m.address, m.status, age_s, stale, offline),
                        lambda: self._comm(m, age_s, stale, offline))

    def _comm(self, m: ModuleReading, age_s: int | None, stale: Level, offline: Level
              ) -> None:
        p, s = m.position, self.s
        where = f"(bus {m.bus} adr {m.address})"
        answering = m.status is ModuleStatus.OK
        self.put("module_stale", p, _rule_obs(
            s.module_stale, stale, f"module {p} data stale, {age_s} s old {where}",
            value=age_s, clear_text=f"module {p} data fresh, {age_s} s old {where}"
            if answering else f"module {p} not answering, data {age_s} s old {where}"))
        never = m.status is ModuleStatus.NEVER_SEEN
        self.put("module_offline", p, _rule_obs(
            s.module_offline, offline,
            f"module {p} {'never answered' if never else 'not answering'} {where}",
            value=age_s, clear_text=f"module {p} answering again, data {age_s} s old {where}"))

    def duplicates(self) -> None:
        rule = self.s.duplicate_address
        if not rule.enabled:
            return
        growth: dict[int, tuple[int, int]] = {}
        on_bus: dict[str, list[int]] = {}  # [garbled, answers] of each bus
        for m in self.snap.modules:
            ok, garbled = growth[m.position] = _growth(
                self.samples.get(m.position, ()), self.now, rule.window_s)
            totals = on_bus.setdefault(m.bus, [0, 0])
            totals[0] += garbled
            totals[1] += ok + garbled
        for m in self.snap.modules:
            p = m.position
            if not self.bus_up(m.bus):
                self.put("duplicate_address", p, _rule_obs(rule, Level.UNKNOWN))
                continue
            ok, garbled = growth[p]
            answers = ok + garbled
            bus_garbled, bus_answers = on_bus[m.bus]  # the other modules of its bus:
            other_garbled = bus_garbled - garbled
            other_answers = bus_answers - answers
            if (garbled >= rule.min_garbled and garbled >= rule.garbled_ratio * answers
                    and other_answers > 0
                    and other_garbled <= rule.others_max_ratio * other_answers):
                level = Level.RAISE
            elif garbled == 0:
                level = Level.CLEAR
            else:
                level = Level.BAND
            self.remembered("duplicate", p, (m.address, level, garbled, answers),
                            lambda: self._duplicate(m, level, garbled, answers))

    def _duplicate(self, m: ModuleReading, level: Level, garbled: int, answers: int
                   ) -> None:
        rule, p = self.s.duplicate_address, m.position
        self.put("duplicate_address", p, _rule_obs(
            rule, level, f"module {p}: {garbled}/{answers} answers garbled, duplicate "
            f"address {m.address}?", value=garbled, threshold=rule.min_garbled,
            clear_text=f"module {p}: {garbled}/{answers} answers garbled in "
            f"{rule.window_s:g} s, address {m.address}", clear_threshold=0))

    # ------------------------------------------------------------------ bank, bus ---
    def bank(self) -> None:
        b = self.snap.bank
        for kind, what in (("bank_voltage_high", "limit"), ("bank_voltage_low", "limit"),
                           ("bank_voltage_eod", "end of discharge")):
            rule = self._on(kind)
            if rule is not None:
                mv = b.voltage_mean_mv
                self.put(kind, 0, _threshold(
                    rule, mv, "" if mv is None else
                    f"bank voltage {_v(mv, 2)}, {what} {_v(rule.raise_level, 2)}",
                    subject="bank voltage", fmt=lambda x: _v(x, 2)))
        rule = self._on("bank_soc_low")
        if rule is not None:
            soc = b.soc_permille
            self.put("bank_soc_low", 0, _threshold(
                rule, soc, "" if soc is None else
                f"bank SOC {_pct(soc)}, limit {_pct(rule.raise_level)}",
                subject="bank SOC", fmt=_pct))

    def bus(self, name: str, number: int, bus: BusStatus) -> None:
        s = self.s
        self.put("bus_down", 0, _rule_obs(
            s.bus_down, Level.CLEAR if bus.connected else Level.RAISE,
            f"port down: bus {name} ({bus.port})", sub_index=number,
            clear_text=f"port up: bus {name} ({bus.port})"), detail=name)
        rule = self._on("data_age_high")
        if rule is None:
            return
        if not bus.connected:
            self.put("data_age_high", 0, _threshold(rule, None, "", sub_index=number),
                     detail=name)
            return
        last = bus.last_cycle_at if bus.last_cycle_at is not None else self.started_at
        if name in self.buses_back:  # the port is back, its first cycle not over yet
            last = max(last, self.buses_back[name])
        age = int(max(0.0, self.now - last))
        self.put("data_age_high", 0, _threshold(
            rule, age, f"last poll cycle {age} s ago, limit {rule.raise_level} s, bus {name}",
            sub_index=number, subject=f"bus {name} poll age", fmt=_s), detail=name)

    # ------------------------------------------------------------ charge limits -----
    def limits(self) -> None:
        """rectifier_above_ccl: the rectifier's configured charge current against the
        live CCL, both from the charge_limits plugin's figures in the snapshot. With no
        module live it is frozen (the communication alarms say why), and so it is while
        modules not yet seen are within never_seen_after_s of the start (the first poll
        cycle is still finding them); without limits or without a configured rectifier
        current it does not apply."""
        rule = self.s.rectifier_above_ccl
        if not rule.enabled:
            return
        lim = self.snap.charge_limits
        if lim is None or lim.rectifier_ma is None:
            why = "no charge limits" if lim is None else "no rectifier current configured"
            self.put("rectifier_above_ccl", 0, _rule_obs(
                rule, Level.CLEAR, clear_text=f"rectifier_above_ccl no longer applies: {why}"))
            return
        starting = (self.now - self.started_at < self.s.never_seen_after_s and any(
            m.status is ModuleStatus.NEVER_SEEN for m in self.snap.modules))
        if lim.ccl.cause is LimitCause.NO_LIVE_MODULE or starting:
            # nothing to judge, or the first poll cycle is still finding the modules
            self.put("rectifier_above_ccl", 0, _rule_obs(rule, Level.UNKNOWN))
            return
        rect, ccl = lim.rectifier_ma, lim.ccl.value
        if lim.ccl.cause is LimitCause.MODULES_NOT_LIVE and lim.module_ccl_ma > 0:
            modules = round(rect / lim.module_ccl_ma, 1)
            text = (f"rectifier set for {modules:g} modules, {lim.modules_counted} on line "
                    f"(CCL {_a(ccl)})")
        else:
            text = f"rectifier {rect / 1000:g} A above CCL {_a(ccl)}: {lim.ccl.reason}"
        self.put("rectifier_above_ccl", 0, _rule_obs(
            rule, Level.RAISE if rect > ccl else Level.CLEAR, text, value=rect, threshold=ccl,
            clear_text=f"rectifier {rect / 1000:g} A within CCL {_a(ccl)}",
            clear_threshold=ccl))


def _growth(samples: tuple[Sample, ...], now: float, window_s: float) -> tuple[int, int]:
    """Growth of (ok, garbled) answers over the last ``window_s``: from the newest sample
    at or before the window's start (else the oldest) to the newest."""
    if not samples:
        return 0, 0
    base = samples[_window_base(samples, now - window_s)]
    last = samples[-1]
    return max(0, last.ok - base.ok), max(0, last.garbled - base.garbled)


def _window_base(samples: tuple[Sample, ...], start: float) -> int:
    """The index of the newest sample taken at or before ``start`` (0 if none is).
    Samples are appended at the hub's monotonic time, so their times never decrease and
    a bisection finds it: the rule runs on every snapshot, over some hundred samples per
    module."""
    return max(0, bisect.bisect_right(samples, start, key=_sample_time) - 1)


def _sample_time(sample: Sample) -> float:
    return sample.t


def _record_samples(samples: Mapping[int, tuple[Sample, ...]], snapshot: BankSnapshot,
                    now: float, window_s: float) -> dict[int, tuple[Sample, ...]]:
    out: dict[int, tuple[Sample, ...]] = {}
    for m in snapshot.modules:
        c = m.counters
        sample = Sample(now, c.frames_ok, c.checksum_errors + c.format_errors)
        old = samples.get(m.position, ())
        if not old or (old[-1].ok, old[-1].garbled) != (sample.ok, sample.garbled):
            old = old + (sample,)
        # keep the newest sample at or before the window's start as the base
        keep_from = _window_base(old, now - window_s)
        out[m.position] = old[keep_from:] if keep_from else old
    return out


# ------------------------------------------------------------------ stepping ---------


def clip(text: str, limit: int = catalog.MAX_TEXT) -> str:
    """``text`` cut to ``limit`` UTF-8 octets, ending in '...' when cut."""
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    return raw[: limit - 3].decode("utf-8", "ignore") + "..."


def _fit(text: str, suffix: str) -> str:
    return text + suffix if len((text + suffix).encode()) <= catalog.MAX_TEXT else text


def _prune(times: tuple[float, ...], now: float, window_s: float) -> tuple[float, ...]:
    return tuple(t for t in times if now - t < window_s)



def _bms_clear_text(kind: str, position: int, detail: str) -> str:
    """A BMS alarm's clear: a live status answer no longer carries its flag."""
    if kind == catalog.UNCLASSIFIED:
        field_name, _, bit = detail.partition(":")
        return f"module {position} unclassified BMS flag {field_name} bit {bit} no longer set"
    group, words = catalog.BMS[kind]
    return f"module {position} BMS {group} ended: {words}"


def _missing(key: Key, tracker: Tracker, snapshot: BankSnapshot, now: float,
             settings: AlarmsSettings) -> tuple[Observation | None, Tracker, str]:
    """What to do with an alarm no rule observed this time: (observation or None to
    clear at once, tracker, reason)."""
    kind, position, detail = key
    info = catalog.KINDS.get(kind)
    if info is None or not settings.enabled(kind):
        return None, tracker, "rule disabled"
    unknown = Observation(Level.UNKNOWN, tracker.alarm.severity if tracker.alarm
                          else Severity.INDETERMINATE)
    if info.scope is Scope.MODULE:
        m = snapshot.module(position)
        if m is None:
            present = bool(snapshot.modules)
            what = "module removed from the configuration"
        else:
            if info.family is Family.BMS and m.status is ModuleStatus.OK and m.bms is not None:
                rule, severity = settings.bms_rule(kind)
                return _rule_obs(rule, Level.CLEAR, severity=severity,
                                 clear_text=_bms_clear_text(kind, position, detail)), tracker, ""
            return unknown, replace(tracker, absent_since=None), ""
    elif info.scope is Scope.BUS:
        present = bool(snapshot.buses)
        if any(b.name == detail for b in snapshot.buses):
            return unknown, replace(tracker, absent_since=None), ""
        what = "bus removed from the configuration"
    else:
        return unknown, tracker, ""
    if not present:  # nothing published yet (start-up): wait
        return unknown, tracker, ""
    since = tracker.absent_since if tracker.absent_since is not None else now
    tracker = replace(tracker, absent_since=since)
    if now - since >= settings.removed_after_s:
        return None, tracker, what
    return unknown, tracker, ""


def poll_outcomes(counters: LinkCounters) -> int:
    """How many poll outcomes a module's counters record: every poll of a module moves
    one of them (an answer, a timeout, a garbled or an error answer)."""
    return sum(getattr(counters, f.name) for f in fields(counters))


def _recovery(state: AlarmState, snapshot: BankSnapshot, now: float
              ) -> tuple[frozenset[str], dict[str, float], dict[int, int]]:
    """The buses down now, the buses back and not polled since, and the modules waiting
    for their first poll since their bus came back."""
    down = frozenset(b.name for b in snapshot.buses if not b.connected)
    back = {name: at for name, at in state.buses_back.items() if name not in down}
    waiting = dict(state.awaiting_poll)
    returned = {b.name for b in snapshot.buses if b.connected and b.name in state.buses_down}
    for name in returned:
        back[name] = now
    for b in snapshot.buses:
        if b.name in back and b.last_cycle_at is not None and b.last_cycle_at >= back[b.name]:
            del back[b.name]
    for m in snapshot.modules:
        if m.bus in returned:
            waiting[m.position] = poll_outcomes(m.counters)
        elif m.position in waiting and (m.bus in down
                                        or poll_outcomes(m.counters) != waiting[m.position]):
            del waiting[m.position]  # polled since (or down again: the bus alarm freezes)
    present = {m.position for m in snapshot.modules}
    return down, back, {p: n for p, n in waiting.items() if p in present}


def evaluate(state: AlarmState, snapshot: BankSnapshot, now: float,
             settings: AlarmsSettings) -> Outcome:
    """Evaluate every rule on ``snapshot`` at monotonic time ``now``."""
    started_at = state.started_at if state.started_at is not None else now
    wall = snapshot.wall_time
    samples = _record_samples(state.samples, snapshot, now,
                              settings.duplicate_address.window_s)
    buses_down, buses_back, awaiting_poll = _recovery(state, snapshot, now)
    observer = _Observer(snapshot, now, started_at, settings, samples,
                         awaiting_poll=awaiting_poll, buses_back=buses_back)
    observations = observer.run()
    trackers: dict[Key, Tracker] = dict(state.trackers)
    flap = settings.flap

    to_raise: list[tuple[Key, Observation, Tracker]] = []
    to_clear: list[tuple[Key, Tracker, str, Observation | None]] = []
    confirmed: list[tuple[Key, Tracker]] = []
    # a key with neither a tracker nor a raise level has nothing to start or to stop:
    # of the hundreds observed per snapshot only those few are walked (same order)
    keys = sorted(observer.raising | {k for k in trackers if k[0] != catalog.STORM})
    for key in keys:
        tracker = trackers.get(key, Tracker())
        obs = observations.get(key)
        reason = "condition cleared"
        if obs is None:
            obs, tracker, why = _missing(key, tracker, snapshot, now, settings)
            if obs is None:  # the rule or the module is gone: clear at once
                if tracker.alarm is not None:
                    to_clear.append((key, tracker, why, None))
                trackers.pop(key, None)
                continue
            reason = why or reason
        elif tracker.absent_since is not None:
            tracker = replace(tracker, absent_since=None)
        level = obs.level
        if tracker.alarm is None:
            pending = tracker.pending_since
            if level is Level.RAISE:
                pending = now if pending is None else pending
                if now - pending >= obs.raise_delay_s:
                    to_raise.append((key, obs, tracker))
                    continue
            else:
                pending = None
            times = (_prune(tracker.raise_times, now, flap.window_s) if tracker.raise_times
                     else ())
            if pending is None and not times:
                trackers.pop(key, None)
            elif pending != tracker.pending_since or times != tracker.raise_times \
                    or trackers.get(key) is not tracker:
                trackers[key] = replace(tracker, pending_since=pending, raise_times=times)
            continue
        # active
        if tracker.restored and level is Level.RAISE:
            tracker = replace(tracker, restored=False)
            confirmed.append((key, tracker))
        clearing = tracker.clearing_since
        if level is Level.CLEAR:
            clearing = now if clearing is None else clearing
            delay = obs.clear_delay_s
            if tracker.flapping:
                delay = max(delay, flap.hold_s)
            if now - clearing >= delay:
                to_clear.append((key, tracker, reason, obs))
                continue
        else:
            clearing = None
        if clearing != tracker.clearing_since or trackers.get(key) is not tracker:
            trackers[key] = replace(tracker, clearing_since=clearing)

    transitions: list[Transition] = [
        Transition(Action.CONFIRMED, key, tracker.alarm, False, now, wall)
        for key, tracker in confirmed if tracker.alarm is not None]
    last_seq = state.last_seq
    storm_raises = {k: v for k, v in state.storm_raises.items()}

    # --- raises, in key order; module alarms beyond the storm limit are absorbed
    absorbed_kinds: dict[str, int] = {}
    for key, obs, tracker in to_raise:
        kind, position, _ = key
        last_seq += 1
        times = _prune(tracker.raise_times, now, flap.window_s) + (now,)
        flapping = len(times) >= flap.max_raises
        text = _fit(obs.text, " (flapping)") if flapping else obs.text
        alarm = Alarm(seq=last_seq, kind=kind, severity=obs.severity, position=position,
                      sub_index=obs.sub_index, value=obs.value, threshold=obs.threshold,
                      raised_at=now, raised_wall_time=wall, text=clip(text or kind))
        notify = True
        if position > 0:
            summary = trackers.get((catalog.STORM, 0, kind))
            recent = _prune(storm_raises.get(kind, ()), now, settings.storm.window_s)
            if (summary is not None and summary.alarm is not None) or kind in absorbed_kinds \
                    or len(recent) >= settings.storm.max_individual:
                notify = False
                absorbed_kinds[kind] = absorbed_kinds.get(kind, 0) + 1
            else:
                recent = recent + (now,)
            storm_raises[kind] = recent
        trackers[key] = Tracker(alarm=alarm, raise_times=times, flapping=flapping,
                                notified=notify)
        transitions.append(Transition(Action.RAISED, key, alarm, notify, now, wall))

    # --- storm summaries: one per kind with absorbed alarms
    def active_of(kind: str) -> list[Tracker]:
        return [t for k, t in trackers.items()
                if k[0] == kind and k[1] > 0 and t.alarm is not None]

    for kind in sorted(absorbed_kinds):
        skey = (catalog.STORM, 0, kind)
        if trackers.get(skey, Tracker()).alarm is not None:
            continue
        members = active_of(kind)
        severity = members[0].alarm.severity if members else Severity.MAJOR  # type: ignore[union-attr]
        last_seq += 1
        alarm = Alarm(seq=last_seq, kind=catalog.STORM, severity=severity, position=0,
                      sub_index=0, value=len(members),
                      threshold=settings.storm.max_individual, raised_at=now,
                      raised_wall_time=wall, text=_storm_text(kind, len(members)))
        trackers[skey] = Tracker(alarm=alarm)
        transitions.append(Transition(Action.RAISED, skey, alarm, True, now, wall))

    # --- clears, in key order
    for key, tracker, reason, obs in sorted(to_clear, key=lambda x: x[0]):
        assert tracker.alarm is not None
        last_seq += 1
        trackers[key] = Tracker(raise_times=_prune(tracker.raise_times, now, flap.window_s))
        if not trackers[key].raise_times:
            trackers.pop(key)
        ended = _cleared(key, tracker.alarm, obs, reason)
        transitions.append(Transition(Action.CLEARED, key, ended,
                                      tracker.notified, now, wall, clear_seq=last_seq,
                                      reason=reason))

    # --- storm summaries clear when none of their absorbed alarms is left
    for skey in sorted(k for k in trackers if k[0] == catalog.STORM):
        summary = trackers[skey]
        assert summary.alarm is not None
        kind = skey[2]
        members = active_of(kind)
        if not any(not t.notified for t in members):
            last_seq += 1
            del trackers[skey]
            over = replace(summary.alarm, value=len(members),
                           text=clip(f"{kind} storm over, {len(members)} modules still "
                                     "in alarm"))
            transitions.append(Transition(Action.CLEARED, skey, over, summary.notified,
                                          now, wall, clear_seq=last_seq,
                                          reason="storm over"))
        elif summary.alarm.value != len(members):
            alarm = replace(summary.alarm, value=len(members),
                            text=_storm_text(kind, len(members)))
            trackers[skey] = replace(summary, alarm=alarm)
            transitions.append(Transition(Action.UPDATED, skey, alarm, False, now, wall))

    storm_raises = {k: v for k, v in
                    ((k, _prune(v, now, settings.storm.window_s)) for k, v in storm_raises.items())
                    if v}
    new = AlarmState(started_at=started_at, last_seq=last_seq, trackers=trackers,
                     storm_raises=storm_raises, samples=samples, buses_down=buses_down,
                     buses_back=buses_back, awaiting_poll=awaiting_poll)
    return Outcome(new, tuple(transitions))


def _cleared(key: Key, alarm: Alarm, obs: Observation | None, reason: str) -> Alarm:
    """The alarm as its clear reports it (table row gone, notification, event log): same
    sequence number and raise time, but the value at clearing, the level it reached as
    threshold, and a text saying so. No observation (the rule or its module is gone): no
    value, and the reason. A BMS flag keeps its value: an unclassified flag's bit number
    names the flag, it is no measurement."""
    kind, position, detail = key
    info = catalog.KINDS.get(kind)
    if obs is None or not obs.clear_text:
        where = (f"module {position} " if position > 0
                 else f"bus {detail} " if info is not None and info.scope is Scope.BUS else "")
        text = f"{where}{kind} cleared: {reason}"
        obs_value = None
    else:
        text, obs_value = obs.clear_text, obs.value
    if info is not None and info.family is Family.BMS:
        return replace(alarm, text=clip(text))
    return replace(alarm, value=obs_value, threshold=None if obs is None else obs.clear_threshold,
                   text=clip(text))


def _storm_text(kind: str, count: int) -> str:
    return f"{kind} on {count} modules; see the alarm table"
