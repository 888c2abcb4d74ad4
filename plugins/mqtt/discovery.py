"""Home Assistant MQTT discovery, pure: a snapshot as retained sensor configs.

One device per module (identifiers, model, serial number and firmware from the module's
identity), one ``sensor`` per value, each reading its number out of the module's JSON
state message with a ``value_template``. Every sensor is available only while both the
gateway (``<prefix>/<site>/status``) and its module (``.../availability``) say
``online`` (``availability_mode: all``), so Home Assistant shows a stale or offline
module as unavailable instead of its old values.

Topic: ``<discovery_prefix>/sensor/<node_id>/<object_id>/config`` with characters
limited to ``[a-zA-Z0-9_-]`` as Home Assistant requires.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.model import ModuleReading, TempRole

from plugins.mqtt.topic_map import OFFLINE, ONLINE, Layout, Message, encode

ORIGIN = "bms-gateway"


def object_id(text: str) -> str:
    """``text`` in Home Assistant's discovery id alphabet ``[a-zA-Z0-9_-]``."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", text)


@dataclass(frozen=True, slots=True)
class SensorSpec:
    key: str  #: object id suffix and part of the name
    name: str
    template: str
    device_class: str | None
    unit: str | None
    state_class: str
    precision: int | None = None


def _value(key: str, index: int | None = None, scale: int = 1) -> str:
    """A template reading ``values.<key>.value`` (an item of it), scaled, and rendering
    ``None`` (Home Assistant: unknown) when the value is unknown, never 0."""
    ref = f"value_json['values']['{key}']['value']"
    if index is not None:
        ref += f"[{index}]"
    expr = "v" if scale == 1 else f"v / {scale}"
    return (f"{{% set v = {ref} if '{key}' in value_json['values'] else none %}}"
            f"{{{{ none if v is none else {expr} }}}}")


def module_sensors(m: ModuleReading) -> list[SensorSpec]:
    """The sensors of one module: scalars, then one per cell and per temperature
    sensor the module reports."""
    specs = [
        SensorSpec("voltage", "Voltage", _value("voltage_mv", scale=1000), "voltage", "V",
                   "measurement", 3),
        SensorSpec("current", "Current", _value("current_ma", scale=1000), "current", "A",
                   "measurement", 3),
        SensorSpec("soc", "State of charge", _value("soc_permille", scale=10), "battery", "%",
                   "measurement", 1),
        SensorSpec("soh", "State of health", _value("soh_permille", scale=10), None, "%",
                   "measurement", 1),
        SensorSpec("remaining", "Remaining capacity", _value("remaining_mah"), None, "mAh",
                   "measurement"),
        SensorSpec("full", "Full capacity", _value("full_mah"), None, "mAh", "measurement"),
        SensorSpec("cycles", "Cycles", _value("cycles"), None, None, "total_increasing"),
        SensorSpec("cell_min", "Lowest cell", _value("cell_min_mv", scale=1000), "voltage",
                   "V", "measurement", 3),
        SensorSpec("cell_max", "Highest cell", _value("cell_max_mv", scale=1000), "voltage",
                   "V", "measurement", 3),
    ]
    t = m.telemetry
    if t is not None:
        specs += [SensorSpec(f"cell_{i}", f"Cell {i}", _value("cell_mv", i - 1, 1000),
                             "voltage", "V", "measurement", 3)
                  for i in range(1, len(t.cell_mv) + 1)]
        roles = list(t.temp_roles) + [TempRole.OTHER] * (len(t.temp_dc) - len(t.temp_roles))
        specs += [SensorSpec(f"temp_{i}", f"Temperature {i} ({role.name.lower()})",
                             _value("temp_dc", i - 1, 10), "temperature", "°C",
                             "measurement", 1)
                  for i, role in enumerate(roles, start=1)]
    return specs


def device_info(layout: Layout, m: ModuleReading) -> dict[str, object]:
    ident = m.identity
    device: dict[str, object] = {
        "identifiers": [object_id(f"bms_{layout.site}_{m.bus}_{m.address}")],
        "name": f"{layout.site} {m.bus} module {m.address}",
        "manufacturer": (ident.manufacturer if ident and ident.manufacturer else None),
        "model": ident.model if ident else None,
        "serial_number": (ident.serial or ident.pack_serial) if ident else None,
        "sw_version": ident.firmware if ident else None,
    }
    return {k: v for k, v in device.items() if v is not None}


def discovery_key(m: ModuleReading) -> tuple[object, ...]:
    """What a module's discovery configs depend on: when it changes, they change."""
    t = m.telemetry
    return (m.identity, None if t is None else (len(t.cell_mv), t.temp_roles, len(t.temp_dc)))


def discovery_messages(layout: Layout, modules: Iterable[ModuleReading], *, prefix: str,
                       version: str) -> list[Message]:
    """Every retained discovery config for ``modules``."""
    node = object_id(f"{layout.prefix}_{layout.site}")
    out: list[Message] = []
    for m in modules:
        device = device_info(layout, m)
        base = object_id(f"{m.bus}_{m.address}")
        for spec in module_sensors(m):
            uid = object_id(f"{layout.site}_{m.bus}_{m.address}_{spec.key}")
            config: dict[str, object] = {
                "name": spec.name,
                "unique_id": uid,
                "state_topic": layout.module_state(m),
                "value_template": spec.template,
                "state_class": spec.state_class,
                "availability": [
                    {"topic": layout.status, "payload_available": ONLINE,
                     "payload_not_available": OFFLINE},
                    {"topic": layout.module_availability(m), "payload_available": ONLINE,
                     "payload_not_available": OFFLINE}],
                "availability_mode": "all",
                "device": device,
                "origin": {"name": ORIGIN, "sw_version": version},
            }
            if spec.device_class is not None:
                config["device_class"] = spec.device_class
            if spec.unit is not None:
                config["unit_of_measurement"] = spec.unit
            if spec.precision is not None:
                config["suggested_display_precision"] = spec.precision
            out.append(Message(topic=f"{prefix}/sensor/{node}/{base}_{spec.key}/config",
                               payload=encode(config), qos=1, retain=True))
    return out
