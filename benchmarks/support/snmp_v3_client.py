"""SNMPv3 authPriv requests built ahead of time, for the benchmarks' load generators.

A USM client (RFC 3414 with HMAC-SHA-2 from RFC 7860 and AES-128-CFB from RFC 3826)
that discovers the agent's engine ID, boots and time once, then encrypts and signs a
batch of requests before the clock starts, so that sending costs the client no more
than a v2c request and the agent's CPU is what is measured. The requests stay inside
the agent's 150-second time window for as long as a benchmark case lasts.

Key derivation is the agent's own (``plugins.snmp_agent.usm_keys``: password to key and
localization, RFC 3414 A.2 and 2.6); the message layout, HMAC and AES are here, and
net-snmp's snmpd answering the same requests is what shows them right. ``decrypt_pdu``
opens one answer so that a benchmark can check it got responses, not reports.
(Not a benchmark itself: ``make bench`` runs only ``benchmarks/*.py``.)
"""

from __future__ import annotations

import hmac
import socket
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

try:  # newer cryptography keeps CFB among the "decrepit" modes (RFC 3826 needs it)
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:  # older releases
    from cryptography.hazmat.primitives.ciphers.modes import CFB

from plugins.snmp_agent import ber
from plugins.snmp_agent.usm_keys import AUTH, localized_auth_key, localized_priv_key

MAX_SIZE = 65507
FLAGS_AUTH_PRIV_REPORTABLE = b"\x07"
USM = 3


@dataclass(frozen=True)
class Engine:
    """What discovery tells of the agent's SNMP engine."""

    engine_id: bytes
    boots: int
    time: int


def _message(msg_id: int, flags: bytes, usm_params: bytes, msg_data: bytes) -> bytes:
    header = ber.tlv(ber.SEQUENCE, ber.encode_integer(msg_id) + ber.encode_integer(MAX_SIZE)
                     + ber.tlv(ber.OCTET_STRING, flags) + ber.encode_integer(USM))
    return ber.tlv(ber.SEQUENCE, ber.encode_integer(3) + header
                   + ber.tlv(ber.OCTET_STRING, usm_params) + msg_data)


def _usm(engine: Engine, user: bytes, auth: bytes, salt: bytes) -> bytes:
    return ber.tlv(ber.SEQUENCE, ber.tlv(ber.OCTET_STRING, engine.engine_id)
                   + ber.encode_integer(engine.boots) + ber.encode_integer(engine.time)
                   + ber.tlv(ber.OCTET_STRING, user) + ber.tlv(ber.OCTET_STRING, auth)
                   + ber.tlv(ber.OCTET_STRING, salt))


def discover(address: tuple[str, int], timeout_s: float = 2.0) -> Engine:
    """Engine discovery (RFC 3414 section 4): a reportable, unauthenticated request
    with an empty engine ID; the report carries the engine's ID, boots and time."""
    empty = Engine(b"", 0, 0)
    scoped = ber.tlv(ber.SEQUENCE, ber.tlv(ber.OCTET_STRING, b"") + ber.tlv(ber.OCTET_STRING, b"")
                     + ber.encode_pdu(ber.GET_REQUEST, ber.encode_integer(1), 0, 0, b""))
    message = _message(1, b"\x04", _usm(empty, b"", b"", b""), scoped)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout_s)
        sock.sendto(message, address)
        h = ber.decode_v3_header(sock.recv(4096))
    return Engine(h.engine_id, h.engine_boots, h.engine_time)


class AuthPrivUser:
    """An SNMPv3 user with authPriv keys localized to one engine."""

    def __init__(self, name: str, auth_key: str, priv_key: str, engine: Engine, *,
                 auth: str = "sha256") -> None:
        self.name = name.encode()
        self.engine = engine
        self.algorithm = AUTH[auth]  # type: ignore[index]
        self.auth_key = localized_auth_key(auth_key, engine.engine_id, auth)  # type: ignore[arg-type]
        self.aes = algorithms.AES(localized_priv_key(priv_key, engine.engine_id,
                                                     auth, "aes128"))  # type: ignore[arg-type]

    def _iv(self, boots: int, time_: int, salt: bytes) -> bytes:
        return boots.to_bytes(4, "big") + time_.to_bytes(4, "big") + salt

    def request(self, pdu: bytes, msg_id: int, *, engine_time: int | None = None) -> bytes:
        """``pdu`` (an encoded request PDU) as an authPriv message; ``engine_time`` the
        agent's clock now (default: as discovered)."""
        engine = self.engine if engine_time is None else Engine(
            self.engine.engine_id, self.engine.boots, engine_time)
        salt = msg_id.to_bytes(8, "big")
        scoped = ber.tlv(ber.SEQUENCE, ber.tlv(ber.OCTET_STRING, engine.engine_id)
                         + ber.tlv(ber.OCTET_STRING, b"") + pdu)
        encryptor = Cipher(self.aes, CFB(self._iv(engine.boots, engine.time, salt))
                           ).encryptor()
        encrypted = ber.tlv(ber.OCTET_STRING, encryptor.update(scoped) + encryptor.finalize())
        n = self.algorithm.mac_length
        zero_mac = bytes(n)  # RFC 3414 6.3.1: the MAC is computed over zeros in its place
        message = _message(msg_id, FLAGS_AUTH_PRIV_REPORTABLE,
                           _usm(engine, self.name, zero_mac, salt), encrypted)
        mac = hmac.new(self.auth_key, message, self.algorithm.hash_name).digest()[:n]
        at = message.index(bytes((ber.OCTET_STRING, n)) + zero_mac) + 2
        return message[:at] + mac + message[at + n:]

    def decrypt_pdu(self, answer: bytes) -> ber.ScopedPdu:
        """The scoped PDU of an authPriv answer (a report is a plaintext one)."""
        h = ber.decode_v3_header(answer)
        if h.data_tag != ber.OCTET_STRING:
            return ber.decode_scoped_pdu(answer, h.data_tlv_start, h.data_end)
        decryptor = Cipher(self.aes, CFB(self._iv(h.engine_boots, h.engine_time,
                                                        h.priv_params))).decryptor()
        plain = decryptor.update(answer[h.data_start:h.data_end]) + decryptor.finalize()
        return ber.decode_scoped_pdu(plain, padded=True)
