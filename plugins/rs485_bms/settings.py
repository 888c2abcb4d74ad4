"""Configuration of the ``rs485_bms`` plugin (the ``rs485_bms:`` YAML section)."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Literal

import pydantic

from gateway.config import Section

from plugins.rs485_bms.protocol import PROFILES
from plugins.rs485_bms.protocol.families import AUTO_ADDRESSES, FAMILY_TIMING, Family


class PollMode(enum.StrEnum):
    PER_ADDRESS = "per_address"  #: 0x42 + 0x44 to each address (gateway is the bus master)
    MASTER = "master"  #: 0x42/0x44 with INFO=FF to the group master (pack #1)


Address = Annotated[int, pydantic.Field(ge=1, le=254)]

AUTO = "auto"


def parse_addresses(value: object) -> object:
    """Accept ``[2, 3, 4]``, ``"2-13"`` or ``"2-5, 9"``."""
    if isinstance(value, str):
        out: list[int] = []
        for part in value.replace(" ", "").split(","):
            if not part:
                continue
            lo, sep, hi = part.partition("-")
            if not (lo.isdigit() and (not sep or hi.isdigit())):
                raise ValueError(f"{value!r} is not a list of addresses like '2-13' or '2,3,5'")
            start, end = int(lo), int(hi) if sep else int(lo)
            if end < start:
                raise ValueError(f"empty address range {part!r}")
            out.extend(range(start, end + 1))
        return out
    return value


class SimulatorSettings(Section):
    """Run the built-in bank simulator in-process and poll it over loopback TCP."""

    packs: int = pydantic.Field(12, ge=1, le=16, description="number of simulated packs")
    first_address: int = pydantic.Field(
        1, ge=1, le=15, description="DIP address of the first pack; the others follow "
        "(the manual's bank: #1 is the group master, up to 12 in parallel)")
    turnaround_ms: int = pydantic.Field(25, ge=0, le=5000)
    scenario: Path | None = None
    seed: int = 1


class CaptureSettings(Section):
    """Record every transaction of the bus to a rotating file (docs/polling.md)."""

    file: Path = pydantic.Field(description="the capture file (JSON lines); rotated to "
                                "FILE.1, FILE.2, ...")
    max_bytes: int = pydantic.Field(
        10_000_000, ge=10_000, le=10_000_000_000,
        description="rotate when the file would grow past this")
    files: int = pydantic.Field(5, ge=1, le=100,
                                description="files kept, the live one included")


class BusSettings(Section):
    name: str = pydantic.Field(pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    port: str | None = pydantic.Field(
        None, description="pyserial URL: /dev/ttyUSB0, /dev/serial/by-id/..., "
        "socket://host:port (RS485-to-Ethernet converter), rfc2217://host:port")
    simulate: SimulatorSettings | None = None
    family: Family = Family.PACE_V25
    baud: int = pydantic.Field(9600, ge=1200, le=921600)
    mode: PollMode = PollMode.PER_ADDRESS
    addresses: list[Address] | Literal["auto"] = pydantic.Field(
        default_factory=list, description="DIP addresses in bank order, or 'auto' to find "
        "the modules; empty = the simulator's packs, or for a real port a required setting")
    discover_interval_s: float = pydantic.Field(
        600, ge=1, le=86_400, description="with addresses: auto, the addresses where no "
        "module was found are probed again this often")
    timeout_ms: int | None = pydantic.Field(None, ge=10, le=10000)
    byte_timeout_ms: int = pydantic.Field(100, ge=5, le=5000)
    gap_ms: int | None = pydantic.Field(None, ge=0, le=5000)
    retries: int = pydantic.Field(1, ge=0, le=5)
    poll_interval_s: float = pydantic.Field(
        5.0, ge=0, le=3600, description="start-to-start period of poll cycles; a cycle that "
        "takes longer is followed at once by the next")
    identity_interval_s: float = pydantic.Field(3600, ge=60)
    offline_after: int = pydantic.Field(
        3, ge=1, le=100, description="failed polls in a row before a module is offline")
    offline_retry_max_s: float = pydantic.Field(
        60, ge=0.1, description="offline modules are retried with doubling back-off up to this")
    reconnect_max_s: float = pydantic.Field(30, ge=0.1)
    master_fallback_after: int = pydantic.Field(
        3, ge=1, le=100, description="mode: master: cycles in a row in which the master "
        "answers with an error, garbled or not at all before the modules are polled one "
        "by one at their own addresses")
    master_retry_s: float = pydantic.Field(
        60, ge=1, le=3600, description="mode: master, while polling one by one: how often "
        "the master's FF request is tried again; its first good answer brings master mode "
        "back")
    capture: CaptureSettings | None = pydantic.Field(
        None, description="record every transaction to a file (off when absent)")

    @pydantic.field_validator("addresses", mode="before")
    @classmethod
    def _parse_addresses(cls, value: object) -> object:
        if value == AUTO:
            return value
        value = parse_addresses(value)
        # checked here, so that a bad list gets one message, not one per union member
        if isinstance(value, list):
            for a in value:
                if isinstance(a, bool) or not isinstance(a, int) or not 1 <= a <= 254:
                    raise ValueError(f"{a!r} is not an address: DIP addresses are 1..254 "
                                     "(or addresses: auto)")
        return value

    @pydantic.model_validator(mode="after")
    def _check(self) -> BusSettings:
        if (self.port is None) == (self.simulate is None):
            raise ValueError("give exactly one of 'port' (real hardware) or 'simulate'")
        if self.port is not None and not self.addresses:
            raise ValueError("'addresses' is required for a real port, e.g. addresses: 2-13 "
                             "(or addresses: auto to find the modules)")
        if self.discovering and self.mode is PollMode.MASTER:
            raise ValueError("addresses: auto needs mode: per_address (in master mode the "
                             "master answers for the bank: list its packs' addresses)")
        if not self.discovering and len(set(self.addresses)) != len(self.addresses):
            raise ValueError("'addresses' lists an address twice")
        if self.simulate is not None and self.family not in (
                Family.PACE_V25, Family.PYLONTECH, Family.SEPLOS_V2):
            raise ValueError(f"the simulator does not speak {self.family.value}")
        if self.simulate is not None and self.simulate.scenario is not None:
            _check_scenario_file(self.simulate.scenario, self.family,
                                 self.simulated_addresses)
        profile = PROFILES[self.family.value]
        lo, hi = max(1, profile.addresses.start), profile.addresses.stop - 1
        outside = [a for a in self.effective_addresses if a not in profile.addresses]
        if outside:
            raise ValueError(f"{self.family.value} addresses are {lo}..{hi}; "
                             f"{', '.join(map(str, outside))} is outside")
        if self.mode is PollMode.MASTER and not profile.command(0x42).all_packs:
            raise ValueError(f"{self.family.value} has no all-packs (FF) form: use "
                             "mode: per_address")
        return self

    @property
    def effective_timeout_ms(self) -> int:
        return self.timeout_ms if self.timeout_ms is not None else FAMILY_TIMING[self.family][0]

    @property
    def effective_gap_ms(self) -> int:
        return self.gap_ms if self.gap_ms is not None else FAMILY_TIMING[self.family][1]

    @property
    def discovering(self) -> bool:
        """``addresses: auto``: the poller finds the modules."""
        return self.addresses == AUTO

    @property
    def effective_addresses(self) -> list[int]:
        """The addresses polled (with ``auto``: probed), in position order."""
        if self.discovering:
            return list(AUTO_ADDRESSES[self.family])
        return list(self.addresses) if self.simulate is None else self.simulated_addresses

    @property
    def simulated_addresses(self) -> list[int]:
        """The packs of the in-process simulator (none on a real port): the listed
        addresses, else ``packs`` addresses from ``first_address``."""
        if self.simulate is None:
            return []
        if self.addresses and not self.discovering:
            return list(self.addresses)
        first = self.simulate.first_address
        return list(range(first, first + self.simulate.packs))


def _check_scenario_file(path: Path, family: Family, addresses: list[int]) -> None:
    """Validate a simulator scenario with the config (against the simulated bank's
    ``addresses``), so check-config catches it rather than the start."""
    from gateway.config import ConfigError

    from plugins.rs485_bms.sim.scenario import load_scenario

    try:
        load_scenario(path).check(family, addresses)
    except ConfigError as exc:
        raise ValueError("scenario " + "; ".join(str(p) for p in exc.problems)) from None
    except ValueError as exc:
        raise ValueError(f"scenario {path}: {exc}") from None


class Rs485Settings(Section):
    buses: list[BusSettings] = pydantic.Field(min_length=1)
    stale_after_s: float = pydantic.Field(
        30, gt=0, description="data older than this is served as stale, never as live")

    @pydantic.model_validator(mode="after")
    def _unique_names(self) -> Rs485Settings:
        names = [b.name for b in self.buses]
        if len(set(names)) != len(names):
            raise ValueError("bus names must be unique")
        ports = [b.port for b in self.buses if b.port is not None]
        for port in sorted({p for p in ports if ports.count(p) > 1}):
            raise ValueError(f"port {port} is given to two buses: one port has one owner "
                             "(list every module of that line under one bus)")
        return self

    def positions(self) -> list[tuple[BusSettings, int, int]]:
        """(bus, address, position): positions follow the config order, 1-based."""
        out = []
        for bus in self.buses:
            for address in bus.effective_addresses:
                out.append((bus, address, len(out) + 1))
        return out
