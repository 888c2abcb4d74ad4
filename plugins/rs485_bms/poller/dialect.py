"""What the poller needs from a protocol family, on top of the codec.

:class:`Dialect` builds the requests a poll cycle sends and turns answers into the
core's vendor-neutral objects through :mod:`~plugins.rs485_bms.poller.normalize`. The
device side (the answers a simulated pack sends) is
:mod:`plugins.rs485_bms.sim.encoder`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from gateway.model import BmsStatus, Identity, Telemetry

from plugins.rs485_bms.poller import normalize
from plugins.rs485_bms.protocol import (
    PROFILES,
    Frame,
    PackAnswer,
    Profile,
    decode_answer,
    make_request,
)
from plugins.rs485_bms.protocol.families import ANALOG, STATUS, Family


#: Identity commands per family, asked at discovery and every identity_interval_s, with
#: the :class:`~gateway.model.Identity` fields each one answers. A family without a
#: command for a field never reports it: Seplos V2 and Daren/Basen have no serial
#: command, EG4 no identity command at all. Pylontech's 0x93 and 0x96 are answered per
#: module; its 0x51 is not asked, because a master answers it with its own identity
#: whatever address was asked.
IDENTITY_COMMANDS: dict[Family, dict[int, tuple[str, ...]]] = {
    Family.PACE_V25: {0xC1: ("firmware",), 0xC2: ("serial", "pack_serial")},
    Family.PYLONTECH: {0x93: ("serial",), 0x96: ("firmware",)},
    Family.SEPLOS_V2: {0x51: ("model", "firmware")},
    Family.EG4_LIFEPOWER4: {},
    Family.DAREN_BASEN: {0x51: ("model", "firmware")},
}


def carries_data(t: Telemetry) -> bool:
    """False for the all-zero analog payload some firmwares send (no data, not a reading)."""
    return bool(t.voltage_mv) or any(t.cell_mv)


class Dialect:
    """Requests and answer decoding for one family (poller side)."""

    ANALOG = ANALOG
    STATUS = STATUS

    def __init__(self, family: Family) -> None:
        self.family = family
        self.profile: Profile = PROFILES[family.value]
        #: Daren/Basen has no 0x44: its 0x42 answer carries the status words too
        self.STATUS = STATUS if STATUS in self.profile.commands else None

    def request(self, cid2: int, address: int, *, all_packs: bool = False) -> Frame:
        return make_request(self.profile, cid2, address, all_packs=all_packs)

    def decode(self, request: Frame, answer: Frame) -> Any:
        """Decode an answer (RTN 0); raises ProtocolError for a payload that does not fit."""
        return decode_answer(self.profile, request, answer)

    def telemetry(self, decoded: Any) -> list[Telemetry | None]:
        """One Telemetry per pack block; None for a block that carries no data."""
        out: list[Telemetry | None] = []
        for block in _blocks(decoded):
            t = normalize.normalize_telemetry(block)
            out.append(t if carries_data(t) else None)
        return out

    def bms_status(self, decoded: Any) -> list[BmsStatus]:
        return [normalize.normalize_status(block) for block in _blocks(decoded)]

    def identity_requests(self, address: int
                          ) -> list[tuple[Frame, Callable[[Identity | None, Any], Identity]]]:
        return [(self.request(cid2, address),
                 lambda identity, answer: normalize.merge_identity(answer, identity))
                for cid2 in IDENTITY_COMMANDS[self.family]]

    def identity_commands(self, field: str) -> list[int]:
        """The identity commands whose answer carries ``field`` (empty: never reported)."""
        return [cid2 for cid2, fields in IDENTITY_COMMANDS[self.family].items()
                if field in fields]

    def master_address(self, addresses: Sequence[int]) -> int:
        return min(addresses)


def _blocks(decoded: Any) -> tuple[Any, ...]:
    """Pack blocks of a 0x42/0x44 answer; Daren answers one pack without a wrapper."""
    return decoded.packs if isinstance(decoded, PackAnswer) else (decoded,)


def make_dialect(family: Family | str) -> Dialect:
    return Dialect(Family(family))
