"""The RS485 poller: one owner task per port, strictly one transaction at a time.

Per cycle and per due module: 0x42 (analog) then 0x44 (alarm/status), identity when
first seen and every ``identity_interval_s``; or, in ``master`` mode, the two FF
requests to the group master. With ``addresses: auto`` the addresses where no module is
known are probed at the start and every ``discover_interval_s``. Every outcome updates the module's :class:`~.link.ModuleLink`
and its counters; after each module (not only at the end of a cycle) the bus's part of
the bank is published to the hub, so north plugins see fresh data as soon as it exists:
at once, or, on a fast bus, at most every :data:`PUBLISH_EVERY_S` (the modules polled
in between go out together), so that the processors and the north tables, which do
their work per snapshot, do not take the event loop 40 times a second per bus. The end
of a cycle and every change of the port's state are published at once.

Device trouble never escapes: a timeout, a garbled frame or a dropped port is counted,
logged when a state changes, and retried; the port is reopened with back-off while the
modules' last values are served as stale.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from gateway.hub import Hub
from gateway.model import BusPolling, BusStatus, LinkCounters, LinkState

from plugins.rs485_bms.poller.capture import make_recorder
from plugins.rs485_bms.poller.dialect import Dialect, make_dialect
from plugins.rs485_bms.poller.link import ModuleLink
from plugins.rs485_bms.protocol import (
    MAX_FRAME_BYTES,
    AddressError,
    Answer,
    ChecksumError,
    CidError,
    Frame,
    LengthChecksumError,
    ProtocolError,
    ResponseTimeout,
    RtnError,
    Session,
)
from plugins.rs485_bms.settings import BusSettings, PollMode
from plugins.rs485_bms.poller.transport import SerialTransport, TransportError, redact_url

log = logging.getLogger(__name__)

BITS_PER_BYTE = 10  # 8N1


def wire_time_s(nbytes: int, baud: int) -> float:
    return nbytes * BITS_PER_BYTE / baud


#: per-module publishes of one bus are at least this far apart (a cycle's end is not held)
PUBLISH_EVERY_S = 0.2


@dataclass
class BusState:
    connected: bool = False
    cycles: int = 0
    reconnects: int = 0
    last_cycle_ms: int | None = None
    last_cycle_at: float | None = None
    counters: LinkCounters = field(default_factory=LinkCounters)
    bytes_exchanged_last_cycle: int = 0
    master_fallbacks: int = 0  #: times master mode fell back to polling one by one


class BusPoller:
    """Polls one bus and publishes its modules to the hub."""

    def __init__(self, settings: BusSettings, links: list[ModuleLink], *, hub: Hub,
                 stale_after_s: float, port_url: Callable[[], str] | str | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.links = links
        self.hub = hub
        self.stale_after_s = stale_after_s
        self.clock = clock
        self.dialect: Dialect = make_dialect(settings.family)
        self._port_url = port_url if port_url is not None else settings.port
        self.state = BusState()
        self.name = f"rs485:{settings.name}"
        self.session = Session()
        self._garbage_seen = 0
        self._last_error_kind = ""
        #: the pack count of the master's last answer when it differed from the config
        self._master_report: int | None = None
        self._master_failures = 0  #: master-mode cycles in a row without its answer
        self._fallback = False  #: master mode, polling one by one until the master answers
        self._master_retry_at = 0.0  #: when the master is tried again while falling back
        self._heard = False  #: a valid answer arrived since the port was (re)opened
        #: called with (ADR the bad answer carried or None, error kind) for every bad
        #: answer; ``scan`` uses it to tell a wrong DIP address from a collision
        self.on_error: Callable[[int | None, str], None] | None = None
        self._bytes = 0
        #: with ``addresses: auto``: when the absent addresses are probed next
        self._next_discovery = float("-inf")
        #: the last transaction heard an answer from the address it asked (even an error)
        self._answered = False
        self._foreign_seen = 0  #: requests of another master seen on this port so far
        self._adr0_seen = 0  #: the session's ADR-00 answers already counted
        self._adr0_logged: set[int] = set()  #: addresses whose ADR-00 answers were logged
        #: records the bus's bytes when its settings ask for a capture (docs/polling.md)
        self.recorder = make_recorder(settings)
        self._published_at = float("-inf")
        self._publish_later: asyncio.TimerHandle | None = None
        #: the module whose transactions are under way, and its counters before them
        self._polling: tuple[ModuleLink, LinkCounters] | None = None

    # ------------------------------------------------------------------ publishing --
    @property
    def url(self) -> str:
        url = self._port_url() if callable(self._port_url) else self._port_url
        assert url is not None
        return url

    def bus_status(self) -> BusStatus:
        return BusStatus(
            name=self.settings.name, port=redact_url(self.url), connected=self.state.connected,
            last_cycle_ms=self.state.last_cycle_ms, last_cycle_at=self.state.last_cycle_at,
            cycles=self.state.cycles, reconnects=self.state.reconnects,
            counters=self.state.counters, polling=self.polling,
            master_fallbacks=self.state.master_fallbacks)

    @property
    def polling(self) -> BusPolling:
        """How the bus is polled now (served in the bus status)."""
        if self.settings.mode is not PollMode.MASTER:
            return BusPolling.PER_ADDRESS
        return BusPolling.MASTER_FALLBACK if self._fallback else BusPolling.MASTER

    def publish(self) -> None:
        if self._publish_later is not None:
            self._publish_later.cancel()
            self._publish_later = None
        now = self.clock()
        self._published_at = now
        modules = []
        for link in self.links:
            if not link.present:
                continue
            reading = link.reading(now, stale_after_s=self.stale_after_s,
                                   transport_up=self.state.connected)
            if self._polling is not None and self._polling[0] is link:
                # half polled: its counters moved, its reading not yet; as it was
                reading = replace(reading, counters=self._polling[1])
            modules.append(reading)
        self.hub.update(self.name, modules=modules, buses=[self.bus_status()])

    def _module_polled(self) -> None:
        """Publish after a module: now, or when :data:`PUBLISH_EVERY_S` has passed
        since the last publish (one deferred publish carries every module since). A
        deferred publish that falls in the middle of a module's poll shows that module
        as it was before the poll began (:meth:`publish`)."""
        wait = self._published_at + PUBLISH_EVERY_S - self.clock()
        if wait <= 0:
            self.publish()
        elif self._publish_later is None:
            self._publish_later = asyncio.get_running_loop().call_later(wait, self.publish)

    def _count(self, link: ModuleLink | None, **inc: int) -> None:
        if link is not None:
            link.count(**inc)
        c = self.state.counters
        self.state.counters = replace(c, **{k: getattr(c, k) + v for k, v in inc.items()})

    # ------------------------------------------------------------------ main loop ---
    async def run(self) -> None:
        transport: SerialTransport | None = None
        backoff = 0.5
        last_problem = ""
        self.publish()
        try:
            while True:
                transport = SerialTransport(self.url, baud=self.settings.baud)
                if self.recorder is not None:
                    transport = self.recorder.wrap(transport)
                self._heard = False
                try:
                    await transport.open()
                    # a new byte stream: nothing outstanding, no partial frame carried over
                    self.session = Session()
                    self._garbage_seen = 0
                    self._foreign_seen = 0
                    self._adr0_seen = 0
                    self._next_discovery = float("-inf")  # a new line: probe it again
                    if self.state.cycles or self.state.reconnects:
                        self.state.reconnects += 1
                    log.log(logging.DEBUG if last_problem else logging.INFO,
                            "bus %s: port %s open", self.settings.name, redact_url(self.url))
                    self.state.connected = True
                    while True:
                        started = self.clock()
                        try:
                            await self.cycle(transport)
                        except ValueError as exc:  # a request we cannot build: our bug
                            log.error("bus %s: polling stopped: %s", self.settings.name, exc)
                            self.publish()
                            await asyncio.Event().wait()  # keep serving what we have
                        if last_problem and self._heard:
                            log.info("bus %s: port %s is back", self.settings.name,
                                     redact_url(self.url))
                            last_problem = ""
                        await asyncio.sleep(self._next_cycle_delay(started))
                except TransportError as exc:
                    problem = str(exc)
                    if self._heard:
                        backoff = 0.5  # it worked until now: retry soon
                    if problem != last_problem or self._heard:  # log on change only
                        log.warning("bus %s: %s; modules are served as stale until the port "
                                    "is back (retrying with back-off)", self.settings.name,
                                    problem)
                    last_problem = problem
                    self.state.connected = False
                    self.publish()
                    await transport.close()
                    transport = None
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.settings.reconnect_max_s)
        finally:
            if self._publish_later is not None:  # stopped: nothing goes out after
                self._publish_later.cancel()
                self._publish_later = None
            if transport is not None:
                await transport.close()
            if self.recorder is not None:
                self.recorder.close()

    def _next_cycle_delay(self, started: float) -> float:
        """Start-to-start period; when no module is due (all in back-off), wait for the
        first one that will be, so a zero poll interval never spins."""
        now = self.clock()
        delay = max(0.0, started + self.settings.poll_interval_s - now)
        present = [link for link in self.links if link.present]
        if not present:  # auto, nothing found yet: empty cycles keep the bus status fresh
            return max(delay, min(1.0, max(0.0, self._next_discovery - now)))
        if not any(link.due(now + delay) for link in present):
            wake = min(link.next_try_at for link in present)
            if self.settings.discovering:
                wake = min(wake, self._next_discovery)
            delay = max(delay, wake - now)
        return delay

    async def cycle(self, transport: SerialTransport) -> None:
        started = self.clock()
        self._bytes = 0
        if self.settings.mode is PollMode.MASTER:
            await self._poll_master(transport)
        else:
            await self._poll_each(transport)
            if self.settings.discovering and self.clock() >= self._next_discovery:
                await self._discover(transport)
        now = self.clock()
        self.state.cycles += 1
        self.state.last_cycle_ms = round((now - started) * 1000)
        self.state.last_cycle_at = now
        self.state.bytes_exchanged_last_cycle = self._bytes
        self.publish()
        log.info("bus %s: %s", self.settings.name, self.summary())

    def summary(self) -> str:
        snap = self.hub.latest
        b = snap.bank if snap else None
        states = {}
        for link in self.links:
            if link.present:
                states[link.state.value] = states.get(link.state.value, 0) + 1
        if b is None or b.voltage_mean_mv is None:
            figures = "no live data in the bank"
        else:  # the whole bank's figures (every bus), unknown shown as '-', never 0
            current = "-" if b.current_ma is None else f"{b.current_ma / 1000:+.2f}"
            soc = "-" if b.soc_permille is None else f"{b.soc_permille / 10:.1f}"
            cells = ("-" if b.cell_min_mv is None or b.cell_max_mv is None
                     else f"{b.cell_min_mv}-{b.cell_max_mv}")
            figures = (f"bank {b.voltage_mean_mv / 1000:.2f} V, {current} A, SOC {soc} %, "
                       f"cells {cells} mV")
        live = sum(1 for m in (snap.modules if snap else ())
                   if m.bus == self.settings.name and m.is_live)
        present = sum(1 for link in self.links if link.present)
        return (f"cycle {self.state.cycles} in {self.state.last_cycle_ms} ms; "
                f"{live}/{present} live "
                f"({', '.join(f'{v} {k}' for k, v in sorted(states.items()))}); {figures}")

    # ------------------------------------------------------------- transactions -----
    async def transact(self, transport: SerialTransport, link: ModuleLink | None,
                       request: Frame, *, probe: bool = False) -> Any | None:
        """Send ``request`` (with retries); return its decoded answer, or None.

        Every outcome is counted on the module (``link``) and the bus; a ``probe`` (is
        anyone at this address?) is sent once, and its silence is no timeout. A garbled answer
        ends the attempt at once (the answer was lost; waiting for the timeout would
        only waste bus time); an answer from another address is counted and the request
        stays outstanding; an RTN error ends the transaction (the device did answer).
        """
        s = self.settings
        for _attempt in range(1 + (0 if probe else s.retries)):
            stray = await transport.discard_input()
            if stray:  # bytes outside any transaction belong to the bus, not this module
                self._count(None, garbage_bytes=stray)
            timeout = wire_time_s(len(request.wire), s.baud) + s.effective_timeout_ms / 1000
            sent_at = self.clock()
            # however busy the line, a transaction ends: the longest legal answer after
            # the timeout, plus one byte timeout
            hard_deadline = (sent_at + timeout + wire_time_s(MAX_FRAME_BYTES, s.baud)
                             + s.byte_timeout_ms / 1000)
            wire = self.session.send(request, now=sent_at, timeout_s=timeout)
            await transport.write(wire)
            self._bytes += len(wire)
            answer: Frame | None = None
            final = False
            timed_out = False
            self._answered = False
            while self.session.outstanding is not None:
                wait = (self.session.deadline or 0.0) - self.clock()
                data = (await transport.read_frame(
                    wait, gap_s=s.byte_timeout_ms / 1000,
                    limit_s=hard_deadline - self.clock()) if wait > 0 else b"")
                if data:
                    self._bytes += len(data)
                    # bytes are flowing: a long answer may take longer than the timeout
                    self.session.deadline = min(hard_deadline, max(
                        self.session.deadline or 0.0, self.clock() + s.byte_timeout_ms / 1000))
                    events = self.session.receive(data, now=self.clock())
                else:
                    events = self.session.poll(now=self.clock())
                for ev in events:
                    if not isinstance(ev, ResponseTimeout | AddressError | CidError):
                        self._answered = True  # the answer, an RTN error or a garbled one
                    if isinstance(ev, Answer):
                        answer = ev.frame
                    elif isinstance(ev, ResponseTimeout):
                        if not probe:
                            self._count(link, timeouts=1)
                        timed_out = True
                        log.debug("bus %s: %s: timeout", s.name, _label(request))
                    else:
                        final = self._protocol_error(link, request, ev) or final
                garbage = self.session.counters.garbage_bytes - self._garbage_seen
                if garbage:
                    self._garbage_seen += garbage
                    self._count(link, garbage_bytes=garbage)
                self._note_foreign_requests()
                self._note_adr0_answers(link, request)
                if final and self.session.outstanding is not None:
                    self.session.cancel()
            if timed_out:
                await self._settle(transport)
            await self._gap()
            if answer is not None:
                self._heard = True
                try:
                    decoded = self.dialect.decode(request, answer)
                except ProtocolError as exc:
                    self._protocol_error(link, request, exc)
                    continue
                return decoded
            if final and self._last_error_kind == "rtn":
                return None
        return None

    def _protocol_error(self, link: ModuleLink | None, request: Frame, exc: ProtocolError
                        ) -> bool:
        """Count one bad answer; True if it ends the attempt."""
        self._last_error_kind = exc.kind
        if isinstance(exc, ChecksumError | LengthChecksumError):
            self._count(link, checksum_errors=1)
        elif isinstance(exc, RtnError):
            self._count(link, rtn_errors=1)
        elif isinstance(exc, AddressError) and any(
                link.present and link.address == exc.actual for link in self.links):
            # one of our own modules answering late (after its timeout): bus garbage,
            # not a module answering under the wrong address
            self._count(None, garbage_bytes=len(exc.raw))
        elif isinstance(exc, AddressError | CidError):
            self._count(link, wrong_address=1)
        else:
            self._count(link, format_errors=1)
        log.debug("bus %s: %s: %s: %s", self.settings.name, _label(request), exc,
                  exc.raw.decode("ascii", "replace").strip())
        if self.on_error is not None:
            self.on_error(exc.actual if isinstance(exc, AddressError) else None, exc.kind)
        return not isinstance(exc, AddressError | CidError)

    async def _settle(self, transport: SerialTransport) -> None:
        """After a timeout, wait for a byte timeout of silence and drop what arrives: a
        late answer must not be taken for the answer to the next request."""
        quiet = self.settings.byte_timeout_ms / 1000
        give_up = self.clock() + wire_time_s(MAX_FRAME_BYTES, self.settings.baud) + quiet
        while self.clock() < give_up:
            data = await transport.read(quiet)
            if not data:
                return
            self._bytes += len(data)
            self._count(None, garbage_bytes=len(data))

    async def _gap(self) -> None:
        gap = self.settings.effective_gap_ms / 1000
        if gap:
            await asyncio.sleep(gap)

    async def _poll_module(self, transport: SerialTransport, link: ModuleLink) -> None:
        self._polling = (link, link.counters)
        try:
            await self._poll_module_transactions(transport, link)
        finally:
            self._polling = None

    async def _poll_module_transactions(self, transport: SerialTransport,
                                        link: ModuleLink) -> None:
        adr = link.address
        d = self.dialect
        telemetry = status = None
        analog = await self.transact(transport, link, d.request(d.ANALOG, adr))
        if analog is not None:
            telemetry = d.telemetry(analog)[0]
            self._count(link, **({"frames_ok": 1} if telemetry is not None else {"no_data": 1}))
        if telemetry is not None:
            alarm = analog if d.STATUS is None else await self.transact(
                transport, link, d.request(d.STATUS, adr))
            status = d.bms_status(alarm)[0] if alarm is not None else None
            if alarm is not None and alarm is not analog:
                self._count(link, frames_ok=1)
        if telemetry is None or status is None:
            self._transition(link, link.failed(self.clock()))
            return
        self._transition(link, link.succeeded(self.clock(), telemetry, status))
        if link.identity_due(self.clock(), self.settings.identity_interval_s):
            await self._poll_identity(transport, link)

    def _note_foreign_requests(self) -> None:
        """Warn once per port when another master's requests appear on the line: two
        masters on one half-duplex RS485 line collide (bms-protocol.md 7.2)."""
        seen = self.session.counters.foreign_requests
        if seen and not self._foreign_seen:
            log.warning("bus %s: another master is polling on this line (its requests are "
                        "ignored); two masters on one RS485 line garble each other's "
                        "frames: poll the group master's host port instead, or remove the "
                        "other master", self.settings.name)
        self._foreign_seen = seen

    def _note_adr0_answers(self, link: ModuleLink | None, request: Frame) -> None:
        """Count the answers with ADR 00 the session paired with ``request`` (an RS232
        console port answers so whatever the module's address); log it once per address."""
        seen = self.session.counters.adr0_answers
        if seen == self._adr0_seen:
            return
        self._count(link, adr0_answers=seen - self._adr0_seen)
        self._adr0_seen = seen
        if request.adr not in self._adr0_logged:
            self._adr0_logged.add(request.adr)
            log.info("bus %s adr %d: answers carry ADR 00 (an RS232 console port answers so "
                     "whatever the module's address): each is taken as the answer to the "
                     "request in flight and counted as adr0_answers", self.settings.name,
                     request.adr)

    async def _discover(self, transport: SerialTransport) -> None:
        """``addresses: auto``: ask every address where no module is known for analog
        values, once; a module that answers (even with an error code, or garbled) is
        present from now on (its position is its address's) and is polled at once.
        Absent addresses are probed again ``discover_interval_s`` after a complete
        probe, and at once on a reopened port."""
        d = self.dialect
        for link in self.links:
            if link.present:
                continue
            await self.transact(transport, None, d.request(d.ANALOG, link.address),
                                probe=True)
            if not self._answered:
                continue
            link.present = True
            log.info("bus %s: found a module at address %d (module %d)", self.settings.name,
                     link.address, link.position)
            await self._poll_module(transport, link)
            self._module_polled()
        self._next_discovery = self.clock() + self.settings.discover_interval_s

    async def _poll_identity(self, transport: SerialTransport, link: ModuleLink) -> None:
        identity = None
        for request, merge in self.dialect.identity_requests(link.address):
            decoded = await self.transact(transport, link, request)
            if decoded is not None:
                self._count(link, frames_ok=1)
                identity = merge(identity, decoded)
        # nothing learnt: try again in a few minutes rather than at the full interval
        link.identity_at = self.clock() - (
            0 if identity is not None else max(0.0, self.settings.identity_interval_s - 300))
        if identity is not None and identity != link.identity:
            log.info("bus %s adr %d: %s", self.settings.name, link.address, identity)
            link.identity = identity

    async def _poll_each(self, transport: SerialTransport) -> None:
        """Every present module that is due, at its own address."""
        for link in self.links:
            if link.present and link.due(self.clock()):
                await self._poll_module(transport, link)
                self._module_polled()

    async def _poll_master(self, transport: SerialTransport) -> None:
        """``master`` mode: the FF requests to the group master; after
        ``master_fallback_after`` cycles in a row without its answer, each module at its own
        address, trying the master again every ``master_retry_s``."""
        s = self.settings
        if self._fallback:
            if self.clock() >= self._master_retry_at:
                if await self._poll_through_master(transport, probe=True):
                    self._fallback = False
                    self._master_failures = 0
                    log.warning("bus %s: the master answers again: back to master mode",
                                s.name)
                    return
                self._master_retry_at = self.clock() + s.master_retry_s
            await self._poll_each(transport)
            return
        if await self._poll_through_master(transport):
            self._master_failures = 0
            return
        self._master_failures += 1
        if self._master_failures < s.master_fallback_after:
            return
        self._fallback = True
        self.state.master_fallbacks += 1
        self._master_retry_at = self.clock() + s.master_retry_s
        log.warning("bus %s: the master (address %d) gave no usable answer for %d cycles in "
                    "a row: polling the modules one by one at their own addresses; master "
                    "mode is tried again every %g s", s.name, self._master_address(),
                    self._master_failures, s.master_retry_s)
        await self._poll_each(transport)

    def _master_address(self) -> int:
        return self.dialect.master_address([link.address for link in self.links])

    async def _poll_through_master(self, transport: SerialTransport, *,
                                   probe: bool = False) -> bool:
        """The FF requests to the master; True if it answered both.

        Every block in a full answer updates its module. A short answer (the master
        reports fewer packs than configured: it leaves out the slaves it does not hear
        from) does not say which block is whose, so this cycle polls the modules one by one
        and a silent slave fails on its own. Without an answer every module's poll fails,
        except on a ``probe`` (the one-by-one polls that follow it decide)."""
        d = self.dialect
        master = self._master_address()
        analog = await self.transact(transport, None,
                                     d.request(d.ANALOG, master, all_packs=True), probe=probe)
        alarm = None
        if analog is not None:
            alarm = await self.transact(transport, None,
                                        d.request(d.STATUS, master, all_packs=True),
                                        probe=probe)
        answered = analog is not None and alarm is not None
        if not answered and probe:
            return False
        now = self.clock()
        tels = d.telemetry(analog) if analog is not None else []
        stats = d.bms_status(alarm) if alarm is not None else []
        expected = len(self.links)
        self._count(None, frames_ok=(analog is not None) + (alarm is not None))
        if answered and (len(tels) != expected or len(stats) != expected):
            got = len(tels) if len(tels) != expected else len(stats)
            if max(len(tels), len(stats)) > expected:
                # more packs than configured: which block is whose cannot be known
                if self._master_report != got:
                    log.warning("bus %s: the master reports %d packs, %d are configured; "
                                "no module is updated until they agree", self.settings.name,
                                got, expected)
                self._master_report = got
                self._count(None, format_errors=1)
                for link in self.links:
                    self._transition(link, link.failed(now))
                return True
            if self._master_report != got:
                log.warning("bus %s: the master reports %d of %d packs (it leaves out the "
                            "slaves it does not hear from): polling the modules one by one "
                            "to tell which", self.settings.name, got, expected)
            self._master_report = got
            await self._poll_each(transport)
            return True
        if answered and self._master_report is not None:
            log.info("bus %s: the master reports all %d packs again", self.settings.name,
                     expected)
        if answered:
            self._master_report = None
        for i, link in enumerate(self.links):
            tel = tels[i] if i < len(tels) else None
            st = stats[i] if i < len(stats) else None
            if tel is not None and st is not None:
                link.count(frames_ok=1)
                self._transition(link, link.succeeded(now, tel, st))
                continue
            if analog is not None and i < len(tels) and tel is None:
                link.count(no_data=1)  # an all-zero block
            self._transition(link, link.failed(now))
        return answered

    def _transition(self, link: ModuleLink, before: LinkState) -> None:
        if link.state is not before:
            level = logging.INFO if link.state is LinkState.ONLINE else logging.WARNING
            log.log(level, "bus %s adr %d (module %d): %s -> %s", self.settings.name,
                    link.address, link.position, before.value, link.state.value)


def _label(request: Frame) -> str:
    return f"adr {request.adr} cid2 0x{request.cid2:02X}"
