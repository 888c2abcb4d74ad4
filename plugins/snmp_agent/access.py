"""Source access lists of the ``snmp_agent``: which manager addresses may use the v2c
community or a v3 user (``allowed_sources``). Pure: no sockets.

A refused request is dropped without an answer, as snmpd drops a community used from
an address its ``rocommunity`` line does not allow; the agent counts it (docs/snmp.md).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_CACHE_SIZE = 256  #: addresses remembered per list; a flood of new ones only costs parsing


class AccessList:
    """Networks a source address must lie in; ``None`` networks allow everyone.

    An IPv4 manager reaching an IPv6 socket (``::ffff:a.b.c.d``) is matched against the
    IPv4 networks; a scope (``fe80::1%eth0``) is ignored. Verdicts are cached per
    address (a bounded cache, cleared when full).
    """

    __slots__ = ("networks", "_verdicts")

    def __init__(self, networks: Iterable[Network] | None) -> None:
        self.networks = None if networks is None else tuple(networks)
        self._verdicts: dict[str, bool] = {}

    def allows(self, host: str) -> bool:
        if self.networks is None:
            return True
        verdict = self._verdicts.get(host)
        if verdict is None:
            verdict = _matches(host, self.networks)
            if len(self._verdicts) >= _CACHE_SIZE:
                self._verdicts.clear()
            self._verdicts[host] = verdict
        return verdict


def _matches(host: str, networks: tuple[Network, ...]) -> bool:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == net.version and address in net for net in networks)
