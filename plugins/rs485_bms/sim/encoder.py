"""What the simulator needs from a protocol family: the answers a simulated pack sends.

:class:`SimEncoder` (device side) builds them from the simulator's
:class:`~plugins.rs485_bms.sim.physics.PackState` with the codec's encoders. The poller's
side of a family is :mod:`plugins.rs485_bms.poller.dialect`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

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
    make_request,
    make_response,
)
from plugins.rs485_bms.protocol.families import ANALOG, CID2_INVALID, STATUS, Family
from plugins.rs485_bms.sim.physics import PackState
from plugins.rs485_bms.sim.scenario import status_fields


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
        return status_fields(self.family)

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
