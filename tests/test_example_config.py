"""config/example.yaml documents every key every installed plugin accepts."""

from __future__ import annotations

import typing
from pathlib import Path

import pydantic
import yaml

from gateway.cli import config_models
from gateway.config import CoreSettings, _unwrap
from gateway.plugins import make_plugin_manager

EXAMPLE = Path(__file__).resolve().parents[1] / "config/example.yaml"


def keys(model: type[pydantic.BaseModel], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        out.add(path)
        for kind in _unwrap(field.annotation):
            args = typing.get_args(kind) or (kind,)
            for inner in args:
                if isinstance(inner, type) and issubclass(inner, pydantic.BaseModel):
                    out |= keys(inner, path + ".")
    return out


def shown(data: object, prefix: str = "") -> set[str]:
    """Every key path the YAML document writes (list items share their list's path)."""
    out: set[str] = set()
    if isinstance(data, dict):
        for k, v in data.items():
            path = f"{prefix}{k}"
            out.add(path)
            out |= shown(v, path + ".")
    elif isinstance(data, list):
        for item in data:
            out |= shown(item, prefix)
    return out


def test_example_documents_every_key():
    pm, infos = make_plugin_manager()
    models = {"gateway": CoreSettings, **config_models(pm)}
    written = shown(yaml.safe_load(EXAMPLE.read_text()))
    missing = sorted(f"{section}.{k}" for section, model in models.items()
                     for k in keys(model) if f"{section}.{k}" not in written)
    assert not missing, f"config/example.yaml does not show: {missing}"
    assert set(models) <= written, f"sections missing: {set(models) - written}"


def test_the_example_alarms_section_shows_the_defaults():
    from plugins.alarms.settings import AlarmsSettings

    section = yaml.safe_load(EXAMPLE.read_text())["alarms"]
    assert AlarmsSettings.model_validate(section) == AlarmsSettings()
