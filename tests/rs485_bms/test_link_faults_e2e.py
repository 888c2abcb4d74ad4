"""The south link breaking must not hold up the north side, end to end.

A real ``bms-gateway simulate --listen`` bank behind the TCP fault proxy
(tests/faultproxy.py), a real ``bms-gateway run`` polling it through ``socket://``, and a
Modbus-TCP client that reads a holding register block (FC03) every few milliseconds on
one connection while the proxy drops the link, refuses the reconnects, accepts again and
drops once more. Every round trip stays short: the poller's port handling (pyserial's
``socket://`` close sleeps 0.3 s) never runs on the event loop.
"""

from __future__ import annotations

import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

#: the longest FC03 round trip allowed while the link breaks. Measured on a loaded
#: 2-core box: 0.3 ms median, at most ~25 ms (scheduling noise, with or without faults);
#: a blocked event loop shows the 300 ms of pyserial's close
MAX_ROUND_TRIP_S = 0.075


def _port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _connect(port: int, proc: subprocess.Popen, timeout: float = 20) -> socket.socket:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, "the gateway stopped"
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=2)
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on {port}"
            time.sleep(0.05)
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


class Reader:
    """FC03 reads of the bank block's first 10 registers, back to back, timed."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.samples: list[tuple[float, float]] = []  #: (sent at, round trip s)
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self, tid: int) -> None:
        self.sock.sendall(struct.pack(">HHHBBHH", tid, 0, 6, 1, 3, 0, 10))
        answer = b""
        while len(answer) < 9 + 20:
            chunk = self.sock.recv(256)
            assert chunk, "the Modbus server closed the connection"
            answer += chunk
        assert answer[:2] == struct.pack(">H", tid) and answer[7] == 3, answer

    def _run(self) -> None:
        tid = 0
        try:
            while not self._stop.is_set():
                tid = (tid + 1) & 0xFFFF
                sent = time.monotonic()
                self._read(tid)
                self.samples.append((sent, time.monotonic() - sent))
                time.sleep(0.005)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def __enter__(self) -> Reader:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def _wait(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_modbus_answers_stay_fast_while_the_south_link_drops_and_is_refused(
        tmp_path: Path, gateway_cmd, subprocess_env, fault_proxy):
    sim_port = _port()
    sim = subprocess.Popen([*gateway_cmd, "simulate", "--listen", f"tcp://127.0.0.1:{sim_port}",
                            "--packs", "4", "--baud", "115200", "--turnaround-ms", "0"],
                           env=subprocess_env, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    gateway = None
    try:
        assert sim.stdout is not None
        assert sim.stdout.readline().startswith("tcp://")
        proxy = fault_proxy(sim_port)
        modbus_port = _port()
        config = tmp_path / "gateway.yaml"
        config.write_text(yaml.safe_dump({
            "gateway": {"watchdog": False},
            "rs485_bms": {"stale_after_s": 5, "buses": [{
                "name": "b", "port": proxy.address, "addresses": "1-4", "baud": 115200,
                "poll_interval_s": 0.3, "timeout_ms": 300}]},
            "modbus_tcp": {"listen_address": "127.0.0.1", "port": modbus_port},
        }))
        log = tmp_path / "gateway.log"
        with log.open("w") as err:
            gateway = subprocess.Popen([*gateway_cmd, "--log-level", "INFO", "run", "-c",
                                        str(config)], env=subprocess_env,
                                       stdout=subprocess.DEVNULL, stderr=err)
        proxy.wait_connected(20)
        with _connect(modbus_port, gateway) as sock, Reader(sock) as reader:
            time.sleep(1.0)
            # the converter goes away: the open link drops, reconnects are refused
            proxy.refuse()
            proxy.drop()
            _wait(lambda: "Connection refused" in log.read_text(), 10,
                  "the gateway never tried to reconnect")
            time.sleep(1.0)  # a few refused reconnects (back-off 0.5 s, 1 s)
            accepted = proxy.accepted
            proxy.refuse(False)
            _wait(lambda: proxy.accepted > accepted, 10, "the gateway did not reconnect")
            time.sleep(1.0)
            proxy.drop()  # and once more, reconnecting at once
            _wait(lambda: proxy.accepted > accepted + 1, 10, "no reconnect after the drop")
            time.sleep(0.5)
        assert reader.error is None, reader.error
        text = log.read_text()
        assert "socket disconnected" in text and "Connection refused" in text, text
        assert len(reader.samples) > 200
        worst = max(reader.samples, key=lambda s: s[1])
        assert worst[1] < MAX_ROUND_TRIP_S, (
            f"a Modbus read took {worst[1] * 1000:.0f} ms, "
            f"{worst[0] - reader.samples[0][0]:.2f} s into the test")
    finally:
        if gateway is not None:
            _stop(gateway)
        _stop(sim)
        if sim.stdout is not None:
            sim.stdout.close()
