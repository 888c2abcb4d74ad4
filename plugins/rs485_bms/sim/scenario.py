"""Simulator scenarios: fault injection per pack and per time window, from YAML.

A scenario file lists steps; each step applies to some packs (addresses) from
``at_s`` to ``until_s`` seconds after the simulator started (``until_s`` omitted = to
the end)::

    steps:
      - {at_s: 10, until_s: 40, packs: [3], fault: silence}
      - {at_s: 0, packs: [5], fault: cell_ramp, cell: 7, from_mv: 3400, to_mv: 3700,
         duration_s: 60}
      - {at_s: 20, until_s: 25, fault: transport_drop}

Faults (see docs/polling.md): ``silence``, ``delay`` (answer ``delay_ms`` late but
in time), ``late`` (answer after ``delay_ms``, meant to exceed the poller's timeout),
``corrupt`` (one byte of the answer changed), ``truncate`` (the answer stops early, no
checksum), ``wrong_address`` (the answer carries another ADR), ``duplicate_address``
(two packs answer at once and garble each other), ``all_zero`` (analog payload of
zeros), ``flags`` (raw status fields of the 0x44 answer set, e.g.
``{protect1: 1, fault_state: 32}``), ``cell_ramp`` (one cell's voltage moves linearly)
``transport_drop`` (the simulator closes the TCP connection / the pty goes away until
``until_s``), ``foreign_master`` (another master polls the bus: unsolicited requests
every 200 ms), and the line faults a scan must tell from a duplicate address:
``noise`` (each byte of the answer has one bit flipped with probability ``rate``),
``reflection`` (an unterminated line: bits flip at ``rate`` in both directions, so a
request the pack got garbled is answered with RTN 02 "CHKSUM error") and ``wrong_baud``
(the pack sends at ``baud``: the line's receiver reads the bit stream at the bus's
own rate, and sees junk); ``cell_temp`` (the pack's cell temperature sensors read
``degc``: a cold or a hot bank); and ``mains_failure`` (the whole bank: the rectifier
stops and the site load ``load_a`` draws from the bank until ``until_s``; see the bank
model in :mod:`.physics`).

``packs`` are DIP addresses (0..15); whether they are in the simulated bank is checked
when the bank is known (:meth:`Scenario.check`, which needs only the family and the
bank's addresses, so the config can check a scenario without the simulator).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import pydantic

from gateway.config import ConfigError, Problem, Section, parse_yaml, validate_model

from plugins.rs485_bms.protocol import PaceAlarm, PylonAlarm, SeplosAlarm
from plugins.rs485_bms.protocol.families import Family
from plugins.rs485_bms.sim.physics import Outage

#: The status (0x44) block of each family the simulator speaks.
_STATUS_BLOCKS = {Family.PACE_V25: PaceAlarm, Family.PYLONTECH: PylonAlarm,
                  Family.SEPLOS_V2: SeplosAlarm}


def status_fields(family: Family | str) -> set[str]:
    """The 0x44 block's integer fields a scenario's ``flags`` step may set."""
    block = _STATUS_BLOCKS[Family(family)]
    return {f.name for f in dataclasses.fields(block) if f.type in ("int", int)}


class FaultKind(enum.StrEnum):
    SILENCE = "silence"
    DELAY = "delay"
    LATE = "late"
    CORRUPT = "corrupt"
    TRUNCATE = "truncate"
    WRONG_ADDRESS = "wrong_address"
    DUPLICATE_ADDRESS = "duplicate_address"
    ALL_ZERO = "all_zero"
    FLAGS = "flags"
    CELL_RAMP = "cell_ramp"
    TRANSPORT_DROP = "transport_drop"
    FOREIGN_MASTER = "foreign_master"
    NOISE = "noise"
    REFLECTION = "reflection"
    WRONG_BAUD = "wrong_baud"
    MAINS_FAILURE = "mains_failure"
    CELL_TEMP = "cell_temp"


#: Faults whose answer comes ``delay_ms`` after the request: a step needs one.
DELAYED = frozenset({FaultKind.DELAY, FaultKind.LATE})

DipAddress = Annotated[int, pydantic.Field(ge=0, le=15)]


class Step(Section):
    at_s: float = pydantic.Field(0, ge=0)
    until_s: float | None = pydantic.Field(None, gt=0)
    packs: list[DipAddress] = pydantic.Field(
        default_factory=list, description="DIP addresses; empty = all")
    fault: FaultKind
    delay_ms: int = pydantic.Field(0, ge=0, le=60000)
    commands: list[int] = pydantic.Field(
        default_factory=list, description="CID2 codes the fault applies to; empty = all")
    flags: dict[str, int] = pydantic.Field(default_factory=dict)
    cell: int = pydantic.Field(1, ge=1, le=32)
    from_mv: int = pydantic.Field(3300, ge=0, le=5000)
    to_mv: int = pydantic.Field(3300, ge=0, le=5000)
    duration_s: float = pydantic.Field(60, gt=0)
    wrong_address: int = pydantic.Field(15, ge=0, le=255)
    rate: float = pydantic.Field(
        0.01, gt=0, le=1, description="noise, reflection: probability that a byte is hit")
    baud: int | None = pydantic.Field(
        None, ge=300, le=921600, description="wrong_baud: the rate the pack sends at")
    load_a: float = pydantic.Field(
        40.0, ge=0, le=5000, description="mains_failure: the site load on the bank")
    degc: float = pydantic.Field(
        25, ge=-40, le=100, description="cell_temp: what the pack's cell sensors read")

    @pydantic.model_validator(mode="after")
    def _check(self) -> Step:
        if self.until_s is not None and self.until_s <= self.at_s:
            raise ValueError(f"until_s ({self.until_s:g}) must be later than at_s "
                             f"({self.at_s:g})")
        if self.fault is FaultKind.MAINS_FAILURE and self.packs:
            raise ValueError("a mains_failure step applies to the whole bank: leave out "
                             "packs")
        if self.fault is FaultKind.WRONG_BAUD and self.baud is None:
            raise ValueError("a wrong_baud step needs baud (the rate the pack sends at)")
        if self.fault in DELAYED and self.delay_ms == 0:
            raise ValueError(f"a {self.fault.value} step needs delay_ms > 0 (how much "
                             "later than usual the answer starts)")
        return self

    def active(self, t: float, address: int | None = None, cid2: int | None = None) -> bool:
        if t < self.at_s or (self.until_s is not None and t >= self.until_s):
            return False
        if address is not None and self.packs and address not in self.packs:
            return False
        if cid2 is not None and self.commands and cid2 not in self.commands:
            return False
        return True

    def ramp_mv(self, t: float) -> int:
        frac = min(1.0, max(0.0, (t - self.at_s) / self.duration_s))
        return round(self.from_mv + (self.to_mv - self.from_mv) * frac)


class Scenario(Section):
    description: str = ""
    steps: list[Step] = pydantic.Field(default_factory=list)

    def active(self, t: float, address: int | None = None, cid2: int | None = None
               ) -> list[Step]:
        return [s for s in self.steps if s.active(t, address, cid2)]

    def outages(self) -> list[Outage]:
        """The ``mains_failure`` steps, for the bank's physics."""
        return [Outage(s.at_s, s.until_s, s.load_a * 1000) for s in self.steps
                if s.fault is FaultKind.MAINS_FAILURE]

    def transport_back_at(self, t: float) -> float | None:
        """When no ``transport_drop`` step is active any more (``t`` if none is now);
        None if a drop without ``until_s`` has begun: the transport never comes back."""
        drops = [s for s in self.steps if s.fault is FaultKind.TRANSPORT_DROP]
        back = t
        while True:
            active = [s for s in drops if s.active(back)]
            if not active:
                return back
            if any(s.until_s is None for s in active):
                return None
            back = max(s.until_s for s in active if s.until_s is not None)

    def check(self, family: Family | str, addresses: Sequence[int] | None = None) -> None:
        """Raise ValueError, naming the step and key, if a ``flags`` step names a status
        field the family lacks or, when the bank's ``addresses`` are given, a step names a
        pack that is not in the bank."""
        fields = status_fields(family)
        for i, step in enumerate(self.steps):
            unknown = sorted(set(step.flags) - fields)
            if unknown:
                raise ValueError(f"steps.{i}.flags: {', '.join(unknown)} is not a "
                                 f"{Family(family).value} status field (known: "
                                 f"{', '.join(sorted(fields))})")
            if addresses is None:
                continue
            missing = [a for a in step.packs if a not in addresses]
            if missing:
                raise ValueError(f"steps.{i}.packs: {', '.join(map(str, missing))} "
                                 f"{'is' if len(missing) == 1 else 'are'} not in the "
                                 f"simulated bank (addresses {_describe_addresses(addresses)})")


def _describe_addresses(addresses: Sequence[int]) -> str:
    ordered = sorted(addresses)
    if ordered and ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"{ordered[0]}..{ordered[-1]}"
    return ", ".join(map(str, ordered))


def load_scenario(path: str | Path) -> Scenario:
    """Load and validate a scenario file (errors as ``FILE:LINE: key: message``)."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(file, None, "", f"cannot read: {exc}")]) from None
    return validate_model(parse_yaml(text, file), Scenario)
