"""USM key derivation (plugins/snmp_agent/usm_keys.py) against pysnmp's own results, for
every authentication protocol and every privacy protocol the agent offers, and against
the published test vectors of RFC 3414 A.3.2 (SHA-1)."""

from __future__ import annotations

import typing

import pytest

from plugins.snmp_agent import usm_keys
from plugins.snmp_agent.settings import AuthProtocol, PrivProtocol

AUTHS = typing.get_args(AuthProtocol)
PRIVS = typing.get_args(PrivProtocol)
ENGINES = [bytes.fromhex("000000000000000000000002"),  # RFC 3414 A.3's engine ID
           bytes.fromhex("80007ed9058126ad46b84ced32591865bc")]


def pysnmp_keys(passphrase: str, engine_id: bytes, auth: str, priv: str) -> tuple[bytes, bytes]:
    """(auth key, priv key) localized as pysnmp's config.add_v3_user does it."""
    from pysnmp.entity import config
    from pysnmp.proto import rfc1902

    from plugins.snmp_agent.usm import AUTH_PROTOCOLS, PRIV_PROTOCOLS

    a, p = AUTH_PROTOCOLS[auth], PRIV_PROTOCOLS[priv]
    auth_service, priv_service = config.AUTH_SERVICES[a], config.PRIV_SERVICES[p]
    engine = rfc1902.OctetString(engine_id)
    key = rfc1902.OctetString(passphrase)
    auth_key = auth_service.localize_key(auth_service.hash_passphrase(key), engine)
    priv_key = priv_service.localize_key(a, priv_service.hash_passphrase(a, key), engine)
    return bytes(auth_key), bytes(priv_key)


def test_rfc3414_a3_2_sha1_vector():
    """RFC 3414 A.3.2: "maplesyrup" at engine 00..02 with SHA-1."""
    ku = usm_keys.password_to_key(b"maplesyrup", "sha1")
    assert ku.hex() == "9fb5cc0381497b3793528939ff788d5d79145211"
    assert usm_keys.localize_key(ku, ENGINES[0], "sha1").hex() == (
        "6695febc9288e36282235fc7151f128497b38f3f")


@pytest.mark.parametrize("engine_id", ENGINES, ids=["rfc3414", "ours"])
@pytest.mark.parametrize("priv", PRIVS)
@pytest.mark.parametrize("auth", AUTHS)
def test_keys_equal_pysnmps(auth, priv, engine_id):
    passphrase = "maplesyrup-" + auth + priv
    auth_key, priv_key = pysnmp_keys(passphrase, engine_id, auth, priv)
    assert usm_keys.localized_auth_key(passphrase, engine_id, auth) == auth_key
    assert usm_keys.localized_priv_key(passphrase, engine_id, auth, priv) == priv_key
    assert len(auth_key) == len(usm_keys.password_to_key(b"x", usm_keys.AUTH[auth].hash_name))
    assert len(priv_key) == usm_keys.PRIV[priv][0]


@pytest.mark.parametrize(("auth", "size", "differ"), [
    ("sha1", 24, True), ("sha1", 32, True), ("sha224", 24, False), ("sha224", 32, True),
    ("sha256", 32, False), ("sha512", 32, False)])
def test_the_two_extensions_differ_only_when_the_hash_is_shorter_than_the_key(auth, size,
                                                                              differ):
    priv = {24: ("aes192", "aes192c"), 32: ("aes256", "aes256c")}[size]
    keys = [usm_keys.localized_priv_key("passphrase", ENGINES[1], auth, p) for p in priv]
    assert (keys[0] != keys[1]) is differ
    assert keys[0][:20] == keys[1][:20]  # both start with the localized key


def test_an_empty_passphrase_is_refused():
    with pytest.raises(ValueError):
        usm_keys.password_to_key(b"", "sha1")
