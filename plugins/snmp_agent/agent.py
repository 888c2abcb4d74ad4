"""The SNMP agent component: one UDP socket serving the hub's latest snapshot.

Requests never wait on the RS485 bus: they are answered from an OID table built from
``hub.latest`` (rebuilt when a new snapshot arrives and once a second, for the age
columns) with every varbind encoded once.

* SNMPv2c GET/GETNEXT/GETBULK/SET take a fast path: :mod:`ber` decodes the message,
  :mod:`responder` applies RFC 3416, and the reply is joined from precomputed bytes.
* SNMPv3 messages take a fast path too: :mod:`v3_engine` applies USM (RFC 3414: each
  user's HMAC-SHA and AES, through the ``cryptography`` package) over the same BER codec
  and hands the PDU to the same responder. pysnmp is imported only for v3 informs.
* Malformed or truncated messages are dropped and counted (snmpInASNParseErrs), wrong
  communities too (snmpInBadCommunityNames); the agent keeps answering.
* ``allowed_sources`` of the community and of each v3 user: a request from elsewhere is
  dropped unanswered and counted (``refused_sources``; for v2c also
  snmpInBadCommunityNames, as snmpd counts a community used from a source it is not
  valid from).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway import __version__
from gateway.access import AccessList
from gateway.health import Figure
from gateway.hub import Hub
from plugins.snmp_agent import ber, oid_map
from plugins.snmp_agent.endpoint import AgentCounters
from plugins.snmp_agent.notifier import Notifier
from plugins.snmp_agent.oid_map import BankOptions, EngineInfo, Syntax, SystemInfo, Variable
from plugins.snmp_agent.responder import Outcome, Table, respond
from plugins.snmp_agent.settings import SnmpAgentSettings
from plugins.snmp_agent.standard_mibs import SERVED_OBJECT_OIDS, StandardViews
from plugins.snmp_agent.table_keeper import TableKeeper

if TYPE_CHECKING:
    from gateway.app import GatewayContext
    from gateway.model import BankSnapshot

log = logging.getLogger(__name__)

STATE_FILE = "snmp_agent_engine.json"
_BOOTS_MAX = 2**31 - 1
_BOOTS_EPOCH = 1_577_836_800  # 2020-01-01T00:00:00Z
#: the table task lets the event loop run requests after this much work
SLICE_S = 0.0005
#: the longest a notification waits for the table that shows what it announces
SERVED_WAIT_S = 1.0
REQUEST_PDUS = frozenset((ber.GET_REQUEST, ber.GET_NEXT_REQUEST, ber.GET_BULK_REQUEST,
                          ber.SET_REQUEST))


# ------------------------------------------------------------- engine identity -------


def derive_engine_id(seed: str) -> bytes:
    """An RFC 3411 snmpEngineID: our enterprise number with the high bit set, format
    5 (octets, administratively assigned), then 12 octets of SHA-256 of ``seed``."""
    return ((0x80000000 | oid_map.PEN).to_bytes(4, "big") + b"\x05"
            + hashlib.sha256(seed.encode()).digest()[:12])


def engine_identity(settings: SnmpAgentSettings, *, state_dir: Path | None, seed: str,
                    wall_time: float) -> tuple[bytes, int]:
    """(snmpEngineID, snmpEngineBoots) for this start.

    The engine ID is ``settings.engine_id``, else the one kept in the state file, else
    derived from ``seed`` (host and gateway name). snmpEngineBoots is kept in the
    state file and incremented at every start (reset to 1 when the engine ID changes);
    without a state directory it is the number of seconds since 2020, which also grows
    from one start to the next.
    """
    configured = bytes.fromhex(settings.engine_id) if settings.engine_id else None
    if state_dir is None:
        boots = min(max(1, int(wall_time) - _BOOTS_EPOCH), _BOOTS_MAX)
        return configured or derive_engine_id(seed), boots
    path = state_dir / STATE_FILE
    stored_id: bytes | None = None
    boots = 0
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        stored_id = bytes.fromhex(state["engine_id"])
        boots = int(state["boots"])
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("snmp_agent: ignoring unreadable %s (%s); starting a new engine", path,
                    exc)
    engine_id = configured or stored_id or derive_engine_id(seed)
    boots = min(boots + 1, _BOOTS_MAX) if engine_id == stored_id else 1
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"engine_id": engine_id.hex(), "boots": boots}), encoding="utf-8")
    os.replace(tmp, path)
    return engine_id, boots


def battery_thresholds_known(context: GatewayContext) -> bool:
    """Whether the alarm engine runs the bank_voltage_low and bank_voltage_eod rules that
    upsBatteryStatus follows: read from the alarms plugin's config section data (its
    code is not imported)."""
    alarms = context.config.sections.get("alarms")
    return alarms is not None and all(
        getattr(getattr(alarms, kind, None), "enabled", False)
        for kind in ("bank_voltage_low", "bank_voltage_eod"))


# ------------------------------------------------------------------ the agent --------


class _Protocol(asyncio.DatagramProtocol):
    """The agent's UDP endpoint."""

    def __init__(self, agent: SnmpAgent) -> None:
        self._agent = agent
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = self._agent.handle_datagram(data, addr[0])
        if isinstance(reply, bytes) and self.transport is not None:
            self.transport.sendto(reply, addr)


class SnmpAgent:
    """The ``snmp_agent`` component (role north)."""

    name = "snmp_agent"

    def __init__(self, settings: SnmpAgentSettings, hub: Hub, *,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time,
                 state_dir: Path | None = None, gateway_name: str = "bms-gateway",
                 software_version: str = __version__,
                 battery_thresholds_known: bool = False) -> None:
        self._hub = hub
        self._clock = clock
        self._wall_clock = wall_clock
        self._state_dir = state_dir
        self._gateway_name = gateway_name
        self._version = software_version
        self.counters = AgentCounters()
        self.started_at = clock()
        self.address: tuple[str, int] | None = None  #: where it listens, once running
        self.engine_id: bytes | None = None
        self.engine_boots: int | None = None
        self.ready = asyncio.Event()
        self._v3: Any = None
        self._table_key: tuple[int, int] | None = None
        self._table_until = float("inf")  #: when a served status next turns stale by age
        self._keeping = False  #: the table task runs (requests take the table as kept)
        self._module_rows = oid_map.ModuleRowsCache()
        self._generation = 0
        self._bus_numbers: dict[str, int] = {}
        self._standard = StandardViews(software_version=software_version,
                                       thresholds_known=battery_thresholds_known)
        self._live = {
            oid_map.UPTIME_OIDS[0]: lambda: self._uptime(oid_map.UPTIME_OIDS[0]),
            oid_map.UPTIME_OIDS[1]: lambda: self._uptime(oid_map.UPTIME_OIDS[1]),
            **{oid: self._counter_fn(oid, key) for oid, key in oid_map.SNMP_COUNTER_OIDS.items()},
            **{oid: self._usm_counter_fn(oid, key) for oid, key in oid_map.USM_COUNTER_OIDS.items()},
            oid_map.SNMP_ENGINE_TIME_OID: lambda: Variable(
                oid_map.SNMP_ENGINE_TIME_OID, Syntax.INTEGER, self.engine_time()),
            **{oid: self._notification_fn(oid, i)
               for i, oid in enumerate(oid_map.NOTIFICATION_COUNT_OIDS)},
        }
        self._keeper = TableKeeper(live=self._live, clock=self._clock,
                                   objects=SERVED_OBJECT_OIDS)
        #: traps and informs; sysUpTime in them is this agent's
        self.notifier = Notifier(
            settings.notifications, hub, clock=clock,
            uptime_ticks=lambda: oid_map.uptime_ticks(self._clock(), self.started_at),
            engine_seed=f"{socket.gethostname()}/{gateway_name}/{settings.port}")
        self._served_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self.notifier.wait_served = self.served
        self.apply(settings)
        self._listen = (settings.listen_address, settings.port)
        self._users = settings.v3_users

    @classmethod
    def from_context(cls, context: GatewayContext) -> SnmpAgent:
        return cls(context.section("snmp_agent"), context.hub, clock=context.clock,
                   wall_clock=context.wall_clock, state_dir=context.state_dir,
                   gateway_name=context.config.core.name,
                   battery_thresholds_known=battery_thresholds_known(context))

    def apply(self, settings: SnmpAgentSettings) -> None:
        """Take the settings that apply live (SIGHUP): communities, system group, sizes,
        notification receivers, heartbeat and rate limit. Listen address, port, v3 users
        and engine ID need a restart."""
        self.settings = settings
        self.notifier.apply(settings.notifications)
        self._v2c_enabled = settings.v2c.enabled
        self._community = settings.v2c.community.get_secret_value().encode()
        self._v2c_sources = AccessList(settings.v2c.allowed_sources)
        #: v3 users' access lists, by user name; users are fixed until a restart
        self._user_sources = {u.name.encode(): AccessList(u.allowed_sources)
                              for u in settings.v3_users if u.allowed_sources is not None}
        self._max_size = settings.max_message_size
        sysname = settings.system.name or self._gateway_name
        self._system = SystemInfo(
            descr=settings.system.description
            or f"bms-gateway {self._version}: RS485 gateway for a 48 V LiFePO4 battery bank",
            name=sysname, location=settings.system.location, contact=settings.system.contact)
        self._options = BankOptions(software_version=self._version, started_at=self.started_at,
                                    serve_stale=settings.serve_stale)
        pins = settings.bus_numbers  # pinned numbers win over numbers given before
        kept = {name: n for name, n in self._bus_numbers.items()
                if name not in pins and n not in pins.values()}
        self._bus_numbers = {**kept, **pins}
        self._generation += 1

    # -------------------------------------------------------------- the table -------

    def _uptime(self, oid: tuple[int, ...]) -> Variable:
        return Variable(oid, Syntax.TIMETICKS, oid_map.uptime_ticks(self._clock(), self.started_at))

    def _counter_fn(self, oid: tuple[int, ...], key: str) -> Callable[[], Variable]:
        def current() -> Variable:
            return Variable(oid, Syntax.COUNTER32, self.counter_values()[key] % 2**32)
        return current

    def _notification_fn(self, oid: tuple[int, ...], i: int) -> Callable[[], Variable]:
        def current() -> Variable:
            return Variable(oid, Syntax.COUNTER32, self.notifier.delivery_counts()[i] % 2**32)
        return current

    def _usm_counter_fn(self, oid: tuple[int, ...], key: str) -> Callable[[], Variable]:
        def current() -> Variable:
            return Variable(oid, Syntax.COUNTER32, self.usm_counter_values()[key] % 2**32)
        return current

    def usm_counter_values(self) -> dict[str, int]:
        """The usmStats counters (all 0 without v3 users)."""
        values = dict.fromkeys(oid_map.USM_COUNTERS, 0)
        if self._v3 is not None:
            values.update(self._v3.usm_counters())
        return values

    def engine_time(self) -> int:
        """snmpEngineTime: seconds since this start (snmpEngineBoots counts the starts)."""
        return min(max(0, int(self._clock() - self.started_at)), 2**31 - 1)

    def engine_info(self) -> EngineInfo | None:
        if self.engine_id is None or self.engine_boots is None:
            return None
        return EngineInfo(engine_id=self.engine_id, boots=self.engine_boots,
                          time_s=self.engine_time(), max_message_size=self._max_size,
                          usm=self.usm_counter_values())

    def health_figures(self) -> list[Figure]:
        """The agent's and the notifier's counters, for the gateway's health."""
        out = [Figure(name=f"snmp_{k}_total", value=v, kind="counter",
                      help=f"SNMP agent: {k.replace('_', ' ')} (the snmp group's counter)")
               for k, v in self.counter_values().items()]
        c = self.counters
        out.append(Figure(name="snmp_unexpected_pdus_total", value=c.unexpected_pdus,
                          kind="counter", help="SNMP agent: responses, traps, informs and "
                          "reports sent to the agent"))
        out.append(Figure(name="snmp_internal_errors_total", value=c.internal_errors,
                          kind="counter", help="SNMP agent: requests answered genErr "
                          "because of a bug"))
        out.append(Figure(name="snmp_refused_sources_total", value=c.refused_sources,
                          kind="counter", help="SNMP agent: requests dropped because the "
                          "source is not in the community's or v3 user's allowed_sources"))
        # Prometheus naming: no abbreviated units ("sec" reads as seconds to promtool)
        out.extend(Figure(name=f"snmp_usm_{k.replace('_sec_', '_security_')}_total", value=v,
                          kind="counter",
                          help=f"SNMP agent: usmStats {k.replace('_', ' ')} (RFC 3414)")
                   for k, v in self.usm_counter_values().items())
        v3 = self._v3.counters if self._v3 is not None else {}
        for key, text in (("invalid_msgs", "SNMPv3 messages of another security model or "
                           "with priv but no auth (snmpUnknownSecurityModels, "
                           "snmpInvalidMsgs)"),
                          ("unknown_contexts", "SNMPv3 requests for a context other than "
                           "the default (snmpUnknownContexts)"),
                          ("unknown_pdu_handlers", "SNMPv3 requests for another "
                           "contextEngineID (snmpUnknownPDUHandlers)")):
            out.append(Figure(name=f"snmp_v3_{key}_total", value=v3.get(key, 0),
                              kind="counter", help=f"SNMP agent: {text}"))
        n = self.notifier.counters
        for key, text in (("events", "alarm events read from the hub"),
                          ("rate_limited", "alarm notifications dropped by the rate limit"),
                          ("traps_sent", "v2c traps sent (one per receiver)"),
                          ("informs_acknowledged", "informs acknowledged"),
                          ("informs_unacknowledged", "inform attempts not acknowledged"),
                          ("informs_dropped", "informs dropped from a full queue"),
                          ("heartbeats", "heartbeat notifications sent")):
            out.append(Figure(name=f"snmp_notifier_{key}_total", value=getattr(n, key),
                              kind="counter", help=f"SNMP notifier: {text}"))
        return out

    def counter_values(self) -> dict[str, int]:
        """The snmp group counters."""
        c = self.counters
        return {k: getattr(c, k) for k in oid_map.SNMP_COUNTERS}

    def table(self) -> Table:
        """The table for now: brought up to date on a new snapshot, new settings, or when
        a served module's data turns stale by age (ages themselves are read per request).
        While the agent runs, its own task does this as each snapshot arrives
        (:meth:`_keep_table`) and requests are answered from the table as kept."""
        due = self._due()
        if due is not None:
            snap, now, key = due
            chunks = self._parts(snap, now)
            self._apply([p for chunk in chunks for p in chunk], key, snap, now)
        assert self._keeper.table is not None
        return self._keeper.table

    def _due(self) -> tuple[BankSnapshot | None, float, tuple[int, int]] | None:
        """(snapshot, now, key) when the table must be brought up to date, else None."""
        snap = self._hub.latest
        now = self._clock()
        key = (snap.seq if snap is not None else -1, self._generation)
        if key != self._table_key or now > self._table_until or self._keeper.table is None:
            return snap, now, key
        return None

    def _parts(self, snap: BankSnapshot | None, now: float) -> Iterator[list[oid_map.Part]]:
        """The table's parts for ``snap`` at ``now``, in chunks: the system group, the
        standard views' head and one chunk per module, the BMS scalars and one chunk per
        module row, the engine group (pure until applied; only caches move on)."""
        if snap is not None:
            self._bus_numbers = oid_map.assign_bus_numbers(self._bus_numbers, snap)
        yield [("system", oid_map.make_system_variables(
            self._system, now=now, started_at=self._options.started_at,
            counters=self.counter_values()))]
        yield from self._standard.iter_parts(snap, now=now, started_at=self.started_at,
                                             bus_numbers=self._bus_numbers,
                                             gateway_name=self._system.name)
        yield from oid_map.iter_bank_parts(
            snap, now=now, bus_numbers=self._bus_numbers, options=self._options,
            notifications=self.notifier.delivery_counts(), modules=self._module_rows)
        engine = self.engine_info()
        if engine is not None:
            yield [("engine", oid_map.make_engine_variables(engine))]

    def _apply(self, parts: list[oid_map.Part], key: tuple[int, int],
               snap: BankSnapshot | None, now: float) -> None:
        self._keeper.update(parts)
        self._table_key = key
        self._table_until = oid_map.stale_by_age_at(snap, now)
        self._note_served()

    def _note_served(self) -> None:
        seq = self._table_key[0] if self._table_key is not None else -1
        for at, waiter in self._served_waiters:
            if seq >= at and not waiter.done():
                waiter.set_result(None)

    async def served(self, seq: int, timeout_s: float = SERVED_WAIT_S) -> None:
        """Until the table serves snapshot ``seq`` (or a newer one), at most
        ``timeout_s``: the notifier sends an alarm's trap once its row is served."""
        if not self._keeping or (self._table_key is not None and self._table_key[0] >= seq):
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (seq, waiter)
        self._served_waiters.append(entry)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await waiter
        finally:
            self._served_waiters.remove(entry)

    async def _keep_table(self) -> None:
        """Bring the table up to date as each snapshot arrives, off the request path, and
        when a module's data turns stale by age. The parts are made a chunk at a time
        with the event loop free in between (requests are answered from the table as it
        was); the table itself changes in one step, so an answer never mixes two
        snapshots."""
        watch = self._hub.watch()
        self._keeping = True
        try:
            while True:
                due = self._due()
                if due is not None:
                    snap, now, key = due
                    version = self._keeper.version
                    parts: list[oid_map.Part] = []
                    sliced_at = time.perf_counter()
                    for chunk in self._parts(snap, now):
                        parts += chunk
                        if time.perf_counter() - sliced_at >= SLICE_S:
                            await asyncio.sleep(0)  # let waiting requests in
                            sliced_at = time.perf_counter()
                    plan = self._keeper.plan(parts)
                    for _ in plan.steps():
                        if time.perf_counter() - sliced_at >= SLICE_S:
                            await asyncio.sleep(0)
                            sliced_at = time.perf_counter()
                    # not if meanwhile a request brought the table up to date, or the
                    # settings changed: then the next round starts again from those
                    if self._keeper.version == version and key[1] == self._generation:
                        self._keeper.commit(plan)
                        self._table_key = key
                        self._table_until = oid_map.stale_by_age_at(snap, now)
                        self._note_served()
                wait = self._table_until - self._clock()
                if wait == float("inf"):
                    await watch.next()
                    continue
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, wait) + 0.001):
                        await watch.next()
        finally:
            self._keeping = False
            watch.close()

    def _serving(self) -> Table:
        """The table a request is answered from: as kept by :meth:`_keep_table` while it
        runs (a snapshot published this instant is in the next answer), else brought up
        to date here. Either way a module whose data has outlived its stale age is never
        served live: past that moment the request brings the table up to date itself."""
        table = self._keeper.table
        if (self._keeping and table is not None and self._clock() <= self._table_until
                and self._table_key is not None and self._table_key[1] == self._generation):
            return table
        return self.table()

    def process(self, pdu_type: int, oids: list[tuple[int, ...]], non_repeaters: int,
                max_repetitions: int, budget: int) -> tuple[Table, Outcome]:
        table = self._serving()
        try:
            outcome = respond(table, pdu_type, oids, non_repeaters=non_repeaters,
                              max_repetitions=max_repetitions, budget=budget)
        except Exception:  # a bug: answer genErr (RFC 3416) rather than go silent
            self.counters.internal_errors += 1
            log.exception("snmp_agent: request failed; answering genErr")
            outcome = Outcome(ber.GEN_ERR, 1 if oids else 0, None)
        return table, outcome

    # -------------------------------------------------------------- datagrams -------

    def handle_datagram(self, data: bytes, source: str) -> bytes | None:
        """The reply to one datagram from the IP address ``source``, or None to drop it."""
        c = self.counters
        c.in_pkts += 1
        try:
            version = ber.decode_version(data)
            if version == ber.VERSION_2C:
                return self._v2c(ber.decode_request(data), source)
            if version == ber.VERSION_3 and self._v3 is not None:
                header = ber.decode_v3_header(data)
                sources = self._user_sources.get(header.user_name)
                if sources is not None and not sources.allows(source):
                    c.refused_sources += 1
                    return None
                return self._v3_reply(data, header)
        except ber.BerError:
            c.in_asn_parse_errs += 1
            return None
        c.in_bad_versions += 1  # v1, v3 without users, or nonsense
        return None

    def _v3_reply(self, data: bytes, header: ber.V3Header) -> bytes | None:
        try:
            return self._v3.handle(data, header)
        except Exception:  # a bug: drop this message, keep the socket serving
            self.counters.internal_errors += 1
            log.exception("snmp_agent: SNMPv3 message failed; dropped")
            return None

    def _v2c(self, req: ber.Request, source: str) -> bytes | None:
        c = self.counters
        if not self._v2c_enabled:
            c.in_bad_versions += 1
            return None
        if not hmac.compare_digest(req.community, self._community):
            c.in_bad_community_names += 1
            return None
        if not self._v2c_sources.allows(source):
            c.in_bad_community_names += 1  # what snmpd counts (docs/snmp.md)
            c.refused_sources += 1
            return None
        if req.pdu_type not in REQUEST_PDUS:
            c.unexpected_pdus += 1
            return None
        if req.pdu_type == ber.SET_REQUEST:
            c.in_bad_community_uses += 1  # a read-only community
        budget = self._max_size - ber.response_overhead(
            req.community, req.request_id_tlv, error_index=len(req.oids))
        table, outcome = self.process(req.pdu_type, req.oids, req.field2, req.field3, budget)
        if outcome.items is None:
            varbinds = b"".join(req.varbinds)
        else:
            varbinds = b"".join([table.item_bytes(it) for it in outcome.items])
        reply = ber.encode_response(ber.VERSION_2C, req.community, req.request_id_tlv,
                                    outcome.error_status, outcome.error_index, varbinds)
        if len(reply) > self._max_size:  # only an echo of a huge request gets here
            reply = ber.encode_response(ber.VERSION_2C, req.community, req.request_id_tlv,
                                        ber.TOO_BIG, 0, b"")
            if len(reply) > self._max_size:
                c.silent_drops += 1
                return None
        return reply

    # ------------------------------------------------------------------ run ---------

    @property
    def listens_on(self) -> str:
        """Where the agent listens, named by the gateway when it cannot."""
        host, port = self._listen
        return f"udp {f'[{host}]' if ':' in str(host) else host}:{port}"

    async def flush(self) -> None:
        """Shutdown: send the notifications still pending (gateway.app bounds it)."""
        await self.notifier.flush()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.started_at = self._clock()  # sysUpTime counts from here, not from first use
        self.apply(self.settings)
        transport: asyncio.BaseTransport | None = None
        try:
            self.engine_id, self.engine_boots = engine_identity(
                self.settings, state_dir=self._state_dir,
                seed=f"{socket.gethostname()}/{self._gateway_name}/{self._listen[1]}",
                wall_time=self._wall_clock())
            self._generation += 1  # the table now has the snmpEngine group
            if self._users:
                from plugins.snmp_agent.v3_engine import V3Engine  # needs cryptography

                self._v3 = V3Engine(self, self.settings, engine_id=self.engine_id,
                                    boots=self.engine_boots, engine_time=self.engine_time)
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Protocol(self), local_addr=self._listen, family=socket.AF_INET)
            self.address = transport.get_extra_info("sockname")[:2]
            log.info("snmp_agent: listening on udp %s:%d (v2c %s, %d v3 user%s)",
                     *self.address, "on" if self._v2c_enabled else "off", len(self._users),
                     "" if len(self._users) == 1 else "s")
            self.ready.set()
            async with asyncio.TaskGroup() as tasks:  # both run until cancelled
                tasks.create_task(self.notifier.run())
                tasks.create_task(self._keep_table())
        finally:
            self.ready.clear()
            self._v3 = None
            if transport is not None:
                transport.close()
