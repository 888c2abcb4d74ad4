"""Hypothesis round trips: any answer a layout can describe encodes to bytes that decode
back to it, through the whole chain (payload -> frame -> reader -> session -> decoder)."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugins.rs485_bms.protocol import (
    PROFILES,
    Answer,
    LayoutError,
    PackAnswer,
    ProtocolVersion,
    RawAnswer,
    RequestInfo,
    Session,
    decode_answer,
    decode_info,
    encode_frame,
    make_request,
    make_response,
)
from plugins.rs485_bms.protocol.answers import Packs
from plugins.rs485_bms.protocol.layout import (
    Choice,
    Counted,
    Fixed,
    Num,
    Tail,
    Text,
    Varying,
    counts_of,
    variant_of,
    variants,
)

SLOW = settings(deadline=None, max_examples=60,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _int(size: int, signed: bool = False, unknown: int | None = None) -> st.SearchStrategy:
    bits = 8 * size
    values = (st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed
              else st.integers(0, (1 << bits) - 1))
    if unknown is None:
        return values
    return st.none() | values.filter(lambda v: v & ((1 << bits) - 1) != unknown)


def _text(element: Text) -> st.SearchStrategy:
    pad = " " + element.fill.decode("ascii")
    return st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E),
                   max_size=element.size).filter(lambda t: t == t.rstrip(pad))


def _fields(elements, draw) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for element in elements:
        if isinstance(element, Num):
            values[element.name] = draw(_int(element.size, element.signed, element.unknown))
        elif isinstance(element, Counted):
            item = _int(element.size, element.signed, element.unknown)
            values[element.name] = tuple(draw(st.lists(
                item, min_size=element.extra, max_size=element.extra + 24)))
        elif isinstance(element, Fixed):
            values[element.name] = tuple(draw(st.lists(
                _int(element.size), min_size=element.count, max_size=element.count)))
        elif isinstance(element, Text):
            values[element.name] = draw(_text(element))
        elif isinstance(element, Choice):
            selected = draw(st.sampled_from(sorted(element.cases)))
            values[element.selector] = selected
            for case in element.cases.values():
                values.update({e.name: None for e in case})
            values.update(_fields(element.cases[selected], draw))
        elif isinstance(element, Tail):
            length = draw(st.sampled_from(element.lengths))
            used = 0
            for field in element.elements:
                values[field.name] = None
                if used < length:
                    values.update(_fields((field,), draw))
                    used += field.width
        else:
            assert isinstance(element, Varying)
            length = draw(st.sampled_from(element.lengths))
            values[element.name] = tuple(draw(st.binary(min_size=length, max_size=length)))
    return values


@st.composite
def structs(draw, cls):
    return cls(**_fields(cls.LAYOUT, draw))


@st.composite
def answers(draw, spec, *, all_packs: bool = False):
    if isinstance(spec, Packs):
        if all_packs:
            variant = draw(st.sampled_from(variants(spec.block)))
            packs = draw(st.lists(structs(spec.block).filter(
                lambda p: variant_of(p) == variant), max_size=4))
            return PackAnswer(infoflag=draw(_int(1)), command_value=None, packs=tuple(packs))
        return PackAnswer(infoflag=draw(_int(1)), command_value=draw(_int(1)),
                          packs=(draw(structs(spec.block)),))
    if spec is ProtocolVersion:
        return ProtocolVersion(ver=draw(_int(1)))
    if spec is RawAnswer:
        return RawAnswer(info=draw(st.binary(max_size=64)))
    return draw(structs(spec))


CASES = [(p, c, False) for p in PROFILES.values() for c in p.commands.values()]
CASES += [(p, c, True) for p, c, _ in CASES if c.all_packs]


@pytest.mark.parametrize("profile, command, all_packs", CASES,
                         ids=[f"{p.name}-{c.cid2:02X}{'-FF' if a else ''}" for p, c, a in CASES])
@SLOW
@given(data=st.data())
def test_answer_round_trips_through_the_whole_chain(profile, command, all_packs, data):
    answer = data.draw(answers(command.answer, all_packs=all_packs))
    address = data.draw(st.sampled_from(profile.addresses))
    options = {"switch_on": True} if command.request is RequestInfo.SWITCH else {}
    request = make_request(profile, command.cid2, address, all_packs=all_packs, **options)
    wire = encode_frame(make_response(profile, request, answer))

    session = Session()
    assert session.send(request, now=0.0, timeout_s=1.0) == encode_frame(request)
    rnd = random.Random(data.draw(st.integers()))
    events = []
    pos = 0
    while pos < len(wire):
        step = rnd.randrange(1, 64)
        events += session.receive(wire[pos:pos + step], now=0.5)
        pos += step
    [event] = events
    assert isinstance(event, Answer)
    try:
        decoded = decode_answer(profile, request, event.frame)
    except LayoutError as exc:
        # packs of different sizes whose bytes also walk with another tail: refused,
        # never guessed (identical modules settle it)
        assert all_packs and len(exc.variants) > 1
        assert variant_of(answer.packs[0]) in exc.variants
        assert len({counts_of(p) for p in answer.packs}) > 1
        return
    assert decoded == answer


@SLOW
@given(data=st.data())
def test_one_pack_answer_decodes_without_its_request(data):
    """Without the request (a lone answer in a log) the one-pack form is tried first."""
    profile, command, _ = data.draw(st.sampled_from([c for c in CASES if c[1].all_packs]))
    answer = data.draw(answers(command.answer))
    frame = make_response(profile, make_request(profile, command.cid2, 1), answer)
    assert decode_info(profile, command.cid2, frame) == answer
