"""`bms-gateway simulate` and `bms-gateway scan` as a user runs them: real processes,
real sockets and pseudo-terminals."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

FAST = ["--baud", "115200", "--turnaround-ms", "0"]


@pytest.fixture
def simulator(gateway_cmd, subprocess_env, tmp_path):
    """Start `bms-gateway simulate` with optional scenario steps; yields its socket URL."""
    procs = []

    def start(*args, steps=None):
        extra = []
        if steps is not None:
            f = tmp_path / f"scenario{len(procs)}.yaml"
            f.write_text(textwrap.dedent(steps))
            extra = ["--scenario", str(f)]
        proc = subprocess.Popen(gateway_cmd + ["simulate", *args, *FAST, *extra],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=subprocess_env)
        procs.append(proc)
        first = proc.stdout.readline().strip()
        assert first, proc.stderr.read()
        return first
    yield start
    for p in procs:
        p.terminate()
        p.communicate(timeout=5)


def scan(gateway_cmd, env, url, *args):
    return subprocess.run(gateway_cmd + ["scan", "--port", url, "--baud", "115200",
                                         "--listen-s", "0.5", "--timeout-ms", "500", *args],
                          capture_output=True, text=True, env=env, timeout=60)


def socket_url(tcp_url: str) -> str:
    assert tcp_url.startswith("tcp://127.0.0.1:")
    return "socket://" + tcp_url[len("tcp://"):]


def test_scan_lists_responders_with_identity(gateway_cmd, subprocess_env, simulator):
    url = socket_url(simulator("--listen", "tcp://127.0.0.1:0", "--packs", "3"))
    res = scan(gateway_cmd, subprocess_env, url, "--addresses", "1-5", "--expect", "1-3")
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    for adr in (1, 2, 3):
        line = next(l for l in lines if l.startswith(f"  address  {adr}: answers"))
        assert f"serial SIMPA{adr:02d}" in line and "firmware P16S100A-SIM-1.00" in line
    assert "3 modules answered" in res.stdout and "!" not in res.stdout


def test_scan_over_a_pty(gateway_cmd, subprocess_env, simulator):
    path = simulator("--pty", "--packs", "2", "--family", "pylontech")
    assert path.startswith("/dev/pts/")
    res = scan(gateway_cmd, subprocess_env, path, "--family", "pylontech", "--addresses", "1-2")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "2 modules answered" in res.stdout


def test_scan_diagnoses_wrong_dip_address(gateway_cmd, subprocess_env, simulator):
    url = socket_url(simulator("--listen", "tcp://127.0.0.1:0", "--packs", "3", steps="""
        steps:
          - {packs: [2], fault: wrong_address, wrong_address: 9}
    """))
    res = scan(gateway_cmd, subprocess_env, url, "--addresses", "1-3", "--expect", "1-3")
    assert res.returncode == 1
    assert ("asked address 2, a module answered as address 9: its DIP address differs "
            "from the configured one") in res.stdout
    assert "configured but not answering: 2" in res.stdout


SCENARIOS = Path(__file__).resolve().parents[2] / "config/scenarios"


def scan_scenario(gateway_cmd, env, simulator, name: str):
    """Scan addresses 1-3 of a 3-pack simulated bank running config/scenarios/NAME."""
    url = socket_url(simulator("--listen", "tcp://127.0.0.1:0", "--packs", "3",
                               "--scenario", str(SCENARIOS / name)))
    res = scan(gateway_cmd, env, url, "--addresses", "1-3")
    assert res.returncode == 1, res.stdout + res.stderr
    return [line for line in res.stdout.splitlines() if line.startswith("! ")]


def test_scan_diagnoses_duplicate_address(gateway_cmd, subprocess_env, simulator):
    [line] = scan_scenario(gateway_cmd, subprocess_env, simulator, "duplicate-address.yaml")
    assert line.startswith("! address 2: duplicate_address: 6 answer windows: 0 good")
    assert "characters garbled in most answers" in line and "e.g. ~25024600F07A" in line
    assert "different addresses need to be set" in line  # the manual's remedy


def test_scan_calls_bad_checksums_from_one_address_line_noise(gateway_cmd, subprocess_env,
                                                              simulator):
    """Issue 12: every answer of one pack failing its checksum is no duplicate address."""
    [line] = scan_scenario(gateway_cmd, subprocess_env, simulator, "checksum-errors.yaml")
    assert line.startswith("! address 2: line_noise: 6 answer windows: 0 good; 6 garbled "
                           "(6 bad CHKSUM/LCHKSUM")
    assert "the damage at different places each time, no window held two answers" in line
    assert "check that the physical connection of the communication circuit is normal" in line
    assert "duplicate" not in line


def test_scan_calls_random_bit_errors_at_one_address_line_noise(gateway_cmd, subprocess_env,
                                                                simulator):
    [line] = scan_scenario(gateway_cmd, subprocess_env, simulator, "line-noise.yaml")
    assert line.startswith("! address 2: line_noise: 6 answer windows: ")
    assert "the damage at different places each time" in line


def test_scan_blames_the_line_for_reflections(gateway_cmd, subprocess_env, simulator):
    lines = scan_scenario(gateway_cmd, subprocess_env, simulator, "reflections.yaml")
    verdicts = [line for line in lines if ": reflections: " in line]
    assert verdicts and not any("duplicate_address" in line for line in lines)
    assert all("missing or misplaced terminator" in line for line in verdicts)


def test_scan_recognises_a_wrong_baud_rate(gateway_cmd, subprocess_env, simulator):
    lines = scan_scenario(gateway_cmd, subprocess_env, simulator, "wrong-baud.yaml")
    assert [line.split(":")[0] for line in lines] == ["! address 1", "! address 2",
                                                      "! address 3"]
    for line in lines:
        assert ": wrong_baud: 6 answer windows: 0 good; 6 with " in line
        assert "bytes but never the start of an answer" in line
        assert "the communication serial port setting is incorrect" in line
    assert not any("no module answered at all" in line for line in lines)


def test_scan_with_no_answer_at_all_names_the_manuals_causes(gateway_cmd, subprocess_env,
                                                             simulator):
    url = socket_url(simulator("--listen", "tcp://127.0.0.1:0", "--packs", "2", steps="""
        steps:
          - {fault: silence}
    """))
    res = scan(gateway_cmd, subprocess_env, url, "--addresses", "1-4")
    assert res.returncode == 1
    assert "no module answered at all" in res.stdout
    assert "RS485 communication line sequence is incorrect" in res.stdout
    assert "communication serial port setting is incorrect" in res.stdout


def test_scan_refuses_to_become_a_second_master(gateway_cmd, subprocess_env, simulator):
    url = socket_url(simulator("--listen", "tcp://127.0.0.1:0", "--packs", "2", steps="""
        steps:
          - {fault: foreign_master}
    """))
    res = scan(gateway_cmd, subprocess_env, url, "--addresses", "1-2")
    assert res.returncode == 1
    assert "another master is polling this bus" in res.stdout


def test_scan_port_that_does_not_exist(gateway_cmd, subprocess_env, tmp_path):
    res = scan(gateway_cmd, subprocess_env, str(tmp_path / "ttyUSB9"))
    assert res.returncode == 1 and "cannot use the port" in res.stderr


def test_simulate_usage_and_scenario_errors(gateway_cmd, subprocess_env, tmp_path):
    bad = tmp_path / "s.yaml"
    bad.write_text("steps:\n  - {fault: meltdown}\n")
    res = subprocess.run(gateway_cmd + ["simulate", "--pty", "--scenario", str(bad)],
                         capture_output=True, text=True, env=subprocess_env)
    assert res.returncode == 78 and f"{bad}:2: steps.0.fault:" in res.stderr
    res = subprocess.run(gateway_cmd + ["simulate", "--pty", "--packs", "17"],
                         capture_output=True, text=True, env=subprocess_env)
    assert res.returncode == 2
    res = subprocess.run(gateway_cmd + ["simulate", "--pty", "--packs", "12",
                                        "--first-address", "10"],
                         capture_output=True, text=True, env=subprocess_env)
    assert res.returncode == 2 and "past address 15" in res.stderr
