"""The SNMPv3 fast path: message processing (RFC 3412) and USM (RFC 3414) over the
agent's BER codec, with the ``cryptography`` package doing HMAC and AES.

Imported only when v3 users are configured; it never imports pysnmp. The agent decodes
the message header (:func:`ber.decode_v3_header`) and hands it here; the engine checks
it as RFC 3414 section 3.2 orders, decrypts the scoped PDU, has the agent's responder
answer it from the same OID table with the same RFC 3416 procedures as SNMPv2c
(:class:`~plugins.snmp_agent.endpoint.Service`), and encrypts and authenticates the
response. Every v3 user gets the agent's one read-only view at securityLevel authPriv.

Reports (RFC 3412 section 7.1.3) are the ones the agent sent when pysnmp did this work:
the case, the counter that is the report's one varbind, and the report's msgFlags:

* no or a malformed msgAuthoritativeEngineID (engine discovery): usmStatsUnknownEngineIDs,
  noAuthNoPriv, with the request's request-id and context;
* another engine's ID, or a user name we do not have (empty included):
  usmStatsUnknownUserNames, reportable;
* a securityLevel below authPriv: usmStatsUnsupportedSecLevels, the request's level
  (signed with the user's key at authNoPriv);
* a wrong HMAC: usmStatsWrongDigests, reportable;
* boots other than ours, or a time more than 150 s from ours: usmStatsNotInTimeWindows,
  authNoPriv (signed, so the manager can trust the time in it);
* undecryptable, or no scoped PDU inside: usmStatsDecryptionErrors, reportable;
* another contextEngineID: snmpUnknownPDUHandlers, noAuthNoPriv, with the request-id;
* a contextName other than "": snmpUnknownContexts, noAuthNoPriv, with the request-id.

A report is sent only for a message with the reportable flag. Keys are derived once per
user when the engine starts (:mod:`usm_keys`), and each user's HMAC is keyed once and
copied per message.
"""

from __future__ import annotations

import hmac as stdlib_hmac
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from plugins.snmp_agent import ber, usm_keys
from plugins.snmp_agent.endpoint import Service

if TYPE_CHECKING:
    from plugins.snmp_agent.settings import SnmpAgentSettings


try:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives import hmac as crypto_hmac
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
except ImportError:  # pragma: no cover - depends on the installation
    _HAVE_CRYPTOGRAPHY = False
else:
    _HAVE_CRYPTOGRAPHY = True
    try:  # newer cryptography keeps CFB among the "decrepit" modes (RFC 3826 needs it)
        from cryptography.hazmat.decrepit.ciphers.modes import CFB
    except ImportError:  # pragma: no cover - older cryptography
        from cryptography.hazmat.primitives.ciphers.modes import CFB


class CryptographyMissingError(RuntimeError):
    """SNMPv3 needs the ``cryptography`` package (HMAC-SHA and AES)."""


_AUTH, _PRIV, _REPORTABLE = 0x01, 0x02, 0x04
_AUTH_PRIV = _AUTH | _PRIV
_TIME_WINDOW_S = 150  #: RFC 3414 section 3.2 step 7
_BOOTS_MAX = 2**31 - 1
_USM_STATS = (1, 3, 6, 1, 6, 3, 15, 1, 1)
_UNSUPPORTED_SEC_LEVELS = _USM_STATS + (1, 0)
_NOT_IN_TIME_WINDOWS = _USM_STATS + (2, 0)
_UNKNOWN_USER_NAMES = _USM_STATS + (3, 0)
_UNKNOWN_ENGINE_IDS = _USM_STATS + (4, 0)
_WRONG_DIGESTS = _USM_STATS + (5, 0)
_DECRYPTION_ERRORS = _USM_STATS + (6, 0)
_UNKNOWN_PDU_HANDLERS = (1, 3, 6, 1, 6, 3, 11, 2, 1, 3, 0)  #: SNMP-MPD-MIB
_UNKNOWN_CONTEXTS = (1, 3, 6, 1, 6, 3, 12, 1, 5, 0)  #: SNMP-TARGET-MIB
_REPORT_KEYS = {
    _UNSUPPORTED_SEC_LEVELS: "unsupported_sec_levels",
    _NOT_IN_TIME_WINDOWS: "not_in_time_windows",
    _UNKNOWN_USER_NAMES: "unknown_user_names",
    _UNKNOWN_ENGINE_IDS: "unknown_engine_ids",
    _WRONG_DIGESTS: "wrong_digests",
    _DECRYPTION_ERRORS: "decryption_errors",
    _UNKNOWN_PDU_HANDLERS: "unknown_pdu_handlers",
    _UNKNOWN_CONTEXTS: "unknown_contexts",
}
_REQUESTS = frozenset((ber.GET_REQUEST, ber.GET_NEXT_REQUEST, ber.GET_BULK_REQUEST,
                       ber.SET_REQUEST))
_NO_REQUEST_ID = ber.encode_integer(0)
_VERSION_3 = ber.encode_integer(ber.VERSION_3)
_USM_MODEL = ber.encode_integer(ber.USM)
_FLAGS = {f: ber.tlv(ber.OCTET_STRING, bytes((f,))) for f in range(8)}
_HASHES = {"sha1": "SHA1", "sha224": "SHA224", "sha256": "SHA256", "sha384": "SHA384",
           "sha512": "SHA512"}


@dataclass(slots=True)
class _User:
    name: bytes
    mac_length: int
    hmac: object  #: a keyed cryptography HMAC, copied for every message
    aes: object  #: the cryptography AES algorithm with the user's key


class V3Engine:
    """The agent's SNMPv3 engine: a fixed engine ID and boots, the v3 users' localized
    keys, and the USM counters."""

    def __init__(self, service: Service, settings: SnmpAgentSettings, *, engine_id: bytes,
                 boots: int, engine_time: Callable[[], int]) -> None:
        if not _HAVE_CRYPTOGRAPHY:
            raise CryptographyMissingError(
                "snmp_agent: v3_users need the Python package 'cryptography' for HMAC and "
                "AES; install it or remove v3_users")
        self._service = service
        self.engine_id = engine_id
        self.boots = boots
        self._engine_time = engine_time
        self._max_size = settings.max_message_size
        self._max_size_tlv = ber.encode_integer(settings.max_message_size)
        self._engine_id_tlv = ber.tlv(ber.OCTET_STRING, engine_id)
        self.counters: dict[str, int] = dict.fromkeys(_REPORT_KEYS.values(), 0)
        self.counters["invalid_msgs"] = 0
        self._salt = int.from_bytes(os.urandom(8), "big")
        self._users: dict[bytes, _User] = {}
        for user in settings.v3_users:  # keys localized here, once, to our engine ID
            algo = usm_keys.AUTH[user.auth_protocol]
            keyed = crypto_hmac.HMAC(
                usm_keys.localized_auth_key(user.auth_key.get_secret_value(), engine_id,
                                            user.auth_protocol),
                getattr(hashes, _HASHES[algo.hash_name])())
            aes = algorithms.AES(usm_keys.localized_priv_key(
                user.priv_key.get_secret_value(), engine_id, user.auth_protocol,
                user.priv_protocol))
            self._users[user.name.encode()] = _User(user.name.encode(), algo.mac_length,
                                                    keyed, aes)

    def usm_counters(self) -> dict[str, int]:
        """usmStats, by the keys of :data:`oid_map.USM_COUNTERS`."""
        return {k: self.counters[k] for k in _REPORT_KEYS.values()
                if k not in ("unknown_pdu_handlers", "unknown_contexts")}

    # ------------------------------------------------------------- incoming ---------

    def handle(self, data: bytes, h: ber.V3Header) -> bytes | None:
        """The reply to one SNMPv3 message whose header the agent decoded, or None."""
        if h.security_model != ber.USM or h.flags & _AUTH_PRIV == _PRIV:
            self.counters["invalid_msgs"] += 1  # snmpUnknownSecurityModels / InvalidMsgs
            return None
        reportable = bool(h.flags & _REPORTABLE)
        if h.engine_id != self.engine_id:  # RFC 3414 3.2 step 3
            if 5 <= len(h.engine_id) <= 32:  # another engine: no user of ours there
                return self._refuse(h, _UNKNOWN_USER_NAMES, reportable)
            self.counters["unknown_engine_ids"] += 1
            return self._discovery_report(data, h) if reportable else None
        user = self._users.get(h.user_name)
        if user is None:  # step 4 (an empty user name names no user either)
            return self._refuse(h, _UNKNOWN_USER_NAMES, reportable)
        level = h.flags & _AUTH_PRIV
        if level != _AUTH_PRIV:  # step 5: authPriv only
            self.counters["unsupported_sec_levels"] += 1
            if not reportable:
                return None
            return self._report(h, _UNSUPPORTED_SEC_LEVELS, flags=level,
                                user=user if level else None)
        if not self._authentic(data, h, user):  # step 6
            return self._refuse(h, _WRONG_DIGESTS, reportable)
        now = self._engine_time()
        if (self.boots == _BOOTS_MAX or h.engine_boots != self.boots
                or abs(now - h.engine_time) > _TIME_WINDOW_S):  # step 7
            self.counters["not_in_time_windows"] += 1
            return self._report(h, _NOT_IN_TIME_WINDOWS, flags=_AUTH, user=user,
                                ) if reportable else None
        scoped = self._decrypt(data, h, user)  # step 8
        if scoped is None:
            return self._refuse(h, _DECRYPTION_ERRORS, reportable)
        req = scoped.request
        if req.pdu_type not in _REQUESTS:
            self._service.counters.unexpected_pdus += 1
            return None
        if scoped.context_engine_id != self.engine_id:
            self.counters["unknown_pdu_handlers"] += 1
            return self._report(h, _UNKNOWN_PDU_HANDLERS, flags=0,
                                request_id_tlv=req.request_id_tlv) if reportable else None
        if scoped.context_name:
            self.counters["unknown_contexts"] += 1
            return self._report(h, _UNKNOWN_CONTEXTS, flags=0,
                                request_id_tlv=req.request_id_tlv) if reportable else None
        return self._answer(h, user, req)

    def _refuse(self, h: ber.V3Header, oid: tuple[int, ...], reportable: bool) -> bytes | None:
        self.counters[_REPORT_KEYS[oid]] += 1
        return self._report(h, oid, flags=_REPORTABLE) if reportable else None

    def _authentic(self, data: bytes, h: ber.V3Header, user: _User) -> bool:
        n = h.auth_end - h.auth_start
        if n != user.mac_length:
            return False
        mac = user.hmac.copy()  # type: ignore[attr-defined]
        mac.update(data[:h.auth_start])
        mac.update(bytes(n))
        mac.update(data[h.auth_end:])
        return stdlib_hmac.compare_digest(mac.finalize()[:n], data[h.auth_start:h.auth_end])

    def _decrypt(self, data: bytes, h: ber.V3Header, user: _User) -> ber.ScopedPdu | None:
        if h.data_tag != ber.OCTET_STRING or len(h.priv_params) != 8:
            return None
        iv = (h.engine_boots.to_bytes(4, "big") + h.engine_time.to_bytes(4, "big")
              + h.priv_params)
        decryptor = Cipher(user.aes, CFB(iv)).decryptor()  # type: ignore[arg-type]
        plain = decryptor.update(data[h.data_start:h.data_end]) + decryptor.finalize()
        try:
            return ber.decode_scoped_pdu(plain, padded=True)
        except ber.BerError:
            return None

    # ------------------------------------------------------------- outgoing ---------

    def _answer(self, h: ber.V3Header, user: _User, req: ber.Request) -> bytes | None:
        limit = min(h.msg_max_size, self._max_size)
        overhead = (self._fixed_overhead(user) + len(req.request_id_tlv)
                    + len(ber.encode_integer(len(req.oids))))
        table, outcome = self._service.process(req.pdu_type, req.oids, req.field2,
                                               req.field3, limit - overhead)
        if outcome.items is None:
            varbinds = b"".join(req.varbinds)
        else:
            varbinds = b"".join([table.item_bytes(it) for it in outcome.items])
        pdu = ber.encode_pdu(ber.RESPONSE, req.request_id_tlv, outcome.error_status,
                             outcome.error_index, varbinds)
        reply = self._message(h, user, pdu, _AUTH_PRIV)
        if len(reply) > limit:  # only an echo of a huge request gets here
            pdu = ber.encode_pdu(ber.RESPONSE, req.request_id_tlv, ber.TOO_BIG, 0, b"")
            reply = self._message(h, user, pdu, _AUTH_PRIV)
            if len(reply) > limit:
                self._service.counters.silent_drops += 1
                return None
        return reply

    def _fixed_overhead(self, user: _User) -> int:
        """An upper bound of a response's octets other than its varbinds, its
        request-id and its error-index (every container length counted as 4 octets)."""
        return (4 + 3  # message, msgVersion
                + 4 + 6 + len(self._max_size_tlv) + 3 + 3  # msgGlobalData
                + 4 + 4 + len(self._engine_id_tlv) + 6 + 6  # security parameters
                + 4 + len(user.name) + 2 + user.mac_length + 2 + 8
                + 4 + 4 + len(self._engine_id_tlv) + 2  # encrypted scopedPDU
                + 4 + 3 + 4)  # PDU, error-status, varbind list

    def _report(self, h: ber.V3Header, oid: tuple[int, ...], *, flags: int,
                user: _User | None = None, request_id_tlv: bytes = _NO_REQUEST_ID,
                context_engine_id: bytes | None = None, context_name: bytes = b"",
                user_name: bytes | None = None) -> bytes:
        value = self.counters[_REPORT_KEYS[oid]] % 2**32
        varbind = ber.encode_varbind(oid, ber.COUNTER32, value)
        pdu = ber.encode_pdu(ber.REPORT, request_id_tlv, 0, 0, varbind)
        return self._message(h, user, pdu, flags, context_engine_id=context_engine_id,
                             context_name=context_name,
                             user_name=h.user_name if user_name is None else user_name)

    def _discovery_report(self, data: bytes, h: ber.V3Header) -> bytes:
        """The answer to engine discovery: our engine ID, boots and time, with the
        request's context and request-id when the request is readable."""
        request_id_tlv, context_engine_id, context_name = _NO_REQUEST_ID, self.engine_id, b""
        if h.data_tag == ber.SEQUENCE:
            try:
                scoped = ber.decode_scoped_pdu(data, h.data_tlv_start, h.data_end)
            except ber.BerError:
                pass
            else:
                request_id_tlv = scoped.request.request_id_tlv
                context_engine_id = scoped.context_engine_id or self.engine_id
                context_name = scoped.context_name
        return self._report(h, _UNKNOWN_ENGINE_IDS, flags=0, request_id_tlv=request_id_tlv,
                            context_engine_id=context_engine_id, context_name=context_name,
                            user_name=b"")

    def _message(self, h: ber.V3Header, user: _User | None, pdu: bytes, flags: int, *,
                 context_engine_id: bytes | None = None, context_name: bytes = b"",
                 user_name: bytes | None = None) -> bytes:
        """An SNMPv3 message from us carrying ``pdu``: encrypted if ``flags`` has priv,
        authenticated with ``user``'s key if it has auth."""
        scoped = ber.tlv(ber.SEQUENCE, ber.tlv(ber.OCTET_STRING, context_engine_id
                                                or self.engine_id)
                         + ber.tlv(ber.OCTET_STRING, context_name) + pdu)
        boots, now = self.boots, self._engine_time()
        priv_params = b""
        if flags & _PRIV and user is not None:
            self._salt = (self._salt + 1) % 2**64
            priv_params = self._salt.to_bytes(8, "big")
            iv = boots.to_bytes(4, "big") + now.to_bytes(4, "big") + priv_params
            encryptor = Cipher(user.aes, CFB(iv)).encryptor()  # type: ignore[arg-type]
            msg_data = ber.tlv(ber.OCTET_STRING, encryptor.update(scoped) + encryptor.finalize())
        else:
            msg_data = scoped
        authenticated = bool(flags & _AUTH) and user is not None
        mac_length = user.mac_length if authenticated and user is not None else 0
        priv_tlv = ber.tlv(ber.OCTET_STRING, priv_params)
        usm = ber.tlv(ber.SEQUENCE, b"".join((
            self._engine_id_tlv, ber.encode_integer(boots), ber.encode_integer(now),
            ber.tlv(ber.OCTET_STRING, h.user_name if user_name is None else user_name),
            ber.tlv(ber.OCTET_STRING, bytes(mac_length)), priv_tlv)))
        header = ber.tlv(ber.SEQUENCE, b"".join((h.msg_id_tlv, self._max_size_tlv,
                                                  _FLAGS[flags], _USM_MODEL)))
        msg = ber.tlv(ber.SEQUENCE, b"".join((_VERSION_3, header,
                                               ber.tlv(ber.OCTET_STRING, usm), msg_data)))
        if not authenticated or user is None:
            return msg
        mac = user.hmac.copy()  # type: ignore[attr-defined]
        mac.update(msg)
        at = len(msg) - len(msg_data) - len(priv_tlv) - mac_length
        return msg[:at] + mac.finalize()[:mac_length] + msg[at + mac_length:]

