"""The families as data: header bytes, address range, return codes and, per command, the
request's INFO and the answer's layout. Requests are built and answers decoded from
these tables by the same code for every family.

Family names are those of the configuration (``pace_v25``, ``pylontech``, ``seplos_v2``,
``eg4_lifepower4``, ``daren_basen``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from plugins.rs485_bms.protocol import daren, eg4, pace, pylontech, seplos
from plugins.rs485_bms.protocol.answers import (
    AnswerSpec,
    Packs,
    ProtocolVersion,
    RawAnswer,
    decode_payload,
    encode_info,
)
from plugins.rs485_bms.protocol.errors import LayoutError, LengthError, RtnError
from plugins.rs485_bms.protocol.frame import Frame
from plugins.rs485_bms.protocol.layout import Mismatch

#: COMMAND value asking the group master for every pack.
ALL_PACKS = 0xFF


class RequestInfo(enum.Enum):
    """What a request carries in INFO."""

    NONE = "none"  #: nothing (LENID 0)
    ADDRESS = "address"  #: one byte: the pack address, or 0xFF for all packs if allowed
    SWITCH = "switch"  #: one byte: 0x00 = switch on, 0x01 = switch off (PACE MOSFETs)


@dataclass(frozen=True, slots=True)
class Command:
    """One CID2 of a family: its request INFO and what its answer decodes to."""

    cid2: int
    name: str
    request: RequestInfo
    answer: AnswerSpec
    #: whether a lone answer may be recognised by its shape (``bms-gateway decode``);
    #: false where any payload fits (raw) or an empty one does (0x4F)
    recognisable: bool = True

    @property
    def all_packs(self) -> bool:
        """Whether the request may say 0xFF (all packs through the group master)."""
        return isinstance(self.answer, Packs) and bool(self.answer.block.FF_FORM)


@dataclass(frozen=True, slots=True)
class Profile:
    """A protocol family."""

    name: str
    ver: int
    cid1: int
    addresses: range
    rtn_codes: frozenset[int]  #: return codes the family documents (0 = normal)
    commands: Mapping[int, Command]
    #: frames with one of these values in the RTN position are records, not answers
    records: Mapping[int, type] = field(default_factory=dict)

    def command(self, cid2: int) -> Command:
        try:
            return self.commands[cid2]
        except KeyError:
            raise ValueError(f"{self.name} has no command 0x{cid2:02X}") from None

    def is_answer(self, frame: Frame) -> bool:
        """Whether ``frame`` is an answer (its CID2 a return code) rather than a request.

        Command codes start at 0x40 in every family; below that, and the family's
        documented return codes and record codes above it, are answers.
        """
        return frame.cid2 < 0x40 or frame.cid2 in self.rtn_codes or frame.cid2 in self.records


def _commands(*commands: Command) -> dict[int, Command]:
    return {c.cid2: c for c in commands}


_NONE, _ADDRESS, _SWITCH = RequestInfo.NONE, RequestInfo.ADDRESS, RequestInfo.SWITCH
_YDT_RTN = frozenset(range(0x00, 0x07))

PACE_V25 = Profile(
    name="pace_v25", ver=0x25, cid1=0x46, addresses=range(0, 16),
    rtn_codes=_YDT_RTN | {0x09},
    commands=_commands(
        Command(0x42, "analog values", _ADDRESS, Packs(pace.PacePack)),
        Command(0x44, "alarm and status", _ADDRESS, Packs(pace.PaceAlarm)),
        Command(0x47, "system parameters (no PACE layout documented)", _NONE, RawAnswer,
                recognisable=False),
        Command(0x4F, "protocol version", _NONE, ProtocolVersion, recognisable=False),
        Command(0x51, "manufacturer information (no PACE layout documented)", _NONE,
                RawAnswer, recognisable=False),
        Command(0x90, "pack count", _NONE, pace.PacePackCount),
        Command(0x9A, "charge MOSFET control", _SWITCH, pace.PaceSwitchState),
        Command(0x9B, "discharge MOSFET control", _SWITCH, pace.PaceSwitchState),
        Command(0xA6, "capacity", _NONE, pace.PaceCapacity),
        Command(0xC1, "software version", _NONE, pace.PaceVersion),
        Command(0xC2, "production information (serials)", _NONE, pace.PaceSerial),
    ),
)

PYLONTECH = Profile(
    name="pylontech", ver=0x20, cid1=0x46, addresses=range(1, 0xFF),
    rtn_codes=_YDT_RTN | {0x90, 0x91},
    commands=_commands(
        Command(0x42, "analog values", _ADDRESS, Packs(pylontech.PylonModule)),
        Command(0x44, "alarm information", _ADDRESS, Packs(pylontech.PylonAlarm)),
        Command(0x47, "system parameters", _ADDRESS, pylontech.PylonSystemParameters),
        Command(0x4F, "protocol version", _NONE, ProtocolVersion, recognisable=False),
        Command(0x51, "manufacturer information", _NONE, pylontech.PylonManufacturerInfo),
        Command(0x92, "charge/discharge management", _ADDRESS, pylontech.PylonManagement),
        Command(0x93, "module serial number", _ADDRESS, pylontech.PylonSerial),
        Command(0x96, "firmware version", _ADDRESS, pylontech.PylonFirmware),
    ),
)

SEPLOS_V2 = Profile(
    name="seplos_v2", ver=0x20, cid1=0x46, addresses=range(0, 16),
    rtn_codes=_YDT_RTN | {0x07, 0xE1, 0xE2, 0xE3, 0xE4},
    commands=_commands(
        Command(0x42, "telemetry", _ADDRESS, Packs(seplos.SeplosPack)),
        Command(0x44, "telecommand (alarms)", _ADDRESS, Packs(seplos.SeplosAlarm)),
        Command(0x4F, "protocol version", _NONE, ProtocolVersion, recognisable=False),
        Command(0x51, "manufacturer information", _NONE, seplos.SeplosManufacturerInfo),
    ),
    records={0x5A: seplos.SeplosIntraPack},
)

EG4_LIFEPOWER4 = Profile(
    name="eg4_lifepower4", ver=0x20, cid1=0x4A, addresses=range(0, 16),
    rtn_codes=_YDT_RTN,
    commands=_commands(
        Command(0x42, "analog values", _NONE, Packs(eg4.Eg4Pack)),
        Command(0x44, "alarm information", _NONE, Packs(eg4.Eg4Alarm)),
    ),
)

DAREN_BASEN = Profile(
    name="daren_basen", ver=0x22, cid1=0x4A, addresses=range(0, 16),
    rtn_codes=_YDT_RTN,
    commands=_commands(
        Command(0x42, "device information (analog values and status)", _ADDRESS,
                daren.DarenAnalog),
        Command(0x51, "manufacturer information", _NONE, daren.DarenManufacturerInfo),
    ),
)

PROFILES: Mapping[str, Profile] = {
    p.name: p for p in (PACE_V25, PYLONTECH, SEPLOS_V2, EG4_LIFEPOWER4, DAREN_BASEN)}


def get_profile(name: str) -> Profile:
    """The family called ``name``; :class:`ValueError` lists the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown family {name!r}; known: {', '.join(PROFILES)}") from None


def infer_profiles(frame: Frame) -> tuple[Profile, ...]:
    """The families a frame's VER and CID1 allow: one, or none if nothing matches, or
    (Pylontech, Seplos V2) for VER 0x20 + CID1 0x46, which both use.

    VER 0x25 means PACE whatever CID1 says (a clone reports 0x4F for lithium-ion).
    """
    if frame.ver == PACE_V25.ver:
        return (PACE_V25,)
    return tuple(p for p in (PYLONTECH, SEPLOS_V2, EG4_LIFEPOWER4, DAREN_BASEN)
                 if (p.ver, p.cid1) == (frame.ver, frame.cid1))


def make_request(profile: Profile, cid2: int, address: int, *, all_packs: bool = False,
                 switch_on: bool | None = None) -> Frame:
    """A request frame for ``cid2`` to the pack at ``address``.

    ``all_packs`` asks the group master at ``address`` for every pack (INFO = 0xFF);
    only 0x42/0x44 of families with a multi-pack form allow it. ``switch_on`` is
    required for, and only for, the PACE MOSFET switch commands. Everything wrong here
    is a :class:`ValueError`: it is our request.
    """
    command = profile.command(cid2)
    if address not in profile.addresses:
        raise ValueError(f"{profile.name}: address {address} is outside "
                         f"{profile.addresses.start}..{profile.addresses.stop - 1}")
    if all_packs and not command.all_packs:
        raise ValueError(f"{profile.name} 0x{cid2:02X} has no all-packs form")
    if (switch_on is None) == (command.request is RequestInfo.SWITCH):
        raise ValueError(f"{profile.name} 0x{cid2:02X}: switch_on is "
                         + ("required" if switch_on is None else "not allowed"))
    if command.request is RequestInfo.ADDRESS:
        info = bytes((ALL_PACKS if all_packs else address,))
    elif command.request is RequestInfo.SWITCH:
        info = b"\x00" if switch_on else b"\x01"
    else:
        info = b""
    return Frame(ver=profile.ver, adr=address, cid1=profile.cid1, cid2=cid2, info=info)


def describe_request(profile: Profile, frame: Frame) -> dict[str, Any]:
    """What a request asks, for people: its COMMAND value, switch position or raw INFO."""
    command = profile.commands.get(frame.cid2)
    kind = command.request if command is not None else None
    if kind is RequestInfo.ADDRESS and len(frame.info) == 1:
        if frame.info[0] == ALL_PACKS:
            return {"all_packs": True}
        return {"command_value": frame.info[0]}
    if kind is RequestInfo.SWITCH and frame.info in (b"\x00", b"\x01"):
        return {"switch_on": frame.info == b"\x00"}
    if kind is RequestInfo.NONE and not frame.info:
        return {}
    return {"info": frame.info.hex().upper()}


def decode_info(profile: Profile, cid2: int, frame: Frame, *,
                all_packs: bool | None = None) -> Any:
    """Decode the INFO of ``frame`` as the answer to ``cid2``, whatever its RTN.

    ``all_packs``: whether the request said 0xFF (None: unknown, try one pack first).
    Raises :class:`~.errors.LengthError` or :class:`~.errors.LayoutError`.
    """
    return _decode(profile, cid2, profile.command(cid2).answer, frame, all_packs)


def decode_record(profile: Profile, frame: Frame) -> Any:
    """Decode a record frame (Seplos 0x5A in the RTN position)."""
    try:
        spec = profile.records[frame.cid2]
    except KeyError:
        raise ValueError(f"{profile.name} has no record 0x{frame.cid2:02X}") from None
    return _decode(profile, frame.cid2, spec, frame, None)


def _decode(profile: Profile, cid2: int, spec: AnswerSpec, frame: Frame,
            all_packs: bool | None) -> Any:
    try:
        return decode_payload(spec, frame, all_packs=all_packs)
    except Mismatch as exc:
        raw = frame.wire
        if exc.ambiguous:
            tails = " and ".join(str(v) for v in exc.ambiguous)
            raise LayoutError(f"the pack blocks fit with tails of {tails} bytes, giving "
                              "different values; refusing to guess", raw=raw,
                              family=profile.name, command=cid2,
                              variants=exc.ambiguous) from None
        if exc.unknown:
            raise LayoutError(exc.unknown, raw=raw, family=profile.name,
                              command=cid2) from None
        raise LengthError(raw=raw, expected=exc.needed, at_least=exc.at_least,
                          actual=len(frame.info), family=profile.name,
                          command=cid2) from None


def decode_answer(profile: Profile, request: Frame, answer: Frame) -> Any:
    """Decode the answer to ``request`` (e.g. a session's :class:`~.session.Answer`).

    Raises :class:`~.errors.RtnError` for RTN != 0, :class:`~.errors.LengthError` or
    :class:`~.errors.LayoutError` for a payload that does not fit.
    """
    if answer.rtn != 0:
        raise RtnError(raw=answer.wire, rtn=answer.rtn)
    command = profile.command(request.cid2)
    all_packs = command.request is RequestInfo.ADDRESS and request.info == bytes((ALL_PACKS,))
    return decode_info(profile, request.cid2, answer, all_packs=all_packs)


def make_response(profile: Profile, request: Frame, answer: Any, *, rtn: int = 0) -> Frame:
    """The answer frame a device of ``profile`` sends to ``request`` (for the simulator).

    A :class:`~.answers.ProtocolVersion` answer puts its version in VER.
    """
    ver = answer.ver if isinstance(answer, ProtocolVersion) else profile.ver
    return Frame(ver=ver, adr=request.adr, cid1=profile.cid1, cid2=rtn,
                 info=encode_info(answer))
