"""The plugin's glue: its settings, its place ahead of the alarm processor, SIGHUP."""

from __future__ import annotations

import pytest
import yaml

from gateway.app import Gateway
from gateway.cli import config_models, read_config
from gateway.config import ConfigError, config_from_mapping, load_config
from gateway.plugins import make_plugin_manager
from plugins.alarms.processor import AlarmProcessor
from plugins.charge_limits.processor import ChargeLimitsProcessor
from plugins.charge_limits.settings import ChargeLimitsSettings

from .builders import NOW, healthy


def test_defaults_are_the_manuals_table():
    s = ChargeLimitsSettings()
    assert (s.float_v, s.equalise_v, s.eod_v, s.cutoff_v) == (53.25, 54.75, 40.5, 40.3)
    assert (s.charge_c_rate, s.charge_c_rate_max, s.module_capacity_ah) == (0.2, 1.0, 100)


@pytest.mark.parametrize("section,words", [
    ({"charge_c_rate": 1.5}, "must not exceed charge_c_rate_max"),
    ({"float_v": 55.0}, "cutoff_v <= eod_v < float_v <= equalise_v"),
    ({"charge_cell_taper": {"full_v": 3.6, "zero_v": 3.5}}, "zero_v (3.5) must be above"),
    ({"discharge_cold_taper": {"full_degc": -10, "zero_degc": 0}}, "must be below"),
    ({"charge_cold_taper": {"full_degc": 10}}, "zero_degc"),
])
def test_bad_settings_are_refused_with_a_clear_error(tmp_path, section, words):
    pm, _ = make_plugin_manager()
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump({"charge_limits": section}))
    with pytest.raises(ConfigError) as exc:
        load_config(path, config_models(pm))
    text = str(exc.value)
    assert words in text and str(path) in text and "charge_limits" in text


def test_unknown_key_names_file_line_and_key(tmp_path):
    pm, _ = make_plugin_manager()
    path = tmp_path / "gw.yaml"
    path.write_text("charge_limits:\n  float_v: 53.5\n  rectifier_charge: 240\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path, config_models(pm))
    assert f"{path}:3: charge_limits.rectifier_charge" in str(exc.value)


def test_the_default_gateway_computes_limits_before_the_alarms_run():
    pm, _ = make_plugin_manager()
    gw = Gateway(read_config(pm, None), pm)
    kinds = [type(p) for p in gw.hub._processors]
    assert kinds.index(ChargeLimitsProcessor) < kinds.index(AlarmProcessor)


def test_processor_fills_the_snapshot_and_takes_new_settings():
    p = ChargeLimitsProcessor(ChargeLimitsSettings())
    snap, events = p.process(healthy(4), NOW)
    assert events == () and snap.charge_limits.ccl.value == 80_000
    p.apply(ChargeLimitsSettings(charge_c_rate=0.5))
    assert p.process(healthy(4), NOW)[0].charge_limits.ccl.value == 200_000


def test_a_config_without_the_section_leaves_the_limits_out():
    pm, _ = make_plugin_manager()
    cfg = config_from_mapping({"alarms": {}}, config_models(pm))
    gw = Gateway(cfg, pm)
    assert not any(isinstance(p, ChargeLimitsProcessor) for p in gw.hub._processors)
