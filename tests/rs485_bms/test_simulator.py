"""The simulator's pure core and the ``simulate`` command's argument handling: the
master's FF answer under per-pack faults, scenario validation, address and option
ranges. No sockets, no sleeping: time is passed in."""

from __future__ import annotations

import argparse

import pytest

from gateway.config import ConfigError
from gateway.model import Condition

from plugins.rs485_bms.poller.dialect import make_dialect
from plugins.rs485_bms.protocol import Frame, parse_frame
from plugins.rs485_bms.sim.scenario import Scenario, load_scenario
from plugins.rs485_bms.sim.simulator import (
    BankSimulator,
    _resample,
    bank_addresses,
    run_command,
)

T = 5.0  #: simulator time of every request below


def bank(steps, *, family="pace_v25", packs=4) -> BankSimulator:
    return BankSimulator(family=family, addresses=list(range(1, packs + 1)),
                         scenario=Scenario.model_validate({"steps": steps}), clock=lambda: 0.0)


def ask_all(sim: BankSimulator, cid2: int):
    """Send an FF request to the master; the decoded answer, or None if it stays silent."""
    d = make_dialect(sim.family)
    request = d.request(cid2, sim.master, all_packs=True)
    emissions = sim.respond(request, T)
    if not emissions:
        return None
    (emission,) = emissions
    frame = parse_frame(emission.data)
    return frame, d.decode(request, frame)


# ------------------------------------------------------------ the master's FF answer ---

@pytest.mark.parametrize("family", ["pace_v25", "pylontech"])
def test_ff_answer_leaves_a_silent_slave_out(family):
    sim = bank([{"packs": [3], "fault": "silence"}], family=family)
    for cid2 in (0x42, 0x44):
        frame, answer = ask_all(sim, cid2)
        assert frame.info[1] == 3 and len(answer.packs) == 3  # the count says so
    healthy = bank([], family=family)
    _, full = ask_all(healthy, 0x42)
    _, short = ask_all(sim, 0x42)
    # the blocks that remain are packs 1, 2 and 4, in address order
    assert short.packs == (full.packs[0], full.packs[1], full.packs[3])


@pytest.mark.parametrize("family", ["pace_v25", "pylontech"])
def test_ff_answer_zeroes_only_the_all_zero_slave(family):
    sim = bank([{"packs": [2], "fault": "all_zero"}], family=family)
    _, answer = ask_all(sim, 0x42)
    telemetry = make_dialect(family).telemetry(answer)
    assert [t is None for t in telemetry] == [False, True, False, False]
    assert set(answer.packs[1].cell_mv) == {0}
    # a 0x44 answer is not an analog payload: it stays as it was, equal to a bank's
    # without the fault
    _, status = ask_all(sim, 0x44)
    _, clean = ask_all(bank([], family=family), 0x44)
    assert status.packs == clean.packs and len(status.packs) == 4


def test_ff_status_answer_carries_a_slaves_flags_in_its_block():
    sim = bank([{"packs": [3], "fault": "flags", "flags": {"protect1": 0x01}}])
    _, answer = ask_all(sim, 0x44)
    assert [p.protect1 for p in answer.packs] == [0, 0, 1, 0]
    status = make_dialect("pace_v25").bms_status(answer)
    assert [Condition.CELL_OVER_VOLTAGE in s.protections for s in status] == [
        False, False, True, False]


def test_ff_answer_follows_a_slaves_cell_ramp():
    sim = bank([{"packs": [4], "fault": "cell_ramp", "cell": 2, "from_mv": 3650,
                 "to_mv": 3650}])
    _, answer = ask_all(sim, 0x42)
    assert answer.packs[3].cell_mv[1] == 3650 and answer.packs[0].cell_mv[1] != 3650


def test_faults_of_the_master_still_hit_the_whole_ff_answer():
    assert ask_all(bank([{"packs": [1], "fault": "silence"}]), 0x42) is None
    frame, answer = ask_all(bank([{"packs": [1], "fault": "wrong_address",
                                   "wrong_address": 9}]), 0x42)
    assert frame.adr == 9 and len(answer.packs) == 4
    sim = bank([{"packs": [1], "fault": "late", "delay_ms": 700}])
    request = make_dialect("pace_v25").request(0x42, 1, all_packs=True)
    assert sim.respond(request, T)[0].delay_s == pytest.approx(0.725)


def test_a_slaves_own_answer_faults_stay_on_its_own_address():
    sim = bank([{"packs": [2], "fault": "late", "delay_ms": 700}])
    d = make_dialect("pace_v25")
    assert sim.respond(d.request(0x42, 1, all_packs=True), T)[0].delay_s == 0.025
    assert sim.respond(d.request(0x42, 2), T)[0].delay_s == pytest.approx(0.725)


# ------------------------------------------------------------------- scenario steps ---

@pytest.mark.parametrize(("step", "problem"), [
    ("{at_s: 10, until_s: 10, fault: silence}",
     "steps.0: until_s (10) must be later than at_s (10)"),
    ("{at_s: 10, until_s: 4, fault: silence}",
     "steps.0: until_s (4) must be later than at_s (10)"),
    ("{fault: late}", "steps.0: a late step needs delay_ms"),
    ("{fault: delay, delay_ms: 0}", "steps.0: a delay step needs delay_ms"),
    ("{packs: [2, 16], fault: silence}",
     "steps.0.packs.1: Input should be less than or equal to 15"),
    ("{fault: wrong_baud}", "steps.0: a wrong_baud step needs baud"),
    ("{fault: noise, rate: 0}", "steps.0.rate: Input should be greater than 0"),
])
def test_bad_steps_name_file_line_and_key(tmp_path, step, problem):
    f = tmp_path / "s.yaml"
    f.write_text(f"description: x\nsteps:\n  - {step}\n")
    with pytest.raises(ConfigError) as info:
        load_scenario(f)
    (got,) = [str(p) for p in info.value.problems]
    assert got.startswith(f"{f}:3: {problem}")


def test_steps_for_packs_outside_the_bank_are_refused_when_the_bank_is_known():
    scenario = Scenario.model_validate({"steps": [
        {"packs": [1], "fault": "silence"}, {"packs": [2, 7, 9], "fault": "corrupt"}]})
    scenario.check("pace_v25")  # the bank is not known yet: fine
    with pytest.raises(ValueError) as info:
        scenario.check("pace_v25", [1, 2, 3, 4])
    assert str(info.value) == (
        "steps.1.packs: 7, 9 are not in the simulated bank (addresses 1..4)")
    with pytest.raises(ValueError, match="steps.1.packs: 7, 9 are not in the simulated bank"):
        BankSimulator(family="pace_v25", addresses=[1, 2, 3, 4], scenario=scenario)


def test_transport_comes_back_when_the_last_overlapping_drop_ends():
    scenario = Scenario.model_validate({"steps": [
        {"at_s": 10, "until_s": 20, "fault": "transport_drop"},
        {"at_s": 15, "until_s": 30, "fault": "transport_drop"},
        {"at_s": 30, "until_s": 31, "fault": "transport_drop"},
        {"at_s": 50, "fault": "transport_drop"},
        {"at_s": 0, "until_s": 99, "packs": [1], "fault": "silence"}]})
    assert scenario.transport_back_at(5) == 5
    assert scenario.transport_back_at(12) == 31
    assert scenario.transport_back_at(40) == 40
    assert scenario.transport_back_at(50) is None


def test_impossible_wire_speeds_are_refused_by_the_simulator_itself():
    with pytest.raises(ValueError, match="baud must be positive"):
        BankSimulator(family="pace_v25", addresses=[1], baud=0)
    with pytest.raises(ValueError, match="turnaround_ms must not be negative"):
        BankSimulator(family="pace_v25", addresses=[1], turnaround_ms=-1)


# ------------------------------------------------------------ the simulate command ---

def simulate_args(*argv: str) -> argparse.Namespace:
    from gateway.cli import make_parser, plugin_commands
    from gateway.plugins import make_plugin_manager

    pm, _ = make_plugin_manager()
    return make_parser(plugin_commands(pm), "simulate").parse_args(["simulate", *argv])


@pytest.mark.parametrize(("argv", "message"), [
    (["--baud", "0"], "argument --baud: 0 is outside 1200..921600"),
    (["--baud", "-9600"], "argument --baud: -9600 is outside 1200..921600"),
    (["--baud", "99999999"], "argument --baud: 99999999 is outside 1200..921600"),
    (["--baud", "fast"], "argument --baud: 'fast' is not a whole number"),
    (["--turnaround-ms", "-5"], "argument --turnaround-ms: -5 is outside 0..5000"),
    (["--first-address", "16"], "argument --first-address: 16 is outside 0..15"),
    (["--packs", "17"], "argument --packs: 17 is outside 1..16"),
])
def test_out_of_range_options_are_usage_errors(capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        simulate_args("--pty", *argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_sixteen_packs_start_at_address_zero(capsys):
    args = simulate_args("--pty", "--packs", "16", "--first-address", "0")
    assert bank_addresses(args.family, args.packs, args.first_address) == list(range(16))
    sim = BankSimulator(family=args.family, addresses=list(range(16)), clock=lambda: 0.0)
    d = make_dialect("pace_v25")
    for adr in (0, 15):
        (emission,) = sim.respond(d.request(0x42, adr), T)
        assert parse_frame(emission.data).adr == adr
    # without --first-address 0 the error says what to do
    assert run_command(simulate_args("--pty", "--packs", "16")) == 2
    assert capsys.readouterr().err == (
        "bms-gateway simulate: 16 packs from address 1 go past address 15: "
        "16 packs need --first-address 0\n")


@pytest.mark.parametrize(("argv", "message"), [
    (["--packs", "12", "--first-address", "10"],
     "12 packs from address 10 go past address 15: 12 packs need --first-address 4 or lower"),
    (["--family", "pylontech", "--packs", "16"],
     "pylontech packs have addresses 1..15: at most 15 packs, so use --packs 15 or fewer"),
    (["--family", "pylontech", "--first-address", "0"],
     "pylontech addresses start at 1: use --first-address 1 or higher"),
])
def test_banks_that_do_not_fit_the_family_say_what_to_change(capsys, argv, message):
    assert run_command(simulate_args("--pty", *argv)) == 2
    assert capsys.readouterr().err == f"bms-gateway simulate: {message}\n"


def test_pty_link_without_pty_is_a_usage_error(capsys):
    args = simulate_args("--listen", "tcp://127.0.0.1:0", "--pty-link", "/tmp/x")
    assert run_command(args) == 2
    assert "--pty-link goes with --pty" in capsys.readouterr().err


def test_a_scenario_naming_packs_outside_the_bank_is_refused_before_serving(tmp_path, capsys):
    f = tmp_path / "s.yaml"
    f.write_text("steps:\n  - {packs: [6], fault: silence}\n")
    assert run_command(simulate_args("--pty", "--packs", "4", "--scenario", str(f))) == 78
    assert capsys.readouterr().err == (
        f"{f}: steps.0.packs: 6 is not in the simulated bank (addresses 1..4)\n")


# -------------------------------------------------------------------- line faults ---

def _analog(sim: BankSimulator, address: int = 2) -> list[bytes]:
    request = make_dialect(sim.family).request(0x42, address)
    return [em.data for em in sim.respond(request, T)]


def test_noise_flips_single_bits_at_its_rate_and_keeps_the_length():
    clean = _analog(bank([]))[0]
    noisy = [_analog(sim)[0] for sim in [bank([{"packs": [2], "fault": "noise", "rate": 0.02}])]
             for _ in range(20)]
    assert all(len(n) == len(clean) for n in noisy)
    flipped = [bin(a ^ b).count("1") for n in noisy for a, b in zip(n, clean) if a != b]
    assert flipped and set(flipped) == {1}  # one bit per hit byte
    assert 0.005 < len(flipped) / (20 * len(clean)) < 0.05
    assert _analog(bank([{"packs": [3], "fault": "noise", "rate": 1}])) == [clean]  # pack 3


def test_reflection_garbles_requests_too_which_the_pack_answers_with_rtn_02():
    sim = bank([{"packs": [2], "fault": "reflection", "rate": 0.2}])  # a request is 20 bytes
    rtn02 = Frame(ver=0x25, adr=2, cid1=0x46, cid2=0x02).wire
    answers = [_analog(sim)[0] for _ in range(20)]
    short = [a for a in answers if len(a) == len(rtn02)]
    assert len(short) >= 15  # nearly every request was hit: "CHKSUM error" answers
    for a in short:  # themselves hit on the way back, one bit per byte at most
        assert all(bin(x ^ y).count("1") <= 1 for x, y in zip(a, rtn02))
    assert parse_frame(rtn02).rtn == 0x02


def test_wrong_baud_answers_are_the_bit_stream_read_at_the_buss_rate():
    frame = _analog(bank([]))[0]
    assert _resample(frame, sent_baud=9600, line_baud=9600) == frame
    [junk] = _analog(bank([{"packs": [2], "fault": "wrong_baud", "baud": 19200}]))
    assert junk != frame and b"~2502" not in junk
    # twice as fast: each received byte spans two sent ones, about half as many bytes
    assert len(frame) // 3 < len(junk) < len(frame)
    assert _analog(bank([{"packs": [2], "fault": "wrong_baud", "baud": 9600}])) == [frame]
# ------------------------------------------------------------- the bank's physics ---

def test_packs_in_parallel_share_the_bank_current_and_its_sign():
    from plugins.rs485_bms.sim.physics import SimBank, SimPack, ocv_mv

    sim = BankSimulator(family="pace_v25", addresses=list(range(1, 13)), clock=lambda: 0.0,
                        scenario=Scenario.model_validate({"steps": [
                            {"at_s": 100, "until_s": 700, "fault": "mains_failure",
                             "load_a": 60}]}))
    bank = sim.bank
    for t, sign in ((50, 1), (400, -1), (900, 1)):
        states = [bank.state(a, t) for a in sim.addresses]
        assert all(s.current_ma * sign > 0 for s in states), t
        # shares follow conductance: the lowest-resistance pack carries the most
        lowest = min(bank.packs, key=lambda p: p.resistance_mohm).address
        assert max(states, key=lambda s: abs(s.current_ma)) is states[lowest - 1]
    during = [bank.state(a, 400) for a in sim.addresses]
    assert abs(sum(s.current_ma for s in during) + 60_000) <= 12 * 10
    # SOC integrates the current: up while charging, down on battery, by I x t / capacity
    p0, p1, p2 = (bank.soc(t)[0] for t in (0, 100, 700))
    assert p1 > p0 and p2 < p1
    pack = bank.packs[0]
    i = bank.currents_ma(400, bank.soc(400))[0]
    assert p1 - p2 == pytest.approx(-i * 600 / 3600 / pack.full_mah * 1000, rel=1e-6)
    # cell voltage = OCV(SOC) + offset + IR drop
    s = bank.state(1, 400)
    expected = ocv_mv(bank.soc(400)[0]) + s.current_ma / 1000 * pack.ir_mohm
    assert s.cell_mv[0] == pytest.approx(expected + pack.cell_offset[0], abs=1)
    assert s.voltage_mv == sum(s.cell_mv)
    # temperature rises with current
    lone = SimBank([SimPack(1)])
    assert lone.state(1, 10).temp_dc[0] > lone.packs[0].ambient_dc + 20


def test_an_empty_pack_is_cut_off_and_the_others_take_its_share():
    from plugins.rs485_bms.sim.physics import Outage, SimBank, SimPack

    packs = [SimPack(a) for a in (1, 2)]
    packs[0].soc0 = 5.0  # nearly empty
    bank = SimBank(packs, outages=[Outage(0, None, 50_000)])
    first, second = (bank.state(a, 3600) for a in (1, 2))
    assert first.current_ma == 0 and first.soc_permille == 0
    assert second.current_ma == -50_000


def test_a_mains_failure_step_is_for_the_whole_bank(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("steps:\n  - {at_s: 10, packs: [2], fault: mains_failure}\n")
    with pytest.raises(ConfigError) as info:
        load_scenario(f)
    assert "applies to the whole bank" in str(info.value.problems[0])


def test_the_answers_do_not_depend_on_the_order_of_the_questions():
    def states(order):
        sim = BankSimulator(family="pace_v25", addresses=[1, 2, 3], clock=lambda: 0.0,
                            scenario=Scenario.model_validate({"steps": [
                                {"at_s": 30, "fault": "mains_failure"}]}))
        return {t: sim.bank.state(2, t) for t in order}
    a = states([5000.5, 12.25, 200, 61])
    b = states([61, 200, 12.25, 5000.5])
    assert a == b
