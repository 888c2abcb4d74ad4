"""What the agent's UDP endpoint and the SNMPv3 engine share, kept below both.

The agent (:mod:`agent`) owns the socket's datagram handling and the OID table; the
SNMPv3 engine (:mod:`v3_engine`) processes the SNMPv3 messages the agent hands it. The
engine is handed a :class:`Service` (the agent satisfies it) rather than importing the
agent, so the modules import in one direction only: ``agent -> endpoint, v3_engine``,
``agent -> notifier -> inform -> usm`` and ``v3_engine -> endpoint, usm_keys``.
Pure: no sockets, no pysnmp.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from plugins.snmp_agent.responder import Outcome, Table


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

    def process(self, pdu_type: int, oids: list[tuple[int, ...]], non_repeaters: int,
                max_repetitions: int, budget: int) -> tuple[Table, Outcome]:
        """Answer one request PDU from the current table (RFC 3416)."""
