"""The JSON documents (plugins/http/page_model.py): pure, snapshot + now -> dict."""

from __future__ import annotations

import json

from plugins.http import page_model as pm
from plugins.http.eventlog import read_recent_events

GATEWAY = pm.gateway_document("site-7", "1.2.3", 2.0)


def doc(snapshot, now):
    d = pm.make_bank_document(snapshot, now, gateway=GATEWAY)
    json.dumps(d)  # serializable as it stands
    return d


def by_position(d):
    return {m["position"]: m for m in d["modules"]}


def test_live_module_carries_every_value_in_fixed_units(snapshot, bank):
    m = by_position(doc(snapshot, bank.T0))[1]
    src = snapshot.module(1)
    t = src.telemetry
    assert (m["bus"], m["address"], m["status"], m["link"], m["age_s"]) == (
        "rack-a", 1, "ok", "online", 1.5)
    assert m["telemetry"]["voltage_mv"] == t.voltage_mv
    assert m["telemetry"]["current_ma"] == t.current_ma < 0  # discharging: negative
    assert m["telemetry"]["cell_mv"] == list(t.cell_mv)
    assert (m["telemetry"]["cell_min_mv"], m["telemetry"]["cell_max_mv"]) == (
        t.cell_min_mv, t.cell_max_mv)
    assert t.cell_mv[m["telemetry"]["cell_min_cell"] - 1] == t.cell_min_mv
    assert t.cell_mv[m["telemetry"]["cell_max_cell"] - 1] == t.cell_max_mv
    assert m["telemetry"]["temps"][2] == {"sensor": 3, "temp_dc": -15, "role": "cell"}
    assert m["telemetry"]["temps"][4]["role"] == "mosfet"
    assert (m["telemetry"]["soc_permille"], m["telemetry"]["soh_permille"]) == (610, 989)
    assert m["bms"]["balancing"][4] is True
    assert m["counters"]["frames_ok"] == 501
    assert m["identity"]["serial"] == "PK0001"


def test_faulted_module_shows_its_flags_leds_and_alarms(snapshot, bank):
    m = by_position(doc(snapshot, bank.T0))[bank.FAULTED]
    assert m["bms"]["warnings"] == ["low_capacity"]
    assert m["bms"]["protections"] == ["cell_over_voltage"]
    assert m["bms"]["faults"] == ["sampling_ic"]
    leds = m["leds"]
    assert (leds["run"], leds["alm"], leds["alm_colour"], leds["err"]) == (
        "fast_flash", "steady", "orange", "steady")
    assert leds["fault_codes"] == [6]
    assert leds["fault_texts"] == ["sampling IC communication failure"]
    assert leds["soc"] == ["steady", "steady", "steady", "off"]  # 63 %, discharging
    assert m["alarms"] == [7]


def test_stale_offline_and_never_seen_modules_keep_status_and_age_but_no_values(snapshot,
                                                                                bank):
    mods = by_position(doc(snapshot, bank.T0))
    for p, status, age in ((bank.STALE, "stale", 50.0), (bank.OFFLINE, "offline", 400.0),
                           (bank.NEVER_SEEN, "never_seen", None)):
        m = mods[p]
        assert (m["status"], m["age_s"]) == (status, age)
        assert m["telemetry"] is None and m["bms"] is None and m["leds"] is None
        assert m["counters"]["timeouts"] in (p, 30)


def test_live_data_turns_stale_at_now_even_without_a_new_snapshot(snapshot, bank):
    m = by_position(doc(snapshot, bank.T0 + 40))[1]  # stale_after_s is 30
    assert (m["status"], m["telemetry"], m["leds"]) == ("stale", None, None)
    assert m["age_s"] == 41.5


def test_bank_figures_alarms_buses_and_snapshot(snapshot, bank):
    d = doc(snapshot, bank.T0 + 0.5)
    b = snapshot.bank
    assert d["schema"] == 1 and d["gateway"] == {"name": "site-7", "version": "1.2.3",
                                                 "refresh_s": 2.0}
    assert d["snapshot"] == {"seq": 55, "age_s": 0.5, "time": "2025-10-09T08:53:20.000Z",
                             "alarm_last_seq": 9}
    assert d["bank"]["current_ma"] == b.current_ma
    assert d["bank"]["cell_min_at"] == {"position": b.cell_min_at.position,
                                        "index": b.cell_min_at.index}
    assert (d["bank"]["modules_configured"], d["bank"]["modules_online"]) == (12, 9)
    assert d["bank"]["quality"] == "live"
    assert [a["seq"] for a in d["alarms"]] == [7, 9]
    assert d["alarms"][0]["severity"] == "critical" and d["alarms"][0]["age_s"] == 20.5
    assert d["buses"][0]["last_cycle_ms"] == 1800 and d["buses"][1]["connected"] is False
    assert d["buses"][1]["last_cycle_age_s"] is None


def test_before_the_first_snapshot_everything_is_empty():
    d = pm.make_bank_document(None, 5.0, gateway=GATEWAY)
    assert (d["snapshot"], d["bank"], d["modules"], d["alarms"]) == (None, None, [], [])
    assert pm.make_module_document(None, 5.0, 1) is None
    assert pm.make_alarms_document(None, 5.0)["alarms"] == []


def test_module_and_alarm_documents(snapshot, bank):
    m = pm.make_module_document(snapshot, bank.T0, bank.FAULTED)
    assert m["schema"] == 1 and m["position"] == bank.FAULTED
    assert pm.make_module_document(snapshot, bank.T0, 40) is None
    a = pm.make_alarms_document(snapshot, bank.T0)
    assert a["alarm_last_seq"] == 9 and len(a["alarms"]) == 2


# ----------------------------------------------------------------- event log ------

def test_event_log_is_read_newest_first_across_rotation(tmp_path):
    (tmp_path / "alarms.jsonl.1").write_text(
        "".join(json.dumps({"event": "raised", "seq": n}) + "\n" for n in (1, 2)))
    (tmp_path / "alarms.jsonl").write_text(
        json.dumps({"event": "cleared", "seq": 2}) + "\n" + "{cut by a cr" + "\n"
        + json.dumps({"event": "raised", "seq": 3}) + "\n" + "[1, 2]\n")
    events = read_recent_events(tmp_path, 10)
    assert [(e["event"], e["seq"]) for e in events] == [
        ("raised", 3), ("cleared", 2), ("raised", 2), ("raised", 1)]
    assert [e["seq"] for e in read_recent_events(tmp_path, 2)] == [3, 2]


def test_no_event_log_is_no_events(tmp_path):
    assert read_recent_events(None, 10) == []
    assert read_recent_events(tmp_path, 10) == []
    assert read_recent_events(tmp_path, 0) == []
