"""The serial port, and the only module that imports pyserial.

Ports are pyserial URLs (``serial_for_url``): ``/dev/ttyUSB0`` and
``/dev/serial/by-id/...`` for USB adapters, ``socket://host:port`` for RS485-to-Ethernet
converters, ``rfc2217://host:port`` for Telnet-COM-port servers, ``loop://`` for tests.
pyserial is blocking, so each port gets one worker thread; the event loop never blocks
on it, not even to close a port that failed. Every failure surfaces as
:class:`TransportError` (port missing, unplugged adapter, TCP connection closed,
pseudo-terminal gone).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time

import serial

from plugins.rs485_bms.protocol.frame import EOI, SOI, expected_frame_bytes

_CHUNK = 8192  # more than the longest legal frame (18 + 4095 bytes)
_SLEEP_MAX_S = 0.05  #: the longest sleep through an answer's announced wire time


class TransportError(Exception):
    """The port could not be opened, or it failed while open."""


def redact_url(url: str) -> str:
    """Hide a password embedded in a URL (``socket://user:pw@host:port``).

    The password may contain ``/`` or ``@``: everything up to the last ``@`` after the
    scheme is user information.
    """
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:****@{host}"


class SerialTransport:
    def __init__(self, url: str, *, baud: int) -> None:
        self.url = url
        self.baud = baud
        self._port: serial.SerialBase | None = None
        self._worker = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"serial:{redact_url(url)}")

    @property
    def is_open(self) -> bool:
        return self._port is not None

    async def _call(self, fn, *args):
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._worker, fn, *args)
        except (serial.SerialException, OSError, ValueError) as exc:
            await self._drop()
            # pyserial's own message may quote the URL, password and all
            detail = str(exc).replace(self.url, redact_url(self.url))
            raise TransportError(f"{redact_url(self.url)}: {detail}") from None

    async def open(self) -> None:
        def do_open():
            return serial.serial_for_url(self.url, baudrate=self.baud, bytesize=8,
                                         parity="N", stopbits=1, timeout=0)
        self._port = await self._call(do_open)

    async def write(self, data: bytes) -> None:
        port = self._require()
        await self._call(self._write_all, port, data)

    @staticmethod
    def _write_all(port: serial.SerialBase, data: bytes) -> None:
        port.write(data)
        port.flush()

    async def read(self, max_wait_s: float) -> bytes:
        """Whatever arrives within ``max_wait_s`` (at least one byte), or b"" on silence."""
        port = self._require()
        return await self._call(self._read_some, port, max(0.0, max_wait_s))

    @staticmethod
    def _read_some(port: serial.SerialBase, wait: float) -> bytes:
        port.timeout = wait
        first = port.read(1)
        if not first:
            return b""
        port.timeout = 0  # then take what is already there, without waiting
        return first + port.read(_CHUNK)

    async def read_frame(self, first_wait_s: float, *, gap_s: float, limit_s: float) -> bytes:
        """Up to the end of a frame (EOI) in one trip to the worker thread: b"" if
        nothing arrives within ``first_wait_s``; else the bytes for as long as each next
        one follows within ``gap_s``, until an EOI or ``limit_s`` after the call. At
        9600 Bd an answer of 150 bytes used to be some 50 reads, each a round trip
        through the event loop; now it is one."""
        port = self._require()
        return await self._call(self._read_frame, port, max(0.0, first_wait_s), gap_s,
                                max(0.0, limit_s), 10 / self.baud)

    @staticmethod
    def _read_frame(port: serial.SerialBase, first_wait: float, gap: float,
                    limit: float, byte_s: float) -> bytes:
        deadline = time.monotonic() + limit
        port.timeout = first_wait
        first = port.read(1)
        if not first:
            return b""
        port.timeout = 0
        data = first + port.read(_CHUNK)
        while EOI not in data:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            # once the header is in, the rest takes a known time on the wire: sleep
            # through it rather than wake for every byte or two (8N1: 10 bits a byte)
            soi = data.rfind(SOI)
            expected = expected_frame_bytes(data[soi:]) if soi >= 0 else None
            if expected is not None and expected > len(data) - soi:
                # in slices, so that a frame cut short is not waited for in one piece
                time.sleep(min((expected - (len(data) - soi) - 1) * byte_s, remaining,
                               _SLEEP_MAX_S))
            port.timeout = min(gap, max(0.0, deadline - time.monotonic()))
            more = port.read(1)
            if not more:
                break  # the line went quiet: the session decides what the bytes were
            port.timeout = 0
            data += more + port.read(_CHUNK)
        return data

    async def discard_input(self) -> int:
        """Drop bytes that arrived outside a transaction; returns how many."""
        port = self._require()

        def drain() -> int:
            port.timeout = 0
            n = 0
            while chunk := port.read(_CHUNK):
                n += len(chunk)
            return n
        return await self._call(drain)

    def _require(self) -> serial.SerialBase:
        if self._port is None:
            raise TransportError(f"{redact_url(self.url)}: port is not open")
        return self._port

    async def _drop(self) -> None:
        """Forget a port that failed, closing it in the worker thread: pyserial's close
        may block (``socket://`` sleeps 0.3 s "to give the server some time"), and on
        the event loop that would stall every north client for as long."""
        port, self._port = self._port, None
        if port is not None:
            loop = asyncio.get_running_loop()
            try:
                await loop.run_in_executor(self._worker, port.close)
            except Exception:  # closing a port that already failed: nothing left to do
                pass

    async def close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            loop = asyncio.get_running_loop()
            try:
                await loop.run_in_executor(self._worker, port.close)
            except (serial.SerialException, OSError):
                pass
        self._worker.shutdown(wait=False, cancel_futures=True)
