"""Configuration of the ``mqtt`` plugin (the ``mqtt:`` YAML section, docs/mqtt.md)."""

from __future__ import annotations

import re
from typing import Literal

import pydantic

from gateway.config import Section

#: what may stand in one topic level of ours: no MQTT wildcards, no separators
_LEVEL = re.compile(r"^[^/+#\x00]+$")


class TlsSettings(Section):
    """TLS to the broker. The broker's certificate and name are verified unless told
    otherwise; a client certificate is optional."""

    enabled: bool = pydantic.Field(False, description="connect over TLS")
    ca_file: pydantic.FilePath | None = pydantic.Field(
        None, description="PEM file of the CA(s) that signed the broker's certificate; "
        "none = the system's trusted CAs")
    cert_file: pydantic.FilePath | None = pydantic.Field(
        None, description="PEM client certificate (brokers with require_certificate)")
    key_file: pydantic.FilePath | None = pydantic.Field(
        None, description="PEM private key of the client certificate")
    verify: bool = pydantic.Field(
        True, description="verify the broker's certificate and host name; false is for "
        "a lab only (anyone on the path can then read and forge the traffic)")

    @pydantic.model_validator(mode="after")
    def _check(self) -> TlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class QueueSettings(Section):
    """What waits while the broker is unreachable (docs/mqtt.md, "Nothing lost")."""

    max_events: int = pydantic.Field(
        10_000, ge=1, le=1_000_000, description="alarm events kept; when full the oldest "
        "is dropped (and counted)")
    max_states: int = pydantic.Field(
        1_000, ge=0, le=1_000_000, description="history of state messages kept (module, "
        "bank, availability, health); when full the oldest is dropped (and counted)")
    persist: bool = pydantic.Field(
        True, description="keep the queue in <gateway.state_dir>/mqtt_queue.sqlite3 so a "
        "restart or crash loses nothing (needs gateway.state_dir)")


class HomeAssistantSettings(Section):
    """Home Assistant MQTT discovery: one device per module."""

    enabled: bool = pydantic.Field(True, description="publish retained discovery configs")
    discovery_prefix: str = pydantic.Field(
        "homeassistant", description="Home Assistant's discovery prefix")

    @pydantic.field_validator("discovery_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not all(_LEVEL.match(p) for p in value.split("/")):
            raise ValueError("must be topic levels without '+', '#' or empty levels")
        return value


class MqttSettings(Section):
    host: str = pydantic.Field("127.0.0.1", min_length=1, description="broker host name "
                               "or address")
    port: int | None = pydantic.Field(None, ge=1, le=65535,
                                      description="default 1883, or 8883 with TLS")
    protocol: Literal["3.1.1", "5"] = pydantic.Field("3.1.1", description="MQTT version")
    client_id: str | None = pydantic.Field(
        None, min_length=1, max_length=64, description="default: bms-gateway-<site>")
    username: str | None = pydantic.Field(None, min_length=1)
    password: pydantic.SecretStr | None = pydantic.Field(
        None, description="write it as ${ENV_VAR} to keep it out of the file")
    tls: TlsSettings = pydantic.Field(default_factory=TlsSettings)
    keepalive_s: int = pydantic.Field(30, ge=5, le=3600)
    topic_prefix: str = pydantic.Field("bms", description="first topic level(s)")
    site: str | None = pydantic.Field(
        None, min_length=1, max_length=64, description="site id in every topic; default: "
        "gateway.name")
    min_interval_s: float = pydantic.Field(
        0, ge=0, le=86_400, description="at most one state message per module (and bank) "
        "this often; a status change is sent at once")
    unchanged_interval_s: float = pydantic.Field(
        60, ge=0, le=86_400, description="a poll whose values equal the last sent ones is "
        "sent only after this long; 0 = every poll")
    health_interval_s: float = pydantic.Field(30, ge=1, le=86_400)
    state_qos: Literal[0, 1] = pydantic.Field(
        0, description="QoS of state messages; events and availability are always QoS 1")
    publish_timeout_s: float = pydantic.Field(
        10, gt=0, le=300, description="a publish not acknowledged this long means the "
        "connection is lost")
    reconnect_min_s: float = pydantic.Field(1, gt=0, le=600)
    reconnect_max_s: float = pydantic.Field(60, gt=0, le=3600)
    queue: QueueSettings = pydantic.Field(default_factory=QueueSettings)
    home_assistant: HomeAssistantSettings = pydantic.Field(
        default_factory=HomeAssistantSettings)

    @pydantic.field_validator("protocol", mode="before")
    @classmethod
    def _protocol(cls, value: object) -> object:
        # YAML reads `protocol: 5` as an int and `3.1.1` as a string
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @pydantic.field_validator("topic_prefix")
    @classmethod
    def _topic_prefix(cls, value: str) -> str:
        if not all(_LEVEL.match(p) for p in value.split("/")):
            raise ValueError("must be topic levels without '+', '#' or empty levels")
        return value

    @pydantic.field_validator("site")
    @classmethod
    def _site(cls, value: str | None) -> str | None:
        if value is not None and not _LEVEL.match(value):
            raise ValueError("one topic level: no '/', '+' or '#'")
        return value

    @pydantic.model_validator(mode="after")
    def _check(self) -> MqttSettings:
        if self.password is not None and self.username is None:
            raise ValueError("a password needs a username")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must not be below reconnect_min_s")
        return self

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return 8883 if self.tls.enabled else 1883


def topic_level(name: str) -> str:
    """``name`` (the gateway's name as site id, a bus name) as one topic level:
    characters MQTT reserves ('/', '+', '#') become '_'."""
    return re.sub(r"[/+#\x00]", "_", name) or "_"
