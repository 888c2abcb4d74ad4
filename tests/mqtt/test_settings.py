"""The ``mqtt:`` section: validation, defaults, secrets, and the plugin's registration."""

from __future__ import annotations

import pytest

from gateway.cli import config_models
from gateway.config import ConfigError, parse_yaml, validate_document
from gateway.plugins import make_plugin_manager

from plugins.mqtt.settings import MqttSettings, topic_level


def load(text: str, environ=None):
    pm, _ = make_plugin_manager()
    return validate_document(parse_yaml(text, "gw.yaml", environ=environ or {}),
                             config_models(pm))


def test_the_plugin_is_off_unless_configured_and_loads_through_its_entry_point():
    pm, infos = make_plugin_manager()
    assert infos["mqtt"].builtin
    assert not load("gateway: {name: x}\n").enabled("mqtt")
    assert load("mqtt: {}\n").enabled("mqtt")


def test_defaults():
    s = MqttSettings()
    assert (s.effective_port, s.protocol, s.tls.verify, s.topic_prefix) == (
        1883, "3.1.1", True, "bms")
    tls = MqttSettings.model_validate({"tls": {"enabled": True}})
    assert tls.effective_port == 8883


def test_protocol_5_may_be_written_as_a_number():
    assert load("mqtt: {protocol: 5}\n").section("mqtt").protocol == "5"


def test_the_password_comes_from_the_environment_and_is_redacted():
    cfg = load("mqtt:\n  username: gw\n  password: ${MQTT_PASSWORD}\n",
               environ={"MQTT_PASSWORD": "hunter22"})
    assert cfg.section("mqtt").password.get_secret_value() == "hunter22"
    assert cfg.redacted()["mqtt"]["password"] == "********"


@pytest.mark.parametrize("text, key, message", [
    ("mqtt: {site: a/b}\n", "mqtt.site", "one topic level"),
    ("mqtt: {topic_prefix: 'bms/#'}\n", "mqtt.topic_prefix", "topic levels"),
    ("mqtt: {password: x}\n", "mqtt", "needs a username"),
    ("mqtt: {tls: {cert_file: /etc/hostname}}\n", "mqtt.tls", "go together"),
    ("mqtt: {tls: {ca_file: /nonexistent.pem}}\n", "mqtt.tls.ca_file", "does not point to a file"),
    ("mqtt: {protocol: 4}\n", "mqtt.protocol", "3.1.1"),
    ("mqtt: {qeue: {}}\n", "mqtt.qeue", "did you mean 'queue'"),
])
def test_bad_settings_name_file_line_and_key(text, key, message):
    with pytest.raises(ConfigError) as err:
        load(text)
    problems = [str(p) for p in err.value.problems]
    assert any(p.startswith(f"gw.yaml:1: {key}:") and message in p for p in problems), problems


def test_topic_level_replaces_what_mqtt_reserves():
    assert topic_level("site/7+#") == "site_7__"
