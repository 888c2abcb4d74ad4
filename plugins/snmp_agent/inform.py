"""pysnmp glue for SNMPv3 informs (authPriv, the receiver's HMAC-SHA and AES, :mod:`usm`).

Imported only when a v3 receiver is configured. Each receiver gets its own pysnmp engine
with a client-mode UDP socket: the receiver is the authoritative engine of an inform, so
pysnmp discovers its engine ID and time window itself, localizes the keys, resends an
unacknowledged inform ``retries`` times ``timeout_s`` apart, and reports the outcome.
The notification originator is configured by hand (target address and parameters, a
notify view over our objects), not through pysnmp's LCD helpers, and the varbinds are
raw OIDs and values: no MIB is loaded or compiled at run time.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity import config, engine
from pysnmp.entity.rfc3413 import ntforg
from pysnmp.proto import rfc1902

from plugins.snmp_agent.notifications import Notification
from plugins.snmp_agent.oid_map import PEN, Syntax
from plugins.snmp_agent.settings import Receiver
from plugins.snmp_agent.usm import add_user

#: our syntaxes as pysnmp value types
VALUE_TYPES = {
    Syntax.INTEGER: rfc1902.Integer32,
    Syntax.OCTET_STRING: rfc1902.OctetString,
    Syntax.OBJECT_IDENTIFIER: rfc1902.ObjectName,
    Syntax.COUNTER32: rfc1902.Counter32,
    Syntax.GAUGE32: rfc1902.Gauge32,
    Syntax.TIMETICKS: rfc1902.TimeTicks,
}

log = logging.getLogger(__name__)

_NOTIFY_VIEW = (1, 3, 6)  #: sysUpTime, snmpTrapOID and our enterprise subtree
_TARGET, _PARAMS, _TAG, _NAME = "receiver", "receiver-params", "receiver-tag", "receiver-notify"


def notify_engine_id(seed: str) -> bytes:
    """A stable RFC 3411 snmpEngineID for the sender (format 5, our PEN)."""
    return ((0x80000000 | PEN).to_bytes(4, "big") + b"\x05"
            + hashlib.sha256(("notify/" + seed).encode()).digest()[:12])


class InformSender:
    """Sends informs to one receiver; :meth:`send` returns True once acknowledged."""

    def __init__(self, receiver: Receiver, *, engine_seed: str) -> None:
        assert receiver.version == "v3"
        assert receiver.user and receiver.auth_key and receiver.priv_key
        self.receiver = receiver
        self.engine = engine.SnmpEngine()
        # the engine ID through the MIB, as the agent's v3 engine does: SnmpEngine(
        # snmpEngineID=...) would also keep a boots file under the system temp directory
        (id_obj,) = self.engine.get_mib_builder().import_symbols(
            "__SNMP-FRAMEWORK-MIB", "snmpEngineID")
        id_obj.syntax = id_obj.syntax.clone(notify_engine_id(engine_seed))
        self.engine.snmpEngineID = id_obj.syntax
        add_user(self.engine, receiver.user,
                 auth_protocol=receiver.auth_protocol,
                 auth_key=receiver.auth_key.get_secret_value(),
                 priv_protocol=receiver.priv_protocol,
                 priv_key=receiver.priv_key.get_secret_value())
        config.add_target_parameters(self.engine, _PARAMS, receiver.user, "authPriv", 3)
        config.add_transport(self.engine, udp.DOMAIN_NAME,
                             udp.UdpAsyncioTransport().open_client_mode())
        config.add_target_address(
            self.engine, _TARGET, udp.DOMAIN_NAME, (receiver.host, receiver.port), _PARAMS,
            timeout=round(receiver.timeout_s * 100), retryCount=receiver.retries, tagList=_TAG)
        config.add_notification_target(self.engine, _NAME, _PARAMS, _TAG, "inform")
        config.add_vacm_user(self.engine, 3, receiver.user, "authPriv", (), (), _NOTIFY_VIEW)
        self.originator = ntforg.NotificationOriginator()

    async def send(self, notification: Notification) -> bool:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Any] = loop.create_future()

        def callback(snmp_engine, handle, error_indication, error_status, error_index,
                     varbinds, ctx) -> None:
            if not done.done():
                done.set_result((error_indication, error_status))

        varbinds = [(v.oid, VALUE_TYPES[v.syntax](v.value)) for v in notification.varbinds]
        self.originator.send_varbinds(self.engine, _NAME, None, b"", varbinds, callback, None)
        r = self.receiver
        # pysnmp reports a timeout itself; this bound only guards against a lost callback
        limit = r.timeout_s * (r.retries + 1) * 3 + 10
        try:
            async with asyncio.timeout(limit):
                error_indication, error_status = await done
        except TimeoutError:
            log.debug("snmp_agent: %s: no outcome from pysnmp for %s", r.label,
                      notification.label)
            return False
        if error_indication or error_status:
            log.debug("snmp_agent: %s: %s not acknowledged: %s", r.label, notification.label,
                      error_indication or error_status)
            return False
        return True

    def close(self) -> None:
        dispatcher = self.engine.transport_dispatcher
        if dispatcher is not None:
            dispatcher.close_dispatcher()
