"""Configuration of the ``http`` plugin (the ``http:`` YAML section)."""

from __future__ import annotations

from pathlib import Path

import pydantic

from gateway.config import Section


class BasicAuth(Section):
    """HTTP basic authentication: one user name and password (write the password as
    ``${ENV_VAR}`` to keep it out of the file)."""

    username: str = pydantic.Field(min_length=1, max_length=64, pattern=r"^[^:]+$",
                                   description="user name (no colon)")
    password: pydantic.SecretStr = pydantic.Field(description="password; redacted wherever "
                                                  "the config is printed")

    @pydantic.field_validator("password")
    @classmethod
    def _password(cls, value: pydantic.SecretStr) -> pydantic.SecretStr:
        if len(value.get_secret_value()) < 8:
            raise ValueError("the password needs at least 8 characters")
        return value


class Auth(Section):
    """Who may read. With both set, either one is accepted."""

    basic: BasicAuth | None = pydantic.Field(
        None, description="HTTP basic authentication (browsers ask for it)")
    bearer_token: pydantic.SecretStr | None = pydantic.Field(
        None, description="'Authorization: Bearer TOKEN' (Prometheus' "
        "authorization.credentials, scripts); a browser cannot send it, so the status "
        "page needs basic as well")

    @pydantic.field_validator("bearer_token")
    @classmethod
    def _token(cls, value: pydantic.SecretStr | None) -> pydantic.SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("the bearer token needs at least 16 characters")
        return value

    @pydantic.model_validator(mode="after")
    def _one(self) -> Auth:
        if self.basic is None and self.bearer_token is None:
            raise ValueError("give basic, bearer_token or both (or leave auth out)")
        return self


class Tls(Section):
    """Serve HTTPS with this certificate (PEM) and its private key. The files are read
    when the gateway starts (a missing or unreadable one refuses the start, exit 78), so
    a config can be checked on another machine."""

    certificate: Path = pydantic.Field(description="PEM certificate chain file")
    key: Path = pydantic.Field(description="PEM private key file")



class HttpSettings(Section):
    """The read-only web server: status page, JSON API and Prometheus /metrics."""

    listen_address: pydantic.IPvAnyAddress = pydantic.Field(
        "127.0.0.1", description="IP address to listen on (only this one); 0.0.0.0 "
        "listens on every IPv4 interface")
    port: int = pydantic.Field(8080, ge=0, le=65535, description="TCP port; 0 picks a "
                               "free port")
    refresh_s: float = pydantic.Field(
        2.0, ge=0.5, le=3600, description="how often the status page asks for new data")
    events: int = pydantic.Field(
        50, ge=0, le=1000, description="recent alarm events the page and "
        "/api/v1/events show (from the alarms plugin's event log in gateway.state_dir)")
    auth: Auth | None = pydantic.Field(
        None, description="require credentials for every request; none = open (keep "
        "listen_address on a trusted network)")
    tls: Tls | None = pydantic.Field(None, description="serve HTTPS instead of HTTP")


def default_config() -> dict[str, object]:
    """The built-in default: the page on the loopback interface only."""
    return {"listen_address": "127.0.0.1", "port": 8080}
