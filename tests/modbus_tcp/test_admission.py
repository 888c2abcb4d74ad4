"""The connection policy, pure: who is refused, who makes room, whose frame is overdue."""

from __future__ import annotations

import ipaddress

from gateway.access import AccessList
from plugins.modbus_tcp.admission import Slot, overdue, surplus


def slots(*spec):
    """Slots from (key, source, last_request[, frame_started]) tuples."""
    return [Slot(*s) for s in spec]


def test_nothing_to_close_within_both_limits():
    assert surplus(slots(("a", "10.0.0.1", 1.0)), max_connections=2, max_per_source=2) == []


def test_over_the_limit_the_longest_idle_goes_rather_than_the_newcomer():
    s = slots(("a", "10.0.0.1", 5.0), ("b", "10.0.0.2", 1.0), ("c", "10.0.0.3", 3.0),
              ("new", "10.0.0.4", 6.0))
    assert surplus(s, max_connections=3, max_per_source=3) == ["b"]


def test_over_the_limit_the_room_comes_from_the_source_with_most_connections():
    s = slots(("scada", "10.0.0.5", 1.0),  # idle longest, but alone
              ("f1", "10.0.0.9", 4.0), ("f2", "10.0.0.9", 2.0), ("f3", "10.0.0.9", 3.0),
              ("new", "10.0.0.6", 5.0))
    assert surplus(s, max_connections=4, max_per_source=4) == ["f2"]


def test_a_source_over_its_limit_loses_its_own_longest_idle():
    s = slots(("other", "10.0.0.5", 0.5), ("f1", "10.0.0.9", 4.0), ("f2", "10.0.0.9", 2.0),
              ("f3", "10.0.0.9", 5.0), ("f4", "10.0.0.9", 6.0))
    assert surplus(s, max_connections=10, max_per_source=2) == ["f2", "f1"]


def test_both_limits_together_and_keep():
    s = slots(*((f"f{i}", "10.0.0.9", float(i)) for i in range(6)),
              ("o1", "10.0.0.5", 0.0), ("o2", "10.0.0.6", 0.1))
    # per source: f0, f1 go (4 left); in all 6 > 5: the biggest source loses f2
    assert surplus(s, max_connections=5, max_per_source=4) == ["f0", "f1", "f2"]
    # the newcomer to keep is never chosen, even when it is the idlest
    assert surplus(s, max_connections=7, max_per_source=8, keep={"f0"}) == ["f1"]
    assert surplus(slots(("k", "x", 0.0)), max_connections=0, max_per_source=0,
                   keep={"k"}) == []


def test_idle_counts_from_the_last_complete_request():
    """A trickling client's bytes do not renew its slot: only completed requests do."""
    s = slots(("trickle", "10.0.0.9", 1.0, 1.5), ("poller", "10.0.0.9", 9.0),
              ("new", "10.0.0.9", 9.5))
    assert surplus(s, max_connections=2, max_per_source=8) == ["trickle"]


def test_overdue_frames():
    s = slots(("a", "x", 0.0, 10.0), ("b", "x", 0.0, 14.5), ("c", "x", 0.0))
    assert overdue(s, 15.0, 2.0) == ["a"]
    assert overdue(s, 17.0, 2.0) == ["a", "b"]


def nets(*text):
    return [ipaddress.ip_network(t) for t in text]


def test_the_access_list_the_server_uses():
    allowed = AccessList(nets("127.0.0.1/32", "10.20.0.0/16", "2001:db8::/32"))
    assert allowed.allows("127.0.0.1") and allowed.allows("10.20.7.9")
    assert not allowed.allows("127.0.0.2") and not allowed.allows("2001:db9::5")
    assert allowed.allows("2001:db8::5")
    assert allowed.allows("::ffff:10.20.1.1")  # IPv4 client on an IPv6 socket
    assert AccessList(nets("fe80::/10")).allows("fe80::1%eth0")
    assert not allowed.allows("not an address")
    assert not AccessList([]).allows("10.0.0.1")
    assert AccessList(None).allows("192.0.2.1")
