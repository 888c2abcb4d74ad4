"""The running agent against the real net-snmp tools (and a raw UDP client).

Agents run in-process on their own event loop (see conftest), over a hub fed with the
synthetic bank; the clock is fake, so every age and uptime is exact and nothing sleeps.
"""

from __future__ import annotations

import dataclasses
import re
import socket

import pytest

from gateway.model import ModuleStatus
from plugins.snmp_agent import ber
from plugins.snmp_agent import oid_map as om
from plugins.snmp_agent import standard_mibs

pytestmark = pytest.mark.e2e

MIB_ARGS = ["-m", "+BMS-GATEWAY-MIB", "-M", "+{mibs}"]
BMS = ".1.3.6.1.4.1.32473"


def mib_args(bank) -> list[str]:
    return [a.format(mibs=bank.MIBS) for a in MIB_ARGS]


def numeric(snmp, bank, agent, tool, *oids, extra=()):
    out = snmp(tool, "-On", "-Oq", "-Oe", "-Ot", *extra, *bank.v2c_args(agent), *oids).stdout
    return dict(line.split(" ", 1) for line in out.splitlines() if line)


def udp_exchange(agent, payload: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.sendto(payload, ("127.0.0.1", agent.port))
        return s.recv(65535)


def assert_dropped(agent, payloads, probe: bytes, marker: bytes) -> None:
    """Send ``payloads`` then ``probe`` on one socket: the agent handles datagrams in
    order, so if the first reply is the probe's, none of the payloads was answered."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        for payload in payloads:
            s.sendto(payload, ("127.0.0.1", agent.port))
        s.sendto(probe, ("127.0.0.1", agent.port))
        assert marker in s.recv(65535)


def v2c_request(pdu_type, names, *, community, f2=0, f3=0, request_id=4242) -> bytes:
    varbinds = b"".join(ber.tlv(ber.SEQUENCE, ber.tlv(ber.OBJECT_IDENTIFIER,
                                                      ber.encode_oid_content(o)) + b"\x05\x00")
                        for o in names)
    pdu = (ber.encode_integer(request_id) + ber.encode_integer(f2) + ber.encode_integer(f3)
           + ber.tlv(ber.SEQUENCE, varbinds))
    return ber.tlv(ber.SEQUENCE, ber.encode_integer(1)
                   + ber.tlv(ber.OCTET_STRING, community.encode()) + ber.tlv(pdu_type, pdu))


def counter(agent, key: str) -> int:
    return agent.call(lambda: agent.agent.counter_values()[key])


def test_snmpget_values_equal_the_snapshot_scale_and_sign(v2c_agent, snmp, bank):
    snap = v2c_agent.hub.latest
    m1, m2 = snap.module(1), snap.module(2)
    col = {o.name: "." + ".".join(map(str, o.oid)) for o in om.OBJECT_TYPES.values()}
    got = numeric(snmp, bank, v2c_agent, "snmpget",
                  col["bmsModuleCurrent"] + ".1.1", col["bmsModuleCurrent"] + ".1.2",
                  col["bmsModuleVoltage"] + ".1.1", col["bmsTempValue"] + ".1.2.1",
                  col["bmsBankCurrent"] + ".0", col["bmsModuleSoc"] + ".1.1",
                  col["bmsCellVoltage"] + ".1.1.16", col["bmsModuleStatus"] + ".2.1",
                  col["sysName"] + ".0", col["bmsGwLastCycleAge"] + ".0")
    assert m1.telemetry.current_ma < 0 < m2.telemetry.current_ma
    assert got[col["bmsModuleCurrent"] + ".1.1"] == str(m1.telemetry.current_ma)
    assert got[col["bmsModuleCurrent"] + ".1.2"] == str(m2.telemetry.current_ma)
    assert got[col["bmsModuleVoltage"] + ".1.1"] == str(m1.telemetry.voltage_mv)
    assert got[col["bmsTempValue"] + ".1.2.1"] == "-85"
    assert got[col["bmsBankCurrent"] + ".0"] == str(snap.bank.current_ma)
    assert got[col["bmsModuleSoc"] + ".1.1"] == str(m1.telemetry.soc_permille)
    assert got[col["bmsCellVoltage"] + ".1.1.16"] == str(m1.telemetry.cell_mv[15])
    assert got[col["bmsModuleStatus"] + ".2.1"] == "3"  # offline
    assert got[col["sysName"] + ".0"] == '"site-42-gw"'
    assert got[col["bmsGwLastCycleAge"] + ".0"] == "3"


def test_display_hints_render_units_and_sign(v2c_agent, snmp, bank):
    out = snmp("snmpget", *mib_args(bank), *bank.v2c_args(v2c_agent),
               "BMS-GATEWAY-MIB::bmsModuleCurrent.1.1", "BMS-GATEWAY-MIB::bmsModuleVoltage.1.1",
               "BMS-GATEWAY-MIB::bmsTempValue.1.2.1", "BMS-GATEWAY-MIB::bmsModuleSoc.1.1",
               "BMS-GATEWAY-MIB::bmsModuleStatus.1.5", "BMS-GATEWAY-MIB::bmsModuleWarnings.1.1",
               "BMS-GATEWAY-MIB::bmsModuleFaults.1.7").stdout
    m1 = v2c_agent.hub.latest.module(1).telemetry
    assert f"bmsModuleCurrent.1.1 = INTEGER: {m1.current_ma / 1000:.3f} amperes" in out
    assert f"bmsModuleVoltage.1.1 = INTEGER: {m1.voltage_mv / 1000:.3f} volts" in out
    assert "bmsTempValue.1.2.1 = INTEGER: -8.5 degrees Celsius" in out
    assert "bmsModuleSoc.1.1 = INTEGER: 80.1 percent" in out
    assert "bmsModuleStatus.1.5 = INTEGER: stale(2)" in out
    assert re.search(r"bmsModuleWarnings\.1\.1 = BITS: 80 02 .*cellOverVoltage\(0\) "
                     r"lowCapacity\(14\)", out)
    assert re.search(r"bmsModuleFaults\.1\.7 = BITS: 06 00 .*samplingIc\(5\) "
                     r"reverseConnection\(6\)", out)


def test_get_exceptions(v2c_agent, snmp, bank):
    got = numeric(snmp, bank, v2c_agent, "snmpget",
                  BMS + ".2.1.1.4.1.11.2.4",  # never-seen module's voltage
                  BMS + ".2.1.1.4.1.11.1.5",  # stale module's voltage
                  BMS + ".2.1.1.4.1.11.9.9",  # no such module
                  BMS + ".2.1.1.99.0",  # no such object
                  ".1.3.6.1.2.1.2.1.0")  # ifNumber: not served
    assert got == {
        BMS + ".2.1.1.4.1.11.2.4": "No Such Instance currently exists at this OID",
        BMS + ".2.1.1.4.1.11.1.5": "No Such Instance currently exists at this OID",
        BMS + ".2.1.1.4.1.11.9.9": "No Such Instance currently exists at this OID",
        BMS + ".2.1.1.99.0": "No Such Object available on this agent at this OID",
        ".1.3.6.1.2.1.2.1.0": "No Such Object available on this agent at this OID",
    }


END = "No more variables left in this MIB View (It is past the end of the MIB tree)"


def walk_lines(snmp, bank, agent, tool, *extra, args=None):
    """A walk's lines, without the endOfMibView line net-snmp prints at the end."""
    lines: list[str] = []
    for line in snmp(tool, *extra, *(args or bank.v2c_args(agent)), ".1").stdout.splitlines():
        if lines and not re.match(r"^(\.\d|[A-Za-z][\w-]*::)", line):
            lines[-1] += "\n" + line  # net-snmp wraps a long Hex-STRING (snmpEngineID)
        else:
            lines.append(line)
    assert lines[-1].endswith(END)
    return lines[:-1]


#: values that move between two walks: snmpInPkts and snmpEngineTime
_MOVING = re.compile(r"^(\.1\.3\.6\.1\.2\.1\.11\.1\.0 = Counter32:|"
                     r"\.1\.3\.6\.1\.6\.3\.10\.2\.1\.3\.0 = INTEGER:) \d+")


def test_walks_agree_and_cover_the_table(v2c_agent, snmp, bank):
    getnext = walk_lines(snmp, bank, v2c_agent, "snmpwalk", "-On", "-Cc")
    bulk10 = walk_lines(snmp, bank, v2c_agent, "snmpbulkwalk", "-On", "-Cr10")
    bulk64 = walk_lines(snmp, bank, v2c_agent, "snmpbulkwalk", "-On", "-Cr64")
    table = v2c_agent.call(v2c_agent.agent.table)
    strip = [_MOVING.sub(r"\1 N", line) for line in getnext]
    assert [_MOVING.sub(r"\1 N", line) for line in bulk10] == strip
    assert [_MOVING.sub(r"\1 N", line) for line in bulk64] == strip
    assert [line.split(" = ")[0] for line in getnext] == [
        "." + ".".join(map(str, oid)) for oid in table.oids]
    assert len(getnext) > 800


def test_every_served_oid_resolves_to_a_mib_name_and_every_object_is_served(
        v2c_agent, snmp, bank):
    numbered = walk_lines(snmp, bank, v2c_agent, "snmpbulkwalk", "-On", "-Cr25")
    out = walk_lines(snmp, bank, v2c_agent, "snmpbulkwalk", "-Cr25", "-m",
                     "SNMPv2-MIB:BMS-GATEWAY-MIB:ENTITY-SENSOR-MIB:UPS-MIB", "-M",
                     f"+{bank.MIBS}")
    names = set()
    usm = set()
    for line in out:
        if line.startswith("SNMPv2-SMI::snmpModules.15.1.1."):
            # usmStats: SNMP-USER-BASED-SM-MIB is not among the shipped MIBs
            usm.add(int(line.split(".")[4]))
            continue
        assert re.match(r"^(SNMPv2-MIB|BMS-GATEWAY-MIB|SNMP-FRAMEWORK-MIB|ENTITY-MIB|"
                        r"ENTITY-SENSOR-MIB|UPS-MIB)::[a-zA-Z][a-zA-Z0-9]*\.\d", line), line
        names.add(line.split("::")[1].split(".")[0])
    assert names == (set(om.OBJECT_TYPES) | set(standard_mibs.OBJECT_TYPES)) - {
        o.name for o in om.USM_COUNTERS.values()}
    assert usm == {o.oid[-1] for o in om.USM_COUNTERS.values()}
    assert len(out) == len(numbered)


def test_snmptable(v2c_agent, snmp, bank):
    out = snmp("snmptable", "-Cf", "|", "-Ci", *mib_args(bank), *bank.v2c_args(v2c_agent),
               "BMS-GATEWAY-MIB::bmsModuleTable").stdout.splitlines()
    header = out[2].split("|")
    rows = {r.split("|")[0]: dict(zip(header, r.split("|"))) for r in out[3:]}
    assert len(rows) == 12
    assert rows["1.1"]["bmsModuleStatus"] == "ok"
    assert rows["1.5"]["bmsModuleStatus"] == "stale" and rows["1.5"]["bmsModuleVoltage"] == "?"
    assert rows["2.1"]["bmsModuleStatus"] == "offline"
    assert rows["2.4"]["bmsModuleStatus"] == "neverSeen"
    assert rows["2.4"]["bmsModuleDataAge"] == "?" and rows["2.4"]["bmsModulePosition"] == "12"
    assert rows["1.1"]["bmsModuleCurrent"] == "-1.375 amperes"
    cells = snmp("snmptable", "-Cf", "|", "-Ci", *mib_args(bank), *bank.v2c_args(v2c_agent),
                 "BMS-GATEWAY-MIB::bmsCellTable").stdout.splitlines()[3:]
    assert len(cells) == 16 * 9  # nine live modules
    assert "1.3.8|?|false" in cells  # the unreadable cell: no voltage, never 0
    temps = snmp("snmptable", "-Cf", "|", "-Ci", *mib_args(bank), *bank.v2c_args(v2c_agent),
                 "BMS-GATEWAY-MIB::bmsTempTable").stdout.splitlines()[3:]
    assert len(temps) == 6 * 9 and "1.1.5|23.1 degrees Celsius|mosfet" in temps
    alarms = snmp("snmptable", "-Cf", "|", "-Ci", *mib_args(bank), *bank.v2c_args(v2c_agent),
                  "BMS-GATEWAY-MIB::bmsAlarmTable").stdout.splitlines()[3:]
    assert [a.split("|")[:4] for a in alarms] == [["7", "cell_voltage_high", "major", "1"],
                                                  ["11", "module_offline", "critical", "9"]]


def test_wrong_community_is_dropped_and_counted(v2c_agent, snmp, bank):
    before = counter(v2c_agent, "in_bad_community_names")
    proc = snmp("snmpget", *bank.v2c_args(v2c_agent, community="public", timeout=0.3,
                                          retries=0), ".1.3.6.1.2.1.1.5.0", check=False)
    assert proc.returncode != 0 and "Timeout" in proc.stderr
    assert counter(v2c_agent, "in_bad_community_names") == before + 1
    got = numeric(snmp, bank, v2c_agent, "snmpget", ".1.3.6.1.2.1.11.4.0")
    assert int(got[".1.3.6.1.2.1.11.4.0"]) == before + 1


def test_set_is_refused(v2c_agent, snmp, bank):
    proc = snmp("snmpset", *bank.v2c_args(v2c_agent), ".1.3.6.1.2.1.1.5.0", "s", "hacked",
                check=False)
    assert proc.returncode != 0 and "noAccess" in proc.stderr
    proc = snmp("snmpset", *bank.v2c_args(v2c_agent), BMS + ".2.1.1.4.1.11.1.1", "i", "1",
                check=False)
    assert "noAccess" in proc.stderr
    assert numeric(snmp, bank, v2c_agent, "snmpget", ".1.3.6.1.2.1.1.5.0")[
        ".1.3.6.1.2.1.1.5.0"] == '"site-42-gw"'


def test_malformed_and_truncated_packets_are_dropped_counted_and_survived(v2c_agent, bank):
    good = v2c_request(ber.GET_REQUEST, [(1, 3, 6, 1, 2, 1, 1, 5, 0)], community=bank.COMMUNITY)
    garbage = [b"", b"\x00", b"\xff" * 50, b"\x30\x80\x02\x01\x01\x00\x00", good + b"\x00",
               good.replace(b"\x06\x08", b"\x06\x7f", 1)]
    garbage += [good[:n] for n in range(1, len(good))]
    before = counter(v2c_agent, "in_asn_parse_errs")
    assert_dropped(v2c_agent, garbage, good, b"site-42-gw")
    assert counter(v2c_agent, "in_asn_parse_errs") == before + len(garbage)


def test_v1_and_stray_pdus_are_dropped(v2c_agent, bank):
    v1 = bytearray(v2c_request(ber.GET_REQUEST, [(1, 3, 6, 1, 2, 1, 1, 5, 0)],
                               community=bank.COMMUNITY))
    v1[4] = 0  # version 0: SNMPv1 is not served
    response = v2c_request(ber.RESPONSE, [(1, 3, 6, 1)], community=bank.COMMUNITY)
    good = v2c_request(ber.GET_REQUEST, [(1, 3, 6, 1, 2, 1, 1, 5, 0)],
                       community=bank.COMMUNITY)
    before = counter(v2c_agent, "in_bad_versions")
    assert_dropped(v2c_agent, [bytes(v1), response], good, b"site-42-gw")
    assert counter(v2c_agent, "in_bad_versions") == before + 1


def decode_reply(reply: bytes) -> tuple[int, int, list[tuple[tuple[int, ...], int]]]:
    """(error-status, error-index, [(name, value tag)]) of a v2c Response."""
    _, s, e = ber.read_tlv(reply, 0, len(reply))
    _, vs, ve = ber.read_tlv(reply, s, e)
    _, cs, ce = ber.read_tlv(reply, ve, e)
    tag, ps, pe = ber.read_tlv(reply, ce, e)
    assert tag == ber.RESPONSE
    _, rs, re_ = ber.read_tlv(reply, ps, pe)
    _, es, ee = ber.read_tlv(reply, re_, pe)
    _, xs, xe = ber.read_tlv(reply, ee, pe)
    _, ls, le = ber.read_tlv(reply, xe, pe)
    out, pos = [], ls
    while pos < le:
        _, bs, be = ber.read_tlv(reply, pos, le)
        _, os_, oe = ber.read_tlv(reply, bs, be)
        vtag, _, _ = ber.read_tlv(reply, oe, be)
        out.append((ber.decode_oid(reply, os_, oe), vtag))
        pos = be
    return ber.decode_integer(reply, es, ee), ber.decode_integer(reply, xs, xe), out


def test_getbulk_is_truncated_to_the_message_size(v2c_agent, bank):
    req = v2c_request(ber.GET_BULK_REQUEST, [(1, 3, 6, 1, 4, 1, 32473)], f3=2000,
                      community=bank.COMMUNITY)
    reply = udp_exchange(v2c_agent, req)
    status, index, varbinds = decode_reply(reply)
    assert (status, index) == (0, 0)
    assert 1400 < len(reply) <= 1472 and len(varbinds) > 40
    # the end of the view stops the repetitions: no endless endOfMibView padding
    last = v2c_agent.call(v2c_agent.agent.table).oids[-1]
    # from the last object's own OID: the one instance that precedes the end of the view
    req = v2c_request(ber.GET_BULK_REQUEST, [last[:-1]], f3=2000,
                      community=bank.COMMUNITY)
    status, _, varbinds = decode_reply(udp_exchange(v2c_agent, req))
    assert varbinds[-1] == (last, ber.END_OF_MIB_VIEW) and len(varbinds) <= 3


def test_get_too_big(v2c_agent, bank):
    req = v2c_request(ber.GET_REQUEST, [(1, 3, 6, 1, 2, 1, 1, 1, 0)] * 40,
                      community=bank.COMMUNITY)
    status, index, varbinds = decode_reply(udp_exchange(v2c_agent, req))
    assert (status, index, varbinds) == (ber.TOO_BIG, 0, [])
    # GETBULK is never tooBig (RFC 3416 4.2.3): the non-repeaters are cut from the end
    req = v2c_request(ber.GET_BULK_REQUEST, [(1, 3, 6, 1, 2, 1, 1, 1)] * 40, f2=40,
                      community=bank.COMMUNITY)
    reply = udp_exchange(v2c_agent, req)
    status, index, varbinds = decode_reply(reply)
    assert (status, index) == (ber.NO_ERROR, 0) and 0 < len(varbinds) < 40
    assert all(oid == (1, 3, 6, 1, 2, 1, 1, 1, 0) for oid, *_ in varbinds)
    assert len(reply) <= v2c_agent.agent.settings.max_message_size


def test_uptime_counts_from_the_agent_start_and_ages_follow_the_clock(v2c_agent, snmp, bank):
    start = v2c_agent.agent.started_at
    assert start == bank.T0  # set when the agent started, before any request
    v2c_agent.clock.now = bank.T0 + 12.34
    try:
        got = numeric(snmp, bank, v2c_agent, "snmpget", ".1.3.6.1.2.1.1.3.0",
                      BMS + ".2.1.1.1.2.0", BMS + ".2.1.1.4.1.5.1.1")
    finally:
        v2c_agent.clock.now = bank.T0
    assert got[".1.3.6.1.2.1.1.3.0"] == "1234"
    assert got[BMS + ".2.1.1.1.2.0"] == "1234"
    assert got[BMS + ".2.1.1.4.1.5.1.1"] == "14"  # data age: 2 s + 12.34 s


def test_a_new_snapshot_is_served_at_once(v2c_agent, snmp, bank):
    snap = v2c_agent.hub.latest
    gone = [dataclasses.replace(m, status=ModuleStatus.OFFLINE) if m.position == 1 else m
            for m in snap.modules]
    voltage = BMS + ".2.1.1.4.1.11.1.1"
    try:
        v2c_agent.publish(gone, snap.buses)
        got = numeric(snmp, bank, v2c_agent, "snmpget", voltage, BMS + ".2.1.1.4.1.3.1.1")
        assert got == {voltage: "No Such Instance currently exists at this OID",
                       BMS + ".2.1.1.4.1.3.1.1": "3"}
    finally:
        v2c_agent.publish(snap.modules, snap.buses)
    assert numeric(snmp, bank, v2c_agent, "snmpget", voltage)[voltage] == str(
        snap.module(1).telemetry.voltage_mv)


# ------------------------------------------------------------------- SNMPv3 ---------


def test_v3_authpriv_walk_equals_v2c(v3_agent, snmp, bank):
    v3 = snmp("snmpbulkwalk", "-On", "-Cr25", *bank.v3_args(v3_agent), BMS).stdout
    v2 = snmp("snmpbulkwalk", "-On", "-Cr25", *bank.v2c_args(v3_agent), BMS).stdout
    assert v3 == v2 and len(v3.splitlines()) > 800
    got = snmp("snmpget", "-On", "-Oq", *bank.v3_args(v3_agent), ".1.3.6.1.2.1.1.5.0",
               BMS + ".2.1.1.4.1.12.1.1").stdout
    assert got.splitlines() == ['.1.3.6.1.2.1.1.5.0 "site-42-gw"',
                                f"{BMS}.2.1.1.4.1.12.1.1 -1375"]


def test_v3_snmptable_and_names(v3_agent, snmp, bank):
    out = snmp("snmptable", "-Cf", "|", "-Ci", *mib_args(bank), *bank.v3_args(v3_agent),
               "BMS-GATEWAY-MIB::bmsBusTable").stdout.splitlines()
    assert out[3].startswith("1|bank1|true|1840 milliseconds")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"auth": "wrong-auth-key"}, "Authentication failure"),
    ({"user": "intruder"}, "Unknown user name"),
    ({"priv": "wrong-priv-key"}, "Timeout"),
    ({"level": "authNoPriv", "priv": None}, "Unsupported security level"),
])
def test_v3_bad_credentials_are_rejected(v3_agent, snmp, bank, kwargs, message):
    # two round trips (engine discovery, then the request) must answer within the
    # timeout; only the wrong priv key times out on purpose, and needs no more than 0.5 s
    timeout = 0.5 if message == "Timeout" else 3
    args = bank.v3_args(v3_agent, timeout=timeout, retries=0, **kwargs)
    proc = snmp("snmpget", *args, ".1.3.6.1.2.1.1.5.0", check=False)
    assert proc.returncode != 0
    assert message in proc.stderr + proc.stdout
    assert "site-42-gw" not in proc.stdout


def test_v3_engine_id_is_the_agents_and_persisted(v3_agent, snmp, bank):
    engine_id = v3_agent.agent.engine_id
    assert engine_id[:4] == (0x80000000 | om.PEN).to_bytes(4, "big")
    ok = snmp("snmpget", "-On", "-Oqv",
              *bank.v3_args(v3_agent, extra=["-e", "0x" + engine_id.hex()]),
              ".1.3.6.1.2.1.1.5.0")
    assert ok.stdout.strip() == '"site-42-gw"'
    wrong = "0x" + (engine_id[:-1] + bytes((engine_id[-1] ^ 1,))).hex()
    proc = snmp("snmpget", *bank.v3_args(v3_agent, timeout=0.3, retries=0, extra=["-e", wrong]),
                ".1.3.6.1.2.1.1.5.0", check=False)
    assert proc.returncode != 0
    assert v3_agent.agent.engine_boots == 1


def test_v3_replies_fit_the_managers_msg_max_size(v3_agent, snmp, bank):
    small = snmp("snmpbulkget", "-On", "-Cr200", "--sendMessageMaxSize=700",
                 *bank.v3_args(v3_agent), BMS + ".2.1.1.5").stdout.splitlines()
    large = snmp("snmpbulkget", "-On", "-Cr200", "--sendMessageMaxSize=65000",
                 *bank.v3_args(v3_agent), BMS + ".2.1.1.5").stdout.splitlines()
    assert 5 < len(small) < len(large)
    assert large[: len(small)] == small


def test_v3_set_refused_and_malformed_v3_survived(v3_agent, snmp, bank):
    proc = snmp("snmpset", *bank.v3_args(v3_agent), ".1.3.6.1.2.1.1.5.0", "s", "x",
                check=False)
    assert proc.returncode != 0 and "noAccess" in proc.stderr
    before = counter(v3_agent, "in_asn_parse_errs")
    header = ber.tlv(ber.SEQUENCE, ber.encode_integer(1) + ber.encode_integer(1472)
                     + ber.tlv(ber.OCTET_STRING, b"\x07") + ber.encode_integer(3))
    broken = [ber.tlv(ber.SEQUENCE, ber.encode_integer(3) + header)[:n] for n in (5, 12, 20)]
    inner = ber.tlv(ber.SEQUENCE, ber.encode_integer(3) + header
                    + ber.tlv(ber.OCTET_STRING, b"\x30\x03\x02\x01")  # bad USM parameters
                    + ber.tlv(ber.SEQUENCE, b""))
    good = v2c_request(ber.GET_REQUEST, [(1, 3, 6, 1, 2, 1, 1, 5, 0)],
                       community=bank.COMMUNITY)
    assert_dropped(v3_agent, [*broken, inner], good, b"site-42-gw")
    assert counter(v3_agent, "in_asn_parse_errs") == before + 4
    assert snmp("snmpget", "-Oqv", *bank.v3_args(v3_agent),
                ".1.3.6.1.2.1.1.5.0").stdout.strip() == '"site-42-gw"'


def test_runs_as_a_gateway_component_and_releases_its_socket(snmp, bank):
    """The real runtime: Gateway.run() with the plugin enabled, stopped by its trigger."""
    import asyncio
    import threading

    from gateway.app import Gateway
    from gateway.cli import config_models
    from gateway.config import config_from_mapping
    from gateway.plugins import make_plugin_manager

    pm, _ = make_plugin_manager()
    config = config_from_mapping(
        {"gateway": {"name": "rt-gw", "watchdog": False},
         "snmp_agent": {"port": 0, "v2c": {"community": bank.COMMUNITY}}}, config_models(pm))
    gw = Gateway(config, pm)
    (agent,) = gw.components["north"]
    gw.hub.update("rs485_bms", modules=bank.make_modules(0.0), buses=bank.make_buses(0.0))
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    ready = threading.Event()

    async def main():
        async def announce():
            await agent.ready.wait()
            ready.set()
        waiter = asyncio.ensure_future(announce())
        await gw.run(shutdown_trigger=stop.wait, install_signal_handlers=False)
        waiter.cancel()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),))
    thread.start()
    try:
        assert ready.wait(10)
        host, port = agent.address
        out = snmp("snmpget", "-Oqv", "-v2c", "-c", bank.COMMUNITY, f"{host}:{port}",
                   ".1.3.6.1.2.1.1.5.0", ".1.3.6.1.4.1.32473.2.1.1.2.21.0").stdout
        assert out.splitlines() == ['"rt-gw"', "12"]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
    assert not thread.is_alive()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, port))  # the agent released its port


# ------------------------------------------------------------ access lists ---------


@pytest.fixture(scope="module")
def acl_agent(bank, tmp_path_factory):
    agent = bank.RunningAgent(
        {"v2c": {"community": bank.COMMUNITY, "allowed_sources": ["127.0.0.1/32", "::1/128"]},
         "v3_users": [{"name": bank.V3_USER, "auth_key": bank.V3_AUTH,
                       "priv_key": bank.V3_PRIV, "allowed_sources": ["127.0.0.1/32"]}]},
        state_dir=tmp_path_factory.mktemp("snmp-acl")).start()
    yield agent
    agent.stop()


@pytest.mark.parametrize("version", ["v2c", "v3"])
def test_allowed_sources_answer_127_0_0_1_and_drop_127_0_0_2(acl_agent, snmp, bank, version):
    def args(**kw):
        return (bank.v2c_args(acl_agent, **kw) if version == "v2c"
                else bank.v3_args(acl_agent, **kw))
    before = counter(acl_agent, "in_bad_community_names")
    refused = acl_agent.call(lambda: acl_agent.agent.counters.refused_sources)
    ok = snmp("snmpget", "-Oqv", "--clientaddr=127.0.0.1", *args(), ".1.3.6.1.2.1.1.5.0")
    assert ok.stdout.strip() == '"site-42-gw"'
    proc = snmp("snmpget", "-Oqv", "--clientaddr=127.0.0.2", *args(timeout=0.3, retries=1),
                ".1.3.6.1.2.1.1.5.0", check=False)
    assert proc.returncode != 0 and "Timeout" in proc.stderr  # refused quietly
    assert "site-42-gw" not in proc.stdout
    sent = 2 if version == "v2c" else 2  # each try is dropped (v3: after its discovery)
    assert acl_agent.call(lambda: acl_agent.agent.counters.refused_sources) == refused + sent
    # v2c: counted as snmpd counts a community used from a source it is not valid from
    assert counter(acl_agent, "in_bad_community_names") == before + (
        sent if version == "v2c" else 0)
    figures = {f.name: f.value for f in acl_agent.call(acl_agent.agent.health_figures)}
    assert figures["snmp_refused_sources_total"] == refused + sent


# ------------------------------------------------------------ snmpEngine, usmStats --


USM_WRONG_DIGESTS = ".1.3.6.1.6.3.15.1.1.5.0"
USM_UNKNOWN_USERS = ".1.3.6.1.6.3.15.1.1.3.0"


def test_usm_stats_wrong_digests_move_after_a_wrong_auth_key(v3_agent, snmp, bank):
    def read() -> dict[str, str]:
        return numeric(snmp, bank, v3_agent, "snmpget", USM_WRONG_DIGESTS, USM_UNKNOWN_USERS)
    before = read()
    proc = snmp("snmpget", *bank.v3_args(v3_agent, auth="wrong-auth-key", timeout=3,
                                         retries=0), ".1.3.6.1.2.1.1.5.0", check=False)
    assert "Authentication failure" in proc.stderr + proc.stdout
    snmp("snmpget", *bank.v3_args(v3_agent, user="intruder", timeout=3, retries=0),
         ".1.3.6.1.2.1.1.5.0", check=False)
    after = read()
    assert int(after[USM_WRONG_DIGESTS]) == int(before[USM_WRONG_DIGESTS]) + 1
    assert int(after[USM_UNKNOWN_USERS]) == int(before[USM_UNKNOWN_USERS]) + 1
    # the same counters over v3, and in the gateway's health figures
    got = snmp("snmpget", "-On", "-Oqv", *bank.v3_args(v3_agent), USM_WRONG_DIGESTS).stdout
    assert int(got) == int(after[USM_WRONG_DIGESTS])
    figures = {f.name: f.value for f in v3_agent.call(v3_agent.agent.health_figures)}
    assert figures["snmp_usm_wrong_digests_total"] == int(after[USM_WRONG_DIGESTS])


def test_snmp_engine_group_is_the_engines(v3_agent, snmp, bank):
    names = ["." + ".".join(map(str, om.SNMP_ENGINE_OID + (n, 0))) for n in (1, 2, 3, 4)]
    engine_id = v3_agent.agent.engine_id
    for args in (bank.v2c_args(v3_agent), bank.v3_args(v3_agent)):  # v2c and v3 alike
        out = snmp("snmpget", "-On", "-Oqv", "-Ox", *args, *names).stdout
        hex_id, rest = out[1:].split('"', 1)  # a quoted hex string, wrapped after 16 octets
        assert re.sub(r"\s", "", hex_id).lower() == engine_id.hex()
        boots, time_s, max_size = (int(x) for x in rest.split())
        assert (boots, max_size) == (v3_agent.agent.engine_boots, 1472)
        assert time_s == v3_agent.call(v3_agent.agent.engine_time)
