"""The incremental reader: any chunking gives the same frames; errors come out as values."""

from __future__ import annotations

import random

import pytest

from plugins.rs485_bms.protocol import (
    MAX_FRAME_BYTES,
    ChecksumError,
    Frame,
    FrameReader,
    FrameTooLongError,
    InterruptedFrameError,
    TruncatedError,
    encode_frame,
    parse_frame,
)

REQUEST = b"~25014642E00201FD30\r"
ANSWER = b"~200246000000FDB2\r"


def _wire(vector) -> bytes:
    return vector["response"].encode("ascii") + b"\r"


def _feed_all(reader: FrameReader, chunks):
    events = []
    for chunk in chunks:
        events.extend(reader.feed(chunk))
    return events


def test_good_vector_one_byte_at_a_time(good_vector):
    wire = _wire(good_vector)
    reader = FrameReader()
    events = _feed_all(reader, [wire[i:i + 1] for i in range(len(wire))])
    assert events == [parse_frame(wire)]
    assert events[0].raw == wire
    assert reader.garbage == 0 and reader.pending == 0


@pytest.mark.parametrize("seed", range(5))
def test_good_vector_in_random_chunks_between_noise(good_vector, seed):
    rnd = random.Random(f"{good_vector['id']}/{seed}")
    noise = bytes(rnd.choice(b"\x00\xff\n 0123ABC") for _ in range(rnd.randrange(8)))
    stream = noise + _wire(good_vector) + noise + ANSWER
    cuts = sorted(rnd.sample(range(1, len(stream)), k=min(6, len(stream) - 1)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)])]
    reader = FrameReader()
    assert _feed_all(reader, chunks) == [parse_frame(_wire(good_vector)), parse_frame(ANSWER)]
    assert reader.take_garbage() == 2 * len(noise)
    assert reader.garbage == 0


def test_broken_vector_comes_out_as_its_error(broken_vector):
    events = FrameReader().feed(_wire(broken_vector) + ANSWER)
    assert [type(e) for e in events] == [ChecksumError, Frame]
    assert events[0].code == broken_vector["expected"]["error"]
    assert events[0].raw == _wire(broken_vector)


def test_garbage_is_counted_and_a_lone_cr_is_garbage():
    reader = FrameReader()
    assert reader.feed(b"noise\r\n") == []
    assert reader.feed(b"xx" + REQUEST + b"\n") == [parse_frame(REQUEST)]
    assert reader.take_garbage() == 7 + 2 + 1


def test_truncated_frame_without_checksum_then_resync():
    events = FrameReader().feed(b"~25014642E00201\r" + REQUEST)
    assert isinstance(events[0], TruncatedError) and events[0].raw == b"~25014642E00201\r"
    assert events[1:] == [parse_frame(REQUEST)]


def test_frame_cut_by_a_new_soi():
    reader = FrameReader()
    assert reader.feed(b"~2501464") == []
    assert reader.pending == 8
    events = reader.feed(REQUEST)
    assert isinstance(events[0], InterruptedFrameError) and events[0].raw == b"~2501464"
    assert events[1:] == [parse_frame(REQUEST)]


def test_flush_ends_a_partial_frame():
    reader = FrameReader()
    assert reader.flush() == []
    reader.feed(b"junk~2501464")
    [error] = reader.flush()
    assert isinstance(error, TruncatedError) and error.raw == b"~2501464"
    assert reader.pending == 0 and reader.feed(REQUEST) == [parse_frame(REQUEST)]


def test_longest_legal_frame_passes():
    frame = Frame(ver=0x25, adr=1, cid1=0x46, cid2=0, info=bytes(range(256)) * 7 + bytes(255))
    wire = encode_frame(frame)
    assert len(wire) == MAX_FRAME_BYTES - 1  # LENID 4094: the longest even LENID
    assert FrameReader().feed(wire) == [frame]
    odd = b"~" + b"0" * (MAX_FRAME_BYTES - 2) + b"\r"  # fills the buffer exactly
    [error] = FrameReader().feed(odd)
    assert not isinstance(error, FrameTooLongError)


@pytest.mark.parametrize("chunk", [1, 97, 10_000])
def test_no_cr_within_the_longest_frame_overflows(chunk):
    run = b"~" + b"A" * 6000
    stream = run + b"\r" + REQUEST
    reader = FrameReader()
    events = _feed_all(reader, [stream[i:i + chunk] for i in range(0, len(stream), chunk)])
    assert isinstance(events[0], FrameTooLongError)
    assert events[0].raw == run[:MAX_FRAME_BYTES - 1] and events[0].kind == "overflow"
    assert events[1:] == [parse_frame(REQUEST)]
    assert reader.garbage == len(run) - (MAX_FRAME_BYTES - 1) + 1  # the rest, and its CR
    assert reader.pending == 0


def test_overflow_at_a_new_soi_starts_the_next_frame():
    stream = b"~" + b"B" * 5000 + REQUEST
    events = FrameReader().feed(stream)
    assert isinstance(events[0], FrameTooLongError)
    assert events[1:] == [parse_frame(REQUEST)]


def test_errors_and_frames_keep_their_order():
    stream = REQUEST + b"~25014642E00203FD30\r" + b"~250" + ANSWER + b"~2501464200002\r"
    events = FrameReader().feed(stream)
    assert [type(e) for e in events] == [Frame, ChecksumError, InterruptedFrameError, Frame,
                                         TruncatedError]
