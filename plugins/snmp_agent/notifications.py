"""Notifications, the pure part: what each one carries, SNMPv2c trap encoding, the rate
limit. No socket, no clock: times and uptimes are passed in.

Every notification is a varbind list that starts with ``sysUpTime.0`` and
``snmpTrapOID.0`` (RFC 3416 4.2.6), followed by the NOTIFICATION-TYPE's OBJECTS:

* ``bmsAlarmRaised`` / ``bmsAlarmCleared``: the alarm's kind, severity, module, sub-index,
  value, threshold, raised-at and text, each with the alarm's sequence number as
  instance (a clear repeats its alarm's number), then ``bmsAlarmLastSeq.0`` - the
  number this raise or clear took, so a receiver can count what it missed;
* ``bmsHeartbeat``: worst module status, worst severity, active alarm count, last seq;
* ``bmsBankOnBattery`` / ``bmsBankOnMains``: the bank state, seconds on battery and
  minutes remaining; going on battery adds the time it began, returning adds the
  finished discharge record (its number as instance) and ``bmsDischargeLastNumber.0``;
* ``coldStart`` (SNMPv2-MIB): no objects.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gateway.model import (
    AlarmCleared,
    AlarmRaised,
    BankOnBattery,
    BankOnMains,
    BankSnapshot,
    Event,
)

from plugins.snmp_agent import ber, oid_map
from plugins.snmp_agent.oid_map import Syntax, Variable

SNMPV2_TRAP = 0xA7  #: SNMPv2-Trap-PDU tag


class Category(enum.Enum):
    ALARM = "alarm"  #: a raise or a clear: rate-limited
    HEARTBEAT = "heartbeat"  #: only the newest one waiting for a receiver is kept
    COLD_START = "cold_start"
    POWER = "power"  #: on battery / back on mains: a few per outage, not rate-limited


@dataclass(frozen=True, slots=True)
class Notification:
    category: Category
    trap_oid: tuple[int, ...]
    varbinds: tuple[Variable, ...]  #: sysUpTime.0 and snmpTrapOID.0 first
    label: str  #: for logs: "bmsAlarmRaised #12" and the like


def _head(uptime_ticks: int, trap_oid: tuple[int, ...]) -> tuple[Variable, Variable]:
    return (Variable(oid_map.SYS_UPTIME.oid + (0,), Syntax.TIMETICKS, uptime_ticks % 2**32),
            Variable(oid_map.SNMP_TRAP_OID_0, Syntax.OBJECT_IDENTIFIER, trap_oid))


def make_alarm_notification(event: Event, uptime_ticks: int) -> Notification:
    """bmsAlarmRaised for :class:`AlarmRaised`, bmsAlarmCleared for :class:`AlarmCleared`."""
    if isinstance(event, AlarmRaised):
        trap, last, name = oid_map.ALARM_RAISED_OID, event.alarm.seq, "bmsAlarmRaised"
    elif isinstance(event, AlarmCleared):
        trap, last, name = oid_map.ALARM_CLEARED_OID, event.clear_seq, "bmsAlarmCleared"
    else:
        raise TypeError(f"not an alarm event: {event!r}")
    a = event.alarm
    return Notification(
        Category.ALARM, trap,
        (*_head(uptime_ticks, trap), *oid_map.make_alarm_notification_variables(a, last)),
        f"{name} #{a.seq} {a.kind}")


def make_power_notification(event: BankOnBattery | BankOnMains, uptime_ticks: int
                            ) -> Notification:
    """bmsBankOnBattery for :class:`BankOnBattery`, bmsBankOnMains for :class:`BankOnMains`."""
    if isinstance(event, BankOnBattery):
        trap, record, label = oid_map.ON_BATTERY_OID, None, "bmsBankOnBattery"
    elif isinstance(event, BankOnMains):
        trap, record = oid_map.ON_MAINS_OID, event.record
        label = f"bmsBankOnMains #{event.record.number}"
    else:
        raise TypeError(f"not a bank power event: {event!r}")
    return Notification(
        Category.POWER, trap,
        (*_head(uptime_ticks, trap),
         *oid_map.make_power_notification_variables(event.estimate, record)), label)


def make_heartbeat(snapshot: BankSnapshot | None, uptime_ticks: int) -> Notification:
    trap = oid_map.HEARTBEAT_OID
    return Notification(Category.HEARTBEAT, trap,
                        (*_head(uptime_ticks, trap), *oid_map.make_heartbeat_variables(snapshot)),
                        "bmsHeartbeat")


def make_cold_start(uptime_ticks: int) -> Notification:
    trap = oid_map.COLD_START_OID
    return Notification(Category.COLD_START, trap, _head(uptime_ticks, trap), "coldStart")


def encode_v2c_trap(notification: Notification, community: bytes, request_id: int) -> bytes:
    """An SNMPv2c message carrying an SNMPv2-Trap-PDU (RFC 3416)."""
    varbinds = b"".join(ber.encode_varbind(v.oid, int(v.syntax), v.value)
                        for v in notification.varbinds)
    pdu = (ber.encode_integer(request_id) + ber.encode_integer(0) + ber.encode_integer(0)
           + ber.tlv(ber.SEQUENCE, varbinds))
    return ber.tlv(ber.SEQUENCE, ber.encode_integer(ber.VERSION_2C)
                   + ber.tlv(ber.OCTET_STRING, community) + ber.tlv(SNMPV2_TRAP, pdu))


class TokenBucket:
    """``burst`` notifications at once, then ``rate_per_s`` sustained."""

    def __init__(self, rate_per_s: float, burst: int, now: float) -> None:
        self.rate = rate_per_s
        self.burst = burst
        self.tokens = float(burst)
        self.at = now

    def configure(self, rate_per_s: float, burst: int) -> None:
        self.rate = rate_per_s
        self.burst = burst
        self.tokens = min(self.tokens, float(burst))

    def take(self, now: float) -> bool:
        self.tokens = min(float(self.burst), self.tokens + max(0.0, now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False
