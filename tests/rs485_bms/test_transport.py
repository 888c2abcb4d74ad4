"""SerialTransport.read_frame: one trip to the worker thread per answer, over a real
byte stream (a TCP socket through pyserial's ``socket://``, bytes sent in pieces)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

from plugins.rs485_bms.poller.transport import SerialTransport


def serve(pieces: list[tuple[float, bytes]]) -> tuple[int, threading.Thread]:
    """A one-connection TCP peer that sends each piece after its delay (s)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def run() -> None:
        conn, _ = listener.accept()
        with conn:
            for delay, data in pieces:
                time.sleep(delay)
                try:
                    conn.sendall(data)
                except OSError:  # the reader has gone
                    return
            time.sleep(0.5)

    def guarded() -> None:
        try:
            run()
        finally:
            listener.close()

    thread = threading.Thread(target=guarded, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


async def read(port: int, *, first: float, gap: float, limit: float
               ) -> tuple[bytes, int, float]:
    """What read_frame returned, in how many trips to the thread, after how long."""
    t = SerialTransport(f"socket://127.0.0.1:{port}", baud=9600)
    await t.open()
    calls = 0
    real = t._call

    async def counting(fn, *args):
        nonlocal calls
        calls += 1
        return await real(fn, *args)

    t._call = counting  # type: ignore[method-assign]
    try:
        started = time.monotonic()
        data = await t.read_frame(first, gap_s=gap, limit_s=limit)
        return data, calls, time.monotonic() - started
    finally:
        await t.close()


def test_a_frame_sent_in_pieces_comes_back_whole_in_one_trip():
    frame = b"~25014600C0040001FD2D\r"
    pieces = [(0.05, frame[:5]), (0.02, frame[5:12]), (0.02, frame[12:])]
    port, peer = serve(pieces)
    data, calls, _ = asyncio.run(read(port, first=1.0, gap=0.2, limit=2.0))
    peer.join(5)
    assert data == frame and calls == 1


def test_silence_is_empty_and_a_frame_cut_short_ends_at_the_gap():
    port, peer = serve([(0.3, b"")])
    assert asyncio.run(read(port, first=0.1, gap=0.05, limit=1.0))[0] == b""
    peer.join(5)
    port, peer = serve([(0.02, b"~250146"), (0.5, b"00C0\r")])
    data, _, elapsed = asyncio.run(read(port, first=1.0, gap=0.1, limit=2.0))
    peer.join(5)
    assert data == b"~250146" and elapsed < 0.45


@pytest.mark.parametrize("limit", [0.15])
def test_a_line_that_never_stops_talking_ends_at_the_limit(limit):
    port, peer = serve([(0.01 if i else 0.02, b"7") for i in range(100)])
    data, _, elapsed = asyncio.run(read(port, first=1.0, gap=0.1, limit=limit))
    peer.join(5)
    assert data and b"\r" not in data and elapsed < limit + 0.3
