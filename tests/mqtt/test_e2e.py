"""End to end against a real Mosquitto: real ``bms-gateway run`` subprocesses polling
their in-process simulator, a paho subscriber, net-snmp's ``snmpget``."""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest

from plugins.snmp_agent import oid_map as om

from .conftest import free_port, make_pki, wait_for

pytestmark = pytest.mark.e2e

SITE = "site-7"
PREFIX = "bms"
BASE = f"{PREFIX}/{SITE}"


def config(broker_port: int, *, tmp_path, packs: int = 3, poll_s: float = 0.2,
           stale_s: float = 5, scenario=None, mqtt=None, snmp_port=None, alarms=None):
    sim: dict = {"packs": packs, "turnaround_ms": 0}
    if scenario is not None:
        path = tmp_path / "scenario.yaml"
        path.write_text(json.dumps({"steps": scenario}))
        sim["scenario"] = str(path)
    cfg: dict = {
        "gateway": {"name": SITE, "state_dir": str(tmp_path / "state"), "watchdog": False},
        "rs485_bms": {"stale_after_s": stale_s, "buses": [{
            "name": "sim", "baud": 115200, "poll_interval_s": poll_s, "simulate": sim}]},
        "mqtt": {"host": "127.0.0.1", "port": broker_port, "reconnect_min_s": 0.2,
                 "reconnect_max_s": 1, "unchanged_interval_s": 0, "health_interval_s": 1,
                 **(mqtt or {})},
    }
    if snmp_port is not None:
        cfg["snmp_agent"] = {"listen_address": "127.0.0.1", "port": snmp_port,
                             "v2c": {"community": "public"}}
    if alarms is not None:
        cfg["alarms"] = alarms
    return cfg


def snmp_get(port: int, oids: list[tuple[int, ...]]) -> dict[tuple[int, ...], int]:
    names = ["." + ".".join(map(str, o)) for o in oids]
    out = subprocess.run(["snmpget", "-v2c", "-c", "public", "-On", "-Oqe", "-t", "2",
                          "-r", "3", f"127.0.0.1:{port}", *names],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    values = {}
    for line in out.stdout.splitlines():
        oid, value = line.split(" ", 1)
        values[tuple(int(x) for x in oid.strip(".").split("."))] = int(value)
    return values


def test_values_on_the_broker_equal_what_snmp_serves(broker, collectors, gateways, tmp_path,
                                                      require_tool):
    require_tool("snmpget")
    sub = collectors(broker.port)
    snmp_port = free_port()
    # one poll only (an hour apart): SNMP and MQTT serve the same snapshot's values
    gw = gateways(config(broker.port, tmp_path=tmp_path, poll_s=3600, stale_s=3600,
                         snmp_port=snmp_port))
    def polled(adr: int) -> bool:
        last = sub.last(f"{BASE}/sim/{adr}/state")
        return last is not None and last.json()["status"] == "ok"
    for adr in (1, 2, 3):
        wait_for(lambda: polled(adr), 30, f"live state of module {adr}")
    assert sub.last(f"{BASE}/status").payload == b"online"
    late = collectors(broker.port, client_id="late")  # sees what the broker retained
    for adr in (1, 2, 3):
        wait_for(lambda: late.last(f"{BASE}/sim/{adr}/state"), 10, "retained state")
        state = late.last(f"{BASE}/sim/{adr}/state")
        assert state.retain and state.payload == sub.last(f"{BASE}/sim/{adr}/state").payload
        doc = state.json()
        assert doc["status"] == "ok" and doc["age_s"] is not None
        v = {k: x["value"] for k, x in doc["values"].items()}
        assert all(x["quality"] == "ok" for x in doc["values"].values())
        assert all(x["age_s"] == doc["age_s"] for x in doc["values"].values())
        idx = (1, adr)
        scalars = {om.MOD_VOLTAGE: "voltage_mv", om.MOD_CURRENT: "current_ma",
                   om.MOD_SOC: "soc_permille", om.MOD_REMAINING: "remaining_mah",
                   om.MOD_FULL: "full_mah", om.MOD_CYCLES: "cycles"}
        want = {obj.oid + idx: v[key] for obj, key in scalars.items()}
        want.update({om.CELL_VOLTAGE.oid + idx + (i,): mv
                     for i, mv in enumerate(v["cell_mv"], start=1)})
        want.update({om.TEMP_VALUE.oid + idx + (i,): dc
                     for i, dc in enumerate(v["temp_dc"], start=1)})
        assert len(v["cell_mv"]) >= 8 and v["temp_dc"]
        assert snmp_get(snmp_port, list(want)) == want, f"module {adr}"
        assert sub.last(f"{BASE}/sim/{adr}/availability").payload == b"online"
    assert gw.alive()


FAST_CELL_RULE = {"cell_voltage_high": {"raise_delay_s": 0.5, "clear_delay_s": 0.5}}


def high_cell(pack: int, cell: int, start: float, end: float) -> dict:
    return {"at_s": start, "until_s": end, "packs": [pack], "fault": "cell_ramp",
            "cell": cell, "from_mv": 3700, "to_mv": 3700}


#: raised 2, cleared 2, raised 3, raised 1, cleared 3, cleared 1 (times after start)
OUTAGE_SCENARIO = [high_cell(2, 7, 8, 11), high_cell(3, 2, 12, 14), high_cell(1, 5, 13, 16)]


def logged_events(tmp_path) -> list[dict]:
    path = tmp_path / "state" / "alarms.jsonl"
    if not path.exists():
        return []
    return [r for r in map(json.loads, path.read_text().splitlines())
            if r["event"] in ("raised", "cleared")]


def event_key(r: dict) -> tuple:
    return (r["event"], r["seq"], r["kind"], r["module"], r["sub_index"], r["time"])


def wait_live(sub, packs=(1, 2, 3), timeout: float = 30) -> None:
    def live() -> bool:
        return all((m := sub.last(f"{BASE}/sim/{a}/state")) is not None
                   and m.json()["status"] == "ok" for a in packs)
    wait_for(live, timeout, "every module live on the broker")


def test_a_broker_outage_loses_no_alarm_event_and_keeps_their_order(
        broker, collectors, gateways, tmp_path):
    sub = collectors(broker.port)
    gw = gateways(config(broker.port, tmp_path=tmp_path, scenario=OUTAGE_SCENARIO,
                         alarms=FAST_CELL_RULE))
    wait_live(sub)
    assert not logged_events(tmp_path), "too slow a start: the first alarm came too early"
    broker.stop()
    # the six raise/clear events happen while the broker is away (many poll cycles)
    wait_for(lambda: len(logged_events(tmp_path)) >= 6, 40, "six alarm events in the log")
    time.sleep(1)  # and a few more poll cycles with nothing to say
    assert gw.alive()
    broker.start()
    logged = logged_events(tmp_path)
    assert [(r["event"], r["module"]) for r in logged] == [
        ("raised", 2), ("cleared", 2), ("raised", 3), ("raised", 1), ("cleared", 3),
        ("cleared", 1)]
    wait_for(lambda: len(sub.received(f"{BASE}/alarms/event")) >= 6, 30,
             "the queued events on the broker")
    got = [m.json() for m in sub.received(f"{BASE}/alarms/event")]
    assert [event_key(r) for r in got] == [event_key(r) for r in logged]  # original times
    assert all(m.qos == 1 for m in sub.received(f"{BASE}/alarms/event"))
    # the gateway counts what it did: one reconnect, nothing dropped, nothing left
    def settled():
        h = sub.last(f"{BASE}/health")
        if h is None:
            return None
        figs = {(f["name"], f.get("labels", {}).get("kind")): f["value"]
                for f in h.json()["figures"]["mqtt"]}
        return figs if figs[("mqtt_published_total", "event")] >= 6 else None
    figs = wait_for(settled, 10, "a health message made after the queue drained")
    assert figs[("mqtt_dropped_total", "event")] == 0
    assert figs[("mqtt_published_total", "event")] == 6
    assert figs[("mqtt_reconnects_total", None)] == 1
    assert "mqtt: broker 127.0.0.1" in gw.log()


def test_a_gateway_killed_while_the_broker_is_down_delivers_its_queue_after_restart(
        broker, collectors, gateways, tmp_path):
    import sqlite3

    sub = collectors(broker.port)
    cfg = config(broker.port, tmp_path=tmp_path, scenario=[high_cell(2, 7, 6, 9)],
                 alarms=FAST_CELL_RULE)
    gw = gateways(cfg)
    wait_live(sub)
    broker.stop()
    wait_for(lambda: len(logged_events(tmp_path)) >= 2, 40, "raise and clear in the log")
    gw.kill()  # SIGKILL: no goodbye, no flush
    logged = logged_events(tmp_path)[:2]
    db = sqlite3.connect(tmp_path / "state" / "mqtt_queue.sqlite3")
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        queued = [json.loads(p) for (p,) in db.execute(
            "SELECT payload FROM outbox WHERE kind = 'event' ORDER BY id")]
    finally:
        db.close()
    assert [event_key(r) for r in queued] == [event_key(r) for r in logged]
    broker.start()
    gateways(cfg, name="restarted")
    wait_for(lambda: len(sub.received(f"{BASE}/alarms/event")) >= 2, 30,
             "the persisted events on the broker")
    got = [m.json() for m in sub.received(f"{BASE}/alarms/event")][:2]
    assert [event_key(r) for r in got] == [event_key(r) for r in logged]
    statuses = [m.payload for m in sub.received(f"{BASE}/status")]
    assert statuses[0] == b"online" and b"online" in statuses[1:]


def test_a_killed_gateway_is_announced_offline_by_its_last_will(broker, collectors,
                                                                  gateways, tmp_path):
    sub = collectors(broker.port)
    gw = gateways(config(broker.port, tmp_path=tmp_path, mqtt={"keepalive_s": 5}))
    wait_live(sub)
    gw.kill()  # no goodbye: the broker publishes the will
    wait_for(lambda: sub.last(f"{BASE}/status").payload == b"offline", 15, "the last will")
    late = collectors(broker.port, client_id="late")
    wait_for(lambda: late.last(f"{BASE}/status"), 10, "the retained status")
    assert late.last(f"{BASE}/status").payload == b"offline"


def warnings_about(log: str, needle: str) -> list[str]:
    return [line for line in log.splitlines() if "mqtt: broker" in line and needle in line]


def test_bad_credentials_give_one_clear_log_line_and_retries(broker_factory, gateways,
                                                             tmp_path):
    b = broker_factory(users={"gw": "right-password"})
    gw = gateways(config(b.port, tmp_path=tmp_path,
                         mqtt={"username": "gw", "password": "wrong-password"}))
    wait_for(lambda: b.log.read_text().count("not authorised") >= 3, 30,
             "three refused attempts at the broker")
    assert gw.alive()
    lines = warnings_about(gw.log(), "")
    assert len(lines) == 1, lines
    assert re.search(r"bad username or password|not authori[sz]ed", lines[0], re.I), lines
    assert "wrong-password" not in gw.log()


def test_a_bad_certificate_gives_one_clear_log_line_and_retries(broker_factory, gateways,
                                                                tmp_path):
    served = make_pki(tmp_path / "pki", "broker")  # the broker's certificate ...
    trusted = make_pki(tmp_path / "pki", "other")  # ... is not signed by this CA
    b = broker_factory(pki=served)
    gw = gateways(config(b.port, tmp_path=tmp_path,
                         mqtt={"tls": {"enabled": True, "ca_file": str(trusted.ca)}}))
    wait_for(lambda: b.log.read_text().count("OpenSSL Error") >= 3
             or b.log.read_text().count("Client connection from") >= 3, 30,
             "three refused TLS handshakes")
    assert gw.alive()
    lines = warnings_about(gw.log(), "")
    assert len(lines) == 1, lines
    assert "certificate" in lines[0] and "CERTIFICATE_VERIFY_FAILED" in lines[0], lines


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_tls_with_client_certificate_and_password(broker_factory, collectors, gateways,
                                                  tmp_path, protocol):
    pki = make_pki(tmp_path / "pki")
    b = broker_factory(pki=pki, users={"gw": "s3cret", "reader": "r3ad"},
                       require_certificate=True)
    sub = collectors(b.port, username="reader", password="r3ad", ca=pki.ca,
                     certfile=str(pki.client_cert), keyfile=str(pki.client_key))
    env_cfg = config(b.port, tmp_path=tmp_path, mqtt={
        "protocol": protocol, "username": "gw", "password": "${MQTT_TEST_PASSWORD}",
        "tls": {"enabled": True, "ca_file": str(pki.ca), "cert_file": str(pki.client_cert),
                "key_file": str(pki.client_key)}})
    gw = gateways(env_cfg, env={"MQTT_TEST_PASSWORD": "s3cret"})
    wait_live(sub)
    assert sub.last(f"{BASE}/status").payload == b"online"
    assert f"(MQTT {protocol})" in gw.log()
