"""What the poller and the simulator need from a protocol family, on top of the codec.

:class:`Dialect` (poller side) builds the requests a poll cycle sends and turns answers
into the core's vendor-neutral objects through :mod:`~plugins.rs485_bms.normalize`.
:class:`SimEncoder` (device side) builds the answers a simulated pack sends, from the
simulator's :class:`~plugins.rs485_bms.physics.PackState`, with the codec's encoders.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from gateway.model import BmsStatus, Identity, Telemetry

from plugins.rs485_bms import normalize
from plugins.rs485_bms.physics import PackState
from plugins.rs485_bms.protocol import (
    PROFILES,
    Frame,
    FrameReader,
    PackAnswer,
    PaceAlarm,
    PacePack,
    PacePackCount,
    PaceSerial,
    PaceVersion,
    Profile,
    ProtocolError,
    PylonAlarm,
    PylonFirmware,
    PylonManufacturerInfo,
    PylonModule,
    PylonSerial,
    SeplosAlarm,
    SeplosManufacturerInfo,
    SeplosPack,
    decode_answer,
    make_request,
    make_response,
)
from plugins.rs485_bms.settings import Family

ANALOG = 0x42
STATUS = 0x44
CID2_INVALID = 0x04

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


# ------------------------------------------------------------------ simulator side ----


class SimEncoder:
    """Builds the answers of simulated packs (device side)."""

    def __init__(self, family: Family) -> None:
        self.family = family
        self.profile: Profile = PROFILES[family.value]

    def reader(self) -> FrameReader:
        return FrameReader()

    def parse_request(self, item: Frame | ProtocolError) -> Frame | None:
        """A request addressed to this family's devices, or None (garbled, or foreign)."""
        if isinstance(item, ProtocolError):
            return None
        if item.ver != self.profile.ver or item.cid1 != self.profile.cid1:
            return None
        if self.profile.is_answer(item):
            return None
        return item

    def status_fields(self) -> set[str]:
        """The 0x44 block's integer fields a scenario's ``flags`` step may set."""
        block = {Family.PACE_V25: PaceAlarm, Family.PYLONTECH: PylonAlarm,
                 Family.SEPLOS_V2: SeplosAlarm}[self.family]
        return {f.name for f in dataclasses.fields(block) if f.type in ("int", int)}

    def foreign_request(self, address: int) -> bytes:
        return make_request(self.profile, ANALOG, address).wire

    def answer(self, request: Frame, *, states: Sequence[PackState], identities: Sequence[dict],
               flags: dict[str, int], all_zero: bool, all_packs: bool,
               answer_adr: int | None = None) -> bytes:
        cid2 = request.cid2
        payload = self._payload(cid2, request, states, identities, flags, all_zero, all_packs)
        if payload is None:
            frame = Frame(ver=self.profile.ver, adr=request.adr, cid1=self.profile.cid1,
                          cid2=CID2_INVALID)
        else:
            frame = make_response(self.profile, request, payload)
        if answer_adr is not None:
            frame = dataclasses.replace(frame, adr=answer_adr)
        return frame.wire

    def _payload(self, cid2: int, request: Frame, states: Sequence[PackState],
                 identities: Sequence[dict], flags: dict[str, int], all_zero: bool,
                 all_packs: bool) -> Any:
        command_value = None if all_packs else request.adr
        f = self.family
        if cid2 == ANALOG:
            blocks = tuple(self._analog(s, zero=all_zero) for s in states)
            return PackAnswer(infoflag=0, command_value=command_value, packs=blocks)
        if cid2 == STATUS:
            blocks = tuple(self._status(s, flags) for s in states)
            return PackAnswer(infoflag=0, command_value=command_value, packs=blocks)
        ident = identities[0]
        if f is Family.PACE_V25:
            if cid2 == 0xC1:
                return PaceVersion(version=ident["firmware"])
            if cid2 == 0xC2:
                return PaceSerial(bms_serial=ident["serial"], pack_serial=ident["serial"] + "P")
            if cid2 == 0x90:
                return PacePackCount(pack_count=len(identities))
        elif f is Family.PYLONTECH:
            if cid2 == 0x93:
                return PylonSerial(command_value=request.adr, serial=ident["serial"][:16])
            if cid2 == 0x96:
                return PylonFirmware(command_value=request.adr, manufacture_version=(1, 0),
                                     mainline_version=(1, 0, 0))
            if cid2 == 0x51:
                return PylonManufacturerInfo(device_name=ident["model"][:10],
                                             software_version=(1, 0), manufacturer="SIMULATED")
        elif f is Family.SEPLOS_V2 and cid2 == 0x51:
            return SeplosManufacturerInfo(device_name=ident["model"][:10],
                                          software_version=(16, 6), manufacturer="SIMULATED")
        return None

    def _analog(self, s: PackState, *, zero: bool) -> Any:
        if zero:
            s = dataclasses.replace(
                s, cell_mv=(0,) * len(s.cell_mv), temp_dc=(-2730,) * len(s.temp_dc),
                current_ma=0, voltage_mv=0, remaining_mah=0, full_mah=0, design_mah=0,
                cycles=0, soc_permille=0, soh_permille=0)
        if self.family is Family.PACE_V25:
            return PacePack(
                cell_mv=s.cell_mv, temp_dk=tuple(t + 2730 for t in s.temp_dc),
                current_10ma=s.current_ma // 10, pack_mv=s.voltage_mv,
                remaining_10mah=s.remaining_mah // 10, user_defined_p=3,
                full_10mah=s.full_mah // 10, cycles=s.cycles, design_10mah=s.design_mah // 10)
        if self.family is Family.PYLONTECH:
            # 15S-style block with 5 sensors: board (MOSFET), then 4 cell-group averages
            temps = (s.temp_dc[4], *s.temp_dc[:4])
            big = s.full_mah > 0xFFFE or s.design_mah > 0xFFFE
            return PylonModule(
                cell_mv=s.cell_mv, temp_dk=tuple(t + 2731 for t in temps),
                current_100ma=round(s.current_ma / 100), pack_mv=s.voltage_mv,
                remaining1_mah=0xFFFF if big else s.remaining_mah,
                user_defined_p=4 if big else 2,
                full1_mah=0xFFFF if big else s.full_mah, cycles=s.cycles,
                remaining2_mah=s.remaining_mah if big else None,
                full2_mah=s.full_mah if big else None)
        # Seplos: 4 cells, environment, power
        temps = (*s.temp_dc[:4], s.temp_dc[5], s.temp_dc[4])
        return SeplosPack(
            cell_mv=s.cell_mv, temp_dk=tuple(t + 2731 for t in temps),
            current_10ma=s.current_ma // 10, pack_10mv=s.voltage_mv // 10,
            remaining_10mah=s.remaining_mah // 10, user_defined_p=10,
            full_10mah=s.full_mah // 10, soc_permille=s.soc_permille,
            design_10mah=s.design_mah // 10, cycles=s.cycles, soh_permille=s.soh_permille,
            port_10mv=s.voltage_mv // 10, reserved=(0, 0, 0, 0))

    def _status(self, s: PackState, flags: dict[str, int]) -> Any:
        n, t = len(s.cell_mv), len(s.temp_dc)
        bal = sum(1 << i for i, on in enumerate(s.balancing) if on)
        if self.family is Family.PACE_V25:
            block = PaceAlarm(
                cell_alarm=(0,) * n, temp_alarm=(0,) * t, charge_current_alarm=0,
                pack_voltage_alarm=0, discharge_current_alarm=0, protect1=0, protect2=0,
                instruction_state=0b110,  # charge and discharge MOSFETs on
                control_state=0, fault_state=0,
                balance1=bal & 0xFF, balance2=bal >> 8 & 0xFF, warn1=0, warn2=0)
        elif self.family is Family.PYLONTECH:
            status3 = 0x80 if s.current_ma > 100 else 0x40 if s.current_ma < -100 else 0
            block = PylonAlarm(cell_alarm=(0,) * n, temp_alarm=(0,) * 5, charge_current_alarm=0,
                               pack_voltage_alarm=0, discharge_current_alarm=0,
                               status=(0, 0b0110, status3, 0, 0))
        else:
            state = 0x02 if s.current_ma > 0 else 0x01 if s.current_ma < 0 else 0x10
            block = SeplosAlarm(
                cell_alarm=(0,) * n, temp_alarm=(0,) * t, current_alarm=0,
                pack_voltage_alarm=0, user_defined_p=20, alarm_event1=0, alarm_event2=0,
                alarm_event3=0, alarm_event4=0, alarm_event5=0, alarm_event6=0,
                on_off_state=0b11, balance1=bal & 0xFF, balance2=bal >> 8 & 0xFF,
                system_state=state, disconnect1=0, disconnect2=0, alarm_event7=0,
                alarm_event8=0, reserved=(0,) * 6)
        return dataclasses.replace(block, **flags) if flags else block


def make_sim_encoder(family: Family | str) -> SimEncoder:
    return SimEncoder(Family(family))
