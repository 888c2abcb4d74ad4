"""Configuration of the ``snmp_agent`` plugin (the ``snmp_agent:`` YAML section)."""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

import pydantic

from gateway.config import Section



def default_config() -> dict:
    """The built-in default: v2c community ``public``, read-only, on 127.0.0.1:1161."""
    return {
        "listen_address": "127.0.0.1",
        "port": 1161,
        "v2c": {"enabled": True, "community": "public"},
    }

_HEX = re.compile(r"^(0x)?([0-9a-fA-F]{2}[:.]?)+$")


class V2cSettings(Section):
    """SNMPv2c access: one read-only community."""

    enabled: bool = pydantic.Field(True, description="answer SNMPv2c requests")
    community: pydantic.SecretStr = pydantic.Field(
        pydantic.SecretStr("public"),
        description="the read-only community; write it as ${ENV_VAR} to keep it out of the file")

    @pydantic.field_validator("community")
    @classmethod
    def _community(cls, value: pydantic.SecretStr) -> pydantic.SecretStr:
        if not 1 <= len(value.get_secret_value().encode()) <= 64:
            raise ValueError("the community must be 1 to 64 octets")
        return value


class V3User(Section):
    """An SNMPv3 USM user with authentication and privacy (authPriv only)."""

    name: str = pydantic.Field(pattern=r"^[A-Za-z0-9_.@-]{1,32}$")
    auth_protocol: Literal["sha256"] = pydantic.Field(
        "sha256", description="HMAC-SHA-256 (usmHMAC192SHA256AuthProtocol, RFC 7860)")
    auth_key: pydantic.SecretStr = pydantic.Field(
        description="authentication passphrase, 8 characters or more; use ${ENV_VAR}")
    priv_protocol: Literal["aes128"] = pydantic.Field(
        "aes128", description="AES-128 in CFB mode (usmAesCfb128Protocol, RFC 3826)")
    priv_key: pydantic.SecretStr = pydantic.Field(
        description="privacy passphrase, 8 characters or more; use ${ENV_VAR}")

    @pydantic.field_validator("auth_key", "priv_key")
    @classmethod
    def _passphrase(cls, value: pydantic.SecretStr) -> pydantic.SecretStr:
        if len(value.get_secret_value()) < 8:
            raise ValueError("a USM passphrase needs at least 8 characters (RFC 3414)")
        return value


class SystemSettings(Section):
    """What the SNMPv2-MIB system group says."""

    name: str | None = pydantic.Field(
        None, max_length=255, description="sysName; default: the gateway's name")
    location: str = pydantic.Field("", max_length=255, description="sysLocation")
    contact: str = pydantic.Field("", max_length=255, description="sysContact")
    description: str | None = pydantic.Field(
        None, max_length=255, description="sysDescr; default: product and version")


class SnmpAgentSettings(Section):
    """The ``snmp_agent:`` section."""

    listen_address: str = pydantic.Field(
        "127.0.0.1", description="IPv4 address to listen on (0.0.0.0 for all)")
    port: int = pydantic.Field(1161, ge=0, le=65535,
                                      description="UDP port (161 needs privileges)")
    v2c: V2cSettings = pydantic.Field(default_factory=V2cSettings)
    v3_users: list[V3User] = pydantic.Field(default_factory=list)
    max_message_size: int = pydantic.Field(
        1472, ge=484, le=65507, description="largest response in octets; the default "
        "fits one Ethernet frame. An SNMPv3 manager's smaller msgMaxSize wins")
    system: SystemSettings = pydantic.Field(default_factory=SystemSettings)
    engine_id: str | None = pydantic.Field(
        None, description="SNMPv3 snmpEngineID in hex (5 to 32 octets); default: derived "
        "from the host and gateway names, kept in the state directory")
    serve_stale: bool = pydantic.Field(
        False, description="serve a stale module's last measurements (status stale) "
        "instead of leaving them out")
    bus_numbers: dict[str, int] = pydantic.Field(
        default_factory=dict, description="pin bmsBusIndex per bus name; unlisted buses "
        "are numbered in configuration order")

    @pydantic.field_validator("listen_address")
    @classmethod
    def _address(cls, value: str) -> str:
        try:
            return str(ipaddress.IPv4Address(value))
        except ValueError:
            raise ValueError(f"{value!r} is not an IPv4 address") from None

    @pydantic.field_validator("engine_id")
    @classmethod
    def _engine_id(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _HEX.match(value):
            raise ValueError("engine_id must be hex octets, e.g. 80007ed905a1b2c3d4e5")
        raw = bytes.fromhex(re.sub(r"^0x|[:.]", "", value))
        if not 5 <= len(raw) <= 32:
            raise ValueError("engine_id must be 5 to 32 octets (RFC 3411 SnmpEngineID)")
        return raw.hex()

    @pydantic.field_validator("bus_numbers")
    @classmethod
    def _bus_numbers(cls, value: dict[str, int]) -> dict[str, int]:
        if any(not 1 <= n <= 255 for n in value.values()):
            raise ValueError("bus numbers must be 1 to 255")
        if len(set(value.values())) != len(value):
            raise ValueError("two buses have the same number")
        return value

    @pydantic.model_validator(mode="after")
    def _check(self) -> SnmpAgentSettings:
        names = [u.name for u in self.v3_users]
        if len(set(names)) != len(names):
            raise ValueError("v3_users lists a user name twice")
        if not self.v2c.enabled and not self.v3_users:
            raise ValueError("nothing to serve: v2c is disabled and no v3_users are given")
        return self
