"""Fuzzing: whatever arrives, the codec answers with frames or ProtocolError values (or
raises a ProtocolError from the decoders), never anything else, and never grows."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugins.rs485_bms.protocol import (
    MAX_FRAME_BYTES,
    PROFILES,
    Answer,
    Frame,
    FrameReader,
    ProtocolError,
    ResponseTimeout,
    Session,
    decode_info,
    make_request,
    parse_frame,
)

VECTORS = json.loads((Path(__file__).resolve().parents[1]
                      / "data/frames.json").read_text(encoding="utf-8"))
FRAMES = [v["response"].encode("ascii") + b"\r" for v in VECTORS]
FUZZ = settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])

#: Bytes that matter to the reader, plus some that never do.
protocol_bytes = st.binary(max_size=64) | st.lists(
    st.sampled_from(b"~\r0123456789ABCDEFabcdefGx \x00\xff"), max_size=200).map(bytes)


@st.composite
def mutated_frames(draw):
    """A captured frame with a few bits flipped, bytes lost or added, or its end cut off
    (its leading ``~`` kept)."""
    frame = bytearray(draw(st.sampled_from(FRAMES)))
    for _ in range(draw(st.integers(0, 4))):
        if len(frame) < 2:
            break
        pos = draw(st.integers(1, len(frame) - 1))
        action = draw(st.sampled_from(["flip", "delete", "insert", "cut"]))
        if action == "flip":
            frame[pos] ^= 1 << draw(st.integers(0, 7))
        elif action == "delete":
            del frame[pos]
        elif action == "insert":
            frame.insert(pos, draw(st.sampled_from(b"~\r0A")))
        else:
            del frame[pos:]
    return bytes(frame)


stream_pieces = st.lists(protocol_bytes | mutated_frames() | st.sampled_from(FRAMES)
                         | st.binary(min_size=MAX_FRAME_BYTES, max_size=MAX_FRAME_BYTES + 50),
                         max_size=12)


@FUZZ
@given(pieces=stream_pieces)
def test_reader_never_raises_and_stays_bounded(pieces):
    reader = FrameReader()
    for piece in pieces:
        for event in reader.feed(piece):
            assert isinstance(event, Frame | ProtocolError)
            assert len(event.raw) <= MAX_FRAME_BYTES
        assert reader.pending < MAX_FRAME_BYTES
    for event in reader.flush():
        assert isinstance(event, ProtocolError)
    assert reader.pending == 0


@FUZZ
@given(data=mutated_frames() | protocol_bytes.map(lambda b: b"~" + b))
def test_parse_frame_raises_only_protocol_errors(data):
    try:
        frame = parse_frame(data)
    except ProtocolError as exc:
        assert exc.raw == data and exc.kind and exc.code
    else:
        assert frame.raw == data


COMMANDS = [(p, c.cid2) for p in PROFILES.values() for c in p.commands.values()]


@FUZZ
@given(target=st.sampled_from(COMMANDS), info=st.binary(max_size=160),
       all_packs=st.sampled_from([None, False, True]))
def test_decoders_raise_only_protocol_errors(target, info, all_packs):
    profile, cid2 = target
    frame = Frame(ver=profile.ver, adr=1, cid1=profile.cid1, cid2=0, info=info)
    try:
        decode_info(profile, cid2, frame, all_packs=all_packs)
    except ProtocolError as exc:
        assert exc.kind in {"length", "layout"}


@FUZZ
@given(frame=mutated_frames())
def test_mutated_vectors_decode_or_fail_cleanly(frame):
    try:
        parsed = parse_frame(frame)
    except ProtocolError:
        return
    for profile in PROFILES.values():
        for command in profile.commands.values():
            try:
                decode_info(profile, command.cid2, parsed)
            except ProtocolError:
                pass


@FUZZ
@given(pieces=stream_pieces, steps=st.lists(st.floats(0, 0.3), min_size=12, max_size=12))
def test_session_never_raises(pieces, steps):
    session = Session()
    request = make_request(PROFILES["pace_v25"], 0x42, 1)
    now = 0.0
    for piece, step in zip(pieces, steps):
        if session.outstanding is None:
            session.send(request, now=now, timeout_s=0.5)
        now += step
        for event in session.receive(piece, now=now):
            assert isinstance(event, Answer | ResponseTimeout | ProtocolError)
    for event in session.poll(now=now + 1):
        assert isinstance(event, ResponseTimeout | ProtocolError)
    assert session.outstanding is None and session.reader.pending < MAX_FRAME_BYTES
