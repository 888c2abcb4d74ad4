"""What the north plugins make of the backup figures (pure: OID table, registers,
notification varbinds), and the processor's place before the alarm rules."""

from __future__ import annotations

import dataclasses

from gateway.app import Gateway
from gateway.cli import read_config
from gateway.model import (
    BackupEstimate,
    BankOnBattery,
    BankOnMains,
    BankState,
    DischargeRecord,
)
from gateway.plugins import make_plugin_manager

from plugins.modbus_tcp import register_map as rm
from plugins.modbus_tcp.fields import decode_value
from plugins.snmp_agent import notifications, oid_map as om

from tests.backup_time.bank_snapshots import WALL0, pack, reading, snapshot_of

RECORD = DischargeRecord(number=3, started_wall_time=WALL0, ended_wall_time=WALL0 + 600,
                         duration_s=600, delivered_mah=6667, delivered_wh=347,
                         eod_reached=True)


def snap(backup):
    s = snapshot_of([reading(1, pack(-40_000), t=10.0)], 10.0)
    return dataclasses.replace(s, backup=backup)


def served(snapshot):
    opts = om.BankOptions(software_version="x", started_at=0.0)
    return {v.oid: v.value for v in om.make_bank_variables(
        snapshot, now=10.0, bus_numbers={"sim": 1}, options=opts)}


def test_unknown_backup_figures_are_absent_never_zero():
    table = served(snap(BackupEstimate(state=BankState.DISCHARGING, seconds_on_battery=30,
                                       records=(RECORD,), record_last=3)))
    z = (0,)
    assert table[om.BACKUP_STATE.oid + z] == 4
    assert table[om.BACKUP_SECONDS_ON_BATTERY.oid + z] == 30
    assert om.BACKUP_MINUTES_REMAINING.oid + z not in table
    assert om.BACKUP_MINUTES_TO_FULL.oid + z not in table
    assert table[om.DISCHARGE_DURATION.oid + (3,)] == 600
    assert table[om.DISCHARGE_EOD_REACHED.oid + (3,)] == 1
    assert om.DISCHARGE_SOC_START.oid + (3,) not in table  # unknown start SOC
    # without the processor the whole branch is absent
    assert not [o for o in served(snap(None)) if o[:len(om._BACKUP)] == om._BACKUP]


def test_minutes_remaining_round_down():
    table = served(snap(BackupEstimate(state=BankState.DISCHARGING, seconds_on_battery=1,
                                       seconds_to_eod=119, limited_by="voltage")))
    assert table[om.BACKUP_MINUTES_REMAINING.oid + (0,)] == 1
    assert table[om.BACKUP_LIMITED_BY.oid + (0,)] == 3


def test_modbus_bank_block_serves_the_record_and_the_state():
    e = BackupEstimate(state=BankState.DISCHARGING, seconds_on_battery=30, seconds_to_eod=7200,
                       limited_by="capacity", discharge_current_ma=40_000,
                       on_battery_since_wall_time=WALL0 + 5, records=(RECORD,), record_last=3)
    image = rm.make_image(snap(e), 10.0, stale_after_s=60)
    values = image.bank_unit[0].values
    got = {f.name: decode_value(f, values[rm.BANK_BLOCK.offsets[f.name]:])
           for f in rm.BANK_BLOCK.fields}
    assert got["backup_state"] == 4 and got["seconds_to_eod"] == 7200
    assert got["on_battery_since_epoch_s"] == int(WALL0 + 5)
    assert got["discharge_last_number"] == 3 and got["discharge_last_wh"] == 347
    assert got["discharge_last_eod_reached"] == 1
    assert got["seconds_to_full"] is None and got["discharge_last_soc_start_permille"] is None


def test_notifications_carry_the_state_and_the_record():
    e = BackupEstimate(state=BankState.DISCHARGING, seconds_on_battery=10,
                       on_battery_since_wall_time=WALL0)
    on = notifications.make_power_notification(
        BankOnBattery(since=0.0, since_wall_time=WALL0, estimate=e), 100)
    assert on.trap_oid == om.ON_BATTERY_OID
    oids = [v.oid for v in on.varbinds]
    assert om.BACKUP_MINUTES_REMAINING.oid + (0,) not in oids  # not known yet
    assert om.BACKUP_ON_BATTERY_SINCE.oid + (0,) in oids
    back = BackupEstimate(state=BankState.CHARGING, seconds_on_battery=0, record_last=3,
                          records=(RECORD,))
    off = notifications.make_power_notification(
        BankOnMains(at=600.0, wall_time=WALL0 + 600, record=RECORD, estimate=back), 200)
    assert off.trap_oid == om.ON_MAINS_OID and off.label == "bmsBankOnMains #3"
    values = {v.oid: v.value for v in off.varbinds}
    assert values[om.DISCHARGE_DURATION.oid + (3,)] == 600
    assert values[om.DISCHARGE_LAST_NUMBER.oid + (0,)] == 3


def test_the_processor_runs_before_the_alarm_rules():
    pm, _ = make_plugin_manager()
    config = read_config(pm, None)  # the built-in default
    gw = Gateway(config, pm)
    names = [type(p).__name__ for p in gw.hub._processors]
    assert names.index("BackupProcessor") < names.index("AlarmProcessor")


def test_the_mqtt_plugin_skips_the_bank_power_events():
    # the hub's queues carry every event to every subscriber: an event the mqtt plugin
    # does not publish must not stop it (it raised TypeError before)
    from plugins.mqtt.topic_map import Layout, event_message

    e = BackupEstimate(state=BankState.DISCHARGING, seconds_on_battery=0)
    layout = Layout("bms", "site-1")
    assert event_message(layout, BankOnBattery(since=0.0, since_wall_time=WALL0,
                                               estimate=e)) is None
    assert event_message(layout, BankOnMains(at=1.0, wall_time=WALL0, record=RECORD,
                                             estimate=e)) is None
