"""The agent without sockets: datagram handling, engine identity, settings, plugin hooks."""

from __future__ import annotations

import copy
import dataclasses
import json
import subprocess
import sys

import pydantic
import pytest

from gateway.config import ConfigError, config_from_mapping
from gateway.model import ModuleStatus
from gateway.plugins import make_plugin_manager
from plugins.snmp_agent import ber
from plugins.snmp_agent import oid_map as om
from plugins.snmp_agent.agent import STATE_FILE, SnmpAgent, engine_identity
from plugins.snmp_agent.settings import SnmpAgentSettings, default_config
from plugins.snmp_agent.standard_mibs import SERVED_OBJECT_OIDS, insert_standard

SYS_NAME = (1, 3, 6, 1, 2, 1, 1, 5, 0)


def request(pdu_type=ber.GET_REQUEST, names=(SYS_NAME,), *, community=b"public",
            version=1, f2=0, f3=0) -> bytes:
    varbinds = b"".join(ber.tlv(ber.SEQUENCE, ber.tlv(ber.OBJECT_IDENTIFIER,
                                                      ber.encode_oid_content(o)) + b"\x05\x00")
                        for o in names)
    pdu = (ber.encode_integer(99) + ber.encode_integer(f2) + ber.encode_integer(f3)
           + ber.tlv(ber.SEQUENCE, varbinds))
    return ber.tlv(ber.SEQUENCE, ber.encode_integer(version)
                   + ber.tlv(ber.OCTET_STRING, community) + ber.tlv(pdu_type, pdu))


def make_agent(hub, clock, **settings) -> SnmpAgent:
    return SnmpAgent(SnmpAgentSettings.model_validate(settings), hub, clock=clock,
                     gateway_name="gw-test", software_version="9.9")


def test_v2c_get(bank_hub, bank_clock):
    agent = make_agent(bank_hub, bank_clock)
    reply = agent.handle_datagram(request(), "127.0.0.1")
    assert isinstance(reply, bytes) and b"gw-test" in reply
    assert agent.counters.in_pkts == 1


@pytest.mark.parametrize(("payload", "counter"), [
    (request(community=b"wrong"), "in_bad_community_names"),
    (request(version=0), "in_bad_versions"),
    (request(version=3), "in_bad_versions"),  # SNMPv3 without v3 users
    (request(ber.RESPONSE), "unexpected_pdus"),
    (b"\x30\x03\x02\x01", "in_asn_parse_errs"),
])
def test_dropped_datagrams_are_counted(bank_hub, bank_clock, payload, counter):
    agent = make_agent(bank_hub, bank_clock)
    assert agent.handle_datagram(payload, "127.0.0.1") is None
    counted = {k: v for k, v in vars(agent.counters).items() if v and k != "in_pkts"}
    assert counted == {counter: 1}


def test_v2c_can_be_switched_off(bank_hub, bank_clock):
    agent = make_agent(bank_hub, bank_clock, v2c={"enabled": False},
                       v3_users=[{"name": "u", "auth_key": "a" * 8, "priv_key": "p" * 8}])
    assert agent.handle_datagram(request(), "127.0.0.1") is None
    assert agent.counters.in_bad_versions == 1


def test_v3_messages_go_to_the_v3_engine_when_users_exist(bank_hub, bank_clock):
    agent = make_agent(bank_hub, bank_clock,
                       v3_users=[{"name": "u", "auth_key": "a" * 8, "priv_key": "p" * 8}])
    agent._v3 = _Engine()  # the engine itself is exercised end to end
    msg = discovery()
    assert agent.handle_datagram(msg, "127.0.0.1") == _Engine.REPLY
    assert agent.handle_datagram(msg[:-1], "127.0.0.1") is None
    assert agent.counters.in_asn_parse_errs == 1
    assert agent._v3.seen == [b""]


def test_a_bug_in_the_v3_engine_drops_the_message_and_is_counted(bank_hub, bank_clock):
    agent = make_agent(bank_hub, bank_clock,
                       v3_users=[{"name": "u", "auth_key": "a" * 8, "priv_key": "p" * 8}])
    agent._v3 = _Engine(fail=True)
    assert agent.handle_datagram(discovery(), "127.0.0.1") is None
    assert agent.counters.internal_errors == 1


def discovery(user: bytes = b"") -> bytes:
    """An SNMPv3 engine discovery request (RFC 3414 section 4), reportable, noAuthNoPriv."""
    header = ber.tlv(ber.SEQUENCE, ber.encode_integer(1) + ber.encode_integer(1472)
                     + ber.tlv(ber.OCTET_STRING, b"\x04") + ber.encode_integer(3))
    usm = ber.tlv(ber.SEQUENCE, ber.tlv(ber.OCTET_STRING, b"") + ber.encode_integer(0)
                  + ber.encode_integer(0) + ber.tlv(ber.OCTET_STRING, user)
                  + ber.tlv(ber.OCTET_STRING, b"") + ber.tlv(ber.OCTET_STRING, b""))
    scoped = ber.tlv(ber.SEQUENCE, ber.tlv(ber.OCTET_STRING, b"") + ber.tlv(ber.OCTET_STRING, b"")
                     + ber.tlv(ber.GET_REQUEST, ber.encode_integer(7) + ber.encode_integer(0)
                               + ber.encode_integer(0) + ber.tlv(ber.SEQUENCE, b"")))
    return ber.tlv(ber.SEQUENCE, ber.encode_integer(3) + header
                   + ber.tlv(ber.OCTET_STRING, usm) + scoped)


class _Engine:
    """Stands in for the V3Engine: records the user names it is handed."""

    REPLY = b"v3 reply"

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.seen: list[bytes] = []
        self.counters = {"invalid_msgs": 3, "unknown_contexts": 0, "unknown_pdu_handlers": 0}

    def handle(self, data: bytes, header: ber.V3Header) -> bytes:
        if self.fail:
            raise RuntimeError("a bug")
        self.seen.append(header.user_name)
        return self.REPLY

    def usm_counters(self) -> dict[str, int]:
        return {"wrong_digests": 5}


def test_health_figures_include_the_v3_engines(bank_hub, bank_clock):
    agent = make_agent(bank_hub, bank_clock)
    agent._v3 = _Engine()
    figures = {f.name: f.value for f in agent.health_figures()}
    assert figures["snmp_usm_wrong_digests_total"] == 5
    assert figures["snmp_usm_decryption_errors_total"] == 0
    assert figures["snmp_v3_invalid_msgs_total"] == 3


def served(table):
    """Every variable as a request sees it now, and its encoded varbind."""
    return [(table.variable(i), table.varbind(i)) for i in range(len(table))]


def from_scratch(agent, now):
    """What a table built from nothing serves for the hub's latest snapshot at ``now``."""
    from plugins.snmp_agent.responder import Table

    standard = copy.deepcopy(agent._standard)  # the entity state as the agent has it
    variables = insert_standard(om.make_oid_table(
        agent._hub.latest, now=now, system=agent._system, options=agent._options,
        bus_numbers=agent._bus_numbers, counters=agent.counter_values(),
        notifications=agent.notifier.delivery_counts(), engine=agent.engine_info()),
        standard.variables(agent._hub.latest, now=now, started_at=agent.started_at,
                           bus_numbers=agent._bus_numbers, gateway_name=agent._system.name))
    return served(Table(variables, live=agent._live, clock=lambda: now,
                        objects=SERVED_OBJECT_OIDS))


def test_time_passing_rebuilds_nothing_and_ages_are_read_per_request(bank_hub, bank_clock):
    agent = make_agent(bank_hub, bank_clock)
    table = agent.table()
    rebuilds = agent._keeper.rebuilds
    age = table.positions[om.MOD_DATA_AGE.oid + (1, 1)]
    before = table.variable(age).value
    bank_clock.now += 2.0
    assert agent.table() is table and agent._keeper.rebuilds == rebuilds
    assert table.variable(age).value == before + 2
    assert served(table) == from_scratch(agent, bank_clock.now)


def test_a_new_snapshot_patches_only_what_changed(bank_hub, bank_clock, bank):
    agent = make_agent(bank_hub, bank_clock)
    table = agent.table()
    rebuilds = agent._keeper.rebuilds
    modules = bank.make_modules(bank_clock.now)
    changed = modules[0].telemetry
    modules[0] = dataclasses.replace(modules[0], telemetry=dataclasses.replace(
        changed, current_ma=changed.current_ma - 7))
    bank_hub.update("rs485_bms", modules=modules, buses=bank.make_buses(bank_clock.now))
    assert agent.table() is table and agent._keeper.rebuilds == rebuilds  # patched in place
    current = table.variable(table.positions[om.MOD_CURRENT.oid + (1, 1)]).value
    assert current == changed.current_ma - 7
    assert served(table) == from_scratch(agent, bank_clock.now)


def test_columns_that_come_and_go_rebuild_and_serve_as_from_scratch(bank_hub, bank_clock, bank):
    agent = make_agent(bank_hub, bank_clock)
    agent.table()
    modules = bank.make_modules(bank_clock.now)
    modules[1] = dataclasses.replace(modules[1], status=ModuleStatus.OFFLINE)  # loses values
    bank_hub.update("rs485_bms", modules=modules, buses=bank.make_buses(bank_clock.now))
    rebuilds = agent._keeper.rebuilds
    table = agent.table()
    assert agent._keeper.rebuilds == rebuilds + 1
    assert om.MOD_CURRENT.oid + (1, 2) not in table.positions
    assert served(table) == from_scratch(agent, bank_clock.now)


def test_a_reading_keeps_the_entity_table_and_an_identity_change_remakes_it(
        bank_hub, bank_clock, bank):
    """entPhysicalTable is made again only when what it shows changes (a new serial),
    never for a new reading; either way the table serves what a fresh build would."""
    from plugins.snmp_agent import standard_mibs as sm

    agent = make_agent(bank_hub, bank_clock)
    agent.table()
    physical = agent._standard._physical
    modules = bank.make_modules(bank_clock.now)
    t = modules[0].telemetry
    modules[0] = dataclasses.replace(modules[0], telemetry=dataclasses.replace(
        t, current_ma=t.current_ma - 7))
    bank_hub.update("rs485_bms", modules=modules, buses=bank.make_buses(bank_clock.now))
    table = agent.table()
    assert agent._standard._physical is physical
    assert served(table) == from_scratch(agent, bank_clock.now)

    m = modules[0]
    modules[0] = dataclasses.replace(m, identity=dataclasses.replace(m.identity,
                                                                     serial="SWAPPED01"))
    bank_clock.now += 1.0
    bank_hub.update("rs485_bms", modules=modules, buses=bank.make_buses(bank_clock.now))
    table = agent.table()
    assert agent._standard._physical is not physical
    serial = sm.PHYS_SERIAL_NUM.oid + (sm.module_index(agent._bus_numbers[m.bus], m.address),)
    assert table.variable(table.positions[serial]).value == b"SWAPPED01"
    change = table.variable(table.positions[sm.ENT_LAST_CHANGE_TIME.oid + (0,)]).value
    assert change > 0
    assert served(table) == from_scratch(agent, bank_clock.now)


def test_while_the_table_task_runs_requests_are_answered_in_between_its_chunks(
        bank_hub, bank_clock, bank, monkeypatch):
    """The table task makes a new snapshot's parts over several loop iterations; a
    request meanwhile is answered from the table as it was, and the new values appear in
    one step, as a fresh build would serve them."""
    import asyncio

    from plugins.snmp_agent import agent as agent_module

    agent = make_agent(bank_hub, bank_clock)
    current_oid = om.MOD_CURRENT.oid + (1, 1)
    monkeypatch.setattr(agent_module, "SLICE_S", 0.0)  # a slice after every chunk

    async def scenario() -> int:
        task = asyncio.ensure_future(agent._keep_table())
        for _ in range(100):  # the first table
            await asyncio.sleep(0)
            if agent._table_key is not None:
                break
        table = agent._serving()
        before = table.variable(table.positions[current_oid]).value
        modules = bank.make_modules(bank_clock.now)
        t = modules[0].telemetry
        modules[0] = dataclasses.replace(modules[0], telemetry=dataclasses.replace(
            t, current_ma=t.current_ma - 7))
        bank_hub.update("rs485_bms", modules=modules, buses=bank.make_buses(bank_clock.now))
        turns = 0
        while agent._table_key[0] != bank_hub.latest.seq:
            served_now = agent._serving()  # a request: never brings the table up to date
            assert served_now.variable(served_now.positions[current_oid]).value == before
            turns += 1
            await asyncio.sleep(0)
        table = agent._serving()
        assert table.variable(table.positions[current_oid]).value == before - 7
        assert served(table) == from_scratch(agent, bank_clock.now)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return turns

    assert asyncio.run(scenario()) > 2  # the head, one chunk per module, the bank


def test_a_plan_overtaken_by_the_request_path_or_new_settings_is_dropped(
        bank_hub, bank_clock, bank, monkeypatch):
    """While the table task is between its slices, a request may bring the table up to
    date itself (a module past its stale age) or the settings may change: the task's
    plan, made for the table as it was, is then dropped, never committed over."""
    import asyncio

    from plugins.snmp_agent import agent as agent_module

    monkeypatch.setattr(agent_module, "SLICE_S", 0.0)
    agent = make_agent(bank_hub, bank_clock)

    async def scenario() -> None:
        task = asyncio.ensure_future(agent._keep_table())
        for _ in range(200):
            await asyncio.sleep(0)
            if agent._table_key is not None and agent._table_key[0] == bank_hub.latest.seq:
                break
        for overtake in ("request", "settings"):
            modules = bank.make_modules(bank_clock.now)
            t = modules[0].telemetry
            modules[0] = dataclasses.replace(modules[0], telemetry=dataclasses.replace(
                t, current_ma=t.current_ma - 11))
            bank_hub.update("rs485_bms", modules=modules,
                            buses=bank.make_buses(bank_clock.now))
            await asyncio.sleep(0)  # the task has begun its plan
            if overtake == "request":
                agent.table()  # what a request past a stale age does
            else:
                agent.apply(agent.settings)  # SIGHUP
            for _ in range(500):
                await asyncio.sleep(0)
                if (agent._table_key == (bank_hub.latest.seq, agent._generation)
                        and agent._due() is None):
                    break
            assert not task.done()  # no assertion failed in the task
            assert served(agent._serving()) == from_scratch(agent, bank_clock.now)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())


def test_a_notification_waits_until_the_table_serves_its_snapshot(
        bank_hub, bank_clock, bank, monkeypatch):
    """SnmpAgent.served, which the notifier awaits before sending: at once without the
    table task; else once the task has committed the snapshot, or after its timeout."""
    import asyncio

    from plugins.snmp_agent import agent as agent_module

    monkeypatch.setattr(agent_module, "SLICE_S", 0.0)  # the table takes several turns
    agent = make_agent(bank_hub, bank_clock)
    assert agent.notifier.wait_served == agent.served

    async def scenario() -> None:
        await agent.served(10**9)  # no table task: nothing to wait for
        task = asyncio.ensure_future(agent._keep_table())
        for _ in range(200):
            await asyncio.sleep(0)
            if agent._table_key is not None:
                break
        seq = bank_hub.update("rs485_bms", modules=bank.make_modules(bank_clock.now),
                              buses=bank.make_buses(bank_clock.now)).seq
        waiter = asyncio.ensure_future(agent.served(seq))
        await asyncio.sleep(0)
        assert not waiter.done() and agent._table_key[0] < seq
        for _ in range(500):
            await asyncio.sleep(0)
            if waiter.done():
                break
        assert waiter.done() and agent._table_key[0] >= seq
        await agent.served(seq + 100, timeout_s=0.01)  # never served: gives up
        assert agent._served_waiters == []
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())


def test_live_data_turning_stale_by_age_updates_the_table_without_a_snapshot(
        bank_hub, bank_clock, bank):
    modules = [dataclasses.replace(m, stale_after_s=30.0)
               for m in bank.make_modules(bank_clock.now)]
    bank_hub.update("rs485_bms", modules=modules, buses=bank.make_buses(bank_clock.now))
    agent = make_agent(bank_hub, bank_clock)
    table = agent.table()
    voltage = om.MOD_VOLTAGE.oid + (1, 1)
    assert voltage in table.positions
    module = bank_hub.latest.module(1)
    bank_clock.now = module.updated_at + module.stale_after_s + 0.5  # no new snapshot
    table = agent.table()
    assert voltage not in table.positions
    assert table.variable(table.positions[om.MOD_STATUS.oid + (1, 1)]).value == int(
        ModuleStatus.STALE)
    assert served(table) == from_scratch(agent, bank_clock.now)


def test_live_counters_and_uptime(bank_hub, bank_clock):
    agent = make_agent(bank_hub, bank_clock)
    table = agent.table()
    i = table.positions[om.SNMP_COUNTERS["in_pkts"].oid + (0,)]
    agent.counters.in_pkts = 41
    assert table.variable(i).value == 41
    bank_clock.now += 2.5
    j = table.positions[om.SYS_UPTIME.oid + (0,)]
    assert table.variable(j).value == 250


def test_reload_applies_live_settings(bank_hub, bank_clock):
    agent = make_agent(bank_hub, bank_clock)
    agent.apply(SnmpAgentSettings.model_validate(
        {"v2c": {"community": "other"}, "system": {"name": "renamed"},
         "bus_numbers": {"bank2": 1}}))
    assert agent.handle_datagram(request(), "127.0.0.1") is None
    reply = agent.handle_datagram(request(community=b"other"), "127.0.0.1")
    assert b"renamed" in reply
    table = agent.table()
    assert table.variable(table.positions[om.BUS_NAME.oid + (1,)]).value == b"bank2"
    assert table.variable(table.positions[om.BUS_NAME.oid + (2,)]).value == b"bank1"


def test_a_bug_answers_gen_err(bank_hub, bank_clock, monkeypatch, caplog):
    agent = make_agent(bank_hub, bank_clock)
    import plugins.snmp_agent.agent as agent_module

    def broken(*args, **kwargs):
        raise RuntimeError("boom")
    monkeypatch.setattr(agent_module, "respond", broken)
    reply = agent.handle_datagram(request(), "127.0.0.1")
    echoed = ber.tlv(ber.SEQUENCE, ber.tlv(ber.OBJECT_IDENTIFIER,
                                            ber.encode_oid_content(SYS_NAME)) + b"\x05\x00")
    assert reply == ber.encode_response(1, b"public", ber.encode_integer(99), ber.GEN_ERR, 1,
                                        echoed)
    assert agent.counters.internal_errors == 1
    assert "boom" in caplog.text


# ------------------------------------------------------------- engine identity -------


def test_engine_identity_without_state_dir_is_derived_and_boots_grow(tmp_path):
    s = SnmpAgentSettings()
    eid, boots = engine_identity(s, state_dir=None, seed="host/gw/1161", wall_time=1.8e9)
    assert eid == engine_identity(s, state_dir=None, seed="host/gw/1161", wall_time=0)[0]
    assert eid[:5] == bytes.fromhex("80007ed905") and len(eid) == 17
    assert engine_identity(s, state_dir=None, seed="other", wall_time=0)[0] != eid
    later = engine_identity(s, state_dir=None, seed="host/gw/1161", wall_time=1.8e9 + 5)[1]
    assert later == boots + 5


def test_engine_identity_is_kept_in_the_state_dir(tmp_path):
    s = SnmpAgentSettings()
    eid, boots = engine_identity(s, state_dir=tmp_path, seed="a", wall_time=0)
    assert boots == 1
    again, boots2 = engine_identity(s, state_dir=tmp_path, seed="a-new-hostname", wall_time=0)
    assert (again, boots2) == (eid, 2)  # the stored ID survives a host rename
    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert state == {"engine_id": eid.hex(), "boots": 2}
    configured = SnmpAgentSettings(engine_id="0x80007ed904676174657761792d31")
    cid, cboots = engine_identity(configured, state_dir=tmp_path, seed="a", wall_time=0)
    assert cid == bytes.fromhex("80007ed904676174657761792d31") and cboots == 1
    (tmp_path / STATE_FILE).write_text("{not json")
    assert engine_identity(s, state_dir=tmp_path, seed="a", wall_time=0)[1] == 1


def test_missing_cryptography_is_a_clear_error(bank_hub, bank_clock, monkeypatch):
    from plugins.snmp_agent import v3_engine

    monkeypatch.setattr(v3_engine, "_HAVE_CRYPTOGRAPHY", False)
    agent = make_agent(bank_hub, bank_clock,
                       v3_users=[{"name": "u", "auth_key": "a" * 8, "priv_key": "p" * 8}])
    with pytest.raises(v3_engine.CryptographyMissingError, match="cryptography"):
        v3_engine.V3Engine(agent, agent.settings, engine_id=b"\x80\x00\x7e\xd9\x05abc",
                           boots=1, engine_time=lambda: 0)


# ------------------------------------------------------------------ settings --------


def test_default_config_is_v2c_public_on_loopback():
    s = SnmpAgentSettings.model_validate(default_config())
    assert (s.listen_address, s.port) == ("127.0.0.1", 1161)
    assert s.v2c.enabled and s.v2c.community.get_secret_value() == "public"
    assert s.v3_users == [] and s.max_message_size == 1472 and not s.serve_stale


@pytest.mark.parametrize("bad", [
    {"listen_address": "localhost"},
    {"port": 70000},
    {"max_message_size": 100},
    {"v2c": {"community": ""}},
    {"v2c": {"enabled": False}},
    {"v2c": {"enabled": "no"}},
    {"v3_users": [{"name": "u", "auth_key": "short", "priv_key": "p" * 8}]},
    {"v3_users": [{"name": "u", "auth_key": "a" * 8, "priv_key": "p" * 8,
                   "auth_protocol": "md5"}]},
    {"v3_users": [{"name": "u", "auth_key": "a" * 8, "priv_key": "p" * 8}] * 2},
    {"engine_id": "xyz"},
    {"engine_id": "0x8000"},
    {"bus_numbers": {"a": 1, "b": 1}},
    {"bus_numbers": {"a": 0}},
    {"comunity": "x"},
])
def test_invalid_settings(bad):
    with pytest.raises(pydantic.ValidationError):
        SnmpAgentSettings.model_validate(bad)


def test_secrets_come_from_the_environment_and_are_redacted(tmp_path):
    from gateway.config import load_config

    pm, _ = make_plugin_manager()
    from gateway.cli import config_models

    path = tmp_path / "gw.yaml"
    path.write_text("snmp_agent:\n  v2c:\n    community: ${RO_COMMUNITY}\n"
                    "  v3_users:\n    - name: nms\n      auth_key: ${AUTH}\n"
                    "      priv_key: ${PRIV}\n")
    config = load_config(path, config_models(pm),
                         environ={"RO_COMMUNITY": "c0mm", "AUTH": "a" * 10, "PRIV": "p" * 10})
    s = config.section("snmp_agent")
    assert s.v2c.community.get_secret_value() == "c0mm"
    assert s.v3_users[0].auth_key.get_secret_value() == "a" * 10
    assert "c0mm" not in json.dumps(config.redacted()) and "a" * 10 not in repr(s)


# ------------------------------------------------------------------ plugin ----------


def test_hooks_register_config_default_and_a_north_component():
    from gateway.app import Gateway
    from gateway.cli import config_models

    pm, infos = make_plugin_manager()
    assert "snmp_agent" in infos
    models = config_models(pm)
    assert models["snmp_agent"] is SnmpAgentSettings
    defaults = [d for d in pm.hook.gateway_default_config() if d and "snmp_agent" in d]
    assert defaults == [{"snmp_agent": default_config()}]
    config = config_from_mapping({"snmp_agent": {"port": 0}}, models)
    gw = Gateway(config, pm)
    (agent,) = gw.components["north"]
    assert isinstance(agent, SnmpAgent) and agent.name == "snmp_agent"
    new = config_from_mapping({"snmp_agent": {"v2c": {"community": "rotated"}}}, models)
    gw.config = gw.context.config = new
    pm.hook.gateway_reload(context=gw.context)
    assert agent.settings.v2c.community.get_secret_value() == "rotated"
    with pytest.raises(ConfigError):
        config_from_mapping({"snmp_agent": {"v2c": {"community": 5}}}, models)


def test_the_v2c_path_never_imports_pysnmp():
    code = (
        "import sys\n"
        "from gateway.hub import Hub\n"
        "from plugins.snmp_agent.agent import SnmpAgent\n"
        "from plugins.snmp_agent.settings import SnmpAgentSettings\n"
        "a = SnmpAgent(SnmpAgentSettings(), Hub())\n"
        "a.table()\n"
        "print(sorted(m for m in sys.modules if m.startswith('pysnmp')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_the_v3_path_never_imports_pysnmp(snmp_env):
    """An agent with a v3 user answers net-snmp's authPriv GET without pysnmp or pyasn1
    (pysnmp is for informs only)."""
    code = (
        "import asyncio, sys\n"
        "from gateway.hub import Hub\n"
        "from plugins.snmp_agent.agent import SnmpAgent\n"
        "from plugins.snmp_agent.settings import SnmpAgentSettings\n"
        "async def main():\n"
        "    a = SnmpAgent(SnmpAgentSettings(port=0, v3_users=[{'name': 'nms', "
        "'auth_key': 'auth-pass-1', 'priv_key': 'priv-pass-1'}]), Hub())\n"
        "    task = asyncio.ensure_future(a.run())\n"
        "    await a.ready.wait()\n"
        "    p = await asyncio.create_subprocess_exec('snmpget', '-v3', '-l', 'authPriv', "
        "'-u', 'nms', '-a', 'SHA-256', '-A', 'auth-pass-1', '-x', 'AES', '-X', "
        "'priv-pass-1', '-Oqv', '-t', '3', f'127.0.0.1:{a.address[1]}', "
        "'.1.3.6.1.2.1.1.5.0', stdout=asyncio.subprocess.PIPE)\n"
        "    print((await p.communicate())[0].decode().strip())\n"
        "    task.cancel()\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in sys.modules if m.startswith(('pysnmp', 'pyasn1'))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=snmp_env, timeout=30)
    assert out.stdout.splitlines() == ['"bms-gateway"', "[]"]


# ------------------------------------------------------------ access lists ------------


def test_v2c_from_a_source_outside_allowed_sources_is_dropped_and_counted(bank_hub, bank_clock):
    agent = make_agent(bank_hub, bank_clock,
                       v2c={"allowed_sources": ["127.0.0.1/32", "2001:db8::/32"]})
    assert agent.handle_datagram(request(), "127.0.0.1") is not None
    assert agent.handle_datagram(request(), "2001:db8::7") is not None
    assert agent.handle_datagram(request(), "::ffff:127.0.0.1") is not None  # IPv4 on IPv6
    for source in ("127.0.0.2", "10.1.1.1", "2001:db9::1", "::ffff:127.0.0.2"):
        assert agent.handle_datagram(request(), source) is None
    # counted as snmpd counts a community not valid from the source, and on its own
    assert agent.counters.in_bad_community_names == 4
    assert agent.counters.refused_sources == 4
    figures = {f.name: f.value for f in agent.health_figures()}
    assert figures["snmp_refused_sources_total"] == 4
    assert figures["snmp_in_bad_community_names_total"] == 4
    # a wrong community is a wrong community wherever it comes from
    agent.handle_datagram(request(community=b"nope"), "127.0.0.2")
    assert (agent.counters.in_bad_community_names, agent.counters.refused_sources) == (5, 4)


def test_an_empty_allowed_sources_list_refuses_everyone(bank_hub, bank_clock):
    agent = make_agent(bank_hub, bank_clock, v2c={"allowed_sources": []})
    assert agent.handle_datagram(request(), "127.0.0.1") is None
    assert agent.counters.refused_sources == 1


def test_v3_user_from_a_source_outside_its_allowed_sources_is_dropped_and_counted(
        bank_hub, bank_clock):
    agent = make_agent(bank_hub, bank_clock, v3_users=[
        {"name": "nms", "auth_key": "a" * 8, "priv_key": "p" * 8,
         "allowed_sources": ["192.0.2.0/24"]},
        {"name": "any", "auth_key": "a" * 8, "priv_key": "p" * 8}])
    agent._v3 = _Engine()
    assert agent.handle_datagram(discovery(b"nms"), "192.0.2.9") == _Engine.REPLY
    assert agent.handle_datagram(discovery(b"nms"), "127.0.0.1") is None
    assert agent.handle_datagram(discovery(b"any"), "127.0.0.1") == _Engine.REPLY
    # engine discovery names no user: answered, it only tells the engine ID and time
    assert agent.handle_datagram(discovery(), "127.0.0.1") == _Engine.REPLY
    assert agent.counters.refused_sources == 1
    assert agent.counters.in_bad_community_names == 0


@pytest.mark.parametrize("value", [["10.0.0.1/8"], ["not-a-net"], "10.0.0.0/8"])
def test_allowed_sources_must_be_networks(value):
    with pytest.raises(pydantic.ValidationError):
        SnmpAgentSettings.model_validate({"v2c": {"allowed_sources": value}})


def test_allowed_sources_are_taken_at_sighup(bank_hub, bank_clock):
    users = [{"name": "nms", "auth_key": "a" * 8, "priv_key": "p" * 8}]
    agent = make_agent(bank_hub, bank_clock, v3_users=users)
    agent._v3 = _Engine()
    assert agent.handle_datagram(request(), "127.0.0.2") is not None
    assert agent.handle_datagram(discovery(b"nms"), "127.0.0.2") == _Engine.REPLY
    agent.apply(SnmpAgentSettings.model_validate(
        {"v2c": {"allowed_sources": ["127.0.0.1/32"]},
         "v3_users": [{**users[0], "allowed_sources": ["127.0.0.1/32"]}]}))
    assert agent.handle_datagram(request(), "127.0.0.2") is None
    assert agent.handle_datagram(discovery(b"nms"), "127.0.0.2") is None
    assert agent.handle_datagram(request(), "127.0.0.1") is not None
    assert agent.counters.refused_sources == 2
