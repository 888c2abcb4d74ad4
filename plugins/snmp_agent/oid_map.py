"""The OID table: a bank snapshot as the sorted list of SNMP variables the agent serves.

Pure: ``make_oid_table(snapshot, now, ...)`` returns the same table for the same input,
touches no socket and no clock (``now`` is passed in). Every scaling decision of the SNMP
side is made here; the agent only encodes what this module returns.

What is served (``mibs/BMS-GATEWAY-MIB.txt`` is the contract, a test keeps the two equal):

* the SNMPv2-MIB ``system`` group and the ``snmp`` counters (:func:`make_system_variables`);
* the BMS-GATEWAY-MIB subtree (:func:`make_bank_variables`): gateway and bank scalars,
  the bus, module, cell and temperature tables, the active alarm table, the bmsBackup
  branch (bank state, time to EOD, discharge records, cell imbalance) and the
  ``bmsLimits`` scalars when the snapshot carries charge limits (docs/charge_limits.md).

Trust rules (documented in the MIB and docs/snmp.md): measurements of a module are
served only while its status is OK (or STALE when the agent is configured to serve stale
data); stale and offline modules keep their row with status, link state, data age,
identity and counters; a never-seen module has status, link state, position and
counters only. A value that is unknown (``None``) or outside the range the MIB declares
is absent (the agent answers noSuchInstance), never 0 and never clamped (a Gauge32 above
its maximum latches there, as RFC 2578 defines).
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from gateway.hub import age_snapshot
from gateway.leds import derive_leds
from gateway.model import (
    Alarm,
    BackupEstimate,
    BankSnapshot,
    BusStatus,
    ChargeLimits,
    Condition,
    DischargeRecord,
    Limit,
    LimitCause,
    Fault,
    LinkCounters,
    LinkState,
    ModuleReading,
    ModuleStatus,
    Severity,
    State,
)

PEN = 32473
"""The IANA Private Enterprise Number. 32473 is RFC 5612's number for documentation and
examples, a placeholder until the project has its own (RFC 9371). Change it here and in
``bmsGatewayRoot`` of the MIB; nothing else names it."""

ENTERPRISE_OID = (1, 3, 6, 1, 4, 1, PEN)  #: bmsGatewayRoot
SYS_OBJECT_ID = ENTERPRISE_OID + (1, 1)  #: bmsGatewayAgent, the value of sysObjectID
BMS_MIB_OID = ENTERPRISE_OID + (2, 1)  #: bmsGatewayMIB
BMS_COMPLIANCE_OID = BMS_MIB_OID + (2, 1, 1)  #: bmsCompliance, listed in sysORTable
SYSTEM_OID = (1, 3, 6, 1, 2, 1, 1)
SNMP_OID = (1, 3, 6, 1, 2, 1, 11)

_GW = BMS_MIB_OID + (1, 1)
_BANK = BMS_MIB_OID + (1, 2)
_BUS = BMS_MIB_OID + (1, 3, 1)
_MODULE = BMS_MIB_OID + (1, 4, 1)
_CELL = BMS_MIB_OID + (1, 5, 1)
_TEMP = BMS_MIB_OID + (1, 6, 1)
_ALARMS = BMS_MIB_OID + (1, 7)
_ALARM = _ALARMS + (2, 1)
_BACKUP = BMS_MIB_OID + (1, 8)
_DISCHARGE = _BACKUP + (9, 1)
_IMBALANCE = _BACKUP + (10, 1)
_LIMITS = BMS_MIB_OID + (1, 9)
_NOTIFICATIONS = BMS_MIB_OID + (0,)

ALARM_RAISED_OID = _NOTIFICATIONS + (1,)  #: bmsAlarmRaised
ALARM_CLEARED_OID = _NOTIFICATIONS + (2,)  #: bmsAlarmCleared
HEARTBEAT_OID = _NOTIFICATIONS + (3,)  #: bmsHeartbeat
ON_BATTERY_OID = _NOTIFICATIONS + (4,)  #: bmsBankOnBattery
ON_MAINS_OID = _NOTIFICATIONS + (5,)  #: bmsBankOnMains
COLD_START_OID = (1, 3, 6, 1, 6, 3, 1, 1, 5, 1)  #: SNMPv2-MIB coldStart
SNMP_TRAP_OID_0 = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)  #: SNMPv2-MIB snmpTrapOID.0

_U32 = 2**32


class Syntax(enum.IntEnum):
    """The SMIv2 base types the agent serves, numbered by their BER tag."""

    INTEGER = 0x02  #: INTEGER, Integer32 and enumerations
    OCTET_STRING = 0x04  #: OCTET STRING, DisplayString, SnmpAdminString, BITS, DateAndTime
    OBJECT_IDENTIFIER = 0x06
    COUNTER32 = 0x41
    GAUGE32 = 0x42  #: Gauge32 and Unsigned32 (same tag)
    TIMETICKS = 0x43  #: TimeTicks and TimeStamp


class Variable(NamedTuple):
    """One served instance: full OID, base type, value (int, bytes or OID tuple)."""

    oid: tuple[int, ...]
    syntax: Syntax
    value: int | bytes | tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ObjectType:
    """A MIB object the agent implements: a scalar (instance ``.0``) or a table column.

    ``low``/``high`` bound an integer's value (as the MIB's range says) or a string's
    length in octets.
    """

    name: str
    oid: tuple[int, ...]
    syntax: Syntax
    column: bool
    low: int | None = None
    high: int | None = None


OBJECT_TYPES: dict[str, ObjectType] = {}
"""Every object the agent serves, by MIB name (SNMPv2-MIB and BMS-GATEWAY-MIB)."""


def _define(name: str, oid: tuple[int, ...], syntax: Syntax, *, column: bool,
            low: int | None = None, high: int | None = None) -> ObjectType:
    if syntax is Syntax.COUNTER32 or syntax is Syntax.GAUGE32 or syntax is Syntax.TIMETICKS:
        low, high = 0, _U32 - 1
    obj = ObjectType(name, oid, syntax, column, low, high)
    assert name not in OBJECT_TYPES
    OBJECT_TYPES[name] = obj
    return obj


# Value ranges of the MIB's textual conventions.
MILLIVOLTS = (0, 1_000_000)
MILLIAMPS = (-100_000_000, 100_000_000)
DECI_CELSIUS = (-2730, 10_000)
PER_MILLE = (0, 1000)
MILLIAMP_HOURS = (0, 2**31 - 1)
INTEGER32 = (-(2**31), 2**31 - 1)
POSITION = (1, 255)
NUMBER_OR_ZERO = (0, 255)


def _scalar(name: str, parent: tuple[int, ...], n: int, syntax: Syntax,
            rng: tuple[int, int] | None = None) -> ObjectType:
    low, high = rng if rng else (None, None)
    return _define(name, parent + (n,), syntax, column=False, low=low, high=high)


def _col(name: str, entry: tuple[int, ...], n: int, syntax: Syntax,
         rng: tuple[int, int] | None = None) -> ObjectType:
    low, high = rng if rng else (None, None)
    return _define(name, entry + (n,), syntax, column=True, low=low, high=high)


I, S, C, G, T, O = (Syntax.INTEGER, Syntax.OCTET_STRING, Syntax.COUNTER32, Syntax.GAUGE32,
                    Syntax.TIMETICKS, Syntax.OBJECT_IDENTIFIER)

# SNMPv2-MIB (RFC 3418): system group and snmp group.
SYS_DESCR = _scalar("sysDescr", SYSTEM_OID, 1, S, (0, 255))
SYS_OBJECT_ID_OBJ = _scalar("sysObjectID", SYSTEM_OID, 2, O)
SYS_UPTIME = _scalar("sysUpTime", SYSTEM_OID, 3, T)
SYS_CONTACT = _scalar("sysContact", SYSTEM_OID, 4, S, (0, 255))
SYS_NAME = _scalar("sysName", SYSTEM_OID, 5, S, (0, 255))
SYS_LOCATION = _scalar("sysLocation", SYSTEM_OID, 6, S, (0, 255))
SYS_SERVICES = _scalar("sysServices", SYSTEM_OID, 7, I, (0, 127))
SYS_OR_LAST_CHANGE = _scalar("sysORLastChange", SYSTEM_OID, 8, T)
SYS_OR_ID = _col("sysORID", SYSTEM_OID + (9, 1), 2, O)
SYS_OR_DESCR = _col("sysORDescr", SYSTEM_OID + (9, 1), 3, S, (0, 255))
SYS_OR_UPTIME = _col("sysORUpTime", SYSTEM_OID + (9, 1), 4, T)

SNMP_COUNTERS: dict[str, ObjectType] = {
    "in_pkts": _scalar("snmpInPkts", SNMP_OID, 1, C),
    "in_bad_versions": _scalar("snmpInBadVersions", SNMP_OID, 3, C),
    "in_bad_community_names": _scalar("snmpInBadCommunityNames", SNMP_OID, 4, C),
    "in_bad_community_uses": _scalar("snmpInBadCommunityUses", SNMP_OID, 5, C),
    "in_asn_parse_errs": _scalar("snmpInASNParseErrs", SNMP_OID, 6, C),
    "silent_drops": _scalar("snmpSilentDrops", SNMP_OID, 31, C),
    "proxy_drops": _scalar("snmpProxyDrops", SNMP_OID, 32, C),
}
"""The snmp group's counters, keyed by the agent's counter names."""
SNMP_ENABLE_AUTHEN_TRAPS = _scalar("snmpEnableAuthenTraps", SNMP_OID, 30, I, (1, 2))

# SNMP-FRAMEWORK-MIB (RFC 3411) snmpEngine group and SNMP-USER-BASED-SM-MIB (RFC 3414)
# usmStats: served with v2c and v3 alike, so an NMS can watch for wrong-key attempts.
SNMP_ENGINE_OID = (1, 3, 6, 1, 6, 3, 10, 2, 1)
USM_STATS_OID = (1, 3, 6, 1, 6, 3, 15, 1, 1)
SNMP_ENGINE_ID = _scalar("snmpEngineID", SNMP_ENGINE_OID, 1, S, (5, 32))
SNMP_ENGINE_BOOTS = _scalar("snmpEngineBoots", SNMP_ENGINE_OID, 2, I, (1, 2**31 - 1))
SNMP_ENGINE_TIME = _scalar("snmpEngineTime", SNMP_ENGINE_OID, 3, I, (0, 2**31 - 1))
SNMP_ENGINE_MAX_MESSAGE_SIZE = _scalar("snmpEngineMaxMessageSize", SNMP_ENGINE_OID, 4, I,
                                       (484, 2**31 - 1))
USM_COUNTERS: dict[str, ObjectType] = {
    "unsupported_sec_levels": _scalar("usmStatsUnsupportedSecLevels", USM_STATS_OID, 1, C),
    "not_in_time_windows": _scalar("usmStatsNotInTimeWindows", USM_STATS_OID, 2, C),
    "unknown_user_names": _scalar("usmStatsUnknownUserNames", USM_STATS_OID, 3, C),
    "unknown_engine_ids": _scalar("usmStatsUnknownEngineIDs", USM_STATS_OID, 4, C),
    "wrong_digests": _scalar("usmStatsWrongDigests", USM_STATS_OID, 5, C),
    "decryption_errors": _scalar("usmStatsDecryptionErrors", USM_STATS_OID, 6, C),
}
"""usmStats counters, keyed by the agent's counter names."""

# BMS-GATEWAY-MIB gateway scalars.
GW_SOFTWARE_VERSION = _scalar("bmsGwSoftwareVersion", _GW, 1, S, (0, 32))
GW_UPTIME = _scalar("bmsGwUptime", _GW, 2, T)
GW_POLL_CYCLE_TIME = _scalar("bmsGwPollCycleTime", _GW, 3, G)
GW_LAST_CYCLE_AGE = _scalar("bmsGwLastCycleAge", _GW, 4, G)
_COUNTER_FIELDS = ("frames_ok", "timeouts", "checksum_errors", "format_errors", "rtn_errors",
                   "wrong_address", "no_data", "garbage_bytes")
_COUNTER_NAMES = ("FramesOk", "Timeouts", "ChecksumErrors", "FormatErrors", "RtnErrors",
                  "WrongAddress", "NoData", "GarbageBytes")
GW_COUNTERS = tuple(_scalar(f"bmsGw{n}", _GW, 5 + i, C) for i, n in enumerate(_COUNTER_NAMES))
GW_RECONNECTS = _scalar("bmsGwReconnects", _GW, 13, C)
GW_NOTIFICATIONS_SENT = _scalar("bmsGwNotificationsSent", _GW, 14, C)
GW_NOTIFICATIONS_DROPPED = _scalar("bmsGwNotificationsDropped", _GW, 15, C)

# Bank scalars.
BANK_CURRENT = _scalar("bmsBankCurrent", _BANK, 1, I, MILLIAMPS)
BANK_VOLTAGE_MIN = _scalar("bmsBankVoltageMin", _BANK, 2, I, MILLIVOLTS)
BANK_VOLTAGE_MAX = _scalar("bmsBankVoltageMax", _BANK, 3, I, MILLIVOLTS)
BANK_VOLTAGE_MEAN = _scalar("bmsBankVoltageMean", _BANK, 4, I, MILLIVOLTS)
BANK_SOC = _scalar("bmsBankSoc", _BANK, 5, I, PER_MILLE)
BANK_SOH_MIN = _scalar("bmsBankSohMin", _BANK, 6, I, PER_MILLE)
BANK_REMAINING = _scalar("bmsBankRemainingCapacity", _BANK, 7, I, MILLIAMP_HOURS)
BANK_FULL = _scalar("bmsBankFullCapacity", _BANK, 8, I, MILLIAMP_HOURS)
BANK_CELL_MIN = _scalar("bmsBankCellMin", _BANK, 9, I, MILLIVOLTS)
BANK_CELL_MIN_MODULE = _scalar("bmsBankCellMinModule", _BANK, 10, I, POSITION)
BANK_CELL_MIN_CELL = _scalar("bmsBankCellMinCell", _BANK, 11, I, POSITION)
BANK_CELL_MAX = _scalar("bmsBankCellMax", _BANK, 12, I, MILLIVOLTS)
BANK_CELL_MAX_MODULE = _scalar("bmsBankCellMaxModule", _BANK, 13, I, POSITION)
BANK_CELL_MAX_CELL = _scalar("bmsBankCellMaxCell", _BANK, 14, I, POSITION)
BANK_TEMP_MIN = _scalar("bmsBankTempMin", _BANK, 15, I, DECI_CELSIUS)
BANK_TEMP_MIN_MODULE = _scalar("bmsBankTempMinModule", _BANK, 16, I, POSITION)
BANK_TEMP_MIN_SENSOR = _scalar("bmsBankTempMinSensor", _BANK, 17, I, POSITION)
BANK_TEMP_MAX = _scalar("bmsBankTempMax", _BANK, 18, I, DECI_CELSIUS)
BANK_TEMP_MAX_MODULE = _scalar("bmsBankTempMaxModule", _BANK, 19, I, POSITION)
BANK_TEMP_MAX_SENSOR = _scalar("bmsBankTempMaxSensor", _BANK, 20, I, POSITION)
BANK_MODULES_CONFIGURED = _scalar("bmsBankModulesConfigured", _BANK, 21, G)
BANK_MODULES_ONLINE = _scalar("bmsBankModulesOnline", _BANK, 22, G)
BANK_MODULES_ALARMED = _scalar("bmsBankModulesAlarmed", _BANK, 23, G)
BANK_WORST_STATUS = _scalar("bmsBankWorstStatus", _BANK, 24, I, (1, 4))
BANK_WORST_SEVERITY = _scalar("bmsBankWorstSeverity", _BANK, 25, I, (1, 6))
BANK_ACTIVE_ALARMS = _scalar("bmsBankActiveAlarms", _BANK, 26, G)

# Bus table, INDEX { bmsBusIndex }.
BUS_NAME = _col("bmsBusName", _BUS, 2, S, (0, 32))
BUS_CONNECTED = _col("bmsBusConnected", _BUS, 3, I, (1, 2))
BUS_LAST_CYCLE_TIME = _col("bmsBusLastCycleTime", _BUS, 4, G)
BUS_LAST_CYCLE_AGE = _col("bmsBusLastCycleAge", _BUS, 5, G)
BUS_CYCLES = _col("bmsBusCycles", _BUS, 6, C)
BUS_RECONNECTS = _col("bmsBusReconnects", _BUS, 7, C)
BUS_COUNTERS = tuple(_col(f"bmsBus{n}", _BUS, 8 + i, C) for i, n in enumerate(_COUNTER_NAMES))

# Module table, INDEX { bmsBusIndex, bmsModuleAddress }.
MOD_POSITION = _col("bmsModulePosition", _MODULE, 2, I, POSITION)
MOD_STATUS = _col("bmsModuleStatus", _MODULE, 3, I, (1, 4))
MOD_LINK_STATE = _col("bmsModuleLinkState", _MODULE, 4, I, (1, 4))
MOD_DATA_AGE = _col("bmsModuleDataAge", _MODULE, 5, G)
MOD_SERIAL = _col("bmsModuleSerial", _MODULE, 6, S, (0, 32))
MOD_PACK_SERIAL = _col("bmsModulePackSerial", _MODULE, 7, S, (0, 32))
MOD_MODEL = _col("bmsModuleModel", _MODULE, 8, S, (0, 32))
MOD_FIRMWARE = _col("bmsModuleFirmware", _MODULE, 9, S, (0, 32))
MOD_MANUFACTURER = _col("bmsModuleManufacturer", _MODULE, 10, S, (0, 32))
MOD_VOLTAGE = _col("bmsModuleVoltage", _MODULE, 11, I, MILLIVOLTS)
MOD_CURRENT = _col("bmsModuleCurrent", _MODULE, 12, I, MILLIAMPS)
MOD_SOC = _col("bmsModuleSoc", _MODULE, 13, I, PER_MILLE)
MOD_SOH = _col("bmsModuleSoh", _MODULE, 14, I, PER_MILLE)
MOD_REMAINING = _col("bmsModuleRemainingCapacity", _MODULE, 15, I, MILLIAMP_HOURS)
MOD_FULL = _col("bmsModuleFullCapacity", _MODULE, 16, I, MILLIAMP_HOURS)
MOD_DESIGN = _col("bmsModuleDesignCapacity", _MODULE, 17, I, MILLIAMP_HOURS)
MOD_CYCLES = _col("bmsModuleCycles", _MODULE, 18, G)
MOD_CELL_COUNT = _col("bmsModuleCellCount", _MODULE, 19, G)
MOD_CELL_MIN = _col("bmsModuleCellMin", _MODULE, 20, I, MILLIVOLTS)
MOD_CELL_MAX = _col("bmsModuleCellMax", _MODULE, 21, I, MILLIVOLTS)
MOD_TEMP_COUNT = _col("bmsModuleTempCount", _MODULE, 22, G)
MOD_TEMP_MIN = _col("bmsModuleTempMin", _MODULE, 23, I, DECI_CELSIUS)
MOD_TEMP_MAX = _col("bmsModuleTempMax", _MODULE, 24, I, DECI_CELSIUS)
MOD_WARNINGS = _col("bmsModuleWarnings", _MODULE, 25, S)
MOD_PROTECTIONS = _col("bmsModuleProtections", _MODULE, 26, S)
MOD_FAULTS = _col("bmsModuleFaults", _MODULE, 27, S)
MOD_STATES = _col("bmsModuleStates", _MODULE, 28, S)
MOD_UNCLASSIFIED = _col("bmsModuleUnclassified", _MODULE, 29, S, (0, 64))
MOD_COUNTERS = tuple(_col(f"bmsModule{n}", _MODULE, 30 + i, C)
                     for i, n in enumerate(_COUNTER_NAMES))
# The LED view (gateway.leds), BmsLedState values.
MOD_LED_RUN = _col("bmsModuleLedRun", _MODULE, 38, I, (1, 5))
MOD_LED_ALM = _col("bmsModuleLedAlm", _MODULE, 39, I, (1, 5))
MOD_LED_ERR = _col("bmsModuleLedErr", _MODULE, 40, I, (1, 5))
MOD_LED_SOC = tuple(_col(f"bmsModuleLedSoc{n}", _MODULE, 40 + n, I, (1, 5)) for n in (1, 2, 3, 4))
MOD_LED_ERR_CODES = _col("bmsModuleLedErrCodes", _MODULE, 45, S, (0, 16))

# Cell table, INDEX { bmsBusIndex, bmsModuleAddress, bmsCellIndex }.
CELL_VOLTAGE = _col("bmsCellVoltage", _CELL, 2, I, MILLIVOLTS)
CELL_BALANCING = _col("bmsCellBalancing", _CELL, 3, I, (1, 2))

# Temperature table, INDEX { bmsBusIndex, bmsModuleAddress, bmsTempIndex }.
TEMP_VALUE = _col("bmsTempValue", _TEMP, 2, I, DECI_CELSIUS)
TEMP_ROLE = _col("bmsTempRole", _TEMP, 3, I, (1, 5))

# Alarms.
ALARM_LAST_SEQ = _scalar("bmsAlarmLastSeq", _ALARMS, 1, G)
ALARM_KIND = _col("bmsAlarmKind", _ALARM, 2, S, (1, 32))
ALARM_SEVERITY = _col("bmsAlarmSeverity", _ALARM, 3, I, (1, 6))
ALARM_MODULE = _col("bmsAlarmModule", _ALARM, 4, I, NUMBER_OR_ZERO)
ALARM_SUB_INDEX = _col("bmsAlarmSubIndex", _ALARM, 5, I, NUMBER_OR_ZERO)
ALARM_VALUE = _col("bmsAlarmValue", _ALARM, 6, I, INTEGER32)
ALARM_THRESHOLD = _col("bmsAlarmThreshold", _ALARM, 7, I, INTEGER32)
ALARM_RAISED_AT = _col("bmsAlarmRaisedAt", _ALARM, 8, S, (8, 11))
ALARM_RAISED_TIME = _col("bmsAlarmRaisedTime", _ALARM, 9, T)
ALARM_TEXT = _col("bmsAlarmText", _ALARM, 10, S, (0, 64))
# bmsBackup: the backup_time processor's figures (absent while it is not enabled)
BACKUP_STATE = _scalar("bmsBackupState", _BACKUP, 1, I, (1, 4))
BACKUP_SECONDS_ON_BATTERY = _scalar("bmsBackupSecondsOnBattery", _BACKUP, 2, G)
BACKUP_MINUTES_REMAINING = _scalar("bmsBackupMinutesRemaining", _BACKUP, 3, G)
BACKUP_LIMITED_BY = _scalar("bmsBackupLimitedBy", _BACKUP, 4, I, (1, 3))
BACKUP_DISCHARGE_CURRENT = _scalar("bmsBackupDischargeCurrent", _BACKUP, 5, I, MILLIAMPS)
BACKUP_MINUTES_TO_FULL = _scalar("bmsBackupMinutesToFull", _BACKUP, 6, G)
BACKUP_ON_BATTERY_SINCE = _scalar("bmsBackupOnBatterySince", _BACKUP, 7, S, (8, 11))
DISCHARGE_LAST_NUMBER = _scalar("bmsDischargeLastNumber", _BACKUP, 8, G)
DISCHARGE_STARTED_AT = _col("bmsDischargeStartedAt", _DISCHARGE, 2, S, (8, 11))
DISCHARGE_ENDED_AT = _col("bmsDischargeEndedAt", _DISCHARGE, 3, S, (8, 11))
DISCHARGE_DURATION = _col("bmsDischargeDuration", _DISCHARGE, 4, G)
DISCHARGE_CAPACITY = _col("bmsDischargeCapacity", _DISCHARGE, 5, I, MILLIAMP_HOURS)
DISCHARGE_ENERGY = _col("bmsDischargeEnergy", _DISCHARGE, 6, G)
DISCHARGE_SOC_START = _col("bmsDischargeSocStart", _DISCHARGE, 7, I, PER_MILLE)
DISCHARGE_SOC_END = _col("bmsDischargeSocEnd", _DISCHARGE, 8, I, PER_MILLE)
DISCHARGE_VOLTAGE_MIN = _col("bmsDischargeVoltageMin", _DISCHARGE, 9, I, MILLIVOLTS)
DISCHARGE_CELL_MIN = _col("bmsDischargeCellMin", _DISCHARGE, 10, I, MILLIVOLTS)
DISCHARGE_CELL_MIN_MODULE = _col("bmsDischargeCellMinModule", _DISCHARGE, 11, I, POSITION)
DISCHARGE_CELL_MIN_CELL = _col("bmsDischargeCellMinCell", _DISCHARGE, 12, I, POSITION)
DISCHARGE_TEMP_MAX = _col("bmsDischargeTempMax", _DISCHARGE, 13, I, DECI_CELSIUS)
DISCHARGE_EOD_REACHED = _col("bmsDischargeEodReached", _DISCHARGE, 14, I, (1, 2))
MILLIVOLT_DELTA = (-1_000_000, 1_000_000)
IMBALANCE_NOW = _col("bmsImbalanceNow", _IMBALANCE, 1, G)
IMBALANCE_TODAY = _col("bmsImbalanceTodayMean", _IMBALANCE, 2, G)
IMBALANCE_BASELINE = _col("bmsImbalanceBaseline", _IMBALANCE, 3, G)
IMBALANCE_RISE = _col("bmsImbalanceRise", _IMBALANCE, 4, I, MILLIVOLT_DELTA)
IMBALANCE_DAYS = _col("bmsImbalanceDays", _IMBALANCE, 5, G)

# Charge and discharge limits (the charge_limits plugin).
_CAUSES = (min(LimitCause), max(LimitCause))
LIMIT_CHARGE_VOLTAGE = _scalar("bmsLimitChargeVoltage", _LIMITS, 1, I, MILLIVOLTS)
LIMIT_CHARGE_VOLTAGE_CAUSE = _scalar("bmsLimitChargeVoltageCause", _LIMITS, 2, I, _CAUSES)
LIMIT_CHARGE_CURRENT = _scalar("bmsLimitChargeCurrent", _LIMITS, 3, I, MILLIAMPS)
LIMIT_CHARGE_CURRENT_CAUSE = _scalar("bmsLimitChargeCurrentCause", _LIMITS, 4, I, _CAUSES)
LIMIT_CHARGE_CURRENT_REASON = _scalar("bmsLimitChargeCurrentReason", _LIMITS, 5, S, (0, 64))
LIMIT_CHARGE_CURRENT_MODULE = _scalar("bmsLimitChargeCurrentModule", _LIMITS, 6, I,
                                      NUMBER_OR_ZERO)
LIMIT_DISCHARGE_CURRENT = _scalar("bmsLimitDischargeCurrent", _LIMITS, 7, I, MILLIAMPS)
LIMIT_DISCHARGE_CURRENT_CAUSE = _scalar("bmsLimitDischargeCurrentCause", _LIMITS, 8, I,
                                        _CAUSES)
LIMIT_DISCHARGE_CURRENT_REASON = _scalar("bmsLimitDischargeCurrentReason", _LIMITS, 9, S,
                                         (0, 64))
LIMIT_DISCHARGE_CURRENT_MODULE = _scalar("bmsLimitDischargeCurrentModule", _LIMITS, 10, I,
                                         NUMBER_OR_ZERO)
LIMIT_CUTOFF_VOLTAGE = _scalar("bmsLimitCutoffVoltage", _LIMITS, 11, I, MILLIVOLTS)
LIMIT_EOD_VOLTAGE = _scalar("bmsLimitEodVoltage", _LIMITS, 12, I, MILLIVOLTS)
LIMIT_MODULES_COUNTED = _scalar("bmsLimitModulesCounted", _LIMITS, 13, G)
LIMIT_RECTIFIER_CURRENT = _scalar("bmsLimitRectifierCurrent", _LIMITS, 14, I, MILLIAMPS)

del I, S, C, G, T, O

OBJECT_OIDS: frozenset[tuple[int, ...]] = frozenset(o.oid for o in OBJECT_TYPES.values())
"""OIDs of the implemented objects: a GET below one of them that finds no instance is
answered noSuchInstance, anything else noSuchObject (RFC 3416 4.2.1)."""

UPTIME_OIDS = (SYS_UPTIME.oid + (0,), GW_UPTIME.oid + (0,))
#: bmsGwNotificationsSent.0 and bmsGwNotificationsDropped.0, read per request
NOTIFICATION_COUNT_OIDS = (GW_NOTIFICATIONS_SENT.oid + (0,), GW_NOTIFICATIONS_DROPPED.oid + (0,))
"""Instances whose value moves with every request; the agent encodes them per request."""

SNMP_COUNTER_OIDS = {SNMP_COUNTERS[k].oid + (0,): k for k in SNMP_COUNTERS}
"""snmp group counter instances, keyed to the agent's counter names (live per request)."""
USM_COUNTER_OIDS = {USM_COUNTERS[k].oid + (0,): k for k in USM_COUNTERS}
"""usmStats counter instances, keyed to the agent's counter names (live per request)."""
SNMP_ENGINE_TIME_OID = SNMP_ENGINE_TIME.oid + (0,)  #: live per request

_LINK_STATE = {LinkState.NEVER_SEEN: 1, LinkState.ONLINE: 2, LinkState.SUSPECT: 3,
               LinkState.OFFLINE: 4}
#: ITU severities from most to least severe (cleared last: no alarm).
_SEVERITY_ORDER = (Severity.CRITICAL, Severity.MAJOR, Severity.MINOR, Severity.WARNING,
                   Severity.INDETERMINATE, Severity.CLEARED)
_TRUE, _FALSE = 1, 2  # TruthValue


@dataclass(frozen=True, slots=True, kw_only=True)
class SystemInfo:
    """What the SNMPv2-MIB system group says about the gateway."""

    descr: str
    name: str
    location: str = ""
    contact: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class BankOptions:
    """Settings that change what :func:`make_bank_variables` serves."""

    software_version: str
    started_at: float  #: monotonic time the agent started (sysUpTime zero)
    serve_stale: bool = False  #: serve a STALE module's last measurements


# ------------------------------------------------------------------ conversions ------


def encode_bits(flags: int, named_bits: int) -> bytes:
    """BITS as an OCTET STRING (RFC 2578 7.1.4): bit 0 is the high bit of octet 0.

    The string covers every named bit (``named_bits``) and any higher bit that is set,
    so nothing the BMS reported is dropped.
    """
    if flags < 0:
        raise ValueError("flags must not be negative")
    nbits = max(named_bits, flags.bit_length())
    out = bytearray((nbits + 7) // 8)
    for i in range(flags.bit_length()):
        if flags >> i & 1:
            out[i // 8] |= 0x80 >> (i % 8)
    return bytes(out)


def encode_text(text: str, max_octets: int) -> bytes:
    """UTF-8, cut at ``max_octets`` on a character boundary, ending in '...' when cut."""
    raw = text.encode("utf-8")
    if len(raw) <= max_octets:
        return raw
    # decoding with "ignore" drops the multi-byte character the cut split, if any
    keep = raw[: max(0, max_octets - 3)].decode("utf-8", "ignore").encode("utf-8")
    return keep + b"..."[: max_octets - len(keep)]


def encode_date_and_time(epoch_s: float) -> bytes:
    """SNMPv2-TC DateAndTime, UTC with the explicit '+0:0' offset (11 octets)."""
    dt = datetime.datetime.fromtimestamp(epoch_s, tz=datetime.timezone.utc)
    return bytes((dt.year >> 8, dt.year & 0xFF, dt.month, dt.day, dt.hour, dt.minute,
                  dt.second, dt.microsecond // 100_000, ord("+"), 0, 0))


def uptime_ticks(now: float, started_at: float) -> int:
    """TimeTicks (hundredths of a second) since ``started_at``, wrapping at 2^32."""
    # round first: (1000.9 - 990.0) * 100 is 1089.9999999999999 in floating point
    return int(round(max(0.0, now - started_at) * 100, 6)) % _U32


def timestamp_ticks(at: float, started_at: float) -> int:
    """TimeStamp: sysUpTime at monotonic time ``at``; 0 if before the agent started."""
    return uptime_ticks(at, started_at) if at > started_at else 0


def assign_bus_numbers(previous: Mapping[str, int], snapshot: BankSnapshot) -> dict[str, int]:
    """Sticky bus numbering: keep every number already given; number new bus names in
    the order of ``snapshot.buses`` (the configuration's order), then any bus named only
    by a module, in module position order. Numbers start at 1 and are never reused."""
    out = dict(previous)
    names = [b.name for b in snapshot.buses] + [m.bus for m in snapshot.modules]
    for name in names:
        if name not in out:
            out[name] = max(out.values(), default=0) + 1
    return out


# ------------------------------------------------------------------ the table --------


class Elapsed(NamedTuple):
    """A Gauge32 value that is the whole seconds since monotonic time ``since``, taken
    when a request is answered (:func:`resolve`): ages never need a table rebuild."""

    since: float


def resolve(v: Variable, now: float) -> Variable:
    """``v`` with an :class:`Elapsed` value turned into the seconds at ``now``."""
    value = v.value
    if isinstance(value, Elapsed):
        return Variable(v.oid, v.syntax, min(int(round(max(0.0, now - value.since), 6)),
                                             _U32 - 1))
    return v


class _Rows:
    """Collects variables; drops the unknown and the out-of-range."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[Variable] = []

    def put(self, obj: ObjectType, index: tuple[int, ...], value: object) -> None:
        if value is None:
            return
        oid = obj.oid + index
        syntax = obj.syntax
        if syntax is Syntax.OCTET_STRING:
            if isinstance(value, str):
                value = encode_text(value, obj.high if obj.high is not None else 255)
            assert isinstance(value, bytes)
            if obj.low is not None and len(value) < obj.low:
                return
            self.items.append(Variable(oid, syntax, value))
        elif syntax is Syntax.OBJECT_IDENTIFIER:
            self.items.append(Variable(oid, syntax, value))  # type: ignore[arg-type]
        elif isinstance(value, Elapsed):
            assert syntax is Syntax.GAUGE32
            self.items.append(Variable(oid, syntax, value))  # type: ignore[arg-type]
        else:
            assert isinstance(value, int)
            if syntax is Syntax.COUNTER32:
                value %= _U32
            elif syntax is Syntax.GAUGE32:
                if value < 0:  # not a count: garbage from the BMS, left out
                    return
                value = min(value, _U32 - 1)  # a gauge latches at its maximum (RFC 2578)
            elif not (obj.low <= value <= obj.high):  # type: ignore[operator]
                return
            self.items.append(Variable(oid, syntax, int(value)))

    def counters(self, objs: Sequence[ObjectType], index: tuple[int, ...],
                 counters: LinkCounters) -> None:
        for obj, name in zip(objs, _COUNTER_FIELDS):
            self.put(obj, index, getattr(counters, name))


def make_system_variables(system: SystemInfo, *, now: float, started_at: float,
                          counters: Mapping[str, int]) -> list[Variable]:
    """The SNMPv2-MIB system group and snmp group, sorted by OID."""
    rows = _Rows()
    rows.put(SYS_DESCR, (0,), system.descr)
    rows.put(SYS_OBJECT_ID_OBJ, (0,), SYS_OBJECT_ID)
    rows.put(SYS_UPTIME, (0,), uptime_ticks(now, started_at))
    rows.put(SYS_CONTACT, (0,), system.contact)
    rows.put(SYS_NAME, (0,), system.name)
    rows.put(SYS_LOCATION, (0,), system.location)
    rows.put(SYS_SERVICES, (0,), 72)  # applications (layer 7) + end-to-end (layer 4)
    rows.put(SYS_OR_LAST_CHANGE, (0,), 0)
    rows.put(SYS_OR_ID, (1,), BMS_COMPLIANCE_OID)
    rows.put(SYS_OR_DESCR, (1,), "BMS-GATEWAY-MIB: battery bank modules, cells, alarms")
    rows.put(SYS_OR_UPTIME, (1,), 0)
    for key, obj in SNMP_COUNTERS.items():
        rows.put(obj, (0,), counters.get(key, 0))
    rows.put(SNMP_ENABLE_AUTHEN_TRAPS, (0,), 2)  # disabled: the agent sends no auth traps
    rows.items.sort(key=lambda v: v.oid)
    return rows.items


def _age_s(now: float, at: float | None) -> Elapsed | None:
    """An age column: the seconds since ``at``, counted when a request is answered."""
    return None if at is None else Elapsed(at)


def _gateway(rows: _Rows, snap: BankSnapshot, now: float, opts: BankOptions) -> None:
    rows.put(GW_SOFTWARE_VERSION, (0,), opts.software_version)
    rows.put(GW_UPTIME, (0,), uptime_ticks(now, opts.started_at))
    cycles = [b.last_cycle_ms for b in snap.buses if b.last_cycle_ms is not None]
    rows.put(GW_POLL_CYCLE_TIME, (0,), max(cycles) if cycles else None)
    # a bus that has not completed a cycle yet counts from the start: the age keeps
    # growing while a bus is stuck, instead of the object staying absent
    ends = [b.last_cycle_at if b.last_cycle_at is not None else opts.started_at
            for b in snap.buses]
    if ends:
        rows.put(GW_LAST_CYCLE_AGE, (0,), _age_s(now, min(ends)))
    for obj, name in zip(GW_COUNTERS, _COUNTER_FIELDS):
        rows.put(obj, (0,), sum(getattr(b.counters, name) for b in snap.buses))
    rows.put(GW_RECONNECTS, (0,), sum(b.reconnects for b in snap.buses))


def _bank(rows: _Rows, snap: BankSnapshot) -> None:
    b = snap.bank
    z = (0,)
    rows.put(BANK_CURRENT, z, b.current_ma)
    rows.put(BANK_VOLTAGE_MIN, z, b.voltage_min_mv)
    rows.put(BANK_VOLTAGE_MAX, z, b.voltage_max_mv)
    rows.put(BANK_VOLTAGE_MEAN, z, b.voltage_mean_mv)
    rows.put(BANK_SOC, z, b.soc_permille)
    rows.put(BANK_SOH_MIN, z, b.soh_min_permille)
    rows.put(BANK_REMAINING, z, b.remaining_mah)
    rows.put(BANK_FULL, z, b.full_mah)
    for value, at, v_obj, m_obj, i_obj in (
        (b.cell_min_mv, b.cell_min_at, BANK_CELL_MIN, BANK_CELL_MIN_MODULE, BANK_CELL_MIN_CELL),
        (b.cell_max_mv, b.cell_max_at, BANK_CELL_MAX, BANK_CELL_MAX_MODULE, BANK_CELL_MAX_CELL),
        (b.temp_min_dc, b.temp_min_at, BANK_TEMP_MIN, BANK_TEMP_MIN_MODULE,
         BANK_TEMP_MIN_SENSOR),
        (b.temp_max_dc, b.temp_max_at, BANK_TEMP_MAX, BANK_TEMP_MAX_MODULE,
         BANK_TEMP_MAX_SENSOR),
    ):
        rows.put(v_obj, z, value)
        if value is not None and at is not None:
            rows.put(m_obj, z, at.position)
            rows.put(i_obj, z, at.index)
    rows.put(BANK_MODULES_CONFIGURED, z, b.modules_configured)
    rows.put(BANK_MODULES_ONLINE, z, b.modules_online)
    rows.put(BANK_MODULES_ALARMED, z, b.modules_alarmed)
    if snap.modules:
        rows.put(BANK_WORST_STATUS, z, int(max(m.status for m in snap.modules)))
    rows.put(BANK_WORST_SEVERITY, z, int(worst_severity(a.severity for a in snap.alarms)))
    rows.put(BANK_ACTIVE_ALARMS, z, len(snap.alarms))


def worst_severity(severities: Iterable[Severity]) -> Severity:
    """The most severe of ``severities`` (ITU order); CLEARED when there are none."""
    rank = {s: i for i, s in enumerate(_SEVERITY_ORDER)}
    return min(severities, key=rank.__getitem__, default=Severity.CLEARED)


def _buses(rows: _Rows, snap: BankSnapshot, now: float, numbers: Mapping[str, int]) -> None:
    status: dict[str, BusStatus] = {}
    for b in snap.buses:
        status.setdefault(b.name, b)
    names = set(status) | {m.bus for m in snap.modules}
    for name in names:
        n = numbers.get(name)
        if n is None or not 1 <= n <= 255:
            continue
        idx = (n,)
        rows.put(BUS_NAME, idx, name)
        b = status.get(name)
        if b is None:
            continue
        rows.put(BUS_CONNECTED, idx, _TRUE if b.connected else _FALSE)
        rows.put(BUS_LAST_CYCLE_TIME, idx, b.last_cycle_ms)
        rows.put(BUS_LAST_CYCLE_AGE, idx, _age_s(now, b.last_cycle_at))
        rows.put(BUS_CYCLES, idx, b.cycles)
        rows.put(BUS_RECONNECTS, idx, b.reconnects)
        rows.counters(BUS_COUNTERS, idx, b.counters)


def _module(rows: _Rows, m: ModuleReading, idx: tuple[int, int], now: float,
            opts: BankOptions) -> None:
    rows.put(MOD_POSITION, idx, m.position)
    rows.put(MOD_STATUS, idx, int(m.status))
    rows.put(MOD_LINK_STATE, idx, _LINK_STATE[m.link])
    rows.counters(MOD_COUNTERS, idx, m.counters)
    if m.status is ModuleStatus.NEVER_SEEN:
        return
    rows.put(MOD_DATA_AGE, idx, _age_s(now, m.updated_at))
    ident = m.identity
    if ident is not None:
        rows.put(MOD_SERIAL, idx, ident.serial)
        rows.put(MOD_PACK_SERIAL, idx, ident.pack_serial)
        rows.put(MOD_MODEL, idx, ident.model)
        rows.put(MOD_FIRMWARE, idx, ident.firmware)
        rows.put(MOD_MANUFACTURER, idx, ident.manufacturer)
    live = m.status is ModuleStatus.OK or (m.status is ModuleStatus.STALE and opts.serve_stale)
    if not live:
        return
    t = m.telemetry
    if t is not None:
        rows.put(MOD_VOLTAGE, idx, t.voltage_mv)
        rows.put(MOD_CURRENT, idx, t.current_ma)
        rows.put(MOD_SOC, idx, t.soc_permille)
        rows.put(MOD_SOH, idx, t.soh_permille)
        rows.put(MOD_REMAINING, idx, t.remaining_mah)
        rows.put(MOD_FULL, idx, t.full_mah)
        rows.put(MOD_DESIGN, idx, t.design_mah)
        rows.put(MOD_CYCLES, idx, t.cycles)
        rows.put(MOD_CELL_COUNT, idx, len(t.cell_mv))
        rows.put(MOD_CELL_MIN, idx, t.cell_min_mv)
        rows.put(MOD_CELL_MAX, idx, t.cell_max_mv)
        temps = [v for v in t.temp_dc if v is not None]
        rows.put(MOD_TEMP_COUNT, idx, len(t.temp_dc))
        rows.put(MOD_TEMP_MIN, idx, min(temps) if temps else None)
        rows.put(MOD_TEMP_MAX, idx, max(temps) if temps else None)
        for i, mv in enumerate(t.cell_mv[:255], start=1):
            rows.put(CELL_VOLTAGE, idx + (i,), mv)
        for i, dc in enumerate(t.temp_dc[:255], start=1):
            rows.put(TEMP_VALUE, idx + (i,), dc)
            if i <= len(t.temp_roles):
                rows.put(TEMP_ROLE, idx + (i,), int(t.temp_roles[i - 1]))
    leds = derive_leds(t, m.bms)
    rows.put(MOD_LED_RUN, idx, None if leds.run is None else int(leds.run))
    rows.put(MOD_LED_ALM, idx, int(leds.alm))
    rows.put(MOD_LED_ERR, idx, int(leds.err))
    if leds.soc is not None:
        for obj, state in zip(MOD_LED_SOC, leds.soc):
            rows.put(obj, idx, int(state))
    rows.put(MOD_LED_ERR_CODES, idx, " ".join(str(c) for c in leds.fault_codes))
    bms = m.bms
    if bms is not None:
        rows.put(MOD_WARNINGS, idx, encode_bits(int(bms.warnings), len(Condition)))
        rows.put(MOD_PROTECTIONS, idx, encode_bits(int(bms.protections), len(Condition)))
        rows.put(MOD_FAULTS, idx, encode_bits(int(bms.faults), len(Fault)))
        rows.put(MOD_STATES, idx, encode_bits(int(bms.states), len(State)))
        rows.put(MOD_UNCLASSIFIED, idx,
                 " ".join(f"{f.field}:{f.bit}" for f in bms.unclassified))
        if bms.balancing is not None and t is not None:
            for i, on in enumerate(bms.balancing[: min(len(t.cell_mv), 255)], start=1):
                rows.put(CELL_BALANCING, idx + (i,), _TRUE if on else _FALSE)


def _alarm_columns(rows: _Rows, a: Alarm) -> None:
    """The columns an alarm's row and its notifications share (all but RaisedTime)."""
    idx = (a.seq,)
    rows.put(ALARM_KIND, idx, a.kind)
    rows.put(ALARM_SEVERITY, idx, int(a.severity))
    rows.put(ALARM_MODULE, idx, a.position)
    rows.put(ALARM_SUB_INDEX, idx, a.sub_index)
    rows.put(ALARM_VALUE, idx, a.value)
    rows.put(ALARM_THRESHOLD, idx, a.threshold)
    rows.put(ALARM_RAISED_AT, idx, encode_date_and_time(a.raised_wall_time))
    rows.put(ALARM_TEXT, idx, a.text)


def _alarms(rows: _Rows, snap: BankSnapshot, opts: BankOptions) -> None:
    rows.put(ALARM_LAST_SEQ, (0,), snap.alarm_last_seq)
    for a in snap.alarms:
        if not 1 <= a.seq < _U32:
            continue
        _alarm_columns(rows, a)
        rows.put(ALARM_RAISED_TIME, (a.seq,), timestamp_ticks(a.raised_at, opts.started_at))


_LIMITED_BY = {"capacity": 1, "module": 2, "voltage": 3}


def _discharge_columns(rows: _Rows, r: DischargeRecord) -> None:
    i = (r.number,)
    rows.put(DISCHARGE_STARTED_AT, i, encode_date_and_time(r.started_wall_time))
    rows.put(DISCHARGE_ENDED_AT, i, encode_date_and_time(r.ended_wall_time))
    rows.put(DISCHARGE_DURATION, i, r.duration_s)
    rows.put(DISCHARGE_CAPACITY, i, r.delivered_mah)
    rows.put(DISCHARGE_ENERGY, i, r.delivered_wh)
    rows.put(DISCHARGE_SOC_START, i, r.soc_start_permille)
    rows.put(DISCHARGE_SOC_END, i, r.soc_end_permille)
    rows.put(DISCHARGE_VOLTAGE_MIN, i, r.voltage_min_mv)
    rows.put(DISCHARGE_CELL_MIN, i, r.cell_min_mv)
    if r.cell_min_mv is not None and r.cell_min_at is not None:
        rows.put(DISCHARGE_CELL_MIN_MODULE, i, r.cell_min_at.position)
        rows.put(DISCHARGE_CELL_MIN_CELL, i, r.cell_min_at.index)
    rows.put(DISCHARGE_TEMP_MAX, i, r.temp_max_dc)
    rows.put(DISCHARGE_EOD_REACHED, i, _TRUE if r.eod_reached else _FALSE)


def _backup_scalars(rows: _Rows, e: BackupEstimate) -> None:
    z = (0,)
    rows.put(BACKUP_STATE, z, None if e.state is None else int(e.state))
    rows.put(BACKUP_SECONDS_ON_BATTERY, z, e.seconds_on_battery)
    rows.put(BACKUP_MINUTES_REMAINING, z, e.minutes_to_eod)
    rows.put(BACKUP_LIMITED_BY, z, _LIMITED_BY.get(e.limited_by or ""))
    rows.put(BACKUP_DISCHARGE_CURRENT, z, e.discharge_current_ma)
    rows.put(BACKUP_MINUTES_TO_FULL, z,
             None if e.seconds_to_full is None else e.seconds_to_full // 60)
    if e.on_battery_since_wall_time is not None:
        rows.put(BACKUP_ON_BATTERY_SINCE, z, encode_date_and_time(e.on_battery_since_wall_time))
    rows.put(DISCHARGE_LAST_NUMBER, z, e.record_last)


def _backup(rows: _Rows, snap: BankSnapshot, numbers: Mapping[str, int]) -> None:
    e = snap.backup
    if e is None:
        return
    _backup_scalars(rows, e)
    for r in e.records:
        if 1 <= r.number < _U32:
            _discharge_columns(rows, r)
    seen: set[tuple[int, int]] = set()
    for m in snap.modules:
        n = numbers.get(m.bus)
        trend = e.module_imbalance(m.position)
        if trend is None or n is None or not 1 <= n <= 255 or not 0 <= m.address <= 255:
            continue
        idx = (n, m.address)
        if idx in seen:
            continue
        seen.add(idx)
        rows.put(IMBALANCE_NOW, idx, trend.imbalance_mv)
        rows.put(IMBALANCE_TODAY, idx, trend.today_mean_mv)
        rows.put(IMBALANCE_BASELINE, idx, trend.baseline_mv)
        rows.put(IMBALANCE_RISE, idx, trend.rise_mv)
        rows.put(IMBALANCE_DAYS, idx, trend.days)


def make_power_notification_variables(estimate: BackupEstimate,
                                      record: DischargeRecord | None) -> list[Variable]:
    """The varbinds of bmsBankOnBattery (``record`` None) and bmsBankOnMains after
    sysUpTime and snmpTrapOID: the backup scalars (unknown ones left out) and, for
    bmsBankOnMains, the finished discharge record with its number as instance."""
    rows = _Rows()
    z = (0,)
    rows.put(BACKUP_STATE, z, None if estimate.state is None else int(estimate.state))
    rows.put(BACKUP_SECONDS_ON_BATTERY, z, estimate.seconds_on_battery)
    rows.put(BACKUP_MINUTES_REMAINING, z, estimate.minutes_to_eod)
    if record is None:
        if estimate.on_battery_since_wall_time is not None:
            rows.put(BACKUP_ON_BATTERY_SINCE, z,
                     encode_date_and_time(estimate.on_battery_since_wall_time))
        return rows.items
    if 1 <= record.number < _U32:
        i = (record.number,)
        rows.put(DISCHARGE_STARTED_AT, i, encode_date_and_time(record.started_wall_time))
        rows.put(DISCHARGE_DURATION, i, record.duration_s)
        rows.put(DISCHARGE_CAPACITY, i, record.delivered_mah)
        rows.put(DISCHARGE_ENERGY, i, record.delivered_wh)
        rows.put(DISCHARGE_EOD_REACHED, i, _TRUE if record.eod_reached else _FALSE)
    rows.put(DISCHARGE_LAST_NUMBER, z, record.number)
    return rows.items
NOT_FRESH_REASON = "bank data not fresh"


def _limits(rows: _Rows, lim: ChargeLimits, fresh: bool) -> None:
    """The bmsLimits scalars. The current limits read 0, cause notFresh, when the
    snapshot they were computed from has modules that went stale since (a hub that
    stopped publishing): a rectifier following them stops."""
    z = (0,)
    rows.put(LIMIT_CHARGE_VOLTAGE, z, lim.cvl.value)
    rows.put(LIMIT_CHARGE_VOLTAGE_CAUSE, z, int(lim.cvl.cause))
    for limit, value, cause, reason, module in (
        (lim.ccl, LIMIT_CHARGE_CURRENT, LIMIT_CHARGE_CURRENT_CAUSE,
         LIMIT_CHARGE_CURRENT_REASON, LIMIT_CHARGE_CURRENT_MODULE),
        (lim.dcl, LIMIT_DISCHARGE_CURRENT, LIMIT_DISCHARGE_CURRENT_CAUSE,
         LIMIT_DISCHARGE_CURRENT_REASON, LIMIT_DISCHARGE_CURRENT_MODULE),
    ):
        served = limit if fresh else Limit(value=0, cause=LimitCause.NOT_FRESH,
                                           reason=NOT_FRESH_REASON)
        rows.put(value, z, served.value)
        rows.put(cause, z, int(served.cause))
        rows.put(reason, z, served.reason)
        rows.put(module, z, served.position)
    rows.put(LIMIT_CUTOFF_VOLTAGE, z, lim.cutoff_mv)
    rows.put(LIMIT_EOD_VOLTAGE, z, lim.eod_mv)
    rows.put(LIMIT_MODULES_COUNTED, z, lim.modules_counted if fresh else 0)
    rows.put(LIMIT_RECTIFIER_CURRENT, z, lim.rectifier_ma)


def make_alarm_notification_variables(alarm: Alarm, last_seq: int) -> list[Variable]:
    """The varbinds of bmsAlarmRaised/bmsAlarmCleared after sysUpTime and snmpTrapOID:
    the NOTIFICATION-TYPE's OBJECTS in their order with the alarm's sequence number as
    instance, then bmsAlarmLastSeq.0 (``last_seq``: the raise's or the clear's number).
    bmsAlarmValue and bmsAlarmThreshold are left out when the alarm has none, as in the
    table; nothing is ever sent as 0 for unknown."""
    rows = _Rows()
    if 1 <= alarm.seq < _U32:
        _alarm_columns(rows, alarm)
    rows.put(ALARM_LAST_SEQ, (0,), last_seq)
    return rows.items


def make_heartbeat_variables(snapshot: BankSnapshot | None) -> list[Variable]:
    """The varbinds of bmsHeartbeat after sysUpTime and snmpTrapOID (its OBJECTS, .0)."""
    rows = _Rows()
    z = (0,)
    if snapshot is not None and snapshot.modules:
        rows.put(BANK_WORST_STATUS, z, int(max(m.status for m in snapshot.modules)))
    alarms = snapshot.alarms if snapshot is not None else ()
    rows.put(BANK_WORST_SEVERITY, z, int(worst_severity(a.severity for a in alarms)))
    rows.put(BANK_ACTIVE_ALARMS, z, len(alarms))
    rows.put(ALARM_LAST_SEQ, z, snapshot.alarm_last_seq if snapshot is not None else 0)
    return rows.items


Part = tuple[object, list[Variable]]
"""A part of the BMS subtree: a key (``"gateway"``, ``("module", bus, address)``, ...)
and its variables, unsorted; the table is the sorted union of the parts."""


def stale_by_age_at(snapshot: BankSnapshot | None, now: float) -> float:
    """When the next live module of ``snapshot`` turns stale by age (the stale guard of
    :func:`~gateway.hub.age_snapshot`), or infinity: until then the served rows, ages
    apart, stay what they are at ``now``."""
    if snapshot is None:
        return float("inf")
    return min((m.updated_at + m.stale_after_s for m in snapshot.modules
                if m.status is ModuleStatus.OK and m.updated_at is not None
                and m.stale_after_s is not None and m.updated_at + m.stale_after_s >= now),
               default=float("inf"))


class ModuleRowsCache:
    """The variables of each module row, kept while the module reads the same: most
    snapshots change one module (the poller publishes after each), so the others' rows
    are neither rebuilt nor, in the agent's table, re-encoded."""

    __slots__ = ("_rows",)

    def __init__(self) -> None:
        self._rows: dict[tuple[int, int], tuple[ModuleReading, bool, list[Variable]]] = {}

    def rows(self, m: ModuleReading, idx: tuple[int, int], now: float,
             opts: BankOptions) -> list[Variable]:
        cached = self._rows.get(idx)
        if cached is not None and cached[1] == opts.serve_stale and cached[0] == m:
            return cached[2]
        rows = _Rows()
        _module(rows, m, idx, now, opts)
        self._rows[idx] = (m, opts.serve_stale, rows.items)
        return rows.items

    def keep_only(self, indexes: Iterable[tuple[int, int]]) -> None:
        keep = set(indexes)
        for idx in [i for i in self._rows if i not in keep]:
            del self._rows[idx]


def make_bank_parts(snapshot: BankSnapshot | None, *, now: float,
                    bus_numbers: Mapping[str, int], options: BankOptions,
                    notifications: tuple[int, int] | None = None,
                    modules: ModuleRowsCache | None = None) -> list[Part]:
    """The BMS-GATEWAY-MIB subtree for ``snapshot`` at monotonic time ``now``, in
    parts (see :func:`make_bank_variables`). With ``modules``, unchanged module rows
    are the same list objects as last time."""
    return [p for chunk in iter_bank_parts(snapshot, now=now, bus_numbers=bus_numbers,
                                           options=options, notifications=notifications,
                                           modules=modules) for p in chunk]


def iter_bank_parts(snapshot: BankSnapshot | None, *, now: float,
                    bus_numbers: Mapping[str, int], options: BankOptions,
                    notifications: tuple[int, int] | None = None,
                    modules: ModuleRowsCache | None = None) -> Iterator[list[Part]]:
    """:func:`make_bank_parts` in chunks (the scalars, each module row, the rest), for
    the agent to make them with the event loop free in between."""
    cache = modules if modules is not None else ModuleRowsCache()
    rows = _Rows()
    if snapshot is None:
        rows.put(GW_SOFTWARE_VERSION, (0,), options.software_version)
        rows.put(GW_UPTIME, (0,), uptime_ticks(now, options.started_at))
    else:
        aged = age_snapshot(snapshot, now)  # the guard against a hub that stopped
        if aged.charge_limits is not None:
            _limits(rows, aged.charge_limits, fresh=aged is snapshot)
        snapshot = aged
        _gateway(rows, snapshot, now, options)
    if notifications is not None:
        rows.put(GW_NOTIFICATIONS_SENT, (0,), notifications[0])
        rows.put(GW_NOTIFICATIONS_DROPPED, (0,), notifications[1])
    if snapshot is None:
        yield [("gateway", rows.items)]
        return
    parts: list[Part] = [("gateway", rows.items)]
    rows = _Rows()
    _bank(rows, snapshot)
    parts.append(("bank", rows.items))
    rows = _Rows()
    _buses(rows, snapshot, now, bus_numbers)
    parts.append(("buses", rows.items))
    yield parts
    seen: set[tuple[int, int]] = set()
    for m in snapshot.modules:
        n = bus_numbers.get(m.bus)
        if n is None or not 1 <= n <= 255 or not 0 <= m.address <= 255:
            continue
        idx = (n, m.address)
        if idx in seen:  # a duplicate address: the first position keeps the row
            continue
        seen.add(idx)
        yield [(("module", *idx), cache.rows(m, idx, now, options))]
    cache.keep_only(seen)
    rows = _Rows()
    _alarms(rows, snapshot, options)
    parts = [("alarms", rows.items)]
    rows = _Rows()
    _backup(rows, snapshot, bus_numbers)
    parts.append(("backup", rows.items))
    yield parts


def make_bank_variables(snapshot: BankSnapshot | None, *, now: float,
                        bus_numbers: Mapping[str, int], options: BankOptions,
                        notifications: tuple[int, int] | None = None) -> list[Variable]:
    """The BMS-GATEWAY-MIB subtree for ``snapshot`` at monotonic time ``now``, sorted.

    ``bus_numbers`` maps bus names to bmsBusIndex (see :func:`assign_bus_numbers`);
    modules on a bus without a number, or whose address does not fit the index, are
    left out. Before the first snapshot only the gateway's own scalars are served. Ages
    are the seconds at ``now`` (the agent keeps them as :class:`Elapsed` values and
    resolves them per request instead).
    """
    items = [resolve(v, now)
             for _, part in make_bank_parts(snapshot, now=now, bus_numbers=bus_numbers,
                                            options=options, notifications=notifications)
             for v in part]
    items.sort(key=lambda v: v.oid)
    return items


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineInfo:
    """The SNMP engine's identity and USM counters at one instant."""

    engine_id: bytes
    boots: int
    time_s: int  #: snmpEngineTime: seconds since snmpEngineBoots last changed
    max_message_size: int
    usm: Mapping[str, int]  #: usmStats counters by the keys of :data:`USM_COUNTERS`


def make_engine_variables(engine: EngineInfo) -> list[Variable]:
    """The snmpEngine group and usmStats, sorted by OID."""
    rows = _Rows()
    rows.put(SNMP_ENGINE_ID, (0,), engine.engine_id)
    rows.put(SNMP_ENGINE_BOOTS, (0,), engine.boots)
    rows.put(SNMP_ENGINE_TIME, (0,), engine.time_s)
    rows.put(SNMP_ENGINE_MAX_MESSAGE_SIZE, (0,), engine.max_message_size)
    for key, obj in USM_COUNTERS.items():
        rows.put(obj, (0,), engine.usm.get(key, 0))
    return rows.items


def make_oid_table(snapshot: BankSnapshot | None, *, now: float, system: SystemInfo,
                   options: BankOptions, bus_numbers: Mapping[str, int],
                   counters: Mapping[str, int],
                   notifications: tuple[int, int] | None = None,
                   engine: EngineInfo | None = None) -> list[Variable]:
    """Everything the agent serves at ``now``, sorted by OID (system, snmp, BMS, then
    snmpEngine and usmStats when ``engine`` is given).
    ``notifications``: the notification originator's (delivered, dropped) counts."""
    return (make_system_variables(system, now=now, started_at=options.started_at,
                                  counters=counters)
            + make_bank_variables(snapshot, now=now, bus_numbers=bus_numbers,
                                  options=options, notifications=notifications)
            + (make_engine_variables(engine) if engine is not None else []))
