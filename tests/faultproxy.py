"""A TCP fault proxy for end-to-end tests: it sits between a gateway (bus ``port:
socket://127.0.0.1:PORT``) and a simulator (``bms-gateway simulate --listen``) and, on the
test's command, drops the connections, stalls them, corrupts the bytes or refuses new
connections - what an RS485-to-Ethernet converter, its network or its power supply do.

One thread runs a selector loop over the listening socket and every connection pair;
the test's calls only set flags or post commands to it, so every socket is touched by
that thread alone. Imported by path (tests/conftest.py's ``fault_proxy`` fixture, and
tests that start a proxy themselves with :func:`load`), so it holds no fixtures.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from collections.abc import Callable

_CHUNK = 65536


class FaultProxy:
    """Forwards ``127.0.0.1:port`` to ``upstream``; faults are switched by the test.

    * :meth:`drop`: close every open connection (both sides), as a converter that
      reboots does; new connections are accepted unless refusing.
    * :meth:`stall`: stop forwarding in both directions; bytes wait in the sockets and
      flow again when the stall ends (a congested or blackholed network path).
    * :meth:`corrupt`: flip a bit in every byte going to the gateway (line noise).
    * :meth:`refuse`: close the listening socket, so a connect gets ECONNREFUSED; the same
      port listens again when refusing ends.
    """

    def __init__(self, upstream: tuple[str, int], *, port: int = 0) -> None:
        self.upstream = upstream
        self._lock = threading.Lock()
        self._stalled = False
        self._corrupting = False
        self._commands: list[Callable[[], None]] = []
        self._wake_r, self._wake_w = socket.socketpair()
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._wake_r, selectors.EVENT_READ, ("wake", None))
        self._pairs: dict[socket.socket, socket.socket] = {}  #: each side -> the other
        self._downstream: set[socket.socket] = set()  #: the sides facing the gateway
        self.accepted = 0  #: connections accepted so far
        self.refused = False
        self._listener: socket.socket | None = None
        self.port = self._listen(port)
        self._running = True
        self._thread = threading.Thread(target=self._loop, name="fault-proxy", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ the test's side
    @property
    def address(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    @property
    def connections(self) -> int:
        """Connections open now."""
        with self._lock:
            return len(self._downstream)

    def drop(self) -> None:
        self._run(self._close_all)

    def stall(self, on: bool = True) -> None:
        with self._lock:
            self._stalled = on
        self._run(self._update_interest)

    def corrupt(self, on: bool = True) -> None:
        with self._lock:
            self._corrupting = on

    def refuse(self, on: bool = True) -> None:
        """Refuse (``on``) or accept again new connections; open ones are kept (call
        :meth:`drop` too for a converter that went away)."""
        self._run(lambda: self._set_refusing(on))

    def wait_connected(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.connections == 0:
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing connected to the fault proxy in {timeout} s")
            time.sleep(0.02)

    def close(self) -> None:
        if not self._running:
            return
        self._run(self._shutdown)
        self._thread.join(5)
        self._wake_w.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the loop's side
    def _run(self, command: Callable[[], None]) -> None:
        """Run ``command`` in the loop thread and wait until it ran."""
        done = threading.Event()

        def wrapped() -> None:
            try:
                command()
            finally:
                done.set()
        with self._lock:
            self._commands.append(wrapped)
        self._wake_w.send(b"x")
        if not done.wait(5):
            raise AssertionError("the fault proxy's thread does not answer")

    def _listen(self, port: int) -> int:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(16)
        listener.setblocking(False)
        self._listener = listener
        self._sel.register(listener, selectors.EVENT_READ, ("listen", None))
        return listener.getsockname()[1]

    def _set_refusing(self, on: bool) -> None:
        if on == self.refused:
            return
        self.refused = on
        if on:
            assert self._listener is not None
            self._sel.unregister(self._listener)
            self._listener.close()
            self._listener = None
        else:
            self._listen(self.port)

    def _accept(self) -> None:
        assert self._listener is not None
        try:
            down, _ = self._listener.accept()
        except BlockingIOError:
            return
        try:
            up = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            down.close()  # the simulator is gone: the gateway sees its connection closed
            return
        for s in (down, up):
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._pairs[down], self._pairs[up] = up, down
            self._downstream.add(down)
            self.accepted += 1
            stalled = self._stalled
        if not stalled:
            for s in (down, up):
                self._sel.register(s, selectors.EVENT_READ, ("data", None))

    def _update_interest(self) -> None:
        """Stalled: no connection is watched (its bytes wait in the kernel); else all."""
        with self._lock:
            stalled = self._stalled
            sides = list(self._pairs)
        for s in sides:
            watched = s in self._sel.get_map()
            if stalled and watched:
                self._sel.unregister(s)
            elif not stalled and not watched:
                self._sel.register(s, selectors.EVENT_READ, ("data", None))

    def _close_pair(self, s: socket.socket) -> None:
        with self._lock:
            other = self._pairs.pop(s, None)
            if other is not None:
                self._pairs.pop(other, None)
            self._downstream.discard(s)
            if other is not None:
                self._downstream.discard(other)
        for x in (s, other):
            if x is None:
                continue
            try:
                self._sel.unregister(x)
            except (KeyError, ValueError):
                pass
            x.close()

    def _close_all(self) -> None:
        with self._lock:
            sides = list(self._downstream)
        for s in sides:
            self._close_pair(s)

    def _forward(self, s: socket.socket) -> None:
        try:
            data = s.recv(_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close_pair(s)
            return
        with self._lock:
            other = self._pairs.get(s)
            to_gateway = other in self._downstream
            corrupting = self._corrupting
        if other is None:
            return
        if corrupting and to_gateway:
            data = bytes(b ^ 0x04 for b in data)
        try:
            other.setblocking(True)
            other.sendall(data)
            other.setblocking(False)
        except OSError:
            self._close_pair(s)

    def _shutdown(self) -> None:
        self._close_all()
        if self._listener is not None:
            self._sel.unregister(self._listener)
            self._listener.close()
            self._listener = None
        self._running = False

    def _loop(self) -> None:
        while self._running:
            for key, _ in self._sel.select(timeout=1.0):
                kind, _ = key.data
                if kind == "wake":
                    self._wake_r.recv(4096)
                    with self._lock:
                        commands, self._commands = self._commands, []
                    for c in commands:
                        c()
                elif kind == "listen":
                    self._accept()
                elif kind == "data":
                    self._forward(key.fileobj)  # type: ignore[arg-type]
            if not self._running:
                break
        self._sel.close()
        self._wake_r.close()
