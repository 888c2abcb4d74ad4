"""What the agent's UDP endpoint and the SNMPv3 engine share, kept below both.

The agent (:mod:`agent`) owns the socket's datagram handling and the OID table; the
SNMPv3 engine (:mod:`v3_engine`) sits in front of the same socket when v3 users are
configured. The engine is handed a :class:`Service` (the agent satisfies it) rather
than importing the agent, so the modules import in one direction only:
``agent -> endpoint``, ``agent -> notifier -> inform -> v3_engine, usm`` and
``v3_engine -> endpoint, usm``.
Pure: no sockets, no pysnmp.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from plugins.snmp_agent.responder import Outcome, Table

FORWARD = object()
"""Verdict of :meth:`Service.handle_datagram`: hand the message to the SNMPv3 engine."""


@dataclass
class AgentCounters:
    """The agent's own counters; the first seven are served as the snmp group."""

    in_pkts: int = 0
    in_bad_versions: int = 0
    in_bad_community_names: int = 0
    in_bad_community_uses: int = 0
    in_asn_parse_errs: int = 0
    silent_drops: int = 0
    proxy_drops: int = 0
    unexpected_pdus: int = 0  #: responses, traps, informs and reports sent to the agent
    internal_errors: int = 0  #: requests answered genErr because of a bug
    refused_sources: int = 0  #: dropped: source not in the community's/user's allowed_sources


class Service(Protocol):
    """What the SNMPv3 engine needs from the agent."""

    counters: AgentCounters

    def handle_datagram(self, data: bytes, source: str) -> bytes | object | None:
        """The reply to one datagram from IP address ``source``, None to drop it, or
        :data:`FORWARD` for SNMPv3."""

    def process(self, pdu_type: int, oids: list[tuple[int, ...]], non_repeaters: int,
                max_repetitions: int, budget: int) -> tuple[Table, Outcome]:
        """Answer one request PDU from the current table (RFC 3416)."""
