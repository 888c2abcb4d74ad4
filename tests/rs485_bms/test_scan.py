"""`bms-gateway scan` in-process against a fake device on a real socket, and the identity
commands each family is asked (poller and scan alike)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.model import Identity

from plugins.rs485_bms.tools import scan
from plugins.rs485_bms.poller.dialect import make_dialect
from plugins.rs485_bms.sim.encoder import make_sim_encoder
from plugins.rs485_bms.sim.physics import SimPack
from plugins.rs485_bms.sim.scenario import Scenario
from plugins.rs485_bms.sim.simulator import BankSimulator
from plugins.rs485_bms.protocol import PROFILES, Frame, FrameReader, parse_frame

VECTORS = {v["id"]: v for v in json.loads(
    (Path(__file__).resolve().parents[1] / "data/frames.json").read_text())}

# --------------------------------------------------------------- identity commands ----

#: (family, commands answering the serial, commands answering the firmware)
IDENTITY = [
    ("pace_v25", [0xC2], [0xC1]),
    ("pylontech", [0x93], [0x96]),
    ("seplos_v2", [], [0x51]),
    ("eg4_lifepower4", [], []),
    ("daren_basen", [], [0x51]),
]


@pytest.mark.parametrize(("family", "serial", "firmware"), IDENTITY,
                         ids=[f for f, _, _ in IDENTITY])
def test_identity_reads_ask_for_serial_and_firmware_where_the_family_has_a_command(
        family, serial, firmware):
    d = make_dialect(family)
    asked = [request.cid2 for request, _ in d.identity_requests(2)]
    assert sorted(asked) == sorted(serial + firmware)
    assert d.identity_commands("serial") == serial
    assert d.identity_commands("firmware") == firmware
    for cid2 in asked:
        assert cid2 in PROFILES[family].commands


def test_pylontech_firmware_comes_from_0x96_of_the_module_itself():
    vector = VECTORS["pylon_us3000c_96_firmware"]
    d = make_dialect("pylontech")
    [(request, merge)] = [r for r in d.identity_requests(2) if r[0].cid2 == 0x96]
    answer = d.decode(request, parse_frame(vector["response"].encode() + b"\r"))
    identity = merge(Identity(serial="HPTBH02240A01235"), answer)
    assert identity == Identity(serial="HPTBH02240A01235",
                                firmware="0.6.9 (manufacture version 1.3)")


@pytest.mark.parametrize("family", ["pace_v25", "pylontech", "seplos_v2"])
def test_simulated_packs_answer_every_identity_command(family):
    d, sim = make_dialect(family), make_sim_encoder(family)
    ident = {"serial": "SIM0123456789", "firmware": "P16S100A-SIM-1.00", "model": "SIM-X"}
    identity = None
    for request, merge in d.identity_requests(3):
        wire = sim.answer(request, states=(), identities=[ident], flags={}, all_zero=False,
                          all_packs=False)
        identity = merge(identity, d.decode(request, parse_frame(wire)))
    assert identity is not None and identity.firmware
    assert bool(identity.serial) == bool(d.identity_commands("serial"))


# -------------------------------------------------------------- scan, fake device ----

Responder = Callable[[Frame], bytes | None]


def device(family: str, addresses: list[int], *, rtn: dict[int, int] | None = None,
           speaks: str | None = None) -> Responder:
    """Packs at ``addresses`` answering like the simulator in ``speaks`` (default: the
    family asked), except commands in ``rtn``, answered with that return code."""
    sim = make_sim_encoder(speaks or family)
    profile = PROFILES[family]

    def respond(request: Frame) -> bytes | None:
        if request.adr not in addresses:
            return None
        if rtn and request.cid2 in rtn:
            return Frame(ver=profile.ver, adr=request.adr, cid1=profile.cid1,
                         cid2=rtn[request.cid2]).wire
        state = SimPack(request.adr, seed=1).state(0.0)
        ident = {"serial": f"SN{request.adr:04d}", "firmware": "P16S100A-SIM-1.00",
                 "model": "SIM-X"}
        return sim.answer(request, states=[state], identities=[ident], flags={},
                          all_zero=False, all_packs=False)
    return respond


@pytest.fixture
def fake_bus() -> Iterator[Callable[[Responder], str]]:
    """A TCP server that answers each request frame with ``respond(frame)``; yields a
    function that starts one and returns its pyserial URL."""
    servers: list[socketserver.ThreadingTCPServer] = []
    threads: list[threading.Thread] = []

    def start(respond: Responder) -> str:
        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                reader = FrameReader()
                while data := self.request.recv(4096):
                    for item in reader.feed(data):
                        if isinstance(item, Frame) and (answer := respond(item)):
                            self.request.sendall(answer)

        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append(server)
        threads.append(thread)
        return f"socket://127.0.0.1:{server.server_address[1]}"

    yield start
    for server, thread in zip(servers, threads):
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def args(port: str, **over: object) -> argparse.Namespace:
    values = {"port": port, "family": "pace_v25", "addresses": "1-2", "expect": None,
              "baud": 115200, "timeout_ms": 400, "listen_s": 0.0}
    values.update(over)
    return argparse.Namespace(**values)


def test_module_answering_with_an_rtn_error_is_listed_and_diagnosed(fake_bus, capsys):
    url = fake_bus(device("pylontech", [2], rtn={0x42: 0x04}))
    status = scan.run(args(url, family="pylontech", addresses="2-3", expect="2"))
    out = capsys.readouterr().out
    assert status == 1
    assert "  address  2: answers with an error: RTN 0x04 (CID2 invalid)" in out
    assert ("! address 2: the module answered the analog request (0x42) with RTN 0x04 "
            "(CID2 invalid): the command is not supported by this firmware, or the wrong "
            "family is chosen (--family)") in out
    assert "no module answered at all" not in out
    assert "configured but not answering" not in out
    assert "1 module answered" in out


def test_answer_in_another_familys_layout_is_not_called_silence(fake_bus, capsys):
    url = fake_bus(device("seplos_v2", [1], speaks="pylontech"))
    status = scan.run(args(url, family="seplos_v2", addresses="1"))
    out = capsys.readouterr().out
    assert status == 1
    assert "  address  1: answers, but not in the scanned family's layout" in out
    assert "does not fit the seplos_v2 layout" in out
    assert "no module answered at all" not in out and "garbled" not in out


def test_scan_shows_serial_and_firmware_or_why_not(fake_bus, capsys):
    url = fake_bus(device("pylontech", [2, 3], rtn={0x96: 0x04}))
    assert scan.run(args(url, family="pylontech", addresses="2-3")) == 0
    out = capsys.readouterr().out
    assert ("  address  2: answers  (serial SN0002, firmware: 0x96 refused with RTN 0x04 "
            "(CID2 invalid): not supported by this firmware)") in out

    url = fake_bus(device("pylontech", [2]))
    assert scan.run(args(url, family="pylontech", addresses="2")) == 0
    assert ("  address  2: answers  (serial SN0002, firmware 1.0.0 (manufacture version 1.0))"
            in capsys.readouterr().out)

    url = fake_bus(device("seplos_v2", [1]))
    assert scan.run(args(url, family="seplos_v2", addresses="1")) == 0
    assert ("  address  1: answers  (serial: not reported by seplos_v2, firmware 16.6, "
            "model SIM-X)") in capsys.readouterr().out


def test_identity_command_without_answer_is_named(fake_bus, capsys):
    respond = device("pace_v25", [1])
    url = fake_bus(lambda request: None if request.cid2 == 0xC2 else respond(request))
    assert scan.run(args(url, addresses="1")) == 0
    assert ("  address  1: answers  (serial: no answer to 0xC2, firmware P16S100A-SIM-1.00)"
            in capsys.readouterr().out)


# --------------------------------------------------------------------- diagnoses ----


def test_no_answer_hints_quote_the_manual_and_both_of_its_ab_readings():
    [line] = scan.ScanReport(findings=[scan.Finding(1)]).diagnoses()
    assert line.startswith("no module answered at all")
    assert "RS485 communication line sequence is incorrect" in line
    assert ("connect the communication line correctly as described in the installation "
            "manual") in line
    assert ("its text puts RJ45 pin 1, white-orange, 'positive' on RS485-A and pin 2, "
            "orange, 'negative' on RS485-B, while its wiring figure labels white-orange "
            "PIN2/7 and orange PIN1/8") in line
    assert "communication serial port setting is incorrect" in line
    assert "check that the physical connection of the communication circuit is normal" in line
    assert "B-" not in line and "A+" not in line


# ------------------------------------------------------------------ usage errors ----

BAD = [
    ({"baud": 300}, "--baud 300: Input should be greater than or equal to 1200"),
    ({"baud": 2_000_000}, "--baud 2000000: Input should be less than or equal to 921600"),
    ({"timeout_ms": 5}, "--timeout-ms 5: Input should be greater than or equal to 10"),
    ({"addresses": "0-2"}, "pace_v25 addresses are 1..15; [0] given"),
    ({"addresses": "1,1"}, "'addresses' lists an address twice"),
    ({"addresses": "20"}, "pace_v25 addresses are 1..15; [20] given"),
    ({"addresses": "x"}, "'x' is not a list of addresses"),
    ({"listen_s": -1.0}, "--listen-s -1.0: must be 0 or more"),
]


@pytest.mark.parametrize(("over", "message"), BAD, ids=[json.dumps(o) for o, _ in BAD])
def test_every_bad_argument_is_a_one_line_usage_error(over, message, capsys):
    # nothing listens on this port: a usage error must come before any attempt to use it
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert scan.run(args(f"socket://127.0.0.1:{port}", **over)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("bms-gateway scan: ") and message in captured.err
    assert captured.err.count("\n") == 1


# ------------------------------------------------- line evidence: noise or duplicate ----


def _windows(step: dict | None, *, n: int = scan.SAMPLES, address: int = 2) -> scan.LineEvidence:
    """The evidence of ``n`` analog requests to ``address`` of a simulated bank with
    ``step`` injected (the simulator's answers, as they arrive, fed to LineEvidence)."""
    sim = BankSimulator(family="pace_v25", addresses=[1, 2, 3], baud=9600, clock=lambda: 0.0,
                        scenario=Scenario.model_validate({"steps": [step] if step else []}))
    d = make_dialect("pace_v25")
    request = d.request(d.ANALOG, address)
    evidence = scan.LineEvidence()
    for i in range(n):
        data = b"".join(em.data for em in sim.respond(request, 1.0 + 0.3 * i))
        evidence.add(data, request, d)
    return evidence


@pytest.mark.parametrize(("step", "verdict"), [
    ({"packs": [2], "fault": "corrupt"}, scan.Verdict.LINE_NOISE),
    ({"packs": [2], "fault": "noise", "rate": 0.01}, scan.Verdict.LINE_NOISE),
    ({"packs": [2], "fault": "reflection", "rate": 0.01}, scan.Verdict.LINE_NOISE),
    ({"packs": [2], "fault": "duplicate_address"}, scan.Verdict.DUPLICATE_ADDRESS),
    ({"packs": [2], "fault": "wrong_baud", "baud": 19200}, scan.Verdict.WRONG_BAUD),
    ({"packs": [2], "fault": "wrong_baud", "baud": 2400}, scan.Verdict.WRONG_BAUD),
    (None, None),
], ids=["corrupt", "noise", "reflection", "duplicate", "baud_19200", "baud_2400", "healthy"])
def test_each_fault_gets_its_own_verdict(step, verdict):
    evidence = _windows(step)
    assert evidence.verdict() is verdict, evidence.describe()
    assert evidence.windows == scan.SAMPLES


def test_bad_checksums_at_one_address_are_noise_with_their_counts():
    evidence = _windows({"packs": [2], "fault": "corrupt"})
    assert (evidence.good, evidence.checksum, evidence.two_starts) == (0, 6, 0)
    assert evidence.repeated_damage() == []
    text = evidence.describe()
    assert text.startswith("6 answer windows: 0 good; 6 garbled (6 bad CHKSUM/LCHKSUM")
    assert "the damage at different places each time" in text and "e.g. ~25024600" in text


def _answer(state, **changes) -> bytes:
    request = make_dialect("pace_v25").request(0x42, 2)
    return make_sim_encoder("pace_v25").answer(
        request, states=[dataclasses.replace(state, **changes)], identities=[{}], flags={},
        all_zero=False, all_packs=False)


def test_two_answers_in_one_window_or_of_two_shapes_are_two_modules():
    d = make_dialect("pace_v25")
    request = d.request(d.ANALOG, 2)
    state = SimPack(2, seed=1).state(0.0)
    one, other = _answer(state), _answer(SimPack(2, seed=9).state(0.0))

    staggered = scan.LineEvidence()  # the second module starts 40 bytes later
    staggered.add(one[:40] + other, request, d)
    assert staggered.two_starts == 1 and staggered.verdict() is scan.Verdict.DUPLICATE_ADDRESS
    assert "1 windows held two frame starts of this address" in staggered.describe()

    shapes = scan.LineEvidence()  # each answers alone now and then: 16 and 15 cells
    shapes.add(one, request, d)
    shapes.add(_answer(state, cell_mv=state.cell_mv[:15]), request, d)
    assert shapes.good == 2 and shapes.verdict() is scan.Verdict.DUPLICATE_ADDRESS
    assert "good answers of 2 different shapes" in shapes.describe()


def test_noise_at_several_addresses_or_garbled_requests_is_the_line():
    noisy = _windows({"fault": "noise", "rate": 0.01})
    report = scan.ScanReport(findings=[scan.Finding(1, evidence=noisy),
                                       scan.Finding(2, evidence=_windows(None)),
                                       scan.Finding(3, evidence=noisy)])
    report.judge()
    assert [f.verdict for f in report.findings] == [scan.Verdict.REFLECTIONS, None,
                                                    scan.Verdict.REFLECTIONS]
    lines = report.diagnoses()
    assert len(lines) == 3 and lines[0].startswith("address 1: reflections: ")
    assert "missing or misplaced terminator" in lines[0]

    alone = scan.ScanReport(findings=[scan.Finding(2, evidence=noisy)])
    alone.judge()
    assert alone.findings[0].verdict is scan.Verdict.LINE_NOISE
    garbled_requests = scan.LineEvidence(windows=6, good=4, rtn_garbled=2)
    alone = scan.ScanReport(findings=[scan.Finding(2, evidence=garbled_requests)])
    alone.judge()
    assert alone.findings[0].verdict is scan.Verdict.REFLECTIONS
