"""The TCP fault proxy the end-to-end tests put between a gateway and a simulator
(tests/faultproxy.py): each fault does what it says, against a loopback echo server."""

from __future__ import annotations

import socket
import threading

import pytest


@pytest.fixture
def echo():
    """A TCP echo server on 127.0.0.1; yields its port."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()
    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    server.close()
    thread.join(5)


def _client(proxy) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
    proxy.wait_connected(5)
    return sock


def _exchange(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = sock.recv(4096)
        if not chunk:
            break
        got += chunk
    return got


def test_bytes_pass_unchanged_until_a_fault_is_switched_on(echo, fault_proxy):
    proxy = fault_proxy(echo)
    with _client(proxy) as sock:
        assert _exchange(sock, b"~20014A420000FDA2\r") == b"~20014A420000FDA2\r"
    assert proxy.accepted == 1


def test_drop_closes_the_open_connections_and_new_ones_are_accepted(echo, fault_proxy):
    proxy = fault_proxy(echo)
    sock = _client(proxy)
    proxy.drop()
    assert sock.recv(10) == b""
    sock.close()
    with _client(proxy) as again:
        assert _exchange(again, b"ping") == b"ping"


def test_refuse_makes_connects_fail_until_it_ends(echo, fault_proxy):
    proxy = fault_proxy(echo)
    port = proxy.port
    proxy.refuse()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    proxy.refuse(False)
    assert proxy.port == port
    with _client(proxy) as sock:
        assert _exchange(sock, b"ping") == b"ping"


def test_a_stall_holds_the_bytes_and_they_flow_when_it_ends(echo, fault_proxy):
    proxy = fault_proxy(echo)
    with _client(proxy) as sock:
        proxy.stall()
        sock.sendall(b"held")
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(10)
        proxy.stall(False)
        sock.settimeout(2)
        assert sock.recv(10) == b"held"


def test_corrupt_flips_a_bit_in_every_byte_towards_the_gateway(echo, fault_proxy):
    proxy = fault_proxy(echo)
    with _client(proxy) as sock:
        proxy.corrupt()
        assert _exchange(sock, b"~2001") == bytes(b ^ 0x04 for b in b"~2001")
        proxy.corrupt(False)
        assert _exchange(sock, b"~2001") == b"~2001"
