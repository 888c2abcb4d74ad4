"""The bank as the Modbus server serves it: the view the register map and the SunSpec
models are both built from.

:func:`make_bank_view` applies the stale guard to a snapshot once per image; the bank
block (:mod:`plugins.modbus_tcp.register_map`) and the SunSpec view
(:mod:`plugins.modbus_tcp.sunspec`) read the same :class:`BankView`, so they can never
disagree about which modules are live. Pure: no I/O, time is passed in.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gateway.model import BankSnapshot, ModuleReading, ModuleStatus

MAX_POSITIONS = 64  #: module slots in the map (positions 1..64)


class BankStatus(enum.IntEnum):
    """Value of the bank block's ``bank_status`` register."""

    OK = 1  #: data is flowing: at least one module is live, and every live one is fresh
    STALE = 2  #: the newest snapshot or one of its live modules is older than stale_after_s
    NO_LIVE_MODULES = 3  #: no module is live (every one stale, offline or never seen)
    NO_DATA = 4  #: no snapshot yet


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceInfo:
    """What the SunSpec common model (1) says about this gateway."""

    manufacturer: str = "bms-gateway"
    model: str = "LiFePO4 bank gateway"
    version: str = ""
    serial: str = ""
    device_address: int = 1


@dataclass(frozen=True, slots=True)
class ServedModule:
    """A module reading with the status the map serves (the stale guard applied)."""

    reading: ModuleReading
    status: int

    @property
    def live(self) -> bool:
        return self.status == ModuleStatus.OK


def served_status(m: ModuleReading, now: float, stale_after_s: float) -> int:
    """The status the map serves: the module's at ``now`` (its source's stale age, as
    the SNMP agent serves it), and data still live but older than this server's
    ``stale_after_s`` (or without a time) served as stale too - the guard against a
    south side that stopped publishing."""
    status = m.status_at(now)
    if status is ModuleStatus.OK:
        age = m.age_s(now)
        if age is None or age > stale_after_s:
            return ModuleStatus.STALE
    return status.value


@dataclass(frozen=True, slots=True, kw_only=True)
class BankView:
    """The bank as the map serves it: what the bank block and the SunSpec view share."""

    snapshot: BankSnapshot | None
    status: BankStatus
    modules: tuple[ServedModule, ...]  #: configured modules within the map, by position

    @property
    def live(self) -> list[ModuleReading]:
        return [s.reading for s in self.modules if s.live]

    @property
    def ok(self) -> bool:
        return self.status is BankStatus.OK

    def power_uw(self) -> int | None:
        """Sum of voltage x current over live modules (µW, + = charging); None unless every
        live module reports both."""
        live = self.live
        if not self.ok or not live:
            return None
        total = 0
        for m in live:
            t = m.telemetry
            if t is None or t.voltage_mv is None or t.current_ma is None:
                return None
            total += t.voltage_mv * t.current_ma
        return total


def make_bank_view(snapshot: BankSnapshot | None, now: float, stale_after_s: float) -> BankView:
    if snapshot is None:
        return BankView(snapshot=None, status=BankStatus.NO_DATA, modules=())
    served = tuple(ServedModule(m, served_status(m, now, stale_after_s))
                   for m in snapshot.modules if 1 <= m.position <= MAX_POSITIONS)
    fresh = (now - snapshot.created_at <= stale_after_s
             and all(s.live for s in served if s.reading.status is ModuleStatus.OK))
    if not fresh:
        status = BankStatus.STALE
    elif not any(s.live for s in served):  # a total bus loss: nothing is flowing
        status = BankStatus.NO_LIVE_MODULES
    else:
        status = BankStatus.OK
    return BankView(snapshot=snapshot, status=status, modules=served)
