"""USM keys: passphrase to key, localization and the AES-192/256 key extensions. Pure
(hashlib only); the agent's SNMPv3 engine (:mod:`v3_engine`) derives each user's keys
with it once, at start.

* Password to key (RFC 3414 A.2; RFC 7860 section 9.3 with the SHA-2 hashes): the hash
  of the passphrase repeated to 1 048 576 octets.
* Localization (RFC 3414 section 2.6): ``H(Ku || snmpEngineID || Ku)``. The privacy key
  is made with the user's authentication hash, as both RFCs prescribe.
* AES-128 (RFC 3826) takes the first 16 octets of the localized privacy key. AES-192 and
  AES-256 need up to 32 octets, more than SHA-1 (20) or SHA-224 (28) give, and two
  extensions are in use:

  - ``aes192``/``aes256`` (draft-blumenthal-aes-usm-04, net-snmp's AES-192/AES-256):
    append the hash of the key so far until it is long enough;
  - ``aes192c``/``aes256c`` (draft-reeder-snmpv3-usm-3desede, the Cisco variants):
    append the key so far, taken as a passphrase, turned into a key and localized again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from plugins.snmp_agent.settings import AuthProtocol, PrivProtocol

_EXPANDED = 1_048_576  #: octets hashed by password to key (RFC 3414 A.2)


@dataclass(frozen=True, slots=True)
class AuthAlgorithm:
    """An HMAC-SHA authentication protocol: its hash and the MAC length it sends."""

    hash_name: str
    mac_length: int  #: msgAuthenticationParameters' length (the truncated HMAC)
    oid: tuple[int, ...]  #: the protocol's OID (usmHMAC...AuthProtocol)


AUTH: dict[AuthProtocol, AuthAlgorithm] = {
    "sha1": AuthAlgorithm("sha1", 12, (1, 3, 6, 1, 6, 3, 10, 1, 1, 3)),  # HMAC-SHA-96
    "sha224": AuthAlgorithm("sha224", 16, (1, 3, 6, 1, 6, 3, 10, 1, 1, 4)),  # RFC 7860
    "sha256": AuthAlgorithm("sha256", 24, (1, 3, 6, 1, 6, 3, 10, 1, 1, 5)),
    "sha384": AuthAlgorithm("sha384", 32, (1, 3, 6, 1, 6, 3, 10, 1, 1, 6)),
    "sha512": AuthAlgorithm("sha512", 48, (1, 3, 6, 1, 6, 3, 10, 1, 1, 7)),
}

Extension = Literal["blumenthal", "reeder"]
#: the privacy protocols: (AES key size in octets, key extension)
PRIV: dict[PrivProtocol, tuple[int, Extension]] = {
    "aes128": (16, "blumenthal"),  # never extended: every hash gives 20 octets or more
    "aes192": (24, "blumenthal"),
    "aes256": (32, "blumenthal"),
    "aes192c": (24, "reeder"),
    "aes256c": (32, "reeder"),
}


def password_to_key(passphrase: bytes, hash_name: str) -> bytes:
    """Ku: the hash of ``passphrase`` repeated to 1 048 576 octets (RFC 3414 A.2)."""
    if not passphrase:
        raise ValueError("an empty passphrase has no key")
    repeated = passphrase * (_EXPANDED // len(passphrase) + 1)
    return hashlib.new(hash_name, repeated[:_EXPANDED]).digest()


def localize_key(key: bytes, engine_id: bytes, hash_name: str) -> bytes:
    """Kul = H(Ku || snmpEngineID || Ku) (RFC 3414 section 2.6)."""
    return hashlib.new(hash_name, key + engine_id + key).digest()


def localized_auth_key(passphrase: str, engine_id: bytes, auth: AuthProtocol) -> bytes:
    """The user's HMAC key at the engine ``engine_id``."""
    h = AUTH[auth].hash_name
    return localize_key(password_to_key(passphrase.encode(), h), engine_id, h)


def localized_priv_key(passphrase: str, engine_id: bytes, auth: AuthProtocol,
                       priv: PrivProtocol) -> bytes:
    """The user's AES key at the engine ``engine_id``, extended as ``priv`` says."""
    h = AUTH[auth].hash_name
    size, extension = PRIV[priv]
    key = localize_key(password_to_key(passphrase.encode(), h), engine_id, h)
    while len(key) < size:
        if extension == "blumenthal":
            key += hashlib.new(h, key).digest()
        else:
            key += localize_key(password_to_key(key, h), engine_id, h)
    return key[:size]
