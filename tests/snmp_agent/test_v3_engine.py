"""The SNMPv3 fast path (plugins/snmp_agent/v3_engine.py) seen from the wire: net-snmp's
requests go through a recording UDP relay, so each report can be checked field by field
(the table in v3_engine's docstring, which is what the agent answered when pysnmp did
this work), and real requests can be replayed late or garbled."""

from __future__ import annotations

import socket
import threading

import pytest

from plugins.snmp_agent import ber

pytestmark = pytest.mark.e2e

SYS_NAME = ".1.3.6.1.2.1.1.5.0"
USM = "1.3.6.1.6.3.15.1.1"
AUTH, PRIV, REPORTABLE = 1, 2, 4


class Relay:
    """A UDP relay in front of the agent that keeps every (request, reply) pair."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.front.settimeout(0.1)
        self._stop = threading.Event()
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.settimeout(0.5)
        self.pairs: list[tuple[bytes, bytes | None]] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.front.getsockname()[1]}"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.front.recvfrom(65535)
            except TimeoutError:
                continue
            reply = self.exchange(data)
            self.pairs.append((data, reply))
            if reply is not None:
                self.front.sendto(reply, addr)

    def exchange(self, data: bytes) -> bytes | None:
        self.back.sendto(data, ("127.0.0.1", self.port))
        try:
            return self.back.recvfrom(65535)[0]
        except TimeoutError:
            return None

    def burst(self, messages: list[bytes], *, chunk: int = 25) -> list[bytes]:
        """Send ``messages`` a chunk at a time; every reply that comes back."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(0.2)
        replies = []
        try:
            for i in range(0, len(messages), chunk):
                for m in messages[i:i + chunk]:
                    sock.sendto(m, ("127.0.0.1", self.port))
                while True:
                    try:
                        replies.append(sock.recvfrom(65535)[0])
                    except TimeoutError:
                        break
        finally:
            sock.close()
        return replies

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.front.close()
        self.back.close()


@pytest.fixture(scope="module")
def agent(bank, tmp_path_factory):
    running = bank.RunningAgent(
        {"v3_users": [{"name": bank.V3_USER, "auth_key": bank.V3_AUTH,
                       "priv_key": bank.V3_PRIV}]},
        state_dir=tmp_path_factory.mktemp("snmp-v3-engine")).start()
    yield running
    running.stop()


@pytest.fixture
def relay(agent):
    r = Relay(agent.port)
    yield r
    r.close()


def describe(msg: bytes) -> dict:
    """The fields of a plaintext SNMPv3 message (a report), or of an encrypted one's
    header."""
    h = ber.decode_v3_header(msg)
    out = {"msg_id": h.msg_id, "flags": h.flags, "user": h.user_name,
           "engine_id": h.engine_id, "mac": h.auth_end - h.auth_start,
           "encrypted": h.data_tag == ber.OCTET_STRING}
    if not out["encrypted"]:
        scoped = ber.decode_scoped_pdu(msg, h.data_tlv_start, h.data_end)
        varbinds = []
        for vb in scoped.request.varbinds:
            _, os_, oe = ber.read_tlv(vb, 2, len(vb))
            tag, vs, ve = ber.read_tlv(vb, oe, len(vb))
            varbinds.append((".".join(map(str, ber.decode_oid(vb, os_, oe))), tag,
                             int.from_bytes(vb[vs:ve], "big")))
        out.update(pdu=scoped.request.pdu_type, context_engine_id=scoped.context_engine_id,
                   context_name=scoped.context_name,
                   request_id=ber.decode_integer(scoped.request.request_id_tlv, 2,
                                                 len(scoped.request.request_id_tlv)),
                   varbinds=varbinds)
    return out


def get(snmp, bank, relay, *, check=False, **kwargs):
    args = bank.v3_args(relay, **{"timeout": 0.5, "retries": 0, **kwargs})
    return snmp("snmpget", "-On", "-Oqv", *args, SYS_NAME, check=check)


def usm_report(pair, counter: int) -> dict:
    request, reply = pair
    assert reply is not None
    got = describe(reply)
    assert got["msg_id"] == ber.decode_v3_header(request).msg_id
    assert got["pdu"] == ber.REPORT
    (name, tag, _), = got["varbinds"]
    assert (name, tag) == (f"{USM}.{counter}.0", ber.COUNTER32)
    return got


def test_discovery_report(agent, snmp, bank, relay):
    assert get(snmp, bank, relay).stdout.strip() == '"site-42-gw"'
    (discovery, answer), (request, reply) = relay.pairs
    got = usm_report((discovery, answer), 4)  # usmStatsUnknownEngineIDs
    assert (got["flags"], got["user"], got["mac"]) == (0, b"", 0)
    assert got["engine_id"] == agent.agent.engine_id == got["context_engine_id"]
    assert got["request_id"] == describe(discovery)["request_id"]
    response = describe(reply)
    assert (response["flags"], response["user"], response["mac"], response["encrypted"]) == (
        AUTH | PRIV, bank.V3_USER.encode(), 24, True)


@pytest.mark.parametrize(("kwargs", "counter", "flags", "mac"), [
    ({"auth": "wrong-auth-key"}, 5, REPORTABLE, 0),  # usmStatsWrongDigests
    ({"user": "intruder"}, 3, REPORTABLE, 0),  # usmStatsUnknownUserNames
    ({"priv": "wrong-priv-key"}, 6, REPORTABLE, 0),  # usmStatsDecryptionErrors
    ({"level": "authNoPriv", "priv": None}, 1, AUTH, 24),  # usmStatsUnsupportedSecLevels
    ({"level": "noAuthNoPriv", "priv": None}, 1, 0, 0),
], ids=["wrong-digest", "unknown-user", "decryption-error", "authNoPriv", "noAuthNoPriv"])
def test_reports_of_refused_requests(agent, snmp, bank, relay, kwargs, counter, flags, mac):
    key = {1: "unsupported_sec_levels", 3: "unknown_user_names", 5: "wrong_digests",
           6: "decryption_errors"}[counter]
    before = agent.call(agent.agent.usm_counter_values)[key]
    proc = get(snmp, bank, relay, **kwargs)
    assert proc.returncode != 0 and "site-42-gw" not in proc.stdout
    got = usm_report(relay.pairs[-1], counter)
    assert (got["flags"], got["mac"], got["request_id"]) == (flags, mac, 0)
    assert got["varbinds"][0][2] == before + 1
    assert agent.call(agent.agent.usm_counter_values)[key] == before + 1


@pytest.mark.parametrize(("option", "oid"), [
    (["-n", "other"], "1.3.6.1.6.3.12.1.5.0"),  # snmpUnknownContexts
    (["-E", "0x800000000501020304"], "1.3.6.1.6.3.11.2.1.3.0"),  # snmpUnknownPDUHandlers
])
def test_reports_of_unknown_contexts(agent, snmp, bank, relay, option, oid):
    proc = get(snmp, bank, relay, extra=option)
    assert proc.returncode != 0 and "site-42-gw" not in proc.stdout
    request, reply = relay.pairs[-1]
    got = describe(reply)
    assert got["varbinds"][0][0] == oid and got["flags"] == 0
    assert got["request_id"] != 0  # the request was decrypted: its request-id is echoed


def test_a_replay_outside_the_time_window_is_reported_not_answered(agent, snmp, bank, relay):
    assert get(snmp, bank, relay).stdout.strip() == '"site-42-gw"'
    request, reply = relay.pairs[-1]
    assert describe(reply)["encrypted"]
    assert describe(relay.exchange(request))["encrypted"]  # a replay within the window
    before = agent.call(agent.agent.usm_counter_values)["not_in_time_windows"]
    agent.call(lambda: setattr(agent.clock, "now", agent.clock.now + 151))
    try:
        late = describe(relay.exchange(request))
        assert late["varbinds"] == [(f"{USM}.2.0", ber.COUNTER32, before + 1)]
        assert (late["flags"], late["mac"], late["request_id"]) == (AUTH, 24, 0)  # signed
        # the manager learns our time from the report and its next request is answered
        assert get(snmp, bank, relay).stdout.strip() == '"site-42-gw"'
    finally:
        agent.call(lambda: setattr(agent.clock, "now", agent.clock.now - 151))


def test_garbled_and_truncated_requests_never_get_data(agent, snmp, bank, relay):
    assert get(snmp, bank, relay).stdout.strip() == '"site-42-gw"'
    request, _ = relay.pairs[-1]
    errors = agent.call(lambda: agent.agent.counters.internal_errors)
    variants = [request[:n] for n in range(len(request))]
    variants += [request[:i] + bytes((request[i] ^ 0x01,)) + request[i + 1:]
                 for i in range(len(request))]
    replies = relay.burst(variants)
    assert replies  # the flips the parser survives are refused with a report
    for reply in replies:  # the HMAC covers every octet: no variant gets an answer
        assert describe(reply)["pdu"] == ber.REPORT
    assert agent.call(lambda: agent.agent.counters.internal_errors) == errors
    assert get(snmp, bank, relay).stdout.strip() == '"site-42-gw"'
