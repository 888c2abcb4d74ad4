"""Home Assistant discovery payloads against the documented schema.

The field lists below were written from Home Assistant's documentation: the MQTT Sensor
page (home-assistant.io/integrations/sensor.mqtt, "Configuration Variables"), the MQTT
discovery section of the MQTT page (discovery topic format, device and origin
mappings) and the sensor page's device classes with their units
(home-assistant.io/integrations/sensor, "Device class"; state classes).
"""

from __future__ import annotations

import json
import re

import jinja2

from gateway.model import Identity

from plugins.mqtt.discovery import discovery_messages
from plugins.mqtt.topic_map import Layout, module_state

from .builders import module, snapshot

#: every configuration variable of an MQTT sensor (sensor.mqtt)
SENSOR_FIELDS = {
    "availability", "availability_mode", "availability_template", "availability_topic",
    "default_entity_id", "device", "device_class", "enabled_by_default", "encoding",
    "entity_category", "entity_picture", "expire_after", "force_update", "icon",
    "json_attributes_template", "json_attributes_topic", "last_reset_value_template",
    "name", "object_id", "options", "origin", "payload_available",
    "payload_not_available", "platform", "qos", "state_class", "state_topic",
    "suggested_display_precision", "unique_id", "unit_of_measurement", "value_template",
}
REQUIRED_SENSOR_FIELDS = {"state_topic"}
#: the items of the availability list
AVAILABILITY_FIELDS = {"payload_available", "payload_not_available", "topic",
                       "value_template"}
AVAILABILITY_MODES = {"all", "any", "latest"}
#: the device mapping; at least one of identifiers or connections
DEVICE_FIELDS = {"configuration_url", "connections", "hw_version", "identifiers",
                 "manufacturer", "model", "model_id", "name", "serial_number",
                 "suggested_area", "sw_version", "via_device"}
#: the origin mapping (name is required)
ORIGIN_FIELDS = {"name", "sw_version", "support_url"}
STATE_CLASSES = {"measurement", "measurement_angle", "total", "total_increasing"}
#: the device classes used here with the units the sensor page allows for them
DEVICE_CLASS_UNITS = {"battery": {"%"}, "voltage": {"V", "mV", "µV", "kV", "MV"},
                      "current": {"A", "mA"}, "temperature": {"°C", "°F", "K"}}
#: <discovery_prefix>/<component>/[<node_id>/]<object_id>/config, ids in [a-zA-Z0-9_-]
TOPIC = re.compile(r"^homeassistant/sensor/(?:[a-zA-Z0-9_-]+/)?[a-zA-Z0-9_-]+/config$")

LAYOUT = Layout("bms", "site-1")


def configs(clock, modules=None):
    mods = modules or [module(1, now=clock.now), module(2, now=clock.now)]
    msgs = discovery_messages(LAYOUT, mods, prefix="homeassistant", version="0.1.0")
    return mods, msgs


def test_every_payload_uses_only_documented_fields_with_valid_values(clock):
    _, msgs = configs(clock)
    assert msgs
    for msg in msgs:
        assert TOPIC.match(msg.topic), msg.topic
        assert msg.retain and msg.qos == 1
        c = json.loads(msg.payload)
        assert set(c) <= SENSOR_FIELDS, set(c) - SENSOR_FIELDS
        assert REQUIRED_SENSOR_FIELDS <= set(c)
        assert "availability_topic" not in c  # must not be used with availability
        for a in c["availability"]:
            assert set(a) <= AVAILABILITY_FIELDS and "topic" in a
        assert c["availability_mode"] in AVAILABILITY_MODES
        assert set(c["device"]) <= DEVICE_FIELDS
        assert c["device"]["identifiers"]
        assert set(c["origin"]) <= ORIGIN_FIELDS and c["origin"]["name"]
        assert c["state_class"] in STATE_CLASSES
        if "device_class" in c:
            assert c["unit_of_measurement"] in DEVICE_CLASS_UNITS[c["device_class"]], c
        assert isinstance(c["unique_id"], str) and c["unique_id"]


def test_one_device_per_module_from_its_identity(clock):
    _, msgs = configs(clock)
    devices = {json.dumps(json.loads(m.payload)["device"], sort_keys=True) for m in msgs}
    assert len(devices) == 2
    d = json.loads(msgs[0].payload)["device"]
    assert (d["model"], d["serial_number"], d["sw_version"], d["manufacturer"]) == (
        "US5000", "SN0001", "V1.7", "Pace")
    ids = [json.loads(m.payload)["unique_id"] for m in msgs]
    assert len(ids) == len(set(ids))
    assert len(msgs) == 2 * (9 + 16 + 4)  # scalars, cells, temperature sensors


def test_unknown_identity_fields_are_left_out(clock):
    m = module(1, now=clock.now, identity=Identity())
    _, msgs = configs(clock, [m])
    assert set(json.loads(msgs[0].payload)["device"]) == {"identifiers", "name"}


def test_sensors_are_available_only_while_gateway_and_module_are(clock):
    _, msgs = configs(clock)
    c = json.loads(msgs[0].payload)
    assert c["availability_mode"] == "all"
    assert [a["topic"] for a in c["availability"]] == ["bms/site-1/status",
                                                       "bms/site-1/bank1/1/availability"]
    assert c["state_topic"] == "bms/site-1/bank1/1/state"


def render(template: str, payload: bytes) -> str:
    """As Home Assistant does: the payload parsed as value_json, Jinja2."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    return env.from_string(template).render(value_json=json.loads(payload))


def test_value_templates_give_the_served_numbers_and_none_for_unknown(clock):
    mods, msgs = configs(clock)
    m = mods[0]
    state = json.dumps(module_state(m, snapshot(mods, clock.now), clock.now)).encode()
    by_key = {json.loads(x.payload)["unique_id"].removeprefix("site-1_bank1_1_"): x
              for x in msgs if json.loads(x.payload)["state_topic"].endswith("/1/state")}
    expect = {"voltage": "52.8", "current": "-12.34", "soc": "70.0", "soh": "98.5",
              "remaining": "70000", "cycles": "12", "cell_1": "3.3", "temp_1": "25.1",
              "temp_3": "33.0", "temp_4": "None"}  # sensor 4 reads unknown: None, never 0
    for key, want in expect.items():
        assert render(json.loads(by_key[key].payload)["value_template"], state) == want, key
    offline = json.dumps({"values": {}}).encode()  # a stale module carries no values
    assert render(json.loads(by_key["voltage"].payload)["value_template"], offline) == "None"
