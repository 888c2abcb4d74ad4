"""SNMPv3 USM as pysnmp sees it: the protocol choices of the ``snmp_agent`` settings
mapped to pysnmp's protocols, for the inform senders (:mod:`inform`; the tests use it
for their pysnmp clients too). Imported only when v3 informs are configured (it imports
pysnmp); the agent's own SNMPv3 engine (:mod:`v3_engine`) does not use pysnmp.

The names and why each is offered are in :mod:`settings` and docs/snmp.md. pysnmp has
both key extensions for AES-192/256: ``USM_PRIV_CFB*_AES_BLUMENTHAL`` is
draft-blumenthal-aes-usm-04, which net-snmp's ``-x AES-192``/``AES-256`` speak (the
tests check it against Debian's net-snmp), and ``USM_PRIV_CFB*_AES`` is the Reeder
extension of the "C" (Cisco) variants.
"""

from __future__ import annotations

from pysnmp.entity import config, engine

from plugins.snmp_agent.settings import AuthProtocol, PrivProtocol

AUTH_PROTOCOLS: dict[AuthProtocol, tuple[int, ...]] = {
    "sha1": config.USM_AUTH_HMAC96_SHA,  # usmHMACSHAAuthProtocol (RFC 3414)
    "sha224": config.USM_AUTH_HMAC128_SHA224,  # usmHMAC128SHA224AuthProtocol (RFC 7860)
    "sha256": config.USM_AUTH_HMAC192_SHA256,  # usmHMAC192SHA256AuthProtocol
    "sha384": config.USM_AUTH_HMAC256_SHA384,  # usmHMAC256SHA384AuthProtocol
    "sha512": config.USM_AUTH_HMAC384_SHA512,  # usmHMAC384SHA512AuthProtocol
}
PRIV_PROTOCOLS: dict[PrivProtocol, tuple[int, ...]] = {
    "aes128": config.USM_PRIV_CFB128_AES,  # usmAesCfb128Protocol (RFC 3826)
    "aes192": config.USM_PRIV_CFB192_AES_BLUMENTHAL,
    "aes256": config.USM_PRIV_CFB256_AES_BLUMENTHAL,
    "aes192c": config.USM_PRIV_CFB192_AES,  # Reeder key extension
    "aes256c": config.USM_PRIV_CFB256_AES,
}


def add_user(snmp_engine: engine.SnmpEngine, name: str, *, auth_protocol: AuthProtocol,
             auth_key: str, priv_protocol: PrivProtocol, priv_key: str) -> None:
    """Add one USM user to a pysnmp engine. pysnmp turns the passphrases into keys
    (RFC 3414 A.2: a megabyte of hashing each); for an inform sender, whose receiver is
    authoritative, they are localized once to the receiver's engine ID when pysnmp first
    discovers it. No inform pays for it."""
    config.add_v3_user(snmp_engine, name, AUTH_PROTOCOLS[auth_protocol], auth_key,
                       PRIV_PROTOCOLS[priv_protocol], priv_key)
