"""The Modbus-TCP server component: asyncio glue around the register map.

It serves the hub's latest snapshot and nothing else: a request is answered from the
register tables kept for that snapshot, never by waiting on the bus. The run loop
brings the tables up to date as soon as the hub's watch reports a snapshot, and once
a second for the age registers, re-packing only the blocks that changed
(:mod:`plugins.modbus_tcp.live_tables`), so the request path is a dictionary look-up
and a byte slice. A request that finds the tables behind (a snapshot the loop has not
seen yet, or the second passed) brings them up to date first, at the same small cost.

Why not pymodbus's server: pymodbus 3.16 answers a read quantity of 0 or 126 with
exception 01 instead of 03, accepts writes unless every datastore is wrapped, answers
unknown unit identifiers with 0x04 or not at all, leaves a connection with a broken
MBAP header open and silent, has no connection limit, and its datastore API is being
replaced for 4.0. MBAP framing is small, so the server speaks Modbus/TCP itself
(:mod:`plugins.modbus_tcp.protocol`); see docs/modbus.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from gateway.access import AccessList
from gateway.health import Figure
from gateway.hub import Hub
from gateway.model import ModuleReading
from plugins.modbus_tcp.admission import (
    GRACE_S,
    HARD_CAP_FACTOR,
    Slot,
    overdue,
    surplus,
)
from plugins.modbus_tcp.live_tables import LiveTables
from plugins.modbus_tcp.protocol import Counters, Session, Table, UnitScheme
from plugins.modbus_tcp.register_map import MAX_POSITIONS, DeviceInfo
from plugins.modbus_tcp.settings import ModbusTcpSettings, UnknownUnits

log = logging.getLogger(__name__)

RENDER_INTERVAL_S = 1.0  #: the age registers count whole seconds
SLICE_S = 0.0005  #: the run loop lets requests in after this much table work
MAX_OUTPUT_PER_READ = 64 * 1024  #: answers produced per chunk read before yielding


@dataclass(slots=True)
class ServerCounters(Counters):
    """Counters of the whole server (all connections)."""

    accepted: int = 0
    refused: int = 0  #: connections closed at once: the source is not in allowed_sources
    evicted: int = 0  #: longest-idle connections closed to make room for a new one
    idle_closed: int = 0
    frame_timeouts: int = 0  #: connections closed: a frame begun was not completed in time


class ModbusTcpServer:
    """The ``modbus_tcp`` component (role ``north``)."""

    name = "modbus_tcp"

    def __init__(self, settings: ModbusTcpSettings, hub: Hub, *,
                 clock: Callable[[], float] = time.monotonic,
                 device: DeviceInfo | None = None) -> None:
        self.settings = settings
        self.hub = hub
        self._clock = clock
        self._device = device or DeviceInfo(device_address=settings.bank_unit_id)
        self._scheme = UnitScheme(
            bank_unit_id=settings.bank_unit_id, direct_unit_ids=settings.direct_unit_ids,
            module_unit_id_base=settings.module_unit_id_base if settings.module_unit_ids
            else None)
        self._live = LiveTables(self._scheme, stale_after_s=settings.stale_after_s,
                                device=self._device)
        self._rendered_seq: int | None = -1
        self._rendered_at = float("-inf")
        self._rendering = False  #: the run loop keeps the tables (requests take them as kept)
        self._connections: set[_Connection] = set()
        self._evicting = False
        self._trim_pending: asyncio.TimerHandle | None = None
        self._sources = AccessList(settings.allowed_sources)
        self._beyond_logged = False
        self.counters = ServerCounters()
        self.address: tuple[str, int] | None = None  #: where it listens, once started
        self.started = asyncio.Event()

    def health_figures(self) -> list[Figure]:
        """The server's counters and open connections, for the gateway's health."""
        c = self.counters
        texts = {"requests": "requests answered or ignored",
                 "exceptions": "requests answered with an exception",
                 "unanswered": "requests to unknown units left unanswered (ignore)",
                 "malformed": "connections closed for a frame that is not Modbus/TCP",
                 "accepted": "connections accepted",
                 "refused": "connections refused: source not in allowed_sources",
                 "evicted": "longest-idle connections closed to admit a new one",
                 "idle_closed": "connections closed after idle_timeout_s",
                 "frame_timeouts": "connections closed: a frame not complete in time"}
        out = [Figure(name=f"modbus_{k}_total", value=getattr(c, k), kind="counter",
                      help=f"Modbus-TCP server: {text}") for k, text in texts.items()]
        out.append(Figure(name="modbus_connections", value=len(self._connections),
                          kind="gauge", help="Modbus-TCP server: open connections"))
        return out

    # ------------------------------------------------------------------ tables --------

    @property
    def served_seq(self) -> int | None:
        """The sequence number of the snapshot the tables serve (None: no snapshot yet,
        -1: not rendered yet). A snapshot is served a few slices after it arrives."""
        return self._rendered_seq

    def tables(self) -> Mapping[int, Table]:
        """The tables a request is answered from. While the run loop runs it brings
        them up to date as each snapshot arrives, in slices (:meth:`_render`), and a
        request meanwhile takes them as they are; only tables a second behind (ages,
        and the stale guard) are brought up to date here, as they are when the run loop
        is not running."""
        latest = self.hub.latest
        now = self._clock()
        seq = None if latest is None else latest.seq
        if (now - self._rendered_at >= RENDER_INTERVAL_S
                or (seq != self._rendered_seq and not self._rendering)):
            if latest is not None and seq != self._rendered_seq:
                self._check_positions(latest.modules)
            self._live.update(latest, now)
            self._rendered_seq = seq
            self._rendered_at = now
        return self._live.tables

    async def _render(self) -> None:
        """Bring the tables up to date with the loop free between slices of at most
        :data:`SLICE_S` of work; again from the newest snapshot if a request did it
        meanwhile."""
        while True:
            latest = self.hub.latest
            now = self._clock()
            seq = None if latest is None else latest.seq
            if seq == self._rendered_seq and now - self._rendered_at < RENDER_INTERVAL_S:
                return
            if latest is not None and seq != self._rendered_seq:
                self._check_positions(latest.modules)
            sliced_at = time.perf_counter()
            for _ in self._live.steps(latest, now):
                if time.perf_counter() - sliced_at >= SLICE_S:
                    await asyncio.sleep(0)  # let waiting requests in
                    sliced_at = time.perf_counter()
            if self._live.updated:
                self._rendered_seq = seq
                self._rendered_at = now
                return

    def _check_positions(self, modules: Sequence[ModuleReading]) -> None:
        """Say once that modules past the map's last block are not served (each bus
        with ``addresses: auto`` takes 15 positions)."""
        beyond = sorted(m.position for m in modules if m.position > MAX_POSITIONS)
        if beyond and not self._beyond_logged:
            self._beyond_logged = True
            log.warning("Modbus-TCP: the register map has blocks for module positions "
                        "1..%d; modules at positions %s are not served on Modbus (list "
                        "fewer addresses, or fewer buses with addresses: auto)",
                        MAX_POSITIONS, ", ".join(map(str, beyond)))

    # ------------------------------------------------------------------ running -------

    @property
    def listens_on(self) -> str:
        """Where the server listens, named by the gateway when it cannot."""
        host = str(self.settings.listen_address)
        return f"tcp {f'[{host}]' if ':' in host else host}:{self.settings.port}"

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        s = self.settings
        server = await loop.create_server(
            lambda: _Connection(self), str(s.listen_address), s.port, reuse_address=True)
        watch = self.hub.watch()
        try:
            self.address = server.sockets[0].getsockname()[:2]
            self.tables()
            self._rendering = True
            log.info("Modbus-TCP server listening on %s:%d", *self.address)
            self.started.set()
            while True:
                due = self._rendered_at + RENDER_INTERVAL_S - self._clock()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(max(due, 0.0), RENDER_INTERVAL_S)):
                        await watch.next()
                await self._render()
                self._close_idle(loop.time())
                self._close_overdue(loop.time())
        finally:
            self._rendering = False
            if self._trim_pending is not None:
                self._trim_pending.cancel()
            watch.close()
            server.close()
            for conn in list(self._connections):
                conn.transport.abort()
            self._connections.clear()
            self.started.clear()
            log.info("Modbus-TCP server stopped")

    def _close_idle(self, now: float) -> None:
        limit = self.settings.idle_timeout_s
        if not limit:
            return
        for conn in list(self._connections):
            if now - conn.slot.last_request > limit and not conn.transport.is_closing():
                log.debug("closing idle connection from %s", conn.peer)
                self.counters.idle_closed += 1
                self._drop(conn)

    def _close_overdue(self, now: float) -> None:
        slots = [c.slot for c in self._connections]
        for conn in overdue(slots, now, self.settings.frame_timeout_s):
            log.debug("closing connection from %s: a frame begun %.1f s ago is not "
                      "complete", conn.peer, self.settings.frame_timeout_s)
            self.counters.frame_timeouts += 1
            self._drop(conn)

    def _drop(self, conn: _Connection) -> None:
        """Close a connection and free its slot now (connection_lost comes later)."""
        self._connections.discard(conn)
        conn.transport.abort()

    # ------------------------------------------------------ connection bookkeeping ----

    def _admit(self, conn: _Connection) -> bool:
        """Admit a connection from an allowed source, always; making room waits
        ``GRACE_S`` so that a client whose request is already on its way is judged by it
        (a burst past the hard cap is trimmed at once)."""
        s = self.settings
        if not self._sources.allows(conn.slot.source):
            self.counters.refused += 1
            log.debug("Modbus-TCP connection from %s refused: not in allowed_sources",
                      conn.peer)
            return False
        self._connections.add(conn)
        self.counters.accepted += 1
        per_source = sum(1 for c in self._connections if c.slot.source == conn.slot.source)
        if (len(self._connections) > s.max_connections * HARD_CAP_FACTOR
                or per_source > s.max_connections_per_source * HARD_CAP_FACTOR):
            self._evict(surplus((c.slot for c in self._connections),
                                max_connections=s.max_connections * HARD_CAP_FACTOR,
                                max_per_source=s.max_connections_per_source * HARD_CAP_FACTOR,
                                keep=(conn,)))
        if self._trim_pending is None and (len(self._connections) > s.max_connections
                                           or per_source > s.max_connections_per_source):
            self._trim_pending = asyncio.get_running_loop().call_later(GRACE_S, self._trim)
        return True

    def _trim(self) -> None:
        """Close the longest-idle connections until the limits hold again; a connection
        still in its grace period is not judged yet (the trim comes back for it)."""
        self._trim_pending = None
        s = self.settings
        loop = asyncio.get_running_loop()
        now = loop.time()
        new = [c for c in self._connections if c.slot.new(now)]
        self._evict(surplus((c.slot for c in self._connections),
                            max_connections=s.max_connections,
                            max_per_source=s.max_connections_per_source, keep=new))
        if new and self._over_limits():
            first = min(c.slot.connected_at for c in new)
            self._trim_pending = loop.call_at(first + GRACE_S, self._trim)

    def _over_limits(self) -> bool:
        s = self.settings
        if len(self._connections) > s.max_connections:
            return True
        per_source: dict[str, int] = {}
        for c in self._connections:
            per_source[c.slot.source] = per_source.get(c.slot.source, 0) + 1
        return max(per_source.values(), default=0) > s.max_connections_per_source

    def _evict(self, victims: list[_Connection]) -> None:
        s = self.settings
        if victims and not self._evicting:
            self._evicting = True
            log.warning("Modbus-TCP connections over their limit (%d in all, %d per "
                        "source): closing the longest-idle ones", s.max_connections,
                        s.max_connections_per_source)
        elif not victims and self._evicting and len(self._connections) < s.max_connections // 2:
            self._evicting = False
            log.info("Modbus-TCP connections well below the limit again")
        for victim in victims:
            log.debug("closing the longest-idle connection, from %s", victim.peer)
            self.counters.evicted += 1
            self._drop(victim)

    def _forget(self, conn: _Connection) -> None:
        self._connections.discard(conn)


class _Connection(asyncio.Protocol):
    """One client: bytes in, bytes out through a :class:`Session`."""

    def __init__(self, server: ModbusTcpServer) -> None:
        self.server = server
        self.session = Session(
            server.tables,
            answer_unknown_units=server.settings.unknown_unit_ids is UnknownUnits.EXCEPTION,
            counters=server.counters)
        self.transport: asyncio.Transport
        self.peer: object = None
        self._writing_paused = False
        self._loop = asyncio.get_running_loop()
        self.slot: Slot[_Connection] = Slot(self, "", self._loop.time())

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.peer = transport.get_extra_info("peername")
        source = self.peer[0] if isinstance(self.peer, tuple) and self.peer else ""
        now = self._loop.time()
        self.slot = Slot(self, str(source), now, connected_at=now)
        if not self.server._admit(self):
            transport.abort()
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        log.debug("Modbus-TCP connection from %s", self.peer)

    def data_received(self, data: bytes) -> None:
        if self.slot.frame_started is None and data:
            self.slot.frame_started = self._loop.time()
        self._answer(data)

    def _note_progress(self, requests_before: int) -> None:
        """After answering: a completed request renews the slot; what is left is an
        incomplete frame (its deadline runs) unless complete frames wait for the client to
        read its answers (then the client, not a trickle, is the holdup)."""
        slot = self.slot
        if self.session.counters.requests != requests_before:
            slot.last_request = self._loop.time()
            slot.frame_started = slot.last_request if self.session.pending else None
        if self.session.backlog:
            slot.frame_started = None

    def _answer(self, data: bytes) -> None:
        """Answer what has arrived, a bounded amount at a time: while the client does not
        read its answers, its further requests wait (in the session, then in the kernel)."""
        before = self.session.counters.requests
        try:
            self._answer_all(data)
        finally:
            self._note_progress(before)

    def _answer_all(self, data: bytes) -> None:
        while True:
            out, broken = self.session.feed(data, max_output=MAX_OUTPUT_PER_READ)
            data = b""
            if out:
                self.transport.write(out)
            if broken:
                log.debug("closing connection from %s: not a Modbus/TCP frame", self.peer)
                self.transport.close()
                return
            if not self.session.backlog or self._writing_paused or self.transport.is_closing():
                return

    def eof_received(self) -> bool:
        return False  # close our side too

    def pause_writing(self) -> None:
        self._writing_paused = True
        self.transport.pause_reading()  # a client that does not read gets no more answers

    def resume_writing(self) -> None:
        self._writing_paused = False
        self.transport.resume_reading()
        if self.session.backlog:
            self._answer(b"")

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._forget(self)
