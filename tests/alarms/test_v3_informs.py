"""SNMPv3 informs with each offered authentication and privacy family (issue 12): one
acknowledged inform per family, received by a real ``snmptrapd`` for every pair the
installed net-snmp speaks (probed, not assumed), and by a pysnmp notification receiver
for the rest and for both AES-192/256 key extensions with SHA-1, where they differ."""

from __future__ import annotations

import asyncio

import pytest

from plugins.snmp_agent.notifications import make_cold_start
from plugins.snmp_agent.settings import Receiver

pytestmark = pytest.mark.e2e

#: every auth and every priv protocol appears; the AES-192/256 ones with sha1 too,
#: where the localized key (20 octets) must be extended
FAMILIES = [("sha1", "aes128"), ("sha224", "aes192"), ("sha384", "aes256"),
            ("sha512", "aes128"), ("sha256", "aes256c"), ("sha1", "aes192"),
            ("sha1", "aes256"), ("sha1", "aes192c"), ("sha1", "aes256c")]


def user_of(auth: str, priv: str) -> str:
    return f"t-{auth}-{priv}"


def receiver(port: int, auth: str, priv: str) -> Receiver:
    return Receiver.model_validate({
        "host": "127.0.0.1", "port": port, "version": "v3", "user": user_of(auth, priv),
        "auth_protocol": auth, "auth_key": f"a-{auth}-{priv}-key",
        "priv_protocol": priv, "priv_key": f"p-{auth}-{priv}-key",
        "timeout_s": 3, "retries": 1})


async def send_informs(port: int, pairs, ticks_base: int) -> list[bool]:
    """One coldStart inform per pair (sysUpTime = ticks_base + index), in turn."""
    from plugins.snmp_agent.inform import InformSender

    results = []
    for i, (auth, priv) in enumerate(pairs):
        sender = InformSender(receiver(port, auth, priv), engine_seed=f"test/{auth}/{priv}")
        try:
            results.append(await sender.send(make_cold_start(ticks_base + i)))
        finally:
            sender.close()
    return results


def test_snmptrapd_acknowledges_an_inform_of_every_family_it_speaks(e2e, tmp_path,
                                                                    require_tool):
    require_tool("snmptrapd")
    auth_names, priv_names = e2e.netsnmp_protocols()
    pairs = [(a, x) for a, x in FAMILIES if a in auth_names and x in priv_names]
    assert {"sha1", "sha224", "sha384", "sha512"} <= {a for a, _ in pairs}, auth_names
    assert {"aes128", "aes192", "aes256"} <= {x for _, x in pairs}, priv_names
    port = e2e.free_port()
    users = [(user_of(a, x), auth_names[a], f"a-{a}-{x}-key", priv_names[x], f"p-{a}-{x}-key")
             for a, x in pairs]
    trapd = e2e.TrapDaemon(tmp_path, [port], users=users)
    try:
        acknowledged = asyncio.run(send_informs(port, pairs, 1000))
        assert acknowledged == [True] * len(pairs)
        for i, pair in enumerate(pairs):
            got = trapd.wait(lambda t, i=i: t.name == "coldStart"
                             and t.values.get("sysUpTime.0", "").startswith(f"({1000 + i})"))
            assert got.port == port, pair
    finally:
        trapd.stop()


async def receive_with_pysnmp(pairs) -> list[tuple[list[bool], list[int]]]:
    """A pysnmp notification receiver (authoritative engine) with one user per pair;
    returns (acknowledged, the sysUpTime of each inform received)."""
    from pysnmp.carrier.asyncio.dgram import udp
    from pysnmp.entity import config, engine
    from pysnmp.entity.rfc3413 import ntfrcv

    from plugins.snmp_agent.usm import add_user

    snmp_engine = engine.SnmpEngine()
    transport = udp.UdpAsyncioTransport().open_server_mode(("127.0.0.1", 0))
    config.add_transport(snmp_engine, udp.DOMAIN_NAME, transport)
    for a, x in pairs:
        add_user(snmp_engine, user_of(a, x), auth_protocol=a, auth_key=f"a-{a}-{x}-key",
                 priv_protocol=x, priv_key=f"p-{a}-{x}-key")
    received: list[int] = []

    def on_notification(snmp_engine, state_reference, context_engine_id, context_name,
                        varbinds, ctx) -> None:
        for name, value in varbinds:
            if tuple(name) == (1, 3, 6, 1, 2, 1, 1, 3, 0):
                received.append(int(value))

    ntfrcv.NotificationReceiver(snmp_engine, on_notification)
    try:
        for _ in range(100):  # the server socket opens in a task of its own
            if transport.transport is not None:
                break
            await asyncio.sleep(0.01)
        port = transport.transport.get_extra_info("sockname")[1]
        acknowledged = await send_informs(port, pairs, 2000)
    finally:
        snmp_engine.close_dispatcher()
    return acknowledged, received


def test_a_pysnmp_receiver_acknowledges_the_other_families_and_both_key_extensions(e2e):
    auth_names, priv_names = e2e.netsnmp_protocols()
    pairs = [(a, x) for a, x in FAMILIES if a not in auth_names or x not in priv_names]
    pairs += [p for p in [("sha1", "aes192c"), ("sha1", "aes256c"), ("sha1", "aes256")]
              if p not in pairs]
    acknowledged, received = asyncio.run(receive_with_pysnmp(pairs))
    assert acknowledged == [True] * len(pairs)
    assert received == [2000 + i for i in range(len(pairs))]
