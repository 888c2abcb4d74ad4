"""Notifications without a network: what each carries, the SNMPv2-Trap encoding (checked
with pysnmp's decoder), the rate limit, the bounded inform queue, receiver settings and
their live change. Sockets and snmptrapd are in tests/alarms/test_e2e.py."""

from __future__ import annotations

import logging

import pydantic
import pytest
from pyasn1.codec.ber import decoder
from pysnmp.proto import api

from gateway.hub import Hub
from gateway.model import (
    Alarm,
    AlarmCleared,
    AlarmRaised,
    LinkState,
    ModuleReading,
    ModuleStatus,
    Severity,
)
from plugins.snmp_agent import oid_map as om
from plugins.snmp_agent.notifications import (
    Category,
    TokenBucket,
    encode_v2c_trap,
    make_alarm_notification,
    make_cold_start,
    make_heartbeat,
)
from plugins.snmp_agent.notifier import Notifier, _InformTarget
from plugins.snmp_agent.settings import NotificationSettings, Receiver, SnmpAgentSettings

ALARM = Alarm(seq=12, kind="cell_voltage_high", severity=Severity.MAJOR, position=2,
              sub_index=7, value=3652, threshold=3600, raised_at=10.0,
              raised_wall_time=1_795_000_000.0, text="module 2 cell 7 at 3.652 V, limit 3.600 V")
FLAG = Alarm(seq=13, kind="fault_sampling_ic", severity=Severity.CRITICAL, position=3,
             raised_at=11.0, raised_wall_time=1_795_000_001.0,
             text="module 3 BMS fault: sampling IC communication failure (ERR 6x)")


def names(n) -> list[str]:
    by_oid = {o.oid: o.name for o in om.OBJECT_TYPES.values()}
    out = []
    for v in n.varbinds:
        base = next((v.oid[:i] for i in range(len(v.oid), 0, -1) if v.oid[:i] in by_oid), None)
        name = by_oid[base] if base else ".".join(map(str, v.oid))
        out.append(f"{name}.{'.'.join(map(str, v.oid[len(base):]))}" if base else name)
    return out


def test_raise_and_clear_carry_the_same_objects_with_the_seq_as_instance():
    raised = make_alarm_notification(AlarmRaised(alarm=ALARM), 4242)
    cleared = make_alarm_notification(
        AlarmCleared(alarm=ALARM, cleared_at=20.0, cleared_wall_time=1_795_000_010.0,
                     clear_seq=15), 5000)
    assert raised.trap_oid == om.BMS_MIB_OID + (0, 1)
    assert cleared.trap_oid == om.BMS_MIB_OID + (0, 2)
    expected = ["sysUpTime.0", "1.3.6.1.6.3.1.1.4.1.0", "bmsAlarmKind.12", "bmsAlarmSeverity.12",
                "bmsAlarmModule.12", "bmsAlarmSubIndex.12", "bmsAlarmValue.12",
                "bmsAlarmThreshold.12", "bmsAlarmRaisedAt.12", "bmsAlarmText.12",
                "bmsAlarmLastSeq.0"]
    assert names(raised) == expected and names(cleared) == expected
    values = [v.value for v in raised.varbinds]
    assert values[0] == 4242 and values[1] == om.BMS_MIB_OID + (0, 1)
    assert values[2:8] == [b"cell_voltage_high", 4, 2, 7, 3652, 3600]
    assert len(values[8]) == 11 and values[9] == ALARM.text.encode()
    assert values[-1] == 12 and cleared.varbinds[-1].value == 15  # the raise's, the clear's
    assert [v.value for v in cleared.varbinds[2:-1]] == values[2:-1]


def test_an_alarm_without_a_value_leaves_value_and_threshold_out():
    n = make_alarm_notification(AlarmRaised(alarm=FLAG), 1)
    assert "bmsAlarmValue.13" not in names(n) and "bmsAlarmThreshold.13" not in names(n)
    assert "bmsAlarmText.13" in names(n)


def test_heartbeat_and_cold_start(bank_snapshot):
    hb = make_heartbeat(bank_snapshot, 77)
    assert hb.category is Category.HEARTBEAT
    assert names(hb)[2:] == ["bmsBankWorstStatus.0", "bmsBankWorstSeverity.0",
                             "bmsBankActiveAlarms.0", "bmsAlarmLastSeq.0"]
    assert [v.value for v in hb.varbinds[2:]] == [4, 3, 2, 13]
    empty = make_heartbeat(None, 1)
    assert [v.value for v in empty.varbinds[2:]] == [1, 0, 0]  # no status without modules
    cold = make_cold_start(0)
    assert [v.value for v in cold.varbinds] == [0, (1, 3, 6, 1, 6, 3, 1, 1, 5, 1)]


def test_v2c_trap_decodes_as_an_snmpv2_trap_pdu():
    n = make_alarm_notification(AlarmRaised(alarm=ALARM), 4242)
    wire = encode_v2c_trap(n, b"trap-community", 99)
    msg, rest = decoder.decode(wire, asn1Spec=api.PROTOCOL_MODULES[api.SNMP_VERSION_2C].Message())
    assert rest == b""
    p = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
    assert int(p.apiMessage.get_version(msg)) == 1
    assert bytes(p.apiMessage.get_community(msg)) == b"trap-community"
    pdu = p.apiMessage.get_pdu(msg)
    assert pdu.tagSet == p.SNMPv2TrapPDU.tagSet and int(p.apiPDU.get_request_id(pdu)) == 99
    varbinds = p.apiPDU.get_varbinds(pdu)
    assert [tuple(o) for o, _ in varbinds] == [v.oid for v in n.varbinds]
    assert int(varbinds[0][1]) == 4242 and str(varbinds[2][1]) == "cell_voltage_high"
    assert int(varbinds[6][1]) == 3652


def test_token_bucket_allows_a_burst_then_the_rate():
    b = TokenBucket(2.0, 5, now=0.0)
    assert [b.take(0.0) for _ in range(6)] == [True] * 5 + [False]
    assert b.take(0.4) is False and b.take(0.5) is True  # one token per 0.5 s
    assert sum(b.take(100.0) for _ in range(10)) == 5  # never more than the burst


class Sink:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def sendto(self, data: bytes, addr) -> None:
        self.sent.append((data, addr))


def notifier(receivers, *, clock=lambda: 0.0, **settings) -> Notifier:
    s = NotificationSettings.model_validate({"receivers": receivers, **settings})
    return Notifier(s, Hub(), uptime_ticks=lambda: 100, engine_seed="test", clock=clock)


V2C = {"host": "192.0.2.10", "version": "v2c", "community": "c1"}
V3 = {"host": "192.0.2.11", "version": "v3", "user": "nms", "auth_key": "authpass1",
      "priv_key": "privpass1"}


def test_rate_limit_drops_and_counts_the_excess(caplog):
    caplog.set_level(logging.INFO, logger="plugins.snmp_agent.notifier")
    now = [0.0]
    n = notifier([V2C, {**V2C, "host": "192.0.2.12"}], clock=lambda: now[0],
                 rate_limit_per_s=1, rate_limit_burst=3)
    sink = Sink()
    n.transport = sink  # type: ignore[assignment]
    for _ in range(10):
        n.handle_event(AlarmRaised(alarm=ALARM))
    assert len(sink.sent) == 3 * 2 and n.counters.rate_limited == 7
    assert {addr for _, addr in sink.sent} == {("192.0.2.10", 162), ("192.0.2.12", 162)}
    assert caplog.text.count("rate limit reached") == 1  # logged once per burst
    now[0] = 1.0
    n.handle_event(AlarmRaised(alarm=ALARM))
    assert len(sink.sent) == 8 and "back under the limit" in caplog.text
    # served north: bmsGwNotificationsSent / bmsGwNotificationsDropped
    assert n.delivery_counts() == (8, 7)
    rows = om.make_bank_variables(None, now=0.0, bus_numbers={},
                                  options=om.BankOptions(software_version="x", started_at=0.0),
                                  notifications=n.delivery_counts())
    served = {v.oid: v.value for v in rows}
    assert served[om.GW_NOTIFICATIONS_SENT.oid + (0,)] == 8
    assert served[om.GW_NOTIFICATIONS_DROPPED.oid + (0,)] == 7


def test_inform_queue_is_bounded_and_keeps_only_the_newest_heartbeat(caplog):
    n = notifier([{**V3, "queue_size": 3}])
    (target,) = n.targets
    assert isinstance(target, _InformTarget)
    hb1, hb2 = make_heartbeat(None, 1), make_heartbeat(None, 2)
    target.submit(hb1)
    target.submit(make_alarm_notification(AlarmRaised(alarm=ALARM), 3))
    target.submit(hb2)
    assert list(target.queue)[-1] is hb2 and hb1 not in target.queue and len(target.queue) == 2
    for i in range(3):
        target.submit(make_alarm_notification(AlarmRaised(alarm=FLAG), 10 + i))
    assert len(target.queue) == 3 and n.counters.informs_dropped == 2
    assert "inform queue full" in caplog.text


def test_apply_keeps_unchanged_receivers_and_their_queues():
    n = notifier([V2C, V3])
    v2c, v3 = n.targets
    v3.submit(make_cold_start(0))
    n.apply(NotificationSettings.model_validate(
        {"receivers": [V3, {**V2C, "community": "c2"}], "heartbeat_interval_s": 60}))
    assert n.targets[0] is v3 and len(v3.queue) == 1
    assert n.targets[1] is not v2c and n.targets[1].community == b"c2"
    assert n.settings.heartbeat_interval_s == 60


@pytest.mark.parametrize("change", [{"auth_protocol": "sha1"}, {"priv_protocol": "aes256"}])
def test_apply_restarts_a_v3_receiver_whose_protocol_changed(change):
    n = notifier([V3])
    (before,) = n.targets
    n.apply(NotificationSettings.model_validate({"receivers": [{**V3, **change}]}))
    (after,) = n.targets
    assert after is not before
    assert (after.receiver.auth_protocol, after.receiver.priv_protocol) == (
        change.get("auth_protocol", "sha256"), change.get("priv_protocol", "aes128"))


@pytest.mark.parametrize(("receiver", "message"), [
    ({"host": "192.0.2.1", "version": "v2c"}, "a v2c receiver needs a community"),
    ({**V3, "priv_key": None}, "a v3 receiver needs user, auth_key and priv_key"),
    ({**V3, "auth_key": "short"}, "at least 8 characters"),
    ({**V2C, "user": "x"}, "user, auth_protocol, auth_key, priv_protocol and priv_key are"),
    ({**V2C, "host": "nms.example.net"}, "is not an IPv4 address"),
])
def test_receiver_settings_are_checked(receiver, message):
    with pytest.raises(pydantic.ValidationError, match=message):
        Receiver.model_validate(receiver)


def test_a_receiver_listed_twice_and_a_heartbeat_below_a_second_are_refused():
    with pytest.raises(pydantic.ValidationError, match="listed twice"):
        NotificationSettings.model_validate({"receivers": [V2C, V2C]})
    with pytest.raises(pydantic.ValidationError, match="0 \\(off\\) or at least 1"):
        NotificationSettings.model_validate({"heartbeat_interval_s": 0.5})
    s = SnmpAgentSettings.model_validate({"notifications": {"receivers": [V2C]}})
    assert s.notifications.receivers[0].port == 162


def test_the_heartbeat_reports_data_as_it_stands_when_sent():
    """A module still 'ok' in the hub's last snapshot but past its stale age is stale in
    the heartbeat, as everywhere the agent serves it."""
    now = [0.0]
    n = notifier([V2C], clock=lambda: now[0])
    n.hub = Hub(clock=lambda: now[0])
    n.hub.update("s", modules=[ModuleReading(
        bus="b", address=1, position=1, status=ModuleStatus.OK, link=LinkState.ONLINE,
        updated_at=0.0, stale_after_s=30.0)])
    sink = Sink()
    n.transport = sink  # type: ignore[assignment]
    now[0] = 31.0  # the hub published nothing since
    n.send_heartbeat()
    msg, _ = decoder.decode(sink.sent[0][0],
                            asn1Spec=api.PROTOCOL_MODULES[api.SNMP_VERSION_2C].Message())
    p = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
    values = {tuple(o): v for o, v in p.apiPDU.get_varbinds(p.apiMessage.get_pdu(msg))}
    assert int(values[om.BANK_WORST_STATUS.oid + (0,)]) == int(ModuleStatus.STALE)
