"""pysnmp glue for SNMPv3: USM (each user's HMAC-SHA and AES, :mod:`usm`) around the
agent's responder.

Imported only when v3 users are configured. pysnmp's engine owns the agent's UDP
socket (:class:`Transport` is its asyncio transport): SNMPv2c datagrams are answered
by the agent's fast path before pysnmp sees them; SNMPv3 messages go through pysnmp's
message processing and USM (authentication, decryption, engine discovery and time
window reports), and the decrypted PDU comes to :class:`Responder`, which answers it
from the same OID table with the same RFC 3416 procedures. pysnmp's own command
responders and its VACM are not used: every v3 user gets the agent's one read-only
view, at securityLevel authPriv only. The engine is handed the agent as an
:class:`~plugins.snmp_agent.endpoint.Service` and never imports the agent's module.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity import config, engine
from pysnmp.proto import error as proto_error
from pysnmp.proto import rfc1902, rfc1905
from pysnmp.proto.api import v2c

from plugins.snmp_agent import ber
from plugins.snmp_agent.endpoint import FORWARD, Service
from plugins.snmp_agent.oid_map import USM_COUNTERS, Syntax
from plugins.snmp_agent.usm import add_user

if TYPE_CHECKING:
    from plugins.snmp_agent.settings import SnmpAgentSettings

log = logging.getLogger(__name__)

try:  # pysnmp needs `cryptography` for AES; without it every authPriv request fails
    from cryptography.hazmat.primitives.ciphers import algorithms as _aes_check  # noqa: F401
except ImportError:  # pragma: no cover - depends on the installation
    _HAVE_CRYPTOGRAPHY = False
else:
    _HAVE_CRYPTOGRAPHY = True


class CryptographyMissingError(RuntimeError):
    """SNMPv3 privacy (AES) needs the ``cryptography`` package."""


_PDU_TAGS = {
    rfc1905.GetRequestPDU.tagSet: ber.GET_REQUEST,
    rfc1905.GetNextRequestPDU.tagSet: ber.GET_NEXT_REQUEST,
    rfc1905.GetBulkRequestPDU.tagSet: ber.GET_BULK_REQUEST,
    rfc1905.SetRequestPDU.tagSet: ber.SET_REQUEST,
}
#: our syntaxes as pysnmp value types (the v3 responder and the informs share it)
VALUE_TYPES = {
    Syntax.INTEGER: rfc1902.Integer32,
    Syntax.OCTET_STRING: rfc1902.OctetString,
    Syntax.OBJECT_IDENTIFIER: rfc1902.ObjectName,
    Syntax.COUNTER32: rfc1902.Counter32,
    Syntax.GAUGE32: rfc1902.Gauge32,
    Syntax.TIMETICKS: rfc1902.TimeTicks,
}
_EXCEPTIONS = {
    ber.NO_SUCH_OBJECT: rfc1905.noSuchObject,
    ber.NO_SUCH_INSTANCE: rfc1905.noSuchInstance,
    ber.END_OF_MIB_VIEW: rfc1905.endOfMibView,
}
_USM_AUTH_PRIV = 3
_USM = 3
_HEADER_SLACK = 48  # the most an SNMPv3 message adds around its security parameters


class Transport(udp.UdpAsyncioTransport):
    """pysnmp's UDP transport with the agent's fast path in front."""

    def __init__(self, service: Service, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop=loop)
        self._service = service

    def datagram_received(self, datagram: bytes, transportAddress: Any) -> None:  # noqa: N803
        reply = self._service.handle_datagram(datagram, transportAddress[0])
        if reply is FORWARD:
            super().datagram_received(datagram, transportAddress)
        elif isinstance(reply, bytes) and self.transport is not None:
            self.transport.sendto(reply, transportAddress)


class Responder:
    """Answers decrypted SNMPv3 PDUs from the agent's table (RFC 3413 command responder)."""

    def __init__(self, snmp_engine: engine.SnmpEngine, service: Service, engine_id: bytes,
                 max_message_size: int) -> None:
        self._service = service
        self._engine_id = engine_id
        self._max_size = max_message_size
        snmp_engine.message_dispatcher.register_context_engine_id(
            rfc1902.OctetString(engine_id), tuple(_PDU_TAGS), self.process_pdu)

    def process_pdu(self, snmpEngine, messageProcessingModel, securityModel,  # noqa: N803
                    securityName, securityLevel, contextEngineId, contextName,  # noqa: N803
                    pduVersion, PDU, maxSizeResponseScopedPDU, stateReference):  # noqa: N803
        """pysnmp's application callback for one confirmed-class PDU."""
        status: dict[str, Any] = {}
        pdu = v2c.apiPDU.get_response(PDU)
        try:
            request_varbinds = v2c.apiPDU.get_varbinds(PDU)
            if securityModel != _USM or securityLevel != _USM_AUTH_PRIV:
                v2c.apiPDU.set_error_status(pdu, ber.AUTHORIZATION_ERROR)
                v2c.apiPDU.set_error_index(pdu, 1 if request_varbinds else 0)
                v2c.apiPDU.set_varbinds(pdu, request_varbinds)
            elif bytes(contextName):
                (unknown,) = snmpEngine.get_mib_builder().import_symbols(
                    "__SNMP-TARGET-MIB", "snmpUnknownContexts")
                unknown.syntax += 1
                status = {"oid": unknown.name, "val": unknown.syntax}
                pdu = PDU  # the report answers the request itself (RFC 3412 7.1.3)
            else:
                self._answer(snmpEngine, PDU, pdu, request_varbinds, contextEngineId,
                             contextName, maxSizeResponseScopedPDU)
        except Exception:  # a bug: answer genErr rather than go silent
            self._service.counters.internal_errors += 1
            log.exception("snmp_agent: SNMPv3 request failed; answering genErr")
            v2c.apiPDU.set_error_status(pdu, ber.GEN_ERR)
            v2c.apiPDU.set_error_index(pdu, 1)
            v2c.apiPDU.set_varbinds(pdu, v2c.apiPDU.get_varbinds(PDU))
        try:
            snmpEngine.message_dispatcher.return_response_pdu(
                snmpEngine, messageProcessingModel, securityModel, securityName,
                securityLevel, contextEngineId, contextName, pduVersion, pdu,
                maxSizeResponseScopedPDU, stateReference, status)
        except proto_error.StatusInformation as exc:
            self._service.counters.silent_drops += 1
            log.debug("snmp_agent: SNMPv3 response dropped: %s", exc)

    def _budget(self, snmp_engine: engine.SnmpEngine, max_scoped: int, context_engine_id: Any,
                context_name: Any, request_id: int) -> int:
        """Room for the varbinds: the scoped PDU limit of RFC 3412/3414 (the manager's
        msgMaxSize and ours, less the security parameters) minus the scoped PDU's
        other fields."""
        ctx = snmp_engine.observer.get_execution_context("rfc3412.receiveMessage:request")
        header = ber.decode_v3_header(ctx["wholeMsg"])
        limit = min(int(max_scoped),
                    self._max_size - header.security_parameters_length - _HEADER_SLACK)
        overhead = (4 + 4 + len(bytes(context_engine_id)) + 4 + len(bytes(context_name))
                    + 4 + len(ber.encode_integer(request_id)) + 3 + 6 + 4)
        return limit - overhead

    def _answer(self, snmp_engine: engine.SnmpEngine, request: Any, pdu: Any,
                request_varbinds: list, context_engine_id: Any, context_name: Any,
                max_scoped: int) -> None:
        pdu_type = _PDU_TAGS[request.tagSet]
        oids = [tuple(name) for name, _ in request_varbinds]
        if pdu_type == ber.GET_BULK_REQUEST:
            non_repeaters = int(v2c.apiBulkPDU.get_non_repeaters(request))
            max_repetitions = int(v2c.apiBulkPDU.get_max_repetitions(request))
        else:
            non_repeaters = max_repetitions = 0
        budget = self._budget(snmp_engine, max_scoped, context_engine_id, context_name,
                              int(v2c.apiPDU.get_request_id(request)))
        table, outcome = self._service.process(pdu_type, oids, non_repeaters, max_repetitions,
                                             budget)
        if outcome.items is None:
            varbinds = request_varbinds
        else:
            varbinds = []
            for item in outcome.items:
                if isinstance(item, int):
                    v = table.variable(item)
                    varbinds.append((rfc1902.ObjectName(v.oid), VALUE_TYPES[v.syntax](v.value)))
                else:
                    varbinds.append((rfc1902.ObjectName(item[0]), _EXCEPTIONS[item[1]]))
        v2c.apiPDU.set_error_status(pdu, outcome.error_status)
        v2c.apiPDU.set_error_index(pdu, outcome.error_index)
        v2c.apiPDU.set_varbinds(pdu, varbinds)


class V3Engine:
    """A pysnmp engine with a fixed engine ID and boots, the v3 users, and the agent's
    responder; its :attr:`protocol` is the agent's UDP endpoint."""

    def __init__(self, service: Service, settings: SnmpAgentSettings, *, engine_id: bytes,
                 boots: int, loop: asyncio.AbstractEventLoop) -> None:
        if not _HAVE_CRYPTOGRAPHY:
            raise CryptographyMissingError(
                "snmp_agent: v3_users need the Python package 'cryptography' for AES "
                "privacy; install it or remove v3_users")
        self.engine = engine.SnmpEngine(maxMessageSize=settings.max_message_size)
        builder = self.engine.get_mib_builder()
        # Set the engine ID in the MIB rather than through SnmpEngine(snmpEngineID=...),
        # which would also keep a boots file of its own under the system temp directory.
        (id_obj, boots_obj) = builder.import_symbols(
            "__SNMP-FRAMEWORK-MIB", "snmpEngineID", "snmpEngineBoots")
        id_obj.syntax = id_obj.syntax.clone(engine_id)
        self.engine.snmpEngineID = id_obj.syntax
        boots_obj.syntax = boots_obj.syntax.clone(boots)
        for user in settings.v3_users:  # keys localized here, once, to our engine ID
            add_user(self.engine, user.name,
                     auth_protocol=user.auth_protocol, auth_key=user.auth_key.get_secret_value(),
                     priv_protocol=user.priv_protocol, priv_key=user.priv_key.get_secret_value())
        self.protocol = Transport(service, loop)
        config.add_transport(self.engine, udp.DOMAIN_NAME, self.protocol)
        self.responder = Responder(self.engine, service, engine_id, settings.max_message_size)

    def counters(self) -> dict[str, int]:
        """What pysnmp counted itself (parse errors inside v3 messages, dropped replies)."""
        parse, drops = self.engine.get_mib_builder().import_symbols(
            "__SNMPv2-MIB", "snmpInASNParseErrs", "snmpSilentDrops")
        return {"in_asn_parse_errs": int(parse.syntax), "silent_drops": int(drops.syntax)}

    def usm_counters(self) -> dict[str, int]:
        """pysnmp's usmStats counters, by the keys of :data:`oid_map.USM_COUNTERS`."""
        names = {key: obj.name for key, obj in USM_COUNTERS.items()}
        symbols = self.engine.get_mib_builder().import_symbols(
            "__SNMP-USER-BASED-SM-MIB", *names.values())
        return {key: int(sym.syntax) for key, sym in zip(names, symbols)}

    def close(self) -> None:
        dispatcher = self.engine.transport_dispatcher
        if dispatcher is not None:
            dispatcher.close_dispatcher()
