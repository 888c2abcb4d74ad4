"""The vendor-neutral data model: what the south side reads and the north side serves.

Every class is a frozen, slotted, keyword-only dataclass: a snapshot handed to the SNMP
agent or the Modbus server can never change under it. Measurements are integers in fixed
units with the unit in the name (``cell_mv``, ``current_ma``, ``temp_dc`` = 0.1 degC,
``soc_permille``); ``None`` means *unknown* and is never replaced by 0. Float properties
exist only for people.

Sign convention: ``current_ma`` is positive while the module is **charging** and negative
while it is discharging, whatever the vendor sends on the wire.

Time: ``*_at`` fields hold seconds from the gateway's monotonic clock (the injected
clock of the component that made them); ``wall_time`` fields hold seconds since the
Unix epoch and exist only for display and for the logs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class ModuleStatus(enum.IntEnum):
    """Quality of a module's data as served north.

    The numbers are part of the public contracts (MIB enumeration, Modbus status
    register): never renumber.
    """

    OK = 1  #: live data, younger than the configured stale age
    STALE = 2  #: the last good data is older than the stale age; served as stale
    OFFLINE = 3  #: the module stopped answering; values are last known, never live
    NEVER_SEEN = 4  #: configured, but no valid answer since start; no values at all


class LinkState(enum.Enum):
    """Per-module communication state machine of the poller."""

    NEVER_SEEN = "never_seen"
    ONLINE = "online"
    SUSPECT = "suspect"  #: missed an answer, not yet declared offline
    OFFLINE = "offline"


class TempRole(enum.IntEnum):
    """What a temperature sensor measures. Numbers are part of the MIB."""

    CELL = 1
    MOSFET = 2
    AMBIENT = 3
    BOARD = 4
    OTHER = 5


class Condition(enum.IntFlag):
    """Threshold conditions a BMS reports, as warnings or as protections.

    The same vocabulary serves both: a module can *warn* of cell under-voltage and later
    *protect* against it (the manual's yellow ALM light versus the orange one).
    Bit positions are part of the public contracts: only ever append.
    """

    NONE = 0
    CELL_OVER_VOLTAGE = 1 << 0
    CELL_UNDER_VOLTAGE = 1 << 1
    PACK_OVER_VOLTAGE = 1 << 2
    PACK_UNDER_VOLTAGE = 1 << 3
    CHARGE_OVER_CURRENT = 1 << 4
    DISCHARGE_OVER_CURRENT = 1 << 5
    SHORT_CIRCUIT = 1 << 6  #: reverse connection / short circuit
    CHARGE_HIGH_TEMP = 1 << 7
    CHARGE_LOW_TEMP = 1 << 8
    DISCHARGE_HIGH_TEMP = 1 << 9
    DISCHARGE_LOW_TEMP = 1 << 10
    MOSFET_HIGH_TEMP = 1 << 11
    AMBIENT_HIGH_TEMP = 1 << 12
    AMBIENT_LOW_TEMP = 1 << 13
    LOW_CAPACITY = 1 << 14
    CHARGER_OVER_VOLTAGE = 1 << 15


class Fault(enum.IntFlag):
    """BMS faults, named as in the module manual's fault-code list.

    Bit positions are part of the public contracts: only ever append.
    """

    NONE = 0
    VOLTAGE_SENSOR = 1 << 0  #: ERR blinks 1x
    TEMPERATURE_SENSOR = 1 << 1  #: ERR blinks 2x
    CHARGE_CIRCUIT = 1 << 2  #: ERR blinks 3x (charge MOSFET / charge switch)
    DISCHARGE_CIRCUIT = 1 << 3  #: ERR blinks 4x (discharge MOSFET / discharge switch)
    BATTERY = 1 << 4  #: ERR blinks 5x (cell failure)
    SAMPLING_IC = 1 << 5  #: ERR blinks 6x (sampling IC communication failure)
    REVERSE_CONNECTION = 1 << 6  #: reverse connection / short circuit (highest priority)
    CURRENT_SENSOR = 1 << 7
    HEATER = 1 << 8
    CURRENT_LIMITER = 1 << 9
    INTERNAL_COMMUNICATION = 1 << 10


class State(enum.IntFlag):
    """Operating states a BMS reports (not alarms). Only ever append."""

    NONE = 0
    CHARGE_FET_ON = 1 << 0
    DISCHARGE_FET_ON = 1 << 1
    CHARGING = 1 << 2
    DISCHARGING = 1 << 3
    CURRENT_LIMITER_ON = 1 << 4
    HEATER_ON = 1 << 5
    FULLY_CHARGED = 1 << 6
    BALANCING = 1 << 7
    CHARGER_REVERSED = 1 << 8
    BUZZER_ON = 1 << 9


@dataclass(frozen=True, slots=True, kw_only=True)
class RawFlag:
    """A BMS status bit the decoder could not classify. Kept, never dropped."""

    field: str  #: the vendor field name, e.g. ``"fault_state"``
    bit: int  #: bit position within that field, 0 = least significant
    #: True when the field reports trouble (warnings, protections, faults, alarm events);
    #: False for state, configuration, balancing and reserved fields, which healthy packs
    #: set too (PACE's normal instruction state 0x0E carries an unnamed bit 3)
    alarm: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Identity:
    """What a module says about itself (any field may be unknown)."""

    serial: str | None = None
    pack_serial: str | None = None
    model: str | None = None
    firmware: str | None = None
    manufacturer: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Telemetry:
    """One module's measurements, normalized to fixed-point integers."""

    cell_mv: tuple[int | None, ...] = ()
    temp_dc: tuple[int | None, ...] = ()  #: 0.1 degC, signed
    temp_roles: tuple[TempRole, ...] = ()  #: same length as temp_dc
    current_ma: int | None = None  #: + = charging, - = discharging
    voltage_mv: int | None = None
    remaining_mah: int | None = None
    full_mah: int | None = None
    design_mah: int | None = None
    cycles: int | None = None
    soc_permille: int | None = None
    soh_permille: int | None = None

    @property
    def cell_min_mv(self) -> int | None:
        known = [v for v in self.cell_mv if v is not None]
        return min(known) if known else None

    @property
    def cell_max_mv(self) -> int | None:
        known = [v for v in self.cell_mv if v is not None]
        return max(known) if known else None

    @property
    def voltage_v(self) -> float | None:
        return None if self.voltage_mv is None else self.voltage_mv / 1000

    @property
    def current_a(self) -> float | None:
        return None if self.current_ma is None else self.current_ma / 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class BmsStatus:
    """Warnings, protections, faults and states the BMS reports, vendor-neutral."""

    warnings: Condition = Condition.NONE
    protections: Condition = Condition.NONE
    faults: Fault = Fault.NONE
    states: State = State.NONE
    balancing: tuple[bool, ...] | None = None  #: per cell, None when not reported
    unclassified: tuple[RawFlag, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkCounters:
    """Per-module (or per-bus) communication counters; all monotonically increasing."""

    frames_ok: int = 0
    timeouts: int = 0
    checksum_errors: int = 0  #: bad CHKSUM or LCHKSUM
    format_errors: int = 0  #: truncated, non-hex, length mismatch
    rtn_errors: int = 0  #: answers with RTN != 0
    wrong_address: int = 0  #: answers from an unexpected ADR
    no_data: int = 0  #: answers that carried no usable data (e.g. all-zero analog)
    garbage_bytes: int = 0  #: bytes outside any frame
    #: answers that carried ADR 00 (an RS232 console port answers so whatever the module's
    #: address) and were taken as the answer to the request in flight
    adr0_answers: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ModuleReading:
    """One module with its status envelope around optional measurement blocks."""

    bus: str  #: the configured bus name
    address: int  #: the DIP address on that bus
    position: int  #: configured position in the bank, 1-based; stable across restarts
    status: ModuleStatus = ModuleStatus.NEVER_SEEN
    link: LinkState = LinkState.NEVER_SEEN
    updated_at: float | None = None  #: monotonic time of the last good telemetry
    #: data older than this is stale whatever ``status`` says; the hub re-evaluates it on
    #: every publish and at least once a second, so a stalled source cannot keep old
    #: values "live"
    stale_after_s: float | None = None
    identity: Identity | None = None
    telemetry: Telemetry | None = None
    bms: BmsStatus | None = None
    counters: LinkCounters = field(default_factory=LinkCounters)

    def age_s(self, now: float) -> float | None:
        """Age of the last good data at monotonic time ``now``; None if never seen."""
        return None if self.updated_at is None else max(0.0, now - self.updated_at)

    def status_at(self, now: float) -> ModuleStatus:
        """The status at monotonic time ``now``: STALE once live data has outlived
        ``stale_after_s``, whatever ``status`` says."""
        if (self.status is ModuleStatus.OK and self.stale_after_s is not None
                and self.updated_at is not None and now - self.updated_at > self.stale_after_s):
            return ModuleStatus.STALE
        return self.status

    @property
    def is_live(self) -> bool:
        return self.status is ModuleStatus.OK


class BusPolling(enum.Enum):
    """How a bus is polled right now."""

    PER_ADDRESS = "per_address"  #: each module at its own address
    MASTER = "master"  #: the group master answers for the bank (INFO = FF)
    #: a master-mode bus whose master stopped answering: each module at its own address
    #: until the master answers again
    MASTER_FALLBACK = "master_fallback"


@dataclass(frozen=True, slots=True, kw_only=True)
class BusStatus:
    """One RS485 port (bus) and its transport."""

    name: str
    port: str  #: the serial URL, secrets redacted
    connected: bool = False
    last_cycle_ms: int | None = None  #: duration of the last complete poll cycle
    last_cycle_at: float | None = None  #: monotonic end time of that cycle
    cycles: int = 0
    reconnects: int = 0
    counters: LinkCounters = field(default_factory=LinkCounters)
    polling: BusPolling = BusPolling.PER_ADDRESS
    master_fallbacks: int = 0  #: times a master-mode bus fell back to polling one by one


class Severity(enum.IntEnum):
    """Alarm severity; numbers follow ITU-ALARM-TC-MIB ItuPerceivedSeverity."""

    CLEARED = 1
    INDETERMINATE = 2
    CRITICAL = 3
    MAJOR = 4
    MINOR = 5
    WARNING = 6


@dataclass(frozen=True, slots=True, kw_only=True)
class Alarm:
    """An active alarm as held in the active alarm table."""

    seq: int  #: monotonically increasing, never reused
    kind: str  #: stable alarm type name, e.g. ``"cell_voltage_high"``
    severity: Severity
    position: int = 0  #: module position, 0 = bank or gateway
    sub_index: int = 0  #: cell or sensor number (1-based), 0 = none
    value: int | None = None  #: measured value in the unit of ``kind``
    threshold: int | None = None
    raised_at: float  #: monotonic
    raised_wall_time: float  #: epoch seconds
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Location:
    """Where a bank extreme sits: module position and 1-based cell/sensor number."""

    position: int
    index: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BankAggregates:
    """Bank-level figures computed from the modules whose data is live (status OK)."""

    current_ma: int | None = None  #: sum over live modules, + = charging
    voltage_min_mv: int | None = None
    voltage_max_mv: int | None = None
    voltage_mean_mv: int | None = None
    cell_min_mv: int | None = None
    cell_min_at: Location | None = None
    cell_max_mv: int | None = None
    cell_max_at: Location | None = None
    temp_min_dc: int | None = None
    temp_min_at: Location | None = None
    temp_max_dc: int | None = None
    temp_max_at: Location | None = None
    soc_permille: int | None = None  #: capacity-weighted over live modules
    soh_min_permille: int | None = None
    remaining_mah: int | None = None
    full_mah: int | None = None
    modules_configured: int = 0
    modules_online: int = 0  #: modules whose data is live
    modules_alarmed: int = 0  #: modules with at least one active alarm or BMS protection/fault


class BankState(enum.IntEnum):
    """What the bank is doing, from its current (docs/backup_time.md). The numbers are
    part of the public contracts (MIB enumeration, Modbus register): never renumber."""

    CHARGING = 1  #: the rectifier charges the bank
    FLOATING = 2  #: a small charge current: the rectifier holds the bank full
    IDLE = 3  #: no current worth the name either way
    DISCHARGING = 4  #: the load draws from the bank: the site is on battery


@dataclass(frozen=True, slots=True, kw_only=True)
class DischargeRecord:
    """One finished on-battery event (a discharge), as the backup_time processor kept it."""

    number: int  #: 1-based, increasing, never reused
    started_wall_time: float  #: epoch seconds
    ended_wall_time: float
    duration_s: int
    delivered_mah: int  #: charge the bank delivered, integrated from the bank current
    delivered_wh: int  #: energy, integrated from the live modules' voltage x current
    soc_start_permille: int | None = None
    soc_end_permille: int | None = None
    voltage_min_mv: int | None = None  #: lowest mean bank voltage seen
    cell_min_mv: int | None = None  #: lowest cell voltage seen
    cell_min_at: Location | None = None
    temp_max_dc: int | None = None  #: highest temperature seen
    eod_reached: bool = False  #: the bank voltage fell to the configured EOD voltage


@dataclass(frozen=True, slots=True, kw_only=True)
class ModuleImbalance:
    """One module's cell imbalance (max - min cell mV) now and over days."""

    position: int
    imbalance_mv: int | None = None  #: now; None while the module's data is not live
    today_mean_mv: int | None = None  #: mean over the current day so far
    baseline_mv: int | None = None  #: mean of the oldest day in the trend window
    rise_mv: int | None = None  #: today's mean - baseline; None with less than 2 days
    days: int = 0  #: days of history kept (today included)


@dataclass(frozen=True, slots=True, kw_only=True)
class BackupEstimate:
    """Backup time figures of the bank (the backup_time processor, docs/backup_time.md).

    ``None`` is unknown: a time to end of discharge exists only while the bank is
    discharging, a time to full only while it charges."""

    state: BankState | None = None  #: None until the bank current is known
    on_battery_since: float | None = None  #: monotonic; None while not on battery
    on_battery_since_wall_time: float | None = None
    seconds_on_battery: int | None = None  #: 0 while known not to be on battery
    discharge_current_ma: int | None = None  #: smoothed bank discharge current, > 0
    charge_current_ma: int | None = None  #: smoothed bank charge current, > 0
    seconds_to_eod: int | None = None  #: at the present load, to the EOD voltage
    limited_by: str | None = None  #: "capacity", "module" or "voltage": the binding bound
    seconds_to_full: int | None = None  #: at the present charge current (a lower bound)
    records: tuple[DischargeRecord, ...] = ()  #: the last N, oldest first
    record_last: int = 0  #: number of the newest record; 0 before the first
    imbalance: tuple[ModuleImbalance, ...] = ()  #: by position

    @property
    def minutes_to_eod(self) -> int | None:
        """Whole minutes, rounded down (a NOC plans with the lower figure)."""
        return None if self.seconds_to_eod is None else self.seconds_to_eod // 60

    def module_imbalance(self, position: int) -> ModuleImbalance | None:
        for m in self.imbalance:
            if m.position == position:
                return m
        return None
class LimitCause(enum.IntEnum):
    """What set a charge or discharge limit (:class:`ChargeLimits`). The numbers are part
    of the public contracts (Modbus ``*_cause`` registers, MIB ``BmsLimitCause``): only
    ever append."""

    CAPACITY = 1  #: every configured module live: the C-rate times the live capacity
    MODULES_NOT_LIVE = 2  #: modules offline, stale or never seen count zero
    NO_LIVE_MODULE = 3  #: no module live: the limit is 0
    CELL_VOLTAGE = 4  #: a cell near its over- (charge) or under-voltage (discharge) limit
    COLD = 5  #: a cell sensor below the full-rate temperature
    HOT = 6  #: a cell sensor above the full-rate temperature
    PROTECTION = 7  #: a live module's BMS reports a protection: the limit is 0
    BANK_CAP = 8  #: the configured bank maximum (cabling, breaker)
    FLOAT = 9  #: CVL: the configured float voltage
    EQUALISE = 10  #: CVL: the configured equalise voltage
    #: served north while the bank data is not fresh: the current limits read 0
    NOT_FRESH = 11


@dataclass(frozen=True, slots=True, kw_only=True)
class Limit:
    """One live limit and what set it."""

    value: int  #: mV for a voltage limit, mA for a current limit; never negative
    cause: LimitCause
    reason: str  #: for people, e.g. ``"cell 7 of module 4 at 3.580 V"``
    position: int = 0  #: the module that set it, 0 = the bank
    index: int = 0  #: the cell or sensor number (1-based) that set it, 0 = none


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargeLimits:
    """What a rectifier or an inverter may do with the bank now (the ``charge_limits``
    processor, docs/charge_limits.md). Recomputed for every snapshot."""

    computed_at: float  #: monotonic
    cvl: Limit  #: charge voltage limit (mV)
    ccl: Limit  #: charge current limit (mA)
    dcl: Limit  #: discharge current limit (mA)
    eod_mv: int  #: the configured end-of-discharge voltage
    cutoff_mv: int  #: the configured inverter cut-off voltage (discharge voltage limit)
    modules_counted: int  #: live modules whose capacity the current limits count
    modules_configured: int
    capacity_mah: int  #: the capacity the current limits count (live modules)
    module_ccl_ma: int  #: one module's charge current at the configured rate, nominal
    rectifier_ma: int | None = None  #: the configured rectifier charge current, if any


@dataclass(frozen=True, slots=True, kw_only=True)
class BankSnapshot:
    """Everything the gateway knows at one instant. Immutable; replaced, never edited."""

    seq: int  #: increases with every published snapshot
    created_at: float  #: monotonic
    wall_time: float  #: epoch seconds
    modules: tuple[ModuleReading, ...] = ()  #: sorted by position
    buses: tuple[BusStatus, ...] = ()
    bank: BankAggregates = field(default_factory=BankAggregates)
    alarms: tuple[Alarm, ...] = ()  #: active alarms, sorted by seq
    alarm_last_seq: int = 0  #: the sequence number of the last raise or clear
    #: backup time figures; None while the backup_time processor is not enabled
    backup: BackupEstimate | None = None
    #: live charge/discharge limits; None while the charge_limits processor is not enabled
    charge_limits: ChargeLimits | None = None

    def module(self, position: int) -> ModuleReading | None:
        for m in self.modules:
            if m.position == position:
                return m
        return None


# ---------------------------------------------------------------------------------------
# Events: what processors emit besides the snapshot (bounded queues carry them north).


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmRaised:
    alarm: Alarm


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmCleared:
    alarm: Alarm  #: the alarm as it was while active (same seq)
    cleared_at: float
    cleared_wall_time: float
    clear_seq: int  #: the alarm_last_seq value this clear produced


@dataclass(frozen=True, slots=True, kw_only=True)
class BankOnBattery:
    """The bank went on battery (its state became DISCHARGING)."""

    since: float  #: monotonic
    since_wall_time: float
    estimate: BackupEstimate


@dataclass(frozen=True, slots=True, kw_only=True)
class BankOnMains:
    """The bank left DISCHARGING; ``record`` is the discharge it just finished."""

    at: float
    wall_time: float
    record: DischargeRecord
    estimate: BackupEstimate


Event = AlarmRaised | AlarmCleared | BankOnBattery | BankOnMains
