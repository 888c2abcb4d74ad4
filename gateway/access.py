"""Source access lists: which client addresses a north plugin serves
(``allowed_sources`` of the SNMP agent's community and v3 users, and of the Modbus
server). Pure: no sockets; in the core because every listener needs the same rule.

What a refused client gets is the plugin's to decide (the SNMP agent drops the request
as snmpd does, the Modbus server closes the connection), and each counts it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_CACHE_SIZE = 256  #: addresses remembered per list; a flood of new ones only costs parsing


class AccessList:
    """Networks a source address must lie in; ``None`` networks allow everyone, an empty
    list nobody.

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
