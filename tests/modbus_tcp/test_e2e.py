"""The server across real TCP sockets, with third-party clients: mbpoll (libmodbus) and
pysunspec2. The server runs in-process over a Hub the test feeds (conftest.py)."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import socket
import struct
import subprocess
import threading
import time

import pytest
import sunspec2.modbus.client as sunspec_client
import sunspec2.modbus.modbus as sunspec_modbus
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.model import ModuleStatus
from plugins.modbus_tcp import register_map as rm

pytestmark = pytest.mark.e2e

BANK = {f.name: rm.BANK_BLOCK.offsets[f.name] for f in rm.BANK_BLOCK.fields}
MODULE = {f.name: rm.MODULE_BLOCK.offsets[f.name] for f in rm.MODULE_BLOCK.fields}
VALUE_LINE = re.compile(r"^\[(\d+)\]:\s+(-?\d+)", re.M)


@pytest.fixture
def mbpoll(require_tool):
    """Run mbpoll once against 127.0.0.1 with 0-based (PDU) addresses."""
    exe = require_tool("mbpoll")

    def run(port, *args, timeout_s=2.0):
        cmd = [exe, "-m", "tcp", "-p", str(port), "-0", "-1", "-o", str(timeout_s), *args]
        if not any(a == "127.0.0.1" for a in args):
            cmd.append("127.0.0.1")
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    return run


def values(result):
    """{address: value} from mbpoll's output: the first number on each value line, which
    is the unsigned register for 16-bit types and the signed value for ``-t 4:int``."""
    assert result.returncode == 0, result.stderr
    return {int(a): int(v) for a, v in VALUE_LINE.findall(result.stdout)}


def read_block(mbpoll, port, start, count, *extra, unit=1, table="4"):
    """``count`` registers from ``start``, in reads of at most 125 (the Modbus limit)."""
    out = {}
    for at in range(start, start + count, 125):
        out.update(values(mbpoll(port, "-a", str(unit), "-r", str(at), "-c",
                                 str(min(125, start + count - at)), "-t", table, *extra)))
    return out


# -------------------------------------------------------------------- mbpoll -----------

def test_mbpoll_reads_the_bank_block_the_same_on_fc03_and_fc04(server, mbpoll):
    snap = server.hub.latest
    fc03 = read_block(mbpoll, server.port, 0, rm.BANK_BLOCK.length)
    fc04 = read_block(mbpoll, server.port, 0, rm.BANK_BLOCK.length, table="3")
    assert fc03 == fc04 and len(fc03) == rm.BANK_BLOCK.length
    assert fc03[BANK["map_version"]] == rm.MAP_VERSION
    assert fc03[BANK["bank_status"]] == rm.BankStatus.OK
    assert fc03[BANK["modules_configured"]] == 12 and fc03[BANK["modules_live"]] == 9
    assert fc03[BANK["soc_permille"]] == snap.bank.soc_permille
    assert fc03[BANK["voltage_mean_mv"]] == snap.bank.voltage_mean_mv
    assert snap.bank.temp_min_dc < 0
    assert fc03[BANK["temp_min_dc"]] == snap.bank.temp_min_dc & 0xFFFF  # two's complement
    assert fc03[BANK["alarms_active"]] == 2 and fc03[BANK["alarm_worst_severity"]] == 4


def test_mbpoll_reads_32_bit_values_high_word_first(server, mbpoll):
    snap = server.hub.latest
    current = read_block(mbpoll, server.port, BANK["current_ma"], 1, "-B", table="4:int")
    assert snap.bank.current_ma < 0
    assert current == {BANK["current_ma"]: snap.bank.current_ma}
    seq = read_block(mbpoll, server.port, BANK["snapshot_seq"], 1, "-B", table="3:int")
    assert seq == {BANK["snapshot_seq"]: snap.seq}
    start = rm.module_block_start(12) + MODULE["current_ma"]
    assert read_block(mbpoll, server.port, start, 1, "-B", table="4:int") == {start: 4_200}


def test_mbpoll_reads_module_blocks_live_and_not(server, mbpoll, mb):
    snap = server.hub.latest
    base = rm.module_block_start(1)
    regs = read_block(mbpoll, server.port, base, 125)
    m = snap.module(1)
    assert regs[base + MODULE["status"]] == ModuleStatus.OK
    assert regs[base + MODULE["position"]] == 1 and regs[base + MODULE["bus_address"]] == 2
    assert regs[base + MODULE["data_age_s"]] == 2
    assert regs[base + MODULE["voltage_mv"]] == m.telemetry.voltage_mv
    assert [regs[base + MODULE[f"cell_{i}_mv"]] for i in range(1, 17)] == list(m.telemetry.cell_mv)
    assert [regs[base + MODULE[f"temp_{i}_dc"]] for i in range(1, 7)] == [
        t & 0xFFFF for t in m.telemetry.temp_dc]
    base = rm.module_block_start(mb.OFFLINE)
    regs = read_block(mbpoll, server.port, base, 125, table="3")
    assert regs[base + MODULE["status"]] == ModuleStatus.OFFLINE
    assert regs[base + MODULE["data_age_s"]] == 600
    assert mbpoll_hex(mbpoll, server.port, base + MODULE["voltage_mv"], 4) == [
        0xFFFF, 0x8000, 0x0000, 0xFFFF]  # voltage, current (int32), soc


def mbpoll_hex(mbpoll, port, start, count, unit=1):
    result = mbpoll(port, "-a", str(unit), "-r", str(start), "-c", str(count), "-t", "4:hex")
    assert result.returncode == 0, result.stderr
    return [int(v, 16) for v in re.findall(r"^\[\d+\]:\s+0x([0-9A-Fa-f]{4})", result.stdout, re.M)]


@pytest.mark.parametrize("args,message", [
    (("-r", "0", "-t", "4", "127.0.0.1", "5"), "Illegal function"),  # FC06
    (("-r", "0", "-t", "4", "127.0.0.1", "5", "6"), "Illegal function"),  # FC16
    (("-r", "0", "-t", "0", "127.0.0.1", "1"), "Illegal function"),  # FC05
    (("-r", "0", "-c", "4", "-t", "0"), "Illegal function"),  # FC01
    (("-r", str(rm.BANK_BLOCK.length), "-c", "1"), "Illegal data address"),  # past the bank block
    (("-r", str(rm.BANK_BLOCK.length - 4), "-c", "5"), "Illegal data address"),  # crossing its end
    (("-r", "40100", "-c", "40", "-t", "3"), "Illegal data address"),
])
def test_mbpoll_sees_each_exception(server, mbpoll, args, message):
    result = mbpoll(server.port, "-a", "1", *args)
    assert result.returncode != 0 and message in result.stderr, result.stderr
    assert mbpoll_hex(mbpoll, server.port, 0, 1) == [rm.MAP_VERSION]  # nothing was written


def test_mbpoll_unknown_unit_gets_gateway_path_unavailable(server, mbpoll):
    result = mbpoll(server.port, "-a", "9", "-r", "0", "-c", "1")
    assert result.returncode != 0 and "Gateway path unavailable" in result.stderr
    for unit in (0, 255):
        assert mbpoll_hex(mbpoll, server.port, 0, 1, unit=unit) == [rm.MAP_VERSION]


def test_pysunspec2_client_sees_illegal_data_value_and_refused_writes(server):
    """mbpoll (libmodbus) refuses to send a quantity above 125 itself; pysunspec2's Modbus
    client can be told to."""
    client = sunspec_modbus.ModbusClientTCP(slave_id=1, ipaddr="127.0.0.1", ipport=server.port,
                                            timeout=5, max_count=126)
    client.connect()
    try:
        with pytest.raises(sunspec_modbus.ModbusClientException, match=r"exception:? 3\b"):
            client.read(1000, 126)
        with pytest.raises(sunspec_modbus.ModbusClientException, match=r"exception:? 1\b"):
            client.write(0, b"\x00\x07")
        assert client.read(0, 1) == struct.pack(">H", rm.MAP_VERSION)
    finally:
        client.close()


def test_a_module_dropping_offline_turns_its_registers_into_sentinels(server, mbpoll, mb):
    base = rm.module_block_start(4)
    before = read_block(mbpoll, server.port, base, 20)
    assert before[base + MODULE["status"]] == ModuleStatus.OK
    live_voltage = server.hub.latest.module(4).telemetry.voltage_mv
    assert mbpoll_hex(mbpoll, server.port, base + MODULE["voltage_mv"], 1) == [live_voltage]
    m4 = dataclasses.replace(server.hub.latest.module(4), status=ModuleStatus.OFFLINE)
    server.publish(mb.make_bank(server.clock.now, m4=m4))
    after = mbpoll_hex(mbpoll, server.port, base, 12)
    assert after[MODULE["status"]] == ModuleStatus.OFFLINE
    assert after[MODULE["data_age_s"]] == 2 and after[MODULE["position"]] == 4
    assert after[MODULE["voltage_mv"]] == 0xFFFF
    assert after[MODULE["current_ma"]:MODULE["current_ma"] + 2] == [0x8000, 0x0000]
    assert after[MODULE["soc_permille"]] == 0xFFFF
    bank = mbpoll_hex(mbpoll, server.port, 0, BANK["modules_not_live_1_16"] + 1)
    assert bank[BANK["modules_live"]] == 8
    assert bank[BANK["modules_not_live_1_16"]] & (1 << 3)


def test_values_go_stale_when_the_hub_stops_publishing(server, mbpoll):
    base = rm.module_block_start(1)
    assert mbpoll_hex(mbpoll, server.port, base, 1) == [ModuleStatus.OK]
    server.call(lambda: server.clock.advance(120))
    status, age = mbpoll_hex(mbpoll, server.port, base, 2)
    assert (status, age) == (ModuleStatus.STALE, 122)
    assert mbpoll_hex(mbpoll, server.port, BANK["bank_status"], 1) == [rm.BankStatus.STALE]


def test_module_units_with_mbpoll(make_server, mbpoll):
    rs = make_server(module_unit_ids=True, module_unit_id_base=100)
    rs.publish()
    own = read_block(mbpoll, rs.port, 1000, 125, unit=103)
    in_bank = read_block(mbpoll, rs.port, 1400, 125, unit=1)
    assert list(own.values()) == list(in_bank.values())
    assert own[1000 + MODULE["position"]] == 3
    result = mbpoll(rs.port, "-a", "165", "-r", "0")
    assert "Gateway path unavailable" in result.stderr


def test_unknown_units_can_be_ignored(make_server, mbpoll):
    rs = make_server(unknown_unit_ids="ignore")
    rs.publish()
    result = mbpoll(rs.port, "-a", "9", "-r", "0", timeout_s=0.2)
    assert result.returncode != 0 and "timed out" in result.stderr
    with rs.connect() as sock:
        sock.sendall(struct.pack(">HHHBBHH", 1, 0, 6, 9, 3, 0, 1)
                     + struct.pack(">HHHBBHH", 2, 0, 6, 1, 3, 0, 1))
        assert mb_answer(sock) == (2, b"\x03\x02" + rm.MAP_VERSION.to_bytes(2, "big"))  # bank unit only
    assert rs.server.counters.unanswered == 2


def mb_answer(sock):
    tid, _, length, _ = struct.unpack(">HHHB", recv_all(sock, 7))
    return tid, recv_all(sock, length - 1)


def recv_all(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "connection closed"
        data += chunk
    return data


# ------------------------------------------------------------------- pysunspec2 --------

def test_pysunspec2_discovers_the_bank_and_reads_soc_and_voltage(server):
    snap = server.hub.latest
    device = sunspec_client.SunSpecModbusClientDeviceTCP(slave_id=1, ipaddr="127.0.0.1",
                                                         ipport=server.port, timeout=5)
    try:
        device.scan()
        assert device.base_addr == 40000
        assert {1, 802} <= set(device.models)
        common = device.models[1][0]
        assert common.Mn.value == "bms-gateway" and common.SN.value == "site-7-bank-A"
        battery = device.models[802][0]
        assert battery.SoC.cvalue == pytest.approx(snap.bank.soc_permille / 10)
        assert battery.V.cvalue == pytest.approx(round(snap.bank.voltage_mean_mv / 10) / 100)
        assert battery.A.cvalue == pytest.approx(-round(snap.bank.current_ma / 100) / 10)
        assert battery.A.cvalue > 0 and battery.ChaSt.value == 3  # discharging
        assert battery.WHRtg.value is None  # not implemented
        assert not common.error_info and not battery.error_info
    finally:
        device.close()


# --------------------------------------------------------------- connections ------------

def test_two_clients_at_once_get_their_own_answers(server, mb):
    expected_bank = rm.read_registers(
        rm.make_image(server.hub.latest, server.clock.now, stale_after_s=60).bank_unit, 0, 10)
    with server.connect() as primary, server.connect() as backup:
        for i in range(50):
            for sock, address in ((primary, 0), (backup, 1000 + i)):
                unit, pdu = mb.transact(sock, 1, mb.read_pdu(3, address, 10), tid=i)
                assert unit == 1 and pdu[0] == 3
                if address == 0:
                    assert mb.registers_of(pdu) == expected_bank


def test_a_client_that_stops_reading_does_not_stall_the_others(server, mb):
    """A client pipelining requests without reading the answers (each 12-byte request
    asks for 259 bytes): once its answers back up the server stops reading from it,
    its buffers stay bounded, and other clients are served."""
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", server.port))
    burst = struct.pack(">HHHBBHH", 1, 0, 6, 1, 3, 1000, 125) * 400_000  # 4.8 MB -> 100 MB

    def flood():
        with contextlib.suppress(OSError):  # closed by the test at the end
            slow.sendall(burst)
    sender = threading.Thread(target=flood, daemon=True)
    sender.start()

    def paused():
        return [c for c in server.server._connections
                if not c.transport.is_reading() and not c.transport.is_closing()]
    for _ in range(1000):  # until the server pauses it, or (wrongly) reads it all
        if server.call(paused) or not sender.is_alive():
            break
        sender.join(0.01)
    try:
        assert server.call(paused) and sender.is_alive()
        with server.connect() as other:
            for i in range(20):
                assert mb.transact(other, 1, mb.read_pdu(4, 0, 5), tid=i)[1][0] == 4
        (conn,) = server.call(paused)
        assert conn.transport.get_write_buffer_size() + conn.session.pending < 1_000_000
    finally:
        slow.shutdown(socket.SHUT_RDWR)
        slow.close()
        sender.join(10)


def test_a_slow_pipelining_client_gets_every_answer_in_order(server, mb):
    """20 000 requests sent back to back (5 MB of answers, far more than the socket
    buffers hold), read only after all were sent: each is answered once, in order."""
    n = 20_000
    with server.connect() as probe:
        expected = {a: mb.transact(probe, 1, mb.read_pdu(3, 1000 + a, 125))[1] for a in range(6)}
    with server.connect() as sock:
        burst = b"".join(struct.pack(">HHHBBHH", i, 0, 6, 1, 3, 1000 + i % 6, 125)
                         for i in range(n))
        sender = threading.Thread(target=sock.sendall, args=(burst,), daemon=True)
        sender.start()
        for i in range(n):
            tid, pdu = mb_answer(sock)
            assert tid == i and pdu == expected[i % 6]
        sender.join(10)
        assert not sender.is_alive()


def closed_by_server(sock, timeout_s=5.0):
    """True once the server has closed ``sock`` (EOF or reset), False on time-out."""
    sock.settimeout(timeout_s)
    try:
        return sock.recv(10) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_a_full_server_closes_the_longest_idle_connection_for_a_new_one(make_server, mb):
    """Idle clients cannot lock out a new one (they used to, for idle_timeout_s)."""
    rs = make_server(max_connections=2)
    rs.publish()
    a, b = rs.connect(), rs.connect()
    try:
        assert mb.transact(a, 1, mb.read_pdu(3, 0, 1))[1][0] == 3
        time.sleep(0.05)
        assert mb.transact(b, 1, mb.read_pdu(3, 0, 1))[1][0] == 3
        with rs.connect() as c:
            assert mb.transact(c, 1, mb.read_pdu(3, 0, 1))[1][0] == 3
            assert closed_by_server(a)  # idle the longest, closed once c had its chance
            assert mb.transact(b, 1, mb.read_pdu(3, 0, 1))[1][0] == 3
            assert mb.transact(c, 1, mb.read_pdu(3, 0, 1))[1][0] == 3
        assert rs.server.counters.evicted == 1
    finally:
        a.close()
        b.close()


def connect_from(rs, source):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", rs.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def test_one_source_makes_room_only_among_its_own_connections(make_server, mb):
    rs = make_server(max_connections=4, max_connections_per_source=2)
    rs.publish()
    other = connect_from(rs, "127.0.0.2")
    flood = [connect_from(rs, "127.0.0.1") for _ in range(6)]
    try:
        assert mb.transact(other, 1, mb.read_pdu(3, 0, 1))[1][0] == 3
        assert sum(closed_by_server(s, 2.0) for s in flood[:4]) == 4
        assert rs.server.counters.evicted == 4
    finally:
        for s in (other, *flood):
            s.close()


def test_a_frame_begun_must_be_completed_in_time(make_server, mb):
    """A client sending a byte now and then (slowloris) loses its slot."""
    rs = make_server(frame_timeout_s=0.3)
    rs.publish()
    with rs.connect() as slow, rs.connect() as quick:
        request = struct.pack(">HHHB", 1, 0, 6, 1) + mb.read_pdu(3, 0, 1)
        slow.sendall(request[:1])
        assert mb.transact(quick, 1, mb.read_pdu(3, 0, 1))[1][0] == 3
        t0 = time.monotonic()
        while time.monotonic() - t0 < 5 and not rs.server.counters.frame_timeouts:
            with contextlib.suppress(OSError):
                slow.sendall(request[1:2])  # keeps trickling: no renewal
            time.sleep(0.2)
        assert closed_by_server(slow)
        assert rs.server.counters.frame_timeouts == 1
        assert mb.transact(quick, 1, mb.read_pdu(3, 0, 1))[1][0] == 3


def test_allowed_sources_refuse_other_addresses_quietly_and_count_them(make_server, mb):
    rs = make_server(allowed_sources=["127.0.0.1/32", "2001:db8::/32"])
    rs.publish()
    with connect_from(rs, "127.0.0.2") as refused:
        with contextlib.suppress(OSError):
            refused.sendall(struct.pack(">HHHB", 1, 0, 6, 1) + mb.read_pdu(3, 0, 1))
        assert closed_by_server(refused)
    with connect_from(rs, "127.0.0.1") as allowed:
        assert mb.transact(allowed, 1, mb.read_pdu(3, 0, 1))[1][0] == 3
    assert rs.server.counters.refused == 1
    assert rs.server.counters.accepted == 1


def test_a_polling_scada_is_served_through_a_flood_of_idle_and_slowloris_clients(
        make_server, mb):
    """200 connections from the SCADA's own address, idle or sending a byte now and then,
    each reconnecting a second after it is closed, while a SCADA master opens a new
    connection for every poll: every poll is answered (default limits). (A deliberate
    flood reconnecting without pause is a firewall's job: docs/modbus.md.)"""
    rs = make_server()
    rs.publish()
    stop = threading.Event()
    errors: list[BaseException] = []

    def flood() -> None:
        socks: list[socket.socket | None] = [None] * 200
        closed_at = [0.0] * 200
        try:
            while not stop.is_set():
                for i, s in enumerate(socks):
                    if s is None:
                        if time.monotonic() - closed_at[i] >= 1.0:
                            with contextlib.suppress(OSError):
                                socks[i] = socket.create_connection(("127.0.0.1", rs.port), 2)
                                socks[i].setblocking(False)
                        continue
                    try:
                        if s.recv(64) == b"":
                            raise ConnectionResetError
                    except BlockingIOError:
                        pass
                    except OSError:
                        s.close()
                        socks[i] = None
                        closed_at[i] = time.monotonic()
                        continue
                    if i % 2:  # slowloris: a byte of a request now and then
                        with contextlib.suppress(OSError):
                            s.send(b"\x00")
                time.sleep(0.05)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            for s in socks:
                if s is not None:
                    s.close()

    attacker = threading.Thread(target=flood, daemon=True)
    attacker.start()
    try:
        time.sleep(1.0)  # the flood holds every slot
        answered = 0
        for _ in range(30):
            with rs.connect() as scada:
                scada.settimeout(2)
                assert mb.transact(scada, 1, mb.read_pdu(3, 0, 1))[1][0] == 3
                answered += 1
            time.sleep(0.05)
        assert answered == 30
        assert rs.server.counters.evicted > 0
    finally:
        stop.set()
        attacker.join(10)
    assert not errors


def test_a_malformed_frame_closes_only_its_connection(server, mb):
    with server.connect() as bad, server.connect() as good:
        bad.sendall(struct.pack(">HHHB", 1, 7, 6, 1) + mb.read_pdu(3, 0, 1))
        assert bad.recv(10) == b""
        assert mb.transact(good, 1, mb.read_pdu(3, 0, 1))[1][0] == 3
    assert server.server.counters.malformed == 1


def test_idle_connections_are_closed(make_server, mb):
    rs = make_server(idle_timeout_s=0.2)
    with rs.connect() as sock:
        assert mb.transact(sock, 1, mb.read_pdu(3, 0, 1))[1][0] == 3
        sock.settimeout(10)
        assert sock.recv(10) == b""
    assert rs.server.counters.idle_closed == 1


def test_stopping_the_server_closes_client_connections(make_server, mb):
    rs = make_server()
    sock = rs.connect()
    try:
        assert mb.transact(sock, 1, mb.read_pdu(3, 0, 1))[1][0] == 3
        rs.stop()
        assert sock.recv(10) == b""
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", rs.port), timeout=5)
    finally:
        sock.close()


# -------------------------------------------------------------------- fuzzing ----------

mbap = st.builds(
    lambda tid, proto, length, unit, pdu: struct.pack(">HHHB", tid, proto, length, unit) + pdu,
    st.integers(0, 0xFFFF), st.sampled_from([0, 0, 0, 1, 0xFFFF]),
    st.one_of(st.integers(0, 300), st.just(6)), st.integers(0, 255),
    st.one_of(st.binary(max_size=260),
              st.builds(lambda f, a, c: struct.pack(">BHH", f, a, c), st.integers(0, 255),
                        st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(mbap, st.binary(max_size=64)), min_size=1, max_size=6))
def test_fuzzed_adus_never_stop_the_server(server, mb, chunks):
    """Random and half-valid ADUs on a fresh connection; afterwards the server still
    answers a well-formed read on another connection, and every answer it gave to the
    fuzz was a well-formed ADU."""
    received, reset = b"", False
    with server.connect() as sock:
        try:
            for chunk in chunks:
                sock.sendall(chunk)
            sock.shutdown(socket.SHUT_WR)
            while chunk := sock.recv(65536):
                received += chunk
        except OSError:  # the server closed a broken stream; unread data made it a reset
            reset = True
    while len(received) >= 7:
        _, protocol, length, _ = struct.unpack(">HHHB", received[:7])
        assert protocol == 0 and 3 <= length <= 254
        if reset and len(received) < 6 + length:
            break  # cut off by the reset
        assert len(received) >= 6 + length
        received = received[6 + length:]
    assert reset or not received
    with server.connect() as probe:
        assert mb.transact(probe, 1, mb.read_pdu(3, 0, 1))[1] == (
            b"\x03\x02" + rm.MAP_VERSION.to_bytes(2, "big"))


def test_the_mbpoll_examples_in_the_docs_work(make_server, mbpoll, repo):
    """Every mbpoll line in docs/modbus.md, pointed at a test server."""
    rs = make_server(module_unit_ids=True)
    snap = rs.publish()
    lines = [ln for ln in (repo / "docs" / "modbus.md").read_text().splitlines()
             if ln.startswith("mbpoll ")]
    assert len(lines) == 6
    outputs = {}
    for line in lines:
        args = line.split()[1:]
        assert args[:6] == ["-m", "tcp", "-p", "1502", "-a", args[5]]
        del args[2:4]  # the fixture's mbpoll adds "-m tcp -p PORT -0 -1"
        args = [a for a in args if a not in ("-m", "tcp", "-0", "-1")]
        outputs[line] = mbpoll(rs.port, *args)
    def line(*parts):
        (found,) = [ln for ln in lines if all(f" {part} " in f" {ln} " for part in parts)]
        return outputs[found]
    write = line("127.0.0.1 5")  # a value after the host: a write
    for ln in lines:
        if outputs[ln] is not write:
            assert outputs[ln].returncode == 0, (ln, outputs[ln].stderr)
    assert "Illegal function" in write.stderr
    assert values(line("-r 12")) == {12: snap.bank.current_ma}
    assert values(line("-r 40000")) == {40000: 21365, 40001: 28243}
    assert values(line("-a 1", "-r 1400"))[1402] == 3
    assert values(line("-a 103", "-r 1000"))[1002] == 3


# ---------------------------------------------------------------- pymodbus client ------

def test_the_pymodbus_client_reads_values_and_sees_each_exception(server, repo):
    """pymodbus 3's client, the one Python SCADA scripts use: the same registers on FC03
    and FC04, a negative int32 high word first, and the exception codes by number (it
    refuses to send a quantity above 125 itself, as mbpoll does)."""
    from pymodbus.client import ModbusTcpClient

    snap = server.hub.latest
    client = ModbusTcpClient("127.0.0.1", port=server.port, timeout=5, retries=0)
    assert client.connect()
    try:
        n = rm.BANK_BLOCK.length  # longer than one read: the first 125 registers
        fc03 = client.read_holding_registers(0, count=min(n, 125), device_id=1)
        fc04 = client.read_input_registers(0, count=min(n, 125), device_id=1)
        assert not fc03.isError() and fc03.registers == fc04.registers
        assert fc03.registers[BANK["map_version"]] == rm.MAP_VERSION
        at = BANK["current_ma"]
        current = client.convert_from_registers(fc03.registers[at:at + 2],
                                                client.DATATYPE.INT32, word_order="big")
        assert snap.bank.current_ma < 0 and current == snap.bank.current_ma
        answers = {
            "write": client.write_register(0, 5, device_id=1),
            "past the block": client.read_holding_registers(n, count=1, device_id=1),
            "unknown unit": client.read_holding_registers(0, count=1, device_id=9),
        }
        assert {k: (r.isError(), r.exception_code) for k, r in answers.items()} == {
            "write": (True, 0x01), "past the block": (True, 0x02),
            "unknown unit": (True, 0x0A)}
        assert client.read_holding_registers(0, count=1, device_id=1).registers == [
            rm.MAP_VERSION]  # nothing was written, the connection still serves
        doc = (repo / "docs" / "modbus.md").read_text()  # its example's numbers
        assert f"read_holding_registers(0, count={min(n, 125)}, device_id=1)" in doc
        assert f"regs[{at}:{at + 2}]" in doc
    finally:
        client.close()
