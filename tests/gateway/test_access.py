"""Source access lists (plugins/snmp_agent/access.py): pure matching of manager addresses."""

from __future__ import annotations

import ipaddress

import pytest

from gateway.access import AccessList

NETS = [ipaddress.ip_network("10.20.0.0/16"), ipaddress.ip_network("2001:db8::/32"),
        ipaddress.ip_network("127.0.0.1/32")]


@pytest.mark.parametrize(("host", "allowed"), [
    ("10.20.3.4", True),
    ("10.21.0.1", False),
    ("127.0.0.1", True),
    ("127.0.0.2", False),
    ("2001:db8:1::5", True),
    ("2001:db9::5", False),
    ("::ffff:10.20.9.9", True),  # an IPv4 manager on an IPv6 socket: its IPv4 network
    ("::ffff:10.30.9.9", False),
    ("::1", False),
    ("fe80::1%eth0", False),
    ("not an address", False),
])
def test_networks(host, allowed):
    assert AccessList(NETS).allows(host) is allowed


def test_a_mapped_address_never_matches_an_ipv6_network_by_accident():
    acl = AccessList([ipaddress.ip_network("::ffff:0:0/96")])
    assert not acl.allows("::ffff:10.0.0.1")  # matched as 10.0.0.1, an IPv4 address


def test_scoped_link_local_addresses_match_without_their_scope():
    assert AccessList([ipaddress.ip_network("fe80::/10")]).allows("fe80::1%eth0")


def test_none_allows_everyone_and_an_empty_list_no_one():
    assert AccessList(None).allows("192.0.2.1")
    assert not AccessList([]).allows("127.0.0.1")


def test_verdicts_are_cached_within_a_bound():
    acl = AccessList(NETS)
    for i in range(1000):
        acl.allows(f"10.20.{i // 256}.{i % 256}")
    assert len(acl._verdicts) <= 256
    assert acl.allows("10.20.0.1") and not acl.allows("10.99.0.1")
