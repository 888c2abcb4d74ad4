"""The LED view (gateway/leds.py): every case of the module manual's LED and buzzer
tables ("LED indicator definition of BMS module", "How to judge LED and buzzer when BMS
fails"), with an injected clock for the flashes and for staleness."""

from __future__ import annotations

import pytest

from gateway.leds import (
    FAULT_CODES,
    LedState,
    Mode,
    derive_leds,
    fault_code_bits,
    lit_at,
    make_led_view,
    soc_leds,
)
from gateway.model import (
    BmsStatus,
    Condition,
    Fault,
    ModuleReading,
    ModuleStatus,
    State,
    Telemetry,
)

OFF, ON, SLOW, FAST, HZ1 = (LedState.OFF, LedState.STEADY, LedState.SLOW_FLASH,
                            LedState.FAST_FLASH, LedState.FLASH_1HZ)


def telemetry(current_ma=0, soc_permille=600, cells=(3300,) * 16):
    return Telemetry(cell_mv=cells, current_ma=current_ma, soc_permille=soc_permille)


# ------------------------------------------------ RUN (green): running lights -------

@pytest.mark.parametrize("current_ma,states,mode,run", [
    (0, State.NONE, Mode.IDLE, ON),  # 1. idle: the green light is always on
    (5_000, State.NONE, Mode.CHARGING, SLOW),  # 2. charging: flashes slowly
    (-5_000, State.NONE, Mode.DISCHARGING, FAST),  # 3. discharge: flashes quickly
    (0, State.FULLY_CHARGED, Mode.FULL, ON),  # 4. fully charged: always on
    (80, State.NONE, Mode.IDLE, ON),  # within the idle band
    (-80, State.NONE, Mode.IDLE, ON),
    (0, State.CHARGING, Mode.CHARGING, SLOW),  # the BMS's own state wins over the current
    (0, State.DISCHARGING, Mode.DISCHARGING, FAST),
])
def test_run_light(current_ma, states, mode, run):
    v = derive_leds(telemetry(current_ma), BmsStatus(states=states))
    assert (v.mode, v.run) == (mode, run)
    assert (v.alm, v.err) == (OFF, OFF)  # normal operation: only the green light


def test_fully_charged_lights_all_four_capacity_lights():
    v = derive_leds(telemetry(0, soc_permille=990), BmsStatus(states=State.FULLY_CHARGED))
    assert v.soc == (ON, ON, ON, ON)


def test_run_is_unknown_without_current_or_state():
    v = derive_leds(Telemetry(soc_permille=500), BmsStatus())
    assert v.run is None and v.mode is None


# -------------------------------------------- ALM: warning and protection -----------

#: the manual's warning list: cell voltage too low, discharge current, temperature too
#: low, temperature too high, capacity low, pack voltage too high
WARNINGS = [Condition.CELL_UNDER_VOLTAGE, Condition.DISCHARGE_OVER_CURRENT,
            Condition.DISCHARGE_LOW_TEMP, Condition.CHARGE_LOW_TEMP,
            Condition.CHARGE_HIGH_TEMP, Condition.DISCHARGE_HIGH_TEMP, Condition.LOW_CAPACITY,
            Condition.PACK_OVER_VOLTAGE]
#: the manual's protection list: battery voltage too low, cell voltage too low, charge
#: and discharge overcurrent, temperature too low, pack voltage too high
PROTECTIONS = [Condition.PACK_UNDER_VOLTAGE, Condition.CELL_UNDER_VOLTAGE,
               Condition.CHARGE_OVER_CURRENT, Condition.DISCHARGE_OVER_CURRENT,
               Condition.CHARGE_LOW_TEMP, Condition.DISCHARGE_LOW_TEMP,
               Condition.PACK_OVER_VOLTAGE]


@pytest.mark.parametrize("warning", WARNINGS, ids=lambda c: c.name)
def test_a_warning_flashes_alm_yellow_at_1hz(warning):
    v = derive_leds(telemetry(), BmsStatus(warnings=warning))
    assert (v.alm, v.alm_colour, v.err) == (HZ1, "yellow", OFF)


@pytest.mark.parametrize("protection", PROTECTIONS, ids=lambda c: c.name)
def test_a_protection_turns_alm_orange_and_steady(protection):
    v = derive_leds(telemetry(), BmsStatus(protections=protection))
    assert (v.alm, v.alm_colour, v.err) == (ON, "orange", OFF)


def test_a_protection_wins_over_a_warning():
    v = derive_leds(telemetry(), BmsStatus(warnings=Condition.LOW_CAPACITY,
                                           protections=Condition.CELL_UNDER_VOLTAGE))
    assert v.alm is ON


# ----------------------------------------------------- ERR (red): faults ------------

@pytest.mark.parametrize("fault,code", [
    (Fault.VOLTAGE_SENSOR, 1), (Fault.TEMPERATURE_SENSOR, 2), (Fault.CHARGE_CIRCUIT, 3),
    (Fault.DISCHARGE_CIRCUIT, 4), (Fault.BATTERY, 5), (Fault.SAMPLING_IC, 6),
], ids=lambda x: getattr(x, "name", str(x)))
def test_a_fault_lights_err_and_flashes_its_code(fault, code):
    v = derive_leds(telemetry(), BmsStatus(faults=fault))
    assert (v.err, v.fault_codes) == (ON, (code,))
    assert fault_code_bits(v.fault_codes) == 1 << (code - 1)


def test_several_faults_are_shown_in_turn_ascending():
    v = derive_leds(telemetry(), BmsStatus(faults=Fault.SAMPLING_IC | Fault.VOLTAGE_SENSOR
                                           | Fault.BATTERY))
    assert v.fault_codes == (1, 5, 6) and fault_code_bits(v.fault_codes) == 0b110001


@pytest.mark.parametrize("bms,cells", [
    (BmsStatus(protections=Condition.SHORT_CIRCUIT), (3300,) * 16),  # short circuit
    (BmsStatus(faults=Fault.REVERSE_CONNECTION), (3300,) * 16),  # reverse connection
    (BmsStatus(), (3300,) * 15 + (1499,)),  # cell failure: below 1.5 V
    (BmsStatus(), (4101,) + (3300,) * 15),  # cell failure: above 4.1 V
    (BmsStatus(faults=Fault.CURRENT_SENSOR), (3300,) * 16),  # abnormal current (BMS failure)
], ids=["short", "reverse", "cell-low", "cell-high", "current-sensor"])
def test_red_light_always_on_without_a_flash_code(bms, cells):
    v = derive_leds(telemetry(cells=cells), bms)
    assert v.err is ON and v.fault_codes == ()


def test_cells_at_the_failure_limits_are_not_a_failure():
    v = derive_leds(telemetry(cells=(1500, 4100) + (3300,) * 14), BmsStatus())
    assert v.err is OFF


def test_every_numbered_fault_has_its_manual_code():
    assert sorted(FAULT_CODES.values()) == [1, 2, 3, 4, 5, 6]


# ---------------------------------------------------------------- buzzer ------------

@pytest.mark.parametrize("bms,beeps", [
    (BmsStatus(faults=Fault.REVERSE_CONNECTION | Fault.BATTERY), 4),  # highest priority
    (BmsStatus(protections=Condition.SHORT_CIRCUIT, faults=Fault.CHARGE_CIRCUIT), 4),
    (BmsStatus(faults=Fault.BATTERY | Fault.VOLTAGE_SENSOR), 3),
    (BmsStatus(faults=Fault.VOLTAGE_SENSOR), 2),
    (BmsStatus(faults=Fault.TEMPERATURE_SENSOR | Fault.DISCHARGE_CIRCUIT), 2),
    (BmsStatus(faults=Fault.CHARGE_CIRCUIT), 1),
    (BmsStatus(faults=Fault.DISCHARGE_CIRCUIT), 1),  # lowest priority
    (BmsStatus(warnings=Condition.LOW_CAPACITY), 0),
])
def test_buzzer_sounds_the_highest_priority_failure(bms, beeps):
    assert derive_leds(telemetry(), bms).buzzer_beeps == beeps


# ------------------------------------------------------- SOC capacity lights --------

@pytest.mark.parametrize("soc_permille,charging,expected", [
    (1000, False, (ON, ON, ON, ON)),  # 100 %: all four on
    (1000, True, (ON, ON, ON, ON)),
    (999, True, (ON, ON, ON, SLOW)),  # 99.9 % is 99 %
    (990, True, (ON, ON, ON, SLOW)),  # 99-75 %: the fourth flashes, three below steady
    (750, True, (ON, ON, ON, SLOW)),
    (749, True, (ON, ON, SLOW, OFF)),  # 74-50 %
    (500, True, (ON, ON, SLOW, OFF)),
    (490, True, (ON, SLOW, OFF, OFF)),  # 49-25 %
    (250, True, (ON, SLOW, OFF, OFF)),
    (240, True, (SLOW, OFF, OFF, OFF)),  # 24-0 %
    (0, True, (SLOW, OFF, OFF, OFF)),
    (990, False, (ON, ON, ON, ON)),  # not charging: the lit lights are steady
    (600, False, (ON, ON, ON, OFF)),
    (300, False, (ON, ON, OFF, OFF)),
    (100, False, (ON, OFF, OFF, OFF)),
    (0, False, (ON, OFF, OFF, OFF)),
])
def test_capacity_bands(soc_permille, charging, expected):
    mode = Mode.CHARGING if charging else Mode.DISCHARGING
    assert soc_leds(soc_permille, mode) == expected
    v = derive_leds(telemetry(5_000 if charging else -5_000, soc_permille), BmsStatus())
    assert v.soc == expected


def test_soc_is_unknown_without_a_state_of_charge():
    assert derive_leds(telemetry(soc_permille=None), BmsStatus()).soc is None


# ------------------------------------------------- flashes on the injected clock ----

@pytest.mark.parametrize("state,times,lit", [
    (HZ1, (0.0, 0.25, 0.5, 0.75, 1.0, 1.49), (True, True, False, False, True, True)),
    (SLOW, (0.0, 0.99, 1.0, 1.99, 2.0), (True, True, False, False, True)),  # 0.5 Hz
    (FAST, (0.0, 0.2, 0.25, 0.49, 0.5), (True, True, False, False, True)),
    (ON, (0.0, 0.7, 123.4), (True, True, True)),
    (OFF, (0.0, 0.7), (False, False)),
])
def test_flash_phases(clock, state, times, lit):
    seen = []
    start = clock.now
    for t in times:
        clock.now = start + t
        seen.append(lit_at(state, clock.now - start))
    assert tuple(seen) == lit
    assert lit_at(None, 0.0) is None


def test_a_module_whose_data_is_not_live_has_no_led_view(clock):
    m = ModuleReading(bus="b", address=3, position=3, status=ModuleStatus.OK,
                      updated_at=clock.now, stale_after_s=30,
                      telemetry=telemetry(), bms=BmsStatus(faults=Fault.SAMPLING_IC))
    assert make_led_view(m, clock.now).fault_codes == (6,)
    clock.advance(31)  # outlived its stale age: the lights are unknown, not off
    assert make_led_view(m, clock.now) is None
    for status in (ModuleStatus.STALE, ModuleStatus.OFFLINE, ModuleStatus.NEVER_SEEN):
        m2 = ModuleReading(bus="b", address=3, position=3, status=status,
                           telemetry=telemetry(), bms=BmsStatus())
        assert make_led_view(m2, clock.now) is None
