"""The SunSpec view: point lists as SunSpec defines them, values from the snapshot."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import sunspec2

from gateway.model import ModuleStatus
from plugins.modbus_tcp import register_map as rm
from plugins.modbus_tcp import sunspec
from plugins.modbus_tcp.fields import decode_value

MODELS = Path(sunspec2.__file__).parent / "models" / "json"


def model_points(model_id):
    """(name, type, size) of every point of a model as pysunspec2 ships it."""
    group = json.loads((MODELS / f"model_{model_id}.json").read_text())["group"]
    assert "groups" not in group  # no repeating groups in models 1 and 802
    return [(p["name"], p["type"], p["size"]) for p in group["points"]]


@pytest.mark.parametrize("model_id,layout", [(1, sunspec.MODEL_1), (802, sunspec.MODEL_802)])
def test_point_lists_match_the_sunspec_model_definitions(model_id, layout):
    ours = [(f.name, f.type, f.length) for f in layout.fields]
    assert ours == model_points(model_id)


def test_scale_factors_point_at_real_sunspec_points():
    points = {p["name"]: p for p in json.loads(
        (MODELS / "model_802.json").read_text())["group"]["points"]}
    for name, sf in sunspec.SF_OF.items():
        assert points[name].get("sf") == sf, name
    assert {p["sf"] for p in points.values() if "sf" in p} <= set(sunspec.SF_OF.values())
    for name in sunspec.SCALE_FACTORS:
        assert points[name]["type"] == "sunssf"


def view(image):
    block = next(b for b in image.bank_unit if b.start == rm.SUNSPEC_BASE)
    return block.values


def points(image, layout, start):
    values = view(image)
    return {f.name: decode_value(f, values[start + layout.offsets[f.name]:])
            for f in layout.fields}


def model_802(image):
    return points(image, sunspec.MODEL_802, sunspec.MODEL_802_START)


def test_marker_model_headers_and_end(snapshot, clock):
    v = view(rm.make_image(snapshot, clock.now, stale_after_s=60))
    assert len(v) == sunspec.LENGTH == 136
    assert v[0:2] == (0x5375, 0x6E53)  # "SunS"
    assert v[2:4] == (1, 66)
    assert v[70:72] == (802, 62)
    assert v[134:136] == (0xFFFF, 0)


def test_common_model_identifies_the_gateway(snapshot, clock, mb):
    image = rm.make_image(snapshot, clock.now, stale_after_s=60, device=mb.DEVICE)
    c = points(image, sunspec.MODEL_1, sunspec.MODEL_1_START)
    assert (c["Mn"], c["Md"], c["Opt"], c["Vr"], c["SN"], c["DA"]) == (
        "bms-gateway", "LiFePO4 bank gateway", f"map {rm.MAP_VERSION}", "0.1.0",
        "site-7-bank-A", 1)


def test_battery_model_values_come_from_the_bank(snapshot, clock):
    p = model_802(rm.make_image(snapshot, clock.now, stale_after_s=60))
    b = snapshot.bank
    assert p["SoC"] == b.soc_permille and p["SoC_SF"] == -1
    assert p["SoH"] == b.soh_min_permille and p["SoH_SF"] == -1
    assert p["V"] == round(b.voltage_mean_mv / 10) and p["V_SF"] == -2
    assert (p["CellVMax"], p["CellVMin"], p["CellV_SF"]) == (b.cell_max_mv, b.cell_min_mv, -3)
    assert (p["CellVMaxMod"], p["CellVMinMod"]) == (b.cell_max_at.position, b.cell_min_at.position)
    live = [m for m in snapshot.modules if m.status is ModuleStatus.OK]
    cells = [c for m in live for c in m.telemetry.cell_mv]
    assert p["CellVAvg"] == round(sum(cells) / len(cells))
    assert p["AHRtg"] == 900 and p["AHRtg_SF"] == 0  # 9 live modules x 100 Ah
    assert (p["Typ"], p["LocRemCtl"]) == (sunspec.TYP_LITHIUM_ION, sunspec.LOC_REM_CTL_LOCAL)
    assert p["WHRtg"] is None and p["State"] is None and p["NCyc"] is None


def test_battery_current_and_power_are_positive_while_discharging(snapshot, clock):
    p = model_802(rm.make_image(snapshot, clock.now, stale_after_s=60))
    b = snapshot.bank
    assert b.current_ma < 0  # the bank discharges
    assert p["A"] == round(-b.current_ma / 100) > 0 and p["A_SF"] == -1
    live = [m for m in snapshot.modules if m.status is ModuleStatus.OK]
    power_w = sum(m.telemetry.voltage_mv * m.telemetry.current_ma for m in live) / 1e6
    assert p["W"] == round(-power_w / 10) > 0 and p["W_SF"] == 1
    assert p["ChaSt"] == sunspec.CHA_ST_DISCHARGING


@pytest.mark.parametrize("current_ma,state", [(5_000, sunspec.CHA_ST_CHARGING),
                                              (0, sunspec.CHA_ST_HOLDING)])
def test_charge_status_follows_the_bank_current(clock, mb, current_ma, state):
    module = mb.make_module(1, clock.now, current_ma=current_ma)
    snap = mb.make_snapshot(clock.now, modules=[module])
    p = model_802(rm.make_image(snap, clock.now, stale_after_s=60))
    assert p["ChaSt"] == state
    assert p["A"] == -round(current_ma / 100) and (p["A"] < 0) == (current_ma > 0)


def test_event_bits_from_bms_conditions(snapshot, clock):
    p = model_802(rm.make_image(snapshot, clock.now, stale_after_s=60))
    # module 3: CELL_UNDER_VOLTAGE + LOW_CAPACITY warnings, DISCHARGE_OVER_CURRENT
    # protection, TEMPERATURE_SENSOR fault; modules 5, 8, 11 not live
    assert p["Evt1"] == (1 << 0) | (1 << 7) | (1 << 12) | (1 << 14) | (1 << 25)
    assert p["Evt2"] == 0
    assert p["EvtVnd1"] == 1 << 1  # TEMPERATURE_SENSOR
    assert p["EvtVnd2"] == 0b10101  # unclassified flags; a major and a warning alarm


def test_a_healthy_bank_has_no_events(clock, mb):
    snap = mb.make_snapshot(clock.now, modules=[mb.make_module(p, clock.now) for p in (1, 2)],
                            alarms=())
    p = model_802(rm.make_image(snap, clock.now, stale_after_s=60))
    assert (p["Evt1"], p["EvtVnd1"], p["EvtVnd2"]) == (0, 0, 0)


def test_stale_bank_reads_not_implemented_but_reports_communication_error(snapshot, clock):
    p = model_802(rm.make_image(snapshot, clock.now + 120, stale_after_s=60))
    for name in ("SoC", "SoH", "V", "A", "W", "CellVMax", "CellVAvg", "AHRtg", "ChaSt"):
        assert p[name] is None, name
    assert p["Evt1"] == 1 << 0
    assert p["SoC_SF"] == -1  # scale factors stay valid


def test_power_needs_every_live_module(clock, mb):
    m = mb.make_module(2, clock.now)
    blind = dataclasses.replace(m, telemetry=dataclasses.replace(m.telemetry, voltage_mv=None))
    snap = mb.make_snapshot(clock.now, modules=[mb.make_module(1, clock.now), blind])
    p = model_802(rm.make_image(snap, clock.now, stale_after_s=60))
    assert p["W"] is None and p["A"] is not None


def test_without_a_snapshot_only_the_communication_error_is_known():
    p = model_802(rm.make_image(None, 0.0, stale_after_s=60))
    assert (p["ID"], p["L"], p["Evt1"], p["SoC"], p["EvtVnd1"]) == (802, 62, 1, None, None)
