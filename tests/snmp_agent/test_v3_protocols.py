"""SNMPv3 with every offered authentication and privacy protocol (issue 12).

One agent has a user for each auth/priv pair the settings offer. Each pair the installed
net-snmp speaks (found by asking it, not assumed) is read with net-snmp's snmpget and
snmpwalk; the others, and a cross-check of the two AES-192/256 key extensions, with a
pysnmp client. MD5 and DES are refused with a config error that names file, line and
key and says why; passphrases are turned into localized keys once, at start, never
per request.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import subprocess
import sys
from pathlib import Path

import pydantic
import pytest

from plugins.snmp_agent.settings import AuthProtocol, PrivProtocol, Receiver, SnmpAgentSettings

pytestmark = pytest.mark.e2e


def _load_helpers():
    """tests/alarms/trapd.py (net-snmp helpers), loaded by path as tests/alarms does."""
    name = "bms_gateway_alarm_e2e_helpers"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "alarms" / "trapd.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


helpers = _load_helpers()
AUTHS: tuple[str, ...] = AuthProtocol.__args__
PRIVS: tuple[str, ...] = PrivProtocol.__args__
PAIRS = list(itertools.product(AUTHS, PRIVS))
NETSNMP_AUTH, NETSNMP_PRIV = helpers.netsnmp_protocols()
NETSNMP_PAIRS = [(a, x) for a, x in PAIRS if a in NETSNMP_AUTH and x in NETSNMP_PRIV]
OTHER_PAIRS = [p for p in PAIRS if p not in NETSNMP_PAIRS]
SYS_NAME = ".1.3.6.1.2.1.1.5.0"
SYSTEM = ".1.3.6.1.2.1.1"


def user_of(auth: str, priv: str) -> str:
    return f"u-{auth}-{priv}"


def key_of(kind: str, auth: str, priv: str) -> str:
    return f"{kind}-{auth}-{priv}-pass"  # every user its own passphrases


def users() -> list[dict]:
    return [{"name": user_of(a, x), "auth_protocol": a, "auth_key": key_of("auth", a, x),
             "priv_protocol": x, "priv_key": key_of("priv", a, x)} for a, x in PAIRS]


@pytest.fixture(scope="module")
def proto_agent(bank, tmp_path_factory):
    agent = bank.RunningAgent({"v2c": {"community": bank.COMMUNITY}, "v3_users": users()},
                              state_dir=tmp_path_factory.mktemp("snmp-proto")).start()
    yield agent
    agent.stop()


def netsnmp_args(bank, agent, auth: str, priv: str, **kwargs) -> list[str]:
    return bank.v3_args(agent, user=user_of(auth, priv), auth=key_of("auth", auth, priv),
                        priv=key_of("priv", auth, priv), auth_protocol=NETSNMP_AUTH[auth],
                        priv_protocol=NETSNMP_PRIV[priv], **kwargs)


def test_the_installed_net_snmp_is_probed_and_speaks_the_common_pairs():
    """Never a silent skip: Debian's net-snmp must at least speak SHA-1/SHA-2 with
    AES-128/192/256, and every pair is tested by one client or the other."""
    assert {"sha1", "sha256", "sha512"} <= set(NETSNMP_AUTH), NETSNMP_AUTH
    assert {"aes128", "aes192", "aes256"} <= set(NETSNMP_PRIV), NETSNMP_PRIV
    assert len(NETSNMP_PAIRS) + len(OTHER_PAIRS) == len(PAIRS) == 25


@pytest.mark.parametrize(("auth", "priv"), NETSNMP_PAIRS,
                         ids=[f"{a}-{x}" for a, x in NETSNMP_PAIRS])
def test_net_snmp_reads_with_every_pair_it_speaks(proto_agent, snmp, bank, auth, priv):
    args = netsnmp_args(bank, proto_agent, auth, priv)
    got = snmp("snmpget", "-Oqv", *args, SYS_NAME).stdout.strip().strip('"')
    assert got == "site-42-gw"
    v3 = snmp("snmpwalk", "-On", *args, SYSTEM).stdout
    v2 = snmp("snmpwalk", "-On", *bank.v2c_args(proto_agent), SYSTEM).stdout
    without_uptime = [line for line in v3.splitlines() if ".1.3.6.1.2.1.1.3.0" not in line]
    assert without_uptime == [line for line in v2.splitlines()
                              if ".1.3.6.1.2.1.1.3.0" not in line]
    assert len(without_uptime) >= 6


@pytest.mark.parametrize(("auth", "priv"), [("sha256", "aes128"), ("sha1", "aes256")])
def test_net_snmp_with_another_users_protocol_is_refused(proto_agent, snmp, bank, auth,
                                                          priv):
    """The protocols are per user: user u-sha1-aes128 with this pair gets nowhere."""
    args = bank.v3_args(proto_agent, user=user_of("sha1", "aes128"),
                        auth=key_of("auth", "sha1", "aes128"),
                        priv=key_of("priv", "sha1", "aes128"),
                        auth_protocol=NETSNMP_AUTH[auth], priv_protocol=NETSNMP_PRIV[priv],
                        timeout=0.5, retries=0)
    proc = snmp("snmpget", *args, SYS_NAME, check=False)
    assert proc.returncode != 0 and "site-42-gw" not in proc.stdout


# ----------------------------------------------------------------- pysnmp client -----


async def pysnmp_get(port: int, user: str, auth: str, auth_key: str, priv: str,
                     priv_key: str) -> tuple[str, str]:
    """(error indication, sysName) with pysnmp's high-level client."""
    from pysnmp.hlapi.v3arch.asyncio import (
        ContextData,
        ObjectIdentity,
        ObjectType,
        SnmpEngine,
        UdpTransportTarget,
        UsmUserData,
        get_cmd,
    )

    from plugins.snmp_agent.usm import AUTH_PROTOCOLS, PRIV_PROTOCOLS

    engine = SnmpEngine()
    try:
        target = await UdpTransportTarget.create(("127.0.0.1", port), timeout=1, retries=0)
        error, status, _, varbinds = await get_cmd(
            engine, UsmUserData(user, auth_key, priv_key, authProtocol=AUTH_PROTOCOLS[auth],
                                privProtocol=PRIV_PROTOCOLS[priv]),
            target, ContextData(), ObjectType(ObjectIdentity(SYS_NAME[1:])))
        if error or status:
            return str(error or status), ""
        return "", str(varbinds[0][1])
    finally:
        engine.close_dispatcher()


@pytest.mark.parametrize(("auth", "priv"), OTHER_PAIRS + [
    (a, x) for a, x in [("sha1", "aes192c"), ("sha1", "aes256c"), ("sha384", "aes192")]
    if (a, x) not in OTHER_PAIRS])
def test_pysnmp_reads_with_the_pairs_net_snmp_lacks_and_a_few_more(proto_agent, auth,
                                                                    priv):
    error, name = asyncio.run(pysnmp_get(
        proto_agent.port, user_of(auth, priv), auth, key_of("auth", auth, priv), priv,
        key_of("priv", auth, priv)))
    assert (error, name) == ("", "site-42-gw")


@pytest.mark.parametrize(("configured", "client"), [
    ("aes192", "aes192c"), ("aes256", "aes256c"), ("aes256c", "aes256")])
def test_the_two_aes_key_extensions_differ_with_sha1(proto_agent, configured, client):
    """With SHA-1 (20 octets) both AES-192/256 keys need extending, and Blumenthal and
    Reeder extend differently: a client of the other kind cannot decrypt."""
    error, name = asyncio.run(pysnmp_get(
        proto_agent.port, user_of("sha1", configured), "sha1",
        key_of("auth", "sha1", configured), client, key_of("priv", "sha1", configured)))
    assert name == "" and error


# ------------------------------------------------------------- keys computed once -----


def test_keys_are_localized_at_start_and_never_per_request(bank, snmp, monkeypatch):
    from plugins.snmp_agent import usm_keys

    calls = {"n": 0}
    for fn in ("password_to_key", "localize_key"):
        original = getattr(usm_keys, fn)

        def counting(*args, _original=original, **kwargs):
            calls["n"] += 1
            return _original(*args, **kwargs)
        monkeypatch.setattr(usm_keys, fn, counting)
    chosen = [("sha1", "aes256"), ("sha512", "aes256c"), ("sha224", "aes128")]
    agent = bank.RunningAgent({"v3_users": [u for u in users() if u["name"] in
                                            {user_of(a, x) for a, x in chosen}]}).start()
    try:
        at_start = calls["n"]
        assert at_start >= 4 * len(chosen)  # the counting sees the engine's key work
        for _ in range(5):
            for auth, priv in chosen:
                got = snmp("snmpget", "-Oqv", *netsnmp_args(bank, agent, auth, priv),
                           SYS_NAME).stdout.strip().strip('"')
                assert got == "site-42-gw"
        assert calls["n"] == at_start
    finally:
        agent.stop()


# ------------------------------------------------------------------ settings ----------


def test_every_protocol_name_is_accepted_in_ours_and_net_snmps_spelling():
    configured = SnmpAgentSettings.model_validate({"v3_users": users()}).v3_users
    assert [(u.auth_protocol, u.priv_protocol) for u in configured] == PAIRS
    spellings = {"SHA": "sha1", "sha-1": "sha1", "SHA-224": "sha224", "SHA256": "sha256",
                 "sha_384": "sha384", "SHA-512": "sha512"}
    for given, want in spellings.items():
        s = SnmpAgentSettings.model_validate({"v3_users": [
            {"name": "u", "auth_protocol": given, "auth_key": "a" * 8, "priv_key": "p" * 8}]})
        assert s.v3_users[0].auth_protocol == want
    for given, want in {"AES": "aes128", "AES-128": "aes128", "AES-192": "aes192",
                        "aes256": "aes256", "AES192C": "aes192c", "AES-256C": "aes256c"}.items():
        s = SnmpAgentSettings.model_validate({"v3_users": [
            {"name": "u", "priv_protocol": given, "auth_key": "a" * 8, "priv_key": "p" * 8}]})
        assert s.v3_users[0].priv_protocol == want


def test_the_default_pair_is_unchanged():
    s = SnmpAgentSettings.model_validate(
        {"v3_users": [{"name": "u", "auth_key": "a" * 8, "priv_key": "p" * 8}]})
    assert (s.v3_users[0].auth_protocol, s.v3_users[0].priv_protocol) == ("sha256", "aes128")
    r = Receiver.model_validate({"host": "192.0.2.1", "version": "v3", "user": "u",
                                 "auth_key": "a" * 8, "priv_key": "p" * 8})
    assert (r.auth_protocol, r.priv_protocol) == ("sha256", "aes128")


@pytest.mark.parametrize(("key", "value", "why"), [
    ("auth_protocol", "md5", "MD5 is broken"),
    ("auth_protocol", "HMAC-MD5", "MD5 is broken"),
    ("priv_protocol", "des", "NIST withdrew DES"),
    ("priv_protocol", "DES", "NIST withdrew DES"),
    ("priv_protocol", "3des", "disallows 3DES"),
    ("auth_protocol", "sha3", "Input should be 'sha1', 'sha224'"),
    ("priv_protocol", "aes512", "Input should be 'aes128'"),
])
def test_broken_or_unknown_protocols_are_refused_saying_why(key, value, why):
    with pytest.raises(pydantic.ValidationError, match=why):
        SnmpAgentSettings.model_validate({"v3_users": [
            {"name": "u", key: value, "auth_key": "a" * 8, "priv_key": "p" * 8}]})
    with pytest.raises(pydantic.ValidationError, match=why):
        Receiver.model_validate({"host": "192.0.2.1", "version": "v3", "user": "u",
                                 key: value, "auth_key": "a" * 8, "priv_key": "p" * 8})


def test_a_v2c_receiver_takes_no_v3_protocol():
    with pytest.raises(pydantic.ValidationError, match="are for version v3"):
        Receiver.model_validate({"host": "192.0.2.1", "version": "v2c", "community": "c",
                                 "auth_protocol": "sha1"})


def test_check_config_names_file_line_and_key_of_md5_and_des(tmp_path, gateway_cmd,
                                                              subprocess_env):
    path = tmp_path / "gw.yaml"
    path.write_text(
        "snmp_agent:\n"
        "  v3_users:\n"
        "    - name: nms\n"
        "      auth_protocol: md5\n"
        "      auth_key: auth-pass-123\n"
        "      priv_key: priv-pass-456\n"
        "  notifications:\n"
        "    receivers:\n"
        "      - host: 192.0.2.1\n"
        "        version: v3\n"
        "        user: traps\n"
        "        auth_key: auth-pass-123\n"
        "        priv_protocol: DES\n"
        "        priv_key: priv-pass-456\n")
    proc = subprocess.run([*gateway_cmd, "check-config", str(path)], capture_output=True,
                          text=True, env=subprocess_env, timeout=60)
    assert proc.returncode == 78
    lines = proc.stderr.splitlines()
    assert any(line.startswith(f"{path}:4: snmp_agent.v3_users.0.auth_protocol: md5 ")
               and "MD5 is broken" in line for line in lines), proc.stderr
    assert any(line.startswith(
        f"{path}:13: snmp_agent.notifications.receivers.0.priv_protocol: des ")
        and "withdrew DES" in line for line in lines), proc.stderr
