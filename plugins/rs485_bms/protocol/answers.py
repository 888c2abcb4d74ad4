"""Answer shapes shared by the families, and the three generic operations on answers:
:func:`decode_payload`, :func:`encode_info` (the simulator's side) and :func:`describe`
(the JSON view of ``bms-gateway decode``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from plugins.rs485_bms.protocol.frame import Frame
from plugins.rs485_bms.protocol.layout import (
    Mismatch,
    decode_blocks,
    decode_struct,
    describe_struct,
    encode_struct,
    variant_of,
)

B = TypeVar("B")


@dataclass(frozen=True, slots=True, kw_only=True)
class PackAnswer(Generic[B]):
    """A 0x42 or 0x44 answer: INFOFLAG, a second byte, then pack blocks.

    The second byte is the COMMAND value echoed (one pack; ``command_value`` holds it) or,
    when the request said 0xFF ("all packs"), the pack count (``command_value`` is None
    and the count is ``len(packs)``).
    """

    infoflag: int = 0
    command_value: int | None
    packs: tuple[B, ...]

    @property
    def all_packs(self) -> bool:
        return self.command_value is None


@dataclass(frozen=True, slots=True)
class Packs:
    """Decoding spec of a :class:`PackAnswer` whose blocks are ``block`` instances.

    ``block.FF_FORM`` says whether the family has the multi-pack (INFO = FF) form.
    """

    block: type


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtocolVersion:
    """The 0x4F answer: the protocol version travels in the VER field, INFO is empty."""

    ver: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RawAnswer:
    """An answer whose layout the family does not document: its INFO bytes, undecoded."""

    info: bytes


#: What a command's answer decodes to: a layout class, pack blocks, or the two specials.
AnswerSpec = type | Packs


def decode_payload(spec: AnswerSpec, frame: Frame, *, all_packs: bool | None) -> Any:
    """Decode ``frame``'s INFO by ``spec``; raises :class:`~.layout.Mismatch`.

    ``all_packs`` matters for pack answers: True/False if the request's INFO was/was not
    0xFF, None if unknown (then the one-pack form is tried first).
    """
    if isinstance(spec, Packs):
        return _decode_packs(spec.block, frame.info, all_packs)
    if spec is ProtocolVersion:
        if frame.info:
            raise Mismatch(needed=(0,))
        return ProtocolVersion(ver=frame.ver)
    if spec is RawAnswer:
        return RawAnswer(info=frame.info)
    return decode_struct(spec, frame.info)


def _decode_packs(block: Any, info: bytes, all_packs: bool | None) -> PackAnswer[Any]:
    if len(info) < 2:
        raise Mismatch(needed=(2,), at_least=True)
    forms = [False, True] if all_packs is None else [all_packs]
    if not block.FF_FORM:
        forms = [False]
    failures: list[Mismatch] = []
    for multi in forms:
        try:
            packs = decode_blocks(block, info, 2, info[1] if multi else 1)
        except Mismatch as exc:
            failures.append(exc)
            continue
        return PackAnswer(infoflag=info[0], command_value=None if multi else info[1],
                          packs=packs)
    raise failures[0]


def encode_info(answer: Any) -> bytes:
    """The DATA_INFO bytes of a decoded answer; ``decode(encode_info(x)) == x``.

    Raises :class:`ValueError` if ``answer`` cannot be encoded faithfully (a value out of
    range, pack blocks with different tails, text with trailing padding, ...).
    """
    if isinstance(answer, PackAnswer):
        return _encode_packs(answer)
    if isinstance(answer, ProtocolVersion):
        return b""
    if isinstance(answer, RawAnswer):
        return bytes(answer.info)
    return encode_struct(answer)


def _encode_packs(answer: PackAnswer[Any]) -> bytes:
    packs = answer.packs
    if answer.command_value is None:
        second = len(packs)
        if packs and not type(packs[0]).FF_FORM:
            raise ValueError(f"{type(packs[0]).__name__} answers have no all-packs form")
    elif len(packs) != 1:
        raise ValueError(f"a one-pack answer has one block, not {len(packs)}")
    else:
        second = answer.command_value
    if len({type(p) for p in packs}) > 1 or len({variant_of(p) for p in packs}) > 1:
        raise ValueError("all pack blocks of an answer must share one layout and tail")
    if not (0 <= answer.infoflag <= 0xFF and 0 <= second <= 0xFF):
        raise ValueError(f"INFOFLAG {answer.infoflag} / second byte {second} exceed a byte")
    return bytes((answer.infoflag, second)) + b"".join(encode_struct(p) for p in packs)


def describe(answer: Any) -> dict[str, Any]:
    """The JSON view: the field names and units of the test vectors (floats for people)."""
    if isinstance(answer, PackAnswer):
        view: dict[str, Any] = {"infoflag": answer.infoflag}
        if answer.command_value is None:
            view["pack_count"] = len(answer.packs)
            view["packs"] = [describe_struct(p) for p in answer.packs]
        else:
            view["command_value"] = answer.command_value
            view.update(describe_struct(answer.packs[0]))
        return view
    if isinstance(answer, ProtocolVersion):
        return {"ver": answer.ver}
    if isinstance(answer, RawAnswer):
        return {"info": answer.info.hex().upper()}
    return describe_struct(answer)
