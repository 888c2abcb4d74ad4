"""The pure alarm rules with an injected clock: hysteresis, both delays, flapping,
suppression by communication loss, unknown BMS bits, the storm bound, numbering."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.model import (
    BmsStatus,
    Condition,
    Fault,
    LinkCounters,
    ModuleStatus,
    RawFlag,
    Severity,
)

from plugins.alarms import catalog, rules
from plugins.alarms.rules import Action
from plugins.alarms.settings import AlarmsSettings

RAISED, CLEARED = Action.RAISED, Action.CLEARED
NO_DELAY = {"raise_delay_s": 0, "clear_delay_s": 0}


def kinds(transitions, action=None):
    return [(t.action.value, t.alarm.kind, t.alarm.position) for t in transitions
            if action is None or t.action is action]


def test_a_healthy_bank_raises_nothing(alarm_bank):
    d = alarm_bank.Driver()
    for t in range(0, 600, 5):
        assert d.step(float(t), [alarm_bank.module(p, now=t) for p in range(1, 13)]) == []
    assert d.state.alarms == () and d.state.last_seq == 0


def test_hysteresis_the_band_between_the_levels_changes_nothing(alarm_bank):
    d = alarm_bank.Driver({"cell_voltage_high": NO_DELAY})
    m = alarm_bank.module
    assert d.step(0, [m(1, cell=(7, 3599))]) == []  # below the raise level
    (raised,) = d.step(1, [m(1, cell=(7, 3600))])  # reaching it raises
    assert raised.action is RAISED and raised.notify
    a = raised.alarm
    assert (a.kind, a.position, a.sub_index, a.value, a.threshold, a.severity) == (
        "cell_voltage_high", 1, 7, 3600, 3600, Severity.MAJOR)
    assert a.text == "module 1 cell 7 at 3.600 V, limit 3.600 V"
    assert a.raised_wall_time == alarm_bank.WALL0 + 1
    for t, mv in enumerate((3550, 3500, 3451, 3599, 3460), start=2):  # inside the band
        assert d.step(t, [m(1, cell=(7, mv))]) == []
    (cleared,) = d.step(10, [m(1, cell=(7, 3450))])  # reaching the clear level clears
    assert cleared.action is CLEARED and cleared.clear_seq == 2
    # the clear reports the value that cleared it and the clear level, not the raise's
    assert cleared.alarm == dataclasses.replace(
        a, value=3450, threshold=3450,
        text="module 1 cell 7 at 3.450 V <= 3.450 V (limit 3.600 V - 0.150 V)")
    assert d.state.last_seq == 2 and d.state.alarms == ()


def test_a_clear_carries_the_value_at_clearing_after_its_delay(alarm_bank):
    """Raised at 3.650 V, gone at 3.400 V, cleared 10 s later at 3.380 V: the clear says
    3.380 V, the clear level 3.450 V and how it is made (3.600 V less 0.150 V)."""
    d = alarm_bank.Driver({"cell_voltage_high": {"raise_delay_s": 0, "clear_delay_s": 10}})
    m = alarm_bank.module
    (raised,) = d.step(0, [m(2, cell=(4, 3650))])
    assert (raised.alarm.value, raised.alarm.threshold) == (3650, 3600)
    assert d.step(1, [m(2, cell=(4, 3400))]) == []
    assert d.step(6, [m(2, cell=(4, 3390))]) == []
    (cleared,) = d.step(11, [m(2, cell=(4, 3380))])
    a = cleared.alarm
    assert (a.seq, a.value, a.threshold, a.sub_index) == (raised.alarm.seq, 3380, 3450, 4)
    assert a.raised_at == 0 and a.raised_wall_time == raised.alarm.raised_wall_time
    assert a.text == "module 2 cell 4 at 3.380 V <= 3.450 V (limit 3.600 V - 0.150 V)"
    assert "3.650" not in a.text


@pytest.mark.parametrize("kind, raising, clearing, text", [
    ("cell_voltage_low", {"cell": (16, 2750)}, {"cell": (16, 3010)},
     "module 1 cell 16 at 3.010 V >= 3.000 V (limit 2.800 V + 0.200 V)"),
    ("pack_voltage_high", {"voltage_mv": 56_100}, {"voltage_mv": 55_200},
     "module 1 voltage 55.20 V <= 55.25 V (limit 56.00 V - 0.75 V)"),
    ("discharge_current_high", {"current_ma": -101_000}, {"current_ma": -89_900},
     "module 1 discharge 89.9 A <= 90.0 A (limit 100.0 A - 10.0 A)"),
    ("mosfet_temp_high", {"temps": (250, 250, 250, 250, 800, 250)},
     {"temps": (250, 250, 250, 250, 650, 250)},
     "module 1 sensor 5 65.0 C <= 70.0 C (limit 80.0 C - 10.0 C)"),
    ("soc_low", {"soc": 150}, {"soc": 260},
     "module 1 SOC 26.0 % >= 25.0 % (limit 20.0 % + 5.0 %)"),
])
def test_every_clear_text_names_value_clear_level_limit_and_hysteresis(
        alarm_bank, kind, raising, clearing, text):
    d = alarm_bank.Driver({k: ({"enabled": False} if k != kind else NO_DELAY)
                           for k in catalog.THRESHOLDS})
    m = alarm_bank.module
    (raised,) = d.step(0, [m(1, **raising)])
    (cleared,) = d.step(1, [m(1, **clearing)])
    assert cleared.action is CLEARED and cleared.alarm.kind == kind
    assert cleared.alarm.text == text and len(text.encode()) <= catalog.MAX_TEXT
    assert cleared.alarm.value != raised.alarm.value
    assert cleared.alarm.threshold != raised.alarm.threshold  # the clear level


def test_raise_delay_needs_the_condition_without_a_break(alarm_bank):
    d = alarm_bank.Driver({"cell_voltage_high": {"raise_delay_s": 5, "clear_delay_s": 0}})
    m = alarm_bank.module
    high, band, low = m(1, cell=(3, 3700)), m(1, cell=(3, 3500)), m(1)
    assert d.step(0, [high]) == [] and d.step(4.9, [high]) == []
    assert d.step(5.0, [band]) == []  # a break in the condition: the delay starts over
    assert d.step(6, [high]) == [] and d.step(10.9, [high]) == []
    assert kinds(d.step(11, [high])) == [("raised", "cell_voltage_high", 1)]
    assert d.state.trackers[("cell_voltage_high", 1, "")].alarm.raised_at == 11
    assert kinds(d.step(12, [low])) == [("cleared", "cell_voltage_high", 1)]


def test_clear_delay_needs_the_condition_gone_without_a_break(alarm_bank):
    d = alarm_bank.Driver({"cell_voltage_high": {"raise_delay_s": 0, "clear_delay_s": 10}})
    m = alarm_bank.module
    high, low = m(2, cell=(1, 3650)), m(2)
    assert kinds(d.step(0, [high])) == [("raised", "cell_voltage_high", 2)]
    assert d.step(1, [low]) == [] and d.step(10.5, [low]) == []
    assert d.step(10.6, [m(2, cell=(1, 3500))]) == []  # back in the band: the clock restarts
    assert d.step(11, [low]) == [] and d.step(20.9, [low]) == []
    assert kinds(d.step(21, [low])) == [("cleared", "cell_voltage_high", 2)]


def test_every_threshold_kind_raises_with_its_value_and_unit(alarm_bank):
    m = alarm_bank.module
    off = {"enabled": False}
    zero = {k: NO_DELAY for k in catalog.THRESHOLDS}
    cases = [
        ("cell_voltage_low", m(1, cell=(16, 2750)), 2750, 2800),
        ("cell_spread_high", m(1, cell=(2, 3420)), 120, 100),
        ("pack_voltage_high", m(1, voltage_mv=56_100), 56_100, 56_000),
        ("pack_voltage_low", m(1, voltage_mv=41_900), 41_900, 42_000),
        ("charge_current_high", m(1, current_ma=51_000), 51_000, 50_000),
        ("discharge_current_high", m(1, current_ma=-101_000), 101_000, 100_000),
        ("charge_temp_high", m(1, current_ma=20_000, temps=(505, 250, 250, 250, 300, 250)),
         505, 500),
        ("charge_temp_low", m(1, current_ma=20_000, temps=(250, -5, 250, 250, 300, 250)),
         -5, 0),
        ("discharge_temp_high", m(1, temps=(250, 250, 601, 250, 300, 250)), 601, 600),
        ("discharge_temp_low", m(1, temps=(250, 250, 250, -201, 300, 250)), -201, -200),
        ("mosfet_temp_high", m(1, temps=(250, 250, 250, 250, 800, 250)), 800, 800),
        ("mosfet_temp_low", m(1, temps=(250, 250, 250, 250, -300, 250)), -300, -300),
        ("ambient_temp_high", m(1, temps=(250, 250, 250, 250, 300, 451)), 451, 450),
        ("ambient_temp_low", m(1, temps=(250, 250, 250, 250, 300, -51)), -51, -50),
        ("soc_low", m(1, soc=199), 199, 200),
        ("soh_low", m(1, soh=790), 790, 800),
    ]
    for kind, mod, value, threshold in cases:
        # only the rule under test, so that e.g. a low cell does not also raise the spread
        cfg = {k: ({**zero.get(k, {}), **off} if k != kind else zero[k])
               for k in catalog.THRESHOLDS}
        d = alarm_bank.Driver(cfg)
        (t,) = d.step(0, [mod])
        assert (t.alarm.kind, t.alarm.value, t.alarm.threshold) == (kind, value, threshold)
        assert len(t.alarm.text) <= catalog.MAX_TEXT and t.alarm.text.startswith("module 1 ")


def test_charge_limits_apply_while_charging_and_discharge_limits_otherwise(alarm_bank):
    d = alarm_bank.Driver({"charge_temp_high": NO_DELAY, "discharge_temp_high": NO_DELAY})
    m = alarm_bank.module
    hot = (520, 250, 250, 250, 300, 250)  # 52 degC: above the charge limit only
    assert kinds(d.step(0, [m(1, temps=hot, current_ma=10_000)])) == [
        ("raised", "charge_temp_high", 1)]
    # charging stops: the charge limit no longer applies, 52 degC is fine for discharge
    assert kinds(d.step(1, [m(1, temps=hot, current_ma=-10_000)])) == [
        ("cleared", "charge_temp_high", 1)]
    assert d.step(2, [m(1, temps=hot, current_ma=500)]) == []  # 0.5 A is not charging


def test_bank_voltage_alarms_follow_the_manuals_rectifier_table(alarm_bank):
    s = AlarmsSettings()
    assert (s.bank_voltage_low.raise_level, s.bank_voltage_eod.raise_level) == (42_000, 40_500)
    assert s.bank_voltage_high.raise_level > 54_750  # above equalize, never while floating
    d = alarm_bank.Driver({k: NO_DELAY for k in ("bank_voltage_low", "bank_voltage_eod",
                                                 "pack_voltage_low", "cell_voltage_low")})
    m = alarm_bank.module
    cells = [2600] * 16  # 41.6 V: below the low-voltage alarm, above end of discharge
    out = d.step(0, [m(p, cells=cells) for p in (1, 2)])
    assert ("raised", "bank_voltage_low", 0) in kinds(out)
    assert "bank_voltage_eod" not in {t.alarm.kind for t in out}
    out = d.step(1, [m(p, cells=[2520] * 16) for p in (1, 2)])  # 40.32 V
    assert kinds(out) == [("raised", "bank_voltage_eod", 0)]
    assert d.active[("bank_voltage_eod", 0)].severity is Severity.CRITICAL
    assert d.active[("bank_voltage_eod", 0)].text == "bank voltage 40.32 V, end of discharge 40.50 V"


# ------------------------------------------------------------------ communication -----


def test_comm_loss_suppresses_the_modules_value_alarms(alarm_bank):
    d = alarm_bank.Driver({"cell_voltage_high": NO_DELAY})
    m = alarm_bank.module
    assert kinds(d.step(0, [m(1, cell=(4, 3700)), m(2)])) == [
        ("raised", "cell_voltage_high", 1)]
    # module 1 goes stale while its cell is high; module 2 goes stale with a high cell
    stale1 = m(1, now=1, status=ModuleStatus.STALE, age_s=40)  # last data normal: keep
    stale2 = m(2, now=1, status=ModuleStatus.STALE, cell=(4, 3700), age_s=40)  # no raise
    out = d.step(1, [stale1, stale2])
    assert kinds(out) == [("raised", "module_stale", 1), ("raised", "module_stale", 2)]
    assert out[0].alarm.value == 40
    for t in range(2, 60):
        assert d.step(t, [stale1, stale2]) == []
    assert set(d.active) == {("cell_voltage_high", 1), ("module_stale", 1), ("module_stale", 2)}
    # module 1 offline now: stale clears, offline raises; the value alarm stays frozen
    off1 = dataclasses.replace(stale1, status=ModuleStatus.OFFLINE)
    assert kinds(d.step(60, [off1, stale2])) == [("raised", "module_offline", 1),
                                                 ("cleared", "module_stale", 1)]
    # both back with live data: the frozen alarm now clears on what the data says
    assert kinds(d.step(61, [m(1), m(2, cell=(4, 3700))])) == [
        ("raised", "cell_voltage_high", 2), ("cleared", "cell_voltage_high", 1),
        ("cleared", "module_offline", 1), ("cleared", "module_stale", 2)]


def test_a_bus_that_is_down_suppresses_its_modules_comm_alarms_and_data_age(alarm_bank):
    d = alarm_bank.Driver({"bus_down": NO_DELAY})
    m, bus = alarm_bank.module, alarm_bank.bus
    assert d.step(0, [m(1), m(2)]) == []
    down = [bus("b1", now=1, connected=False, cycle_age_s=100)]
    out = d.step(1, [m(1, status=ModuleStatus.STALE), m(2, status=ModuleStatus.STALE)],
                 buses=down)
    assert kinds(out) == [("raised", "bus_down", 0)]
    assert out[0].alarm.sub_index == 1 and out[0].alarm.text.startswith("port down: bus b1")
    for t in range(2, 200, 10):
        down = [bus("b1", now=t, connected=False, cycle_age_s=t)]
        assert d.step(t, [m(1, status=ModuleStatus.STALE), m(2, status=ModuleStatus.STALE)],
                      buses=down) == []
    assert kinds(d.step(300, [m(1, now=300), m(2, now=300)])) == [("cleared", "bus_down", 0)]


def test_comm_bus_and_data_age_clears_say_how_things_stand_now(alarm_bank):
    d = alarm_bank.Driver({"module_offline": NO_DELAY, "module_stale": NO_DELAY,
                           "bus_down": NO_DELAY})
    m, bus = alarm_bank.module, alarm_bank.bus
    d.step(0, [m(1)])
    d.step(1, [m(1, now=1, status=ModuleStatus.OFFLINE, age_s=95)])
    (t,) = d.step(2, [m(1, now=2, age_s=0.5)])
    assert (t.action, t.alarm.kind, t.alarm.value) == (CLEARED, "module_offline", 0)
    assert t.alarm.text == "module 1 answering again, data 0 s old (bus b1 adr 1)"
    d.step(3, [m(1, now=3)], buses=[bus(now=3, connected=False)])
    (t,) = d.step(4, [m(1, now=4)], buses=[bus(now=4)])
    assert (t.alarm.kind, t.alarm.text) == ("bus_down",
                                            "port up: bus b1 (socket://127.0.0.1:4001)")
    d.step(5, [m(1, now=5)], buses=[bus(now=5, cycle_age_s=0.5)])  # first cycle since
    d.step(75, [m(1, now=75)], buses=[bus(now=75, cycle_age_s=70)])
    (t,) = d.step(76, [m(1, now=76)], buses=[bus(now=76, cycle_age_s=2)])
    assert (t.alarm.kind, t.alarm.value, t.alarm.threshold) == ("data_age_high", 2, 30)
    assert t.alarm.text == "bus b1 poll age 2 s <= 30 s (limit 60 s - 30 s)"


def test_a_bms_clear_names_the_flag_and_a_disabled_rule_clears_without_a_value(alarm_bank):
    d = alarm_bank.Driver({"bms_fault": NO_DELAY, "cell_voltage_high": NO_DELAY})
    m = alarm_bank.module
    d.step(0, [m(3, bms=BmsStatus(faults=Fault.VOLTAGE_SENSOR), cell=(2, 3700))])
    out = {t.alarm.kind: t for t in d.step(1, [m(3)])}
    assert out["fault_voltage_sensor"].alarm.text == (
        "module 3 BMS fault ended: voltage sensor failure (ERR 1x)")
    d = alarm_bank.Driver({"cell_voltage_high": NO_DELAY})
    d.step(0, [m(3, cell=(2, 3700))])
    d.settings = AlarmsSettings.model_validate({"cell_voltage_high": {"enabled": False}})
    (t,) = d.step(1, [m(3, cell=(2, 3700))])
    assert (t.action, t.reason) == (CLEARED, "rule disabled")
    assert (t.alarm.value, t.alarm.threshold) == (None, None)  # never the raise's value
    assert t.alarm.text == "module 3 cell_voltage_high cleared: rule disabled"


def test_never_seen_modules_are_offline_after_the_start_grace(alarm_bank):
    d = alarm_bank.Driver({"never_seen_after_s": 60})
    m = alarm_bank.module
    assert d.step(0, [m(1), m(2, status=ModuleStatus.NEVER_SEEN)]) == []
    assert d.step(59, [m(1, now=59), m(2, status=ModuleStatus.NEVER_SEEN)]) == []
    (t,) = d.step(60, [m(1, now=60), m(2, status=ModuleStatus.NEVER_SEEN)])
    assert (t.alarm.kind, t.alarm.position, t.alarm.value) == ("module_offline", 2, None)
    assert t.alarm.text == "module 2 never answered (bus b1 adr 2)"


def test_data_age_of_a_bus_that_completes_no_cycle(alarm_bank):
    d = alarm_bank.Driver()
    m, bus = alarm_bank.module, alarm_bank.bus
    assert d.step(0, [m(1)], buses=[bus(now=0, cycle_age_s=59)]) == []
    (t,) = d.step(1, [m(1)], buses=[bus(now=1, cycle_age_s=61)])
    assert (t.alarm.kind, t.alarm.value, t.alarm.threshold) == ("data_age_high", 61, 60)
    assert kinds(d.step(2, [m(1)], buses=[bus(now=2, cycle_age_s=1)])) == [
        ("cleared", "data_age_high", 0)]


def test_duplicate_address_is_garbled_answers_on_one_module_of_a_clean_line(alarm_bank):
    d = alarm_bank.Driver({"duplicate_address": {"window_s": 30}})
    m = alarm_bank.module

    def bank(t: int, garbled_modules: set[int]):
        mods = []
        for p in (1, 2, 3):
            ok = 100 + (t if p not in garbled_modules else t // 4)
            bad = (t - t // 4) if p in garbled_modules else 0
            mods.append(m(p, now=t, counters=LinkCounters(frames_ok=ok, checksum_errors=bad)))
        return mods

    out = d.run(range(0, 31), lambda t: bank(t, {2}))
    assert kinds(out) == [("raised", "duplicate_address", 2)]
    a = out[0].alarm
    assert a.value >= 3 and a.threshold == 3 and "garbled" in a.text
    # the garbling stops: once the window holds no garbled answer, it clears
    frozen_bad = d.state.samples[2][-1].garbled  # the counters stop growing
    out = d.run(range(31, 80), lambda t: [
        m(p, now=t, counters=LinkCounters(frames_ok=200 + t,
                                          checksum_errors=frozen_bad if p == 2 else 0))
        for p in (1, 2, 3)])
    assert kinds(out) == [("cleared", "duplicate_address", 2)]
    # line noise (every module garbled) is not a duplicate address
    d2 = alarm_bank.Driver({"duplicate_address": {"window_s": 30}})
    assert d2.run(range(0, 60), lambda t: bank(t, {1, 2, 3})) == []


# ---------------------------------------------------------------------- BMS flags -----


def test_bms_flags_become_alarms_in_the_manuals_words(alarm_bank):
    d = alarm_bank.Driver()
    m = alarm_bank.module
    bms = BmsStatus(warnings=Condition.LOW_CAPACITY, protections=Condition.SHORT_CIRCUIT,
                    faults=Fault.SAMPLING_IC | Fault.VOLTAGE_SENSOR)
    out = d.step(0, [m(3, bms=bms)])
    got = {t.alarm.kind: t.alarm for t in out}
    assert set(got) == {"warn_low_capacity", "protect_short_circuit",
                        "fault_sampling_ic", "fault_voltage_sensor"}
    assert got["fault_sampling_ic"].text == (
        "module 3 BMS fault: sampling IC communication failure (ERR 6x)")
    assert got["fault_voltage_sensor"].text == "module 3 BMS fault: voltage sensor failure (ERR 1x)"
    assert got["warn_low_capacity"].text == "module 3 BMS warning: capacity is low"
    assert got["protect_short_circuit"].text == (
        "module 3 BMS protection: short circuit, reverse connection")
    assert {k: a.severity for k, a in got.items()} == {
        "warn_low_capacity": Severity.WARNING, "protect_short_circuit": Severity.CRITICAL,
        "fault_sampling_ic": Severity.CRITICAL, "fault_voltage_sensor": Severity.CRITICAL}
    # the flags go away: cleared after the groups' clear delays (10 s, 30 s)
    assert kinds(d.step(1, [m(3)])) == []
    assert sorted(kinds(d.step(11, [m(3)]))) == [
        ("cleared", "protect_short_circuit", 3), ("cleared", "warn_low_capacity", 3)]
    assert sorted(kinds(d.step(31, [m(3)]))) == [
        ("cleared", "fault_sampling_ic", 3), ("cleared", "fault_voltage_sensor", 3)]


def test_an_unknown_bms_bit_is_an_alarm_with_its_raw_position(alarm_bank):
    d = alarm_bank.Driver({"bms_unclassified": {"clear_delay_s": 0}})
    m = alarm_bank.module
    raw = (RawFlag(field="fault_state", bit=3), RawFlag(field="instruction_state", bit=7))
    out = d.step(0, [m(5, bms=BmsStatus(unclassified=raw))])
    assert [(t.alarm.kind, t.alarm.value, t.alarm.text) for t in out] == [
        ("bms_unclassified_flag", 3, "module 5 unclassified BMS flag fault_state bit 3"),
        ("bms_unclassified_flag", 7, "module 5 unclassified BMS flag instruction_state bit 7")]
    assert len(d.state.alarms) == 2  # two bits, two alarms: none dropped
    out = d.step(1, [m(5, bms=BmsStatus(unclassified=raw[1:]))])
    assert [(t.action, t.alarm.value) for t in out] == [(CLEARED, 3)]


def test_unknown_bits_of_state_fields_are_kept_but_raise_nothing(alarm_bank):
    d = alarm_bank.Driver({"bms_unclassified": {"clear_delay_s": 0}})
    m = alarm_bank.module
    state_bit = RawFlag(field="instruction_state", bit=3, alarm=False)  # healthy PACE 0x0E
    assert d.step(0, [m(5, bms=BmsStatus(unclassified=(state_bit,)))]) == []
    out = d.step(1, [m(5, bms=BmsStatus(unclassified=(state_bit,
                                                      RawFlag(field="fault_state", bit=7))))])
    assert [(t.alarm.kind, t.alarm.value) for t in out] == [("bms_unclassified_flag", 7)]


def test_bms_severity_can_be_set_per_kind(alarm_bank):
    d = alarm_bank.Driver({"bms_severity": {"fault_heater": "minor"}})
    (t,) = d.step(0, [alarm_bank.module(1, bms=BmsStatus(faults=Fault.HEATER))])
    assert t.alarm.severity is Severity.MINOR
    with pytest.raises(ValueError, match="not a BMS alarm kind: fault_heatr"):
        AlarmsSettings.model_validate({"bms_severity": {"fault_heatr": "minor"}})


# ------------------------------------------------------------------ damping -----------


def test_flapping_is_damped_by_holding_the_clear(alarm_bank):
    d = alarm_bank.Driver({"cell_voltage_high": NO_DELAY, "cell_spread_high": {"enabled": False},
                           "flap": {"max_raises": 3, "window_s": 600, "hold_s": 300}})
    m = alarm_bank.module
    # the cell hovers at the limit, crossing both levels every 10 s for 20 minutes
    out = d.run(range(0, 1200, 5), lambda t: [m(1, cell=(9, 3650 if t % 20 < 10 else 3400))])
    raises = [t for t in out if t.action is RAISED]
    # two free raise/clear pairs, then the third raise is flapping and held for 300 s of
    # calm that never come: 3 raises in 20 minutes instead of 60
    assert len(raises) == 3 and len(d.of(CLEARED)) == 2
    assert raises[2].alarm.text.endswith("(flapping)")
    # calm: it clears 300 s after the value last went below the clear level (t = 1190)
    out = d.run(range(1200, 1600, 5), lambda t: [m(1)])
    (cleared,) = out
    assert cleared.action is CLEARED and cleared.at == 1190 + 300


def test_an_alarm_storm_is_bounded_and_summarised(alarm_bank):
    d = alarm_bank.Driver({"cell_voltage_high": NO_DELAY,
                           "storm": {"max_individual": 3, "window_s": 60}})
    m = alarm_bank.module
    out = d.step(0, [m(p, cells=[3700] * 16) for p in range(1, 13)])
    announced = [t for t in out if t.notify]
    assert [(t.alarm.kind, t.alarm.position) for t in announced] == [
        ("cell_voltage_high", 1), ("cell_voltage_high", 2), ("cell_voltage_high", 3),
        ("alarm_storm", 0)]
    summary = announced[-1].alarm
    assert summary.value == 12 and summary.text == (
        "cell_voltage_high on 12 modules; see the alarm table")
    # every module's alarm is in the table all the same, numbered in order
    table = d.state.alarms
    assert len(table) == 13 and [a.seq for a in table] == list(range(1, 14))
    assert {a.position for a in table} == set(range(0, 13))
    # everything clears: only what was announced is announced as cleared
    out = d.step(1, [m(p) for p in range(1, 13)])
    assert len(out) == 13 and d.state.alarms == ()
    assert [(t.alarm.kind, t.alarm.position) for t in out if t.notify] == [
        ("cell_voltage_high", 1), ("cell_voltage_high", 2), ("cell_voltage_high", 3),
        ("alarm_storm", 0)]
    assert d.state.last_seq == 26


def test_a_storm_spread_over_a_poll_cycle_is_bounded_too(alarm_bank):
    """The poller publishes after each module: the crossings arrive one by one."""
    d = alarm_bank.Driver({"module_stale": NO_DELAY})
    m = alarm_bank.module
    mods = {p: m(p) for p in range(1, 13)}
    announced = []
    for p in range(1, 13):
        mods[p] = m(p, status=ModuleStatus.STALE, age_s=31)
        announced += [t for t in d.step(p * 0.3, mods.values()) if t.notify]
    assert len(announced) == 4 and announced[-1].alarm.kind == "alarm_storm"
    assert d.state.trackers[("alarm_storm", 0, "module_stale")].alarm.value == 12


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(3300, 3800), min_size=1, max_size=80),
       st.lists(st.floats(0.1, 30), min_size=80, max_size=80))
def test_invariants_for_any_value_sequence(alarm_bank, values, gaps):
    """Raises and clears alternate, numbers only grow, nothing is raised unless the value
    reached the raise level for the whole raise delay, nothing cleared unless it sat at
    or below the clear level for the whole clear delay (or the flap hold)."""
    module, snapshot = alarm_bank.module, alarm_bank.snapshot
    settings_ = AlarmsSettings.model_validate({
        "cell_voltage_high": {"raise_delay_s": 5, "clear_delay_s": 10},
        "cell_spread_high": {"enabled": False}})
    d_state = rules.AlarmState()
    now, seen, active, last = 0.0, [], False, 0
    for v, gap in zip(values, gaps):
        now += gap
        out = rules.evaluate(d_state, snapshot([module(1, cell=(2, v), now=now)], now), now,
                             settings_)
        d_state = out.state
        seen.append((now, v))
        for t in out.transitions:
            assert t.alarm.kind == "cell_voltage_high"
            seq = t.alarm.seq if t.action is RAISED else t.clear_seq
            assert seq == last + 1
            last = seq
            if t.action is RAISED:
                assert not active
                held = [x for tt, x in seen if tt >= now - 5]
                assert t.alarm.value >= 3600 and all(x >= 3600 for x in held)
                # the sample that started the delay is at least 5 s back
                assert any(tt <= now - 5 for tt, _ in seen)
                active = True
            else:
                assert active and t.action is CLEARED
                assert v <= 3450
                active = False
    assert (d_state.alarms != ()) == active


# --------------------------------------------------------- configuration changes -------


def test_a_disabled_rule_clears_its_alarms_at_once(alarm_bank):
    d = alarm_bank.Driver({"cell_voltage_high": NO_DELAY})
    m = alarm_bank.module
    d.step(0, [m(1, cell=(1, 3700))])
    d.settings = AlarmsSettings.model_validate({"cell_voltage_high": {"enabled": False}})
    (t,) = d.step(1, [m(1, cell=(1, 3700))])
    assert (t.action, t.reason) == (CLEARED, "rule disabled")


def test_new_levels_apply_to_active_alarms(alarm_bank):
    d = alarm_bank.Driver({"cell_voltage_high": NO_DELAY})
    m = alarm_bank.module
    d.step(0, [m(1, cell=(1, 3620))])
    d.settings = AlarmsSettings.model_validate(
        {"cell_voltage_high": {**NO_DELAY, "raise_v": 3.70, "clear_v": 3.65}})
    assert kinds(d.step(1, [m(1, cell=(1, 3620))])) == [("cleared", "cell_voltage_high", 1)]


def test_a_module_that_left_the_bank_clears_after_the_grace(alarm_bank):
    d = alarm_bank.Driver({"cell_voltage_high": NO_DELAY, "removed_after_s": 60})
    m = alarm_bank.module
    d.step(0, [m(1), m(2, cell=(1, 3700))])
    assert d.step(0.5, []) == []  # nothing published yet (a restart): wait
    assert d.step(1, [m(1)]) == [] and d.step(60.9, [m(1)]) == []
    (t,) = d.step(61, [m(1)])
    assert (t.action, t.alarm.position, t.reason) == (
        CLEARED, 2, "module removed from the configuration")


def test_kind_names_fit_the_mib():
    assert all(len(k) <= catalog.MAX_KIND for k in catalog.KINDS)
    assert len(catalog.KINDS) == len(set(catalog.KINDS))
    # every BMS flag has a kind: nothing the model can report is dropped
    assert {catalog.warning_kind(c) for c in Condition if c.value} <= set(catalog.KINDS)
    assert {catalog.fault_kind(f) for f in Fault if f.value} <= set(catalog.KINDS)


def test_texts_fit_even_for_the_longest_names(alarm_bank):
    d = alarm_bank.Driver({k: NO_DELAY for k in catalog.THRESHOLDS})
    m = alarm_bank.module
    bms = BmsStatus(warnings=Condition(2**16 - 1), protections=Condition(2**16 - 1),
                    faults=Fault(2**11 - 1),
                    unclassified=(RawFlag(field="x" * 12, bit=15),))
    bus_name = "b" * 32
    mods = [m(255, bus=bus_name, address=254, cells=[4999] * 16, bms=bms, voltage_mv=79_000,
              current_ma=-900_000, temps=(990, 990, 990, 990, 990, 990), soc=0, soh=0)]
    d.step(0, mods, buses=[alarm_bank.bus(bus_name, now=0, cycle_age_s=99_999)])
    texts = [a.text for a in d.state.alarms]
    assert len(texts) > 40
    assert max(len(t.encode()) for t in texts) <= catalog.MAX_TEXT, max(texts, key=len)


def test_a_bus_coming_back_keeps_comm_alarms_frozen_until_each_module_is_polled(alarm_bank):
    """Issue 13: at a recovery every module not yet polled again is stale for a moment;
    that must not raise and clear module_stale for each (a trap storm)."""
    d = alarm_bank.Driver()  # the shipped delays: bus_down 5 s, module_stale none
    m, bus = alarm_bank.module, alarm_bank.bus
    before = dataclasses.replace(LinkCounters(), frames_ok=100)
    after = dataclasses.replace(LinkCounters(), frames_ok=102)
    modules = range(1, 13)
    assert d.step(0, [m(p, counters=before) for p in modules]) == []
    for t in range(1, 120, 2):  # a long outage: the last data gets older than stale_after
        down = [bus("b1", now=t, connected=False, cycle_age_s=t)]
        d.step(t, [m(p, now=t, status=ModuleStatus.STALE, age_s=t, counters=before)
                   for p in modules], buses=down)
    assert kinds(d.transitions) == [("raised", "bus_down", 0)]
    # the port is back; the poller works through the modules, one every 0.1 s
    for i in range(13):
        t = 120 + i * 0.1
        polled = set(range(1, i + 1))
        d.step(t, [m(p, now=t, counters=after) if p in polled
                   else m(p, now=t, status=ModuleStatus.STALE, age_s=t, counters=before)
                   for p in modules], buses=[bus("b1", now=t, cycle_age_s=t)])
    for t in (125.2, 130.0):  # bus_down's clear delay, and the first cycle ended
        d.step(t, [m(p, now=t, counters=after) for p in modules],
               buses=[bus("b1", now=t, cycle_age_s=0.1)])
    assert kinds(d.transitions) == [("raised", "bus_down", 0), ("cleared", "bus_down", 0)]


def test_after_a_recovery_a_polled_module_that_does_not_answer_raises_its_alarm(alarm_bank):
    d = alarm_bank.Driver({"bus_down": NO_DELAY})
    m, bus = alarm_bank.module, alarm_bank.bus
    before = dataclasses.replace(LinkCounters(), frames_ok=100)
    polled = dataclasses.replace(before, timeouts=2)  # its turn came: two timeouts
    d.step(0, [m(1, counters=before), m(2, counters=before)])
    down = [bus("b1", now=60, connected=False, cycle_age_s=60)]
    stale = dict(status=ModuleStatus.STALE, age_s=60)
    d.step(60, [m(1, now=60, counters=before, **stale), m(2, now=60, counters=before, **stale)],
           buses=down)
    up = [bus("b1", now=61, cycle_age_s=61)]
    assert kinds(d.step(61, [m(1, now=61, counters=before, **stale),
                             m(2, now=61, counters=before, **stale)], buses=up)) == [
        ("cleared", "bus_down", 0)]
    # module 1 had its turn and did not answer: stale; module 2 still waits for its turn
    assert kinds(d.step(62, [m(1, now=62, counters=polled, **stale),
                             m(2, now=62, counters=before, **stale)], buses=up)) == [
        ("raised", "module_stale", 1)]
    # the bus's data age counts from the port's return, not from the last cycle before
    assert ("data_age_high", 0) not in d.active


def test_data_age_after_a_recovery_counts_from_the_ports_return(alarm_bank):
    d = alarm_bank.Driver({"bus_down": NO_DELAY, "data_age_high": NO_DELAY})
    m, bus = alarm_bank.module, alarm_bank.bus
    d.step(0, [m(1)])
    d.step(1, [m(1, now=1)], buses=[bus(now=1, connected=False, cycle_age_s=1)])
    d.step(200, [m(1, now=200)], buses=[bus(now=200, cycle_age_s=200)])  # back at 200
    assert ("data_age_high", 0) not in d.active
    # no cycle ends for the limit (60 s) after the return: now the age is real
    d.step(261, [m(1, now=261)], buses=[bus(now=261, cycle_age_s=261)])
    assert ("data_age_high", 0) in d.active


# ------------------------------------------------------------------ memo and window ---


STEP = st.tuples(
    st.integers(1, 4),  # the module that changes
    st.sampled_from([ModuleStatus.OK, ModuleStatus.OK, ModuleStatus.STALE,
                     ModuleStatus.OFFLINE]),
    st.integers(3300, 3700),  # one cell
    st.integers(0, 3),  # garbled answers added
    st.floats(0.1, 40.0),  # time to the next snapshot
    st.booleans())  # the bus is up


@settings(max_examples=60)
@given(st.lists(STEP, min_size=1, max_size=40))
def test_the_observation_memo_changes_nothing(alarm_bank, steps):
    """The rules remember each module's observations while what they are made from stays
    the same (rules._MEMO): every snapshot observed again with the memo emptied gives
    the same observations and the same keys at the raise level."""
    settings_ = AlarmsSettings.model_validate({
        "duplicate_address": {"window_s": 30, "min_garbled": 2},
        "module_stale": NO_DELAY, "module_offline": NO_DELAY,
        "cell_voltage_high": {"raise_v": 3.6, "clear_v": 3.5, **NO_DELAY}})
    m = alarm_bank.module
    compared = []

    class Twice(rules._Observer):
        def run(self):
            warm, warm_raising = dict(super().run()), set(self.raising)
            rules._MEMO.clear()
            self.obs, self.raising = {}, set()
            cold = super().run()
            assert warm == cold
            assert warm_raising == self.raising == {
                k for k, o in cold.items() if o.level is rules.Level.RAISE}
            compared.append(len(cold))
            return cold

    d = alarm_bank.Driver(settings_)
    mods = {p: m(p, now=0.0) for p in range(1, 5)}
    ok = dict.fromkeys(mods, 100)
    bad = dict.fromkeys(mods, 0)
    t = 0.0
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rules, "_Observer", Twice)
        for p, status, cell, garbled, dt, up in steps:
            t += dt
            ok = {q: n + 1 for q, n in ok.items()}
            bad[p] += garbled
            mods = {q: m(q, now=t, status=status if q == p else mods[q].status,
                         cell=(3, cell) if q == p else None, age_s=dt,
                         counters=LinkCounters(frames_ok=ok[q], checksum_errors=bad[q]))
                    for q in mods}
            d.step(t, mods.values(), buses=[alarm_bank.bus(now=t, connected=up)])
    assert len(compared) == len(steps) and all(compared)


@given(st.lists(st.tuples(st.floats(0, 5), st.integers(0, 3)), max_size=30),
       st.floats(-10, 200))
def test_the_window_base_is_the_newest_sample_at_or_before_the_start(gaps, start):
    """The bisection (samples come in the hub's monotonic time) finds what a scan from
    the oldest sample finds."""
    samples, t = [], 0.0
    for gap, n in gaps:
        t += gap
        samples.append(rules.Sample(t, n, n))
    samples = tuple(samples)
    scanned = 0
    for i, s in enumerate(samples):
        if s.t <= start:
            scanned = i
    assert rules._window_base(samples, start) == scanned
