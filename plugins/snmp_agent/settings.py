"""Configuration of the ``snmp_agent`` plugin (the ``snmp_agent:`` YAML section)."""

from __future__ import annotations

import ipaddress
import re
import typing
from typing import Literal

import pydantic

from gateway.config import Section

AuthProtocol = Literal["sha1", "sha224", "sha256", "sha384", "sha512"]
"""USM authentication: HMAC-SHA-1-96 (usmHMACSHAAuthProtocol, RFC 3414) or HMAC-SHA-2
(usmHMAC128SHA224AuthProtocol ... usmHMAC384SHA512AuthProtocol, RFC 7860)."""
PrivProtocol = Literal["aes128", "aes192", "aes256", "aes192c", "aes256c"]
"""USM privacy: AES-128-CFB (usmAesCfb128Protocol, RFC 3826); AES-192/256-CFB with the
key extension of draft-blumenthal-aes-usm-04 (``aes192``/``aes256``: net-snmp's
``-x AES-192``/``AES-256``), or with the draft-reeder-snmpv3-usm-3desede extension
(``aes192c``/``aes256c``: the "C" (Cisco) variants, net-snmp's and gosnmp's
``AES192C``/``AES256C``). The two extensions give different keys only when the hash is
shorter than the AES key (sha1 with both, sha224 with aes256)."""
DEFAULT_AUTH: AuthProtocol = "sha256"
DEFAULT_PRIV: PrivProtocol = "aes128"

_REFUSED = {
    "md5": "md5 (usmHMACMD5AuthProtocol) is refused: MD5 is broken (practical collisions "
           "since 2004) and RFC 6151 advises against HMAC-MD5 in new protocols; use sha256 "
           "(or sha1 where the NMS can do no better)",
    "des": "des (usmDESPrivProtocol) is refused: 56-bit DES keys fall to exhaustive search "
           "and NIST withdrew DES in 2005 (FIPS 46-3); use aes128",
    "3des": "3des (usm3DESEDEPrivProtocol) is refused: NIST disallows 3DES encryption "
            "after 2023 (SP 800-131A Rev. 2); use aes128",
}
_REFUSED_NAMES = {"md5": "md5", "hmacmd5": "md5", "des": "des", "cbcdes": "des",
                  "des56": "des", "3des": "3des", "tripledes": "3des", "3desede": "3des"}
_ALIASES = {"sha": "sha1", "aes": "aes128"}  #: net-snmp's names (SHA, AES)
_NAMES = frozenset(typing.get_args(AuthProtocol) + typing.get_args(PrivProtocol))


def parse_protocol(value: object) -> object:
    """A protocol name as net-snmp spells it too (``SHA-256``, ``AES``, ``AES-256``);
    MD5 and DES are refused by name, saying why, before the list of choices applies."""
    if not isinstance(value, str):
        return value
    key = value.strip().lower().replace("-", "").replace("_", "")
    if key in _REFUSED_NAMES:
        raise ValueError(_REFUSED[_REFUSED_NAMES[key]])
    key = _ALIASES.get(key, key)
    return key if key in _NAMES else value


def default_config() -> dict:
    """The built-in default: v2c community ``public``, read-only, on 127.0.0.1:1161."""
    return {
        "listen_address": "127.0.0.1",
        "port": 1161,
        "v2c": {"enabled": True, "community": "public"},
    }

_ALLOWED_SOURCES = ("manager networks allowed to use it (IPv4 or IPv6 CIDR, e.g. 10.20.0.0/16 "
                    "or 2001:db8::/32); requests from elsewhere are dropped unanswered and "
                    "counted; omitted: every source")

_HEX = re.compile(r"^(0x)?([0-9a-fA-F]{2}[:.]?)+$")


class V2cSettings(Section):
    """SNMPv2c access: one read-only community."""

    enabled: bool = pydantic.Field(True, description="answer SNMPv2c requests")
    community: pydantic.SecretStr = pydantic.Field(
        pydantic.SecretStr("public"),
        description="the read-only community; write it as ${ENV_VAR} to keep it out of the file")
    allowed_sources: list[pydantic.IPvAnyNetwork] | None = pydantic.Field(
        None, description=_ALLOWED_SOURCES)

    @pydantic.field_validator("community")
    @classmethod
    def _community(cls, value: pydantic.SecretStr) -> pydantic.SecretStr:
        if not 1 <= len(value.get_secret_value().encode()) <= 64:
            raise ValueError("the community must be 1 to 64 octets")
        return value


class V3User(Section):
    """An SNMPv3 USM user with authentication and privacy (authPriv only)."""

    name: str = pydantic.Field(pattern=r"^[A-Za-z0-9_.@-]{1,32}$")
    auth_protocol: AuthProtocol = pydantic.Field(
        DEFAULT_AUTH, description="sha1, sha224, sha256, sha384 or sha512 (HMAC-SHA, RFC "
        "3414 / RFC 7860); md5 is refused")
    auth_key: pydantic.SecretStr = pydantic.Field(
        description="authentication passphrase, 8 characters or more; use ${ENV_VAR}")
    priv_protocol: PrivProtocol = pydantic.Field(
        DEFAULT_PRIV, description="aes128 (RFC 3826), aes192 or aes256 (Blumenthal key "
        "extension, net-snmp's AES-192/AES-256), aes192c or aes256c (Reeder key extension, "
        "the Cisco variants); des is refused")
    priv_key: pydantic.SecretStr = pydantic.Field(
        description="privacy passphrase, 8 characters or more; use ${ENV_VAR}")
    allowed_sources: list[pydantic.IPvAnyNetwork] | None = pydantic.Field(
        None, description=_ALLOWED_SOURCES)

    @pydantic.field_validator("auth_protocol", "priv_protocol", mode="before")
    @classmethod
    def _protocol(cls, value: object) -> object:
        return parse_protocol(value)

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


class Receiver(Section):
    """A trap receiver (NMS): SNMPv2c traps, or SNMPv3 informs (authPriv, acknowledged
    and retried). SNMPv3 traps are not offered: the receiver would have to be configured
    with the gateway's engine ID, and an unacknowledged trap may be lost unnoticed."""

    host: str = pydantic.Field(description="IPv4 address of the receiver")
    port: int = pydantic.Field(162, ge=1, le=65535)
    version: Literal["v2c", "v3"] = pydantic.Field(
        description="v2c: SNMPv2-Trap; v3: InformRequest, authPriv")
    community: pydantic.SecretStr | None = pydantic.Field(
        None, description="v2c: the community the traps carry; use ${ENV_VAR}")
    user: str | None = pydantic.Field(None, pattern=r"^[A-Za-z0-9_.@-]{1,32}$",
                                      description="v3: the USM user the receiver knows")
    auth_protocol: AuthProtocol = pydantic.Field(
        DEFAULT_AUTH, description="v3: as for v3_users (sha1 ... sha512); md5 is refused")
    auth_key: pydantic.SecretStr | None = pydantic.Field(
        None, description="v3: authentication passphrase, 8 characters or more")
    priv_protocol: PrivProtocol = pydantic.Field(
        DEFAULT_PRIV, description="v3: as for v3_users (aes128 ... aes256c); des is refused")
    priv_key: pydantic.SecretStr | None = pydantic.Field(
        None, description="v3: privacy passphrase, 8 characters or more")
    timeout_s: float = pydantic.Field(
        2.0, ge=0.1, le=60, description="v3: wait this long for the acknowledgement")
    retries: int = pydantic.Field(
        3, ge=0, le=10, description="v3: resend an unacknowledged inform this often, then "
        "keep it queued and try again later")
    queue_size: int = pydantic.Field(
        500, ge=1, le=100_000, description="v3: informs waiting for this receiver; when "
        "full, the oldest is dropped (and counted)")

    @pydantic.field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        try:
            return str(ipaddress.IPv4Address(value))
        except ValueError:
            raise ValueError(f"{value!r} is not an IPv4 address") from None

    @pydantic.model_validator(mode="after")
    def _check(self) -> Receiver:
        if self.version == "v2c":
            if (self.user or self.auth_key or self.priv_key
                    or {"auth_protocol", "priv_protocol"} & self.model_fields_set):
                raise ValueError("user, auth_protocol, auth_key, priv_protocol and priv_key "
                                 "are for version v3")
            if self.community is None:
                raise ValueError("a v2c receiver needs a community")
            if not 1 <= len(self.community.get_secret_value().encode()) <= 64:
                raise ValueError("the community must be 1 to 64 octets")
        else:
            if self.community is not None:
                raise ValueError("community is for version v2c")
            if not (self.user and self.auth_key and self.priv_key):
                raise ValueError("a v3 receiver needs user, auth_key and priv_key")
            for name in ("auth_key", "priv_key"):
                if len(getattr(self, name).get_secret_value()) < 8:
                    raise ValueError(f"{name}: a USM passphrase needs at least 8 characters "
                                     "(RFC 3414)")
        return self

    @pydantic.field_validator("auth_protocol", "priv_protocol", mode="before")
    @classmethod
    def _protocol(cls, value: object) -> object:
        return parse_protocol(value)

    @property
    def label(self) -> str:
        return f"{self.version} {self.host}:{self.port}"

    def identity(self) -> tuple:
        """Everything that makes this receiver what it is (secrets included)."""
        def secret(v: pydantic.SecretStr | None) -> str | None:
            return None if v is None else v.get_secret_value()
        return (self.host, self.port, self.version, secret(self.community), self.user,
                self.auth_protocol, secret(self.auth_key), self.priv_protocol,
                secret(self.priv_key), self.timeout_s, self.retries, self.queue_size)


class NotificationSettings(Section):
    """Notifications: alarm raises and clears, the heartbeat and coldStart."""

    receivers: list[Receiver] = pydantic.Field(default_factory=list)
    heartbeat_interval_s: float = pydantic.Field(
        300, ge=0, le=86_400, description="send bmsHeartbeat this often; 0 = never")
    cold_start: bool = pydantic.Field(True, description="send coldStart when the agent starts")
    rate_limit_per_s: float = pydantic.Field(
        2.0, gt=0, le=10_000, description="alarm notifications per second, sustained, over "
        "all receivers; the excess is dropped, counted and logged")
    rate_limit_burst: int = pydantic.Field(
        20, ge=1, le=100_000, description="alarm notifications allowed at once before the "
        "sustained rate applies")

    @pydantic.model_validator(mode="after")
    def _check(self) -> NotificationSettings:
        if 0 < self.heartbeat_interval_s < 1:
            raise ValueError("heartbeat_interval_s must be 0 (off) or at least 1")
        seen = set()
        for r in self.receivers:
            key = (r.host, r.port)
            if key in seen:
                raise ValueError(f"receiver {r.host}:{r.port} is listed twice")
            seen.add(key)
        return self


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
    notifications: NotificationSettings = pydantic.Field(default_factory=NotificationSettings)
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
