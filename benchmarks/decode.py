"""CPU time to decode one 12-pack PACE poll cycle, against that cycle's wire time.

One cycle is what the poller does per bank: 12 x (0x42 analog + 0x44 alarm) for 16S/6T
packs. The answers are built with the codec's own encoders (classic PACE layout), then
decoded the way the poller does it: bytes fed to a FrameReader in 64-byte chunks, each
frame checked and decoded with decode_answer(). The wire time counts every byte of the 24
requests and 24 answers at 9600 Bd 8N1 (10 bits per byte).

Prints the details, then as its last line:
``decode/wire: <ratio>x CPU time to decode a 12-pack cycle vs its wire time at 9600 Bd``
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plugins.rs485_bms.protocol import (  # noqa: E402
    PACE_V25,
    FrameReader,
    PackAnswer,
    PaceAlarm,
    PacePack,
    decode_answer,
    encode_frame,
    make_request,
    make_response,
)

PACKS = 12
BAUD = 9600
BITS_PER_BYTE = 10  # 8N1
CHUNK = 64
BATCHES, CYCLES_PER_BATCH = 7, 200


def _pack(address: int) -> PacePack:
    return PacePack(
        cell_mv=tuple(3280 + (address * 7 + i * 3) % 25 for i in range(16)),
        temp_dk=(2981, 2979, 2983, 2980, 3005, 2995), current_10ma=-225 - address,
        pack_mv=52480 + address, remaining_10mah=4819 + address, user_defined_p=3,
        full_10mah=10346, cycles=140 + address, design_10mah=10000)


def _alarm(address: int) -> PaceAlarm:
    return PaceAlarm(cell_alarm=(0,) * 16, temp_alarm=(0,) * 6, charge_current_alarm=0,
                     pack_voltage_alarm=0, discharge_current_alarm=0, protect1=0, protect2=0,
                     instruction_state=0x0E, control_state=0x01, fault_state=0,
                     balance1=address & 1, balance2=0, warn1=0, warn2=0)


def build_cycle() -> tuple[list[tuple], bytes]:
    """The 24 (request, expected answer) pairs and the answers' bytes as one stream."""
    exchanges, stream = [], bytearray()
    for address in range(1, PACKS + 1):
        for cid2, block in ((0x42, _pack(address)), (0x44, _alarm(address))):
            request = make_request(PACE_V25, cid2, address)
            answer = PackAnswer(infoflag=0, command_value=address, packs=(block,))
            stream += encode_frame(make_response(PACE_V25, request, answer))
            exchanges.append((request, answer))
    return exchanges, bytes(stream)


def decode_cycle(exchanges: list[tuple], stream: bytes) -> int:
    reader = FrameReader()
    frames = []
    for start in range(0, len(stream), CHUNK):
        frames.extend(reader.feed(stream[start:start + CHUNK]))
    decoded = 0
    for (request, _), frame in zip(exchanges, frames, strict=True):
        decode_answer(PACE_V25, request, frame)
        decoded += 1
    return decoded


def main() -> None:
    exchanges, stream = build_cycle()
    # the chain must really decode what was encoded before it is timed
    reader = FrameReader()
    frames = reader.feed(stream)
    assert [decode_answer(PACE_V25, r, f) for (r, _), f in zip(exchanges, frames)] == [
        a for _, a in exchanges]
    request_bytes = sum(len(encode_frame(r)) for r, _ in exchanges)
    wire_bytes = request_bytes + len(stream)
    wire_s = wire_bytes * BITS_PER_BYTE / BAUD

    best = float("inf")
    for _ in range(BATCHES):
        start = time.process_time()
        for _ in range(CYCLES_PER_BATCH):
            decode_cycle(exchanges, stream)
        best = min(best, (time.process_time() - start) / CYCLES_PER_BATCH)

    print(f"cycle: {PACKS} packs x (0x42 + 0x44), 16S/6T, {len(exchanges)} answers")
    print(f"wire: {request_bytes} request + {len(stream)} answer bytes = {wire_bytes} bytes"
          f" = {wire_s:.3f} s at {BAUD} Bd 8N1")
    print(f"decode: {best * 1000:.3f} ms CPU per cycle (best of {BATCHES} batches of "
          f"{CYCLES_PER_BATCH}; reader in {CHUNK}-byte chunks + decode_answer)")
    print(f"decode/wire: {best / wire_s:.4g}x CPU time to decode a 12-pack cycle vs its wire "
          f"time at {BAUD} Bd")


if __name__ == "__main__":
    main()
