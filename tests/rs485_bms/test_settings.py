"""The rs485_bms config section."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError, parse_yaml, validate_document

from plugins.rs485_bms.settings import Family, Rs485Settings, parse_addresses

MODELS = {"rs485_bms": Rs485Settings}


def validate(text: str):
    return validate_document(parse_yaml(text, "gw.yaml"), MODELS)


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate(text)
    return [str(p) for p in info.value.problems]


def test_address_forms():
    assert parse_addresses("2-5, 9") == [2, 3, 4, 5, 9]
    assert parse_addresses([1, 2]) == [1, 2]
    with pytest.raises(ValueError):
        parse_addresses("5-2")
    with pytest.raises(ValueError):
        parse_addresses("a-b")


def test_positions_follow_config_order_across_buses():
    cfg = validate("""
rs485_bms:
  buses:
    - {name: a, port: /dev/ttyUSB0, addresses: "3,2"}
    - {name: b, port: "socket://127.0.0.1:4001", family: pylontech, addresses: 2-3}
""")
    s = cfg.section("rs485_bms")
    assert [(b.name, adr, pos) for b, adr, pos in s.positions()] == [
        ("a", 3, 1), ("a", 2, 2), ("b", 2, 3), ("b", 3, 4)]
    assert s.buses[1].family is Family.PYLONTECH
    assert s.buses[0].effective_timeout_ms == 500 and s.buses[1].effective_gap_ms == 50


def test_simulated_bus_addresses_default_to_its_packs():
    cfg = validate("rs485_bms:\n  buses:\n    - {name: s, simulate: {packs: 3, first_address: 4}}\n")
    assert cfg.section("rs485_bms").buses[0].effective_addresses == [4, 5, 6]


@pytest.mark.parametrize(("text", "expected"), [
    ("rs485_bms:\n  buses:\n    - {name: a}\n",
     "gw.yaml:3: rs485_bms.buses.0: give exactly one of 'port' (real hardware) or 'simulate'"),
    ("rs485_bms:\n  buses:\n    - {name: a, port: /dev/ttyS0}\n",
     "gw.yaml:3: rs485_bms.buses.0: 'addresses' is required for a real port, e.g. addresses: 2-13 "
     "(or addresses: auto to find the modules)"),
    ("rs485_bms:\n  buses:\n    - {name: a, port: /dev/ttyS0, addresses: auto, mode: master}\n",
     "gw.yaml:3: rs485_bms.buses.0: addresses: auto needs mode: per_address (in master mode "
     "the master answers for the bank: list its packs' addresses)"),
    ("rs485_bms:\n  buses:\n    - {name: a, port: /dev/ttyS0, addresses: [3, 0, 300]}\n",
     "gw.yaml:3: rs485_bms.buses.0.addresses: 0 is not an address: DIP addresses are 1..254 "
     "(or addresses: auto)"),
    ("rs485_bms:\n  buses:\n    - {name: a, port: /dev/ttyS0, addresses: some}\n",
     "gw.yaml:3: rs485_bms.buses.0.addresses: 'some' is not a list of addresses like '2-13' "
     "or '2,3,5'"),
    ("rs485_bms:\n  buses:\n    - name: a\n      port: /dev/ttyS0\n      addresses: 1-3\n      famliy: pace_v25\n",
     "gw.yaml:6: rs485_bms.buses.0.famliy: unknown key; did you mean 'family'?"),
    ("rs485_bms:\n  buses:\n    - {name: a, port: x, addresses: [1, 1]}\n",
     "gw.yaml:3: rs485_bms.buses.0: 'addresses' lists an address twice"),
    ("rs485_bms:\n  buses:\n    - {name: a, simulate: {}, family: daren_basen}\n",
     "gw.yaml:3: rs485_bms.buses.0: the simulator does not speak daren_basen"),
    ("rs485_bms:\n  buses:\n    - {name: a, simulate: {}}\n    - {name: a, simulate: {}}\n",
     "gw.yaml:1: rs485_bms: bus names must be unique"),
    ("rs485_bms:\n  buses:\n    - {name: a, port: /dev/ttyUSB0, addresses: 1-6}\n"
     "    - {name: b, port: /dev/ttyUSB0, addresses: 7-12}\n",
     "gw.yaml:1: rs485_bms: port /dev/ttyUSB0 is given to two buses: one port has one owner "
     "(list every module of that line under one bus)"),
    ("rs485_bms:\n  buses: []\n",
     "gw.yaml:2: rs485_bms.buses: List should have at least 1 item after validation, not 0"),
])
def test_bad_sections(text, expected):
    assert errors(text) == [expected]


def test_every_shipped_scenario_validates():
    from pathlib import Path

    from plugins.rs485_bms.sim.scenario import load_scenario

    files = sorted((Path(__file__).resolve().parents[2] / "config/scenarios").glob("*.yaml"))
    assert len(files) >= 4
    for f in files:
        scenario = load_scenario(f)
        assert scenario.description and scenario.steps, f


def test_scenario_errors_name_file_and_line(tmp_path):
    from plugins.rs485_bms.sim.scenario import load_scenario

    f = tmp_path / "s.yaml"
    f.write_text("steps:\n  - {fault: silence}\n  - fault: late\n    dealy_ms: 5\n")
    with pytest.raises(ConfigError) as info:
        load_scenario(f)
    assert [str(p) for p in info.value.problems] == [
        f"{f}:4: steps.1.dealy_ms: unknown key; did you mean 'delay_ms'?"]
    with pytest.raises(ConfigError, match="cannot read"):
        load_scenario(tmp_path / "missing.yaml")


@pytest.mark.parametrize(("bus", "expected"), [
    ("{name: a, port: /dev/ttyS0, addresses: 14-16}",
     "rs485_bms.buses.0: pace_v25 addresses are 1..15; 16 is outside"),
    ("{name: a, simulate: {packs: 4, first_address: 14}}",
     "rs485_bms.buses.0: pace_v25 addresses are 1..15; 16, 17 is outside"),
    ("{name: a, port: /dev/ttyS0, addresses: 1-3, family: eg4_lifepower4, mode: master}",
     "rs485_bms.buses.0: eg4_lifepower4 has no all-packs (FF) form: use mode: per_address"),
])
def test_buses_are_checked_against_their_family(bus, expected):
    assert errors(f"rs485_bms:\n  buses:\n    - {bus}\n") == [f"gw.yaml:3: {expected}"]


def test_daren_status_comes_from_its_analog_answer():
    from plugins.rs485_bms.poller.dialect import make_dialect

    assert make_dialect("daren_basen").STATUS is None
    assert make_dialect("pace_v25").STATUS == 0x44


def test_port_passwords_are_redacted():
    from plugins.rs485_bms.poller.transport import redact_url

    assert redact_url("socket://admin:s3cr/t@10.0.0.1:4001") == "socket://admin:****@10.0.0.1:4001"
    assert redact_url("rfc2217://u:p@w@h:1") == "rfc2217://u:****@h:1"
    assert redact_url("/dev/ttyUSB0") == "/dev/ttyUSB0"
    assert redact_url("socket://10.0.0.1:4001") == "socket://10.0.0.1:4001"


def test_transport_errors_never_quote_the_password():
    import asyncio

    from plugins.rs485_bms.poller.transport import SerialTransport, TransportError

    async def attempt():
        t = SerialTransport("socket://admin:hunter2@127.0.0.1:9", baud=9600)
        try:
            await t.open()
        finally:
            await t.close()
    with pytest.raises(TransportError) as info:
        asyncio.run(attempt())
    assert "hunter2" not in str(info.value) and "admin:****@" in str(info.value)


def test_simulator_scenarios_are_checked_with_the_config(tmp_path):
    bad = tmp_path / "s.yaml"
    bad.write_text("steps:\n  - {fault: flags, flags: {protect9: 1}}\n")
    got = errors(f"rs485_bms:\n  buses:\n    - {{name: a, simulate: {{scenario: {bad}}}}}\n")
    assert len(got) == 1 and got[0].startswith("gw.yaml:3: rs485_bms.buses.0: scenario ")
    assert "steps.0.flags: protect9 is not a pace_v25 status field" in got[0]
    got = errors("rs485_bms:\n  buses:\n    - {name: a, simulate: {scenario: /nope.yaml}}\n")
    assert "scenario /nope.yaml: cannot read" in got[0]


def test_a_scenario_naming_a_pack_outside_the_simulated_bank_is_a_config_error(tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text("steps:\n  - {fault: silence, packs: [2, 9]}\n")
    got = errors("rs485_bms:\n  buses:\n    - {name: a, simulate: "
                 f"{{packs: 4, scenario: {scenario}}}}}\n")
    assert len(got) == 1 and got[0].startswith("gw.yaml:3: rs485_bms.buses.0: scenario ")
    assert "steps.0.packs: 9 is not in the simulated bank (addresses 1..4)" in got[0]


def test_auto_addresses_reserve_a_position_per_probed_address():
    cfg = validate("rs485_bms:\n  buses:\n"
                   "    - {name: a, port: /dev/ttyS0, addresses: auto}\n"
                   "    - {name: b, port: /dev/ttyS1, family: pylontech, addresses: auto}\n"
                   "    - {name: c, port: /dev/ttyS2, addresses: 4-5}\n")
    s = cfg.section("rs485_bms")
    a, b, c = s.buses
    assert a.discovering and a.effective_addresses == list(range(1, 16))
    assert b.effective_addresses == list(range(2, 14))
    assert not c.discovering
    got = [(bus.name, adr, pos) for bus, adr, pos in s.positions()]
    assert got[0] == ("a", 1, 1) and got[14] == ("a", 15, 15)
    assert got[15] == ("b", 2, 16) and got[-2:] == [("c", 4, 28), ("c", 5, 29)]


def test_master_fallback_settings_have_documented_defaults_and_bounds():
    bus = validate("""
rs485_bms:
  buses:
    - {name: a, port: /dev/ttyUSB0, mode: master, addresses: 1-4}
""").section("rs485_bms").buses[0]
    assert (bus.master_fallback_after, bus.master_retry_s) == (3, 60)
    problems = errors("""
rs485_bms:
  buses:
    - {name: a, port: /dev/ttyUSB0, mode: master, addresses: 1-4,
       master_fallback_after: 0, master_retry_s: 0.5}
""")
    assert any("master_fallback_after: Input should be greater than or equal to 1" in p
               for p in problems)
    assert any("master_retry_s: Input should be greater than or equal to 1" in p
               for p in problems)
