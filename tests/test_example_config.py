"""config/example.yaml documents every key every installed plugin accepts."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pydantic

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


def test_example_documents_every_key():
    pm, infos = make_plugin_manager()
    models = {"gateway": CoreSettings, **config_models(pm)}
    text = EXAMPLE.read_text()
    written = set(re.findall(r"^\s*(?:- )?([a-z_0-9]+):", text, re.M))
    missing = sorted(f"{section}.{k}" for section, model in models.items()
                     for k in keys(model) if k.rsplit(".", 1)[-1] not in written)
    assert not missing, f"config/example.yaml does not show: {missing}"
    for section in models:
        assert re.search(rf"^{section}:", text, re.M), f"no {section}: section"
