"""Configuration of the ``modbus_tcp`` plugin (the ``modbus_tcp:`` YAML section)."""

from __future__ import annotations

import enum

import pydantic

from gateway.config import Section
from plugins.modbus_tcp.register_map import MAX_POSITIONS


class UnknownUnits(enum.StrEnum):
    """What a request to a unit identifier the server does not serve gets."""

    EXCEPTION = "exception"  #: exception 0x0A, gateway path unavailable
    IGNORE = "ignore"  #: no answer; the client times out, as behind a serial gateway


class ModbusTcpSettings(Section):
    """The Modbus-TCP server: a read-only, versioned register map and a SunSpec view."""

    listen_address: pydantic.IPvAnyAddress = pydantic.Field(
        "127.0.0.1", description="IP address to listen on; 0.0.0.0 listens on every "
        "IPv4 interface")
    port: int = pydantic.Field(
        1502, ge=0, le=65535, description="TCP port (502 is the Modbus port but needs root "
        "or CAP_NET_BIND_SERVICE); 0 picks a free port")
    max_connections: int = pydantic.Field(
        16, ge=1, le=256, description="clients connected at once; a new connection beyond "
        "it closes the longest-idle one (of the source holding the most connections)")
    max_connections_per_source: int = pydantic.Field(
        8, ge=1, le=256, description="connections one IP address may hold; its next one "
        "closes its own longest-idle connection, never another client's")
    idle_timeout_s: float = pydantic.Field(
        300, ge=0, description="close a connection that completed no request for this "
        "long, so half-open connections do not hold slots; 0 = never")
    frame_timeout_s: float = pydantic.Field(
        5, gt=0, le=300, description="once the first byte of a request has arrived, the "
        "whole frame must arrive within this time, or the connection is closed")
    allowed_sources: list[pydantic.IPvAnyNetwork] | None = pydantic.Field(
        None, description="client networks allowed to connect (IPv4 or IPv6 CIDR, e.g. "
        "10.20.0.0/16 or 2001:db8::/32); others are closed at once, unanswered, and "
        "counted; omitted: every source")
    bank_unit_id: int = pydantic.Field(
        1, ge=1, le=247, description="unit identifier of the bank unit: bank block, every "
        "module block, SunSpec view")
    direct_unit_ids: bool = pydantic.Field(
        True, description="unit identifiers 0 and 255 (Modbus/TCP's 'this device') address "
        "the bank unit too")
    module_unit_ids: bool = pydantic.Field(
        False, description="also give each module position its own unit identifier, "
        "module_unit_id_base + position, with its block at 1000")
    module_unit_id_base: int = pydantic.Field(
        100, ge=0, le=247 - MAX_POSITIONS, description="module position p answers on unit "
        "identifier module_unit_id_base + p")
    unknown_unit_ids: UnknownUnits = pydantic.Field(
        UnknownUnits.EXCEPTION, description="'exception' answers a request to any other "
        "unit identifier with exception 0x0A; 'ignore' leaves it unanswered")
    stale_after_s: float = pydantic.Field(
        60, gt=0, le=86400, description="data the south side still calls live is served as "
        "stale once it is older than this; keep it above the poll interval")

    @pydantic.model_validator(mode="after")
    def _check_units(self) -> ModbusTcpSettings:
        if self.module_unit_ids:
            first = self.module_unit_id_base + 1
            last = self.module_unit_id_base + MAX_POSITIONS
            if first <= self.bank_unit_id <= last:
                raise ValueError(
                    f"bank_unit_id {self.bank_unit_id} collides with the module unit "
                    f"identifiers {first}-{last}; change bank_unit_id or module_unit_id_base")
        return self
