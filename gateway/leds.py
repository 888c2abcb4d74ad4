"""The LED view: what a module's front-panel lights show, derived from its reading.

The module manual ("LED indicator definition of BMS module", "How to judge LED and
buzzer when BMS fails") defines seven lights and a buzzer:

* **RUN** (green): steady while idle, slow flash while charging, fast flash while
  discharging; steady when fully charged (then all four SOC lights are on).
* **ALM** (yellow/orange): a *warning* flashes it yellow at 1 Hz; a *protection* turns
  it orange and steady. A protection wins over a warning (one light cannot do both).
* **ERR** (red): steady on a fault, on a short circuit / reverse connection, and on a
  cell failure (a cell below 1.5 V or above 4.1 V). After RESET is pressed it flashes
  each fault's code in turn: voltage sensor 1, temperature sensor 2, charging circuit 3,
  discharging circuit 4, battery 5, sampling IC communication 6 (:data:`FAULT_CODES`).
* **SOC 1-4** (green, SOC1 the lowest band): 100 % all four steady; 75-99 % four lit,
  24-0 % one lit, every 25 % band one light more; while charging the highest lit light
  flashes slowly (0.5 Hz), otherwise all lit lights are steady. The manual counts the
  flashing light "from the top"; the lights it keeps steady are "the bottom" ones, so
  the flashing one is the highest lit light, numbered here from the bottom.
* **Buzzer** (a 15 s period): beeps 4 times for a reverse connection / short circuit,
  3 for a battery failure, 2 for a voltage or temperature sensor failure, 1 for a
  charging or discharging circuit failure; only the highest priority sounds.

This module is the one place the view is derived; the SNMP agent, the Modbus server and
the HTTP page all serve it. It is pure: the caller decides whether a reading is live
(:func:`make_led_view` takes the decision from the reading's status at ``now``; the
SNMP and Modbus maps call :func:`derive_leds` where their own live rule holds). A module
whose data is not live has no LED view: its lights are unknown, never "off".

Numbers of :class:`LedState` are part of the public contracts (MIB ``BmsLedState``,
Modbus ``led_*`` registers): never renumber.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gateway.model import (
    BmsStatus,
    Condition,
    Fault,
    ModuleReading,
    ModuleStatus,
    State,
    Telemetry,
)


class LedState(enum.IntEnum):
    """What one light does. Colours are fixed per light, except ALM: flashing yellow
    (warning) or steady orange (protection)."""

    OFF = 1
    STEADY = 2
    SLOW_FLASH = 3  #: RUN while charging; a SOC light while charging (0.5 Hz)
    FAST_FLASH = 4  #: RUN while discharging
    FLASH_1HZ = 5  #: ALM on a warning (yellow)


#: Flash periods in seconds (lit for the first half of each period). The manual gives
#: 1 Hz (ALM) and 0.5 Hz (SOC, "flashes slowly"); for RUN it says only "slowly" and
#: "quickly", shown here as 0.5 Hz and 2 Hz.
PERIOD_S: dict[LedState, float] = {
    LedState.SLOW_FLASH: 2.0,
    LedState.FAST_FLASH: 0.5,
    LedState.FLASH_1HZ: 1.0,
}

#: The ERR light's flash count per fault, as the manual lists it.
FAULT_CODES: dict[Fault, int] = {
    Fault.VOLTAGE_SENSOR: 1,
    Fault.TEMPERATURE_SENSOR: 2,
    Fault.CHARGE_CIRCUIT: 3,
    Fault.DISCHARGE_CIRCUIT: 4,
    Fault.BATTERY: 5,
    Fault.SAMPLING_IC: 6,
}

#: What each flash count means, in the manual's words.
FAULT_CODE_TEXT: dict[int, str] = {
    1: "voltage sensor failure",
    2: "temperature sensor failure",
    3: "charging circuit failure",
    4: "discharge circuit failure",
    5: "battery failure",
    6: "sampling IC communication failure",
}

#: Cell voltages outside this range are a cell failure: ERR steady (the manual's
#: "cell voltage is less than 1.5V, or greater than 4.1V").
CELL_FAILURE_BELOW_MV = 1500
CELL_FAILURE_ABOVE_MV = 4100

#: Without a charging/discharging state from the BMS, the current decides; within this
#: band around 0 the module counts as idle (the manual gives no figure: this is ours).
IDLE_CURRENT_MA = 100


class Mode(enum.Enum):
    """What the RUN light reports."""

    IDLE = "idle"
    CHARGING = "charging"
    DISCHARGING = "discharging"
    FULL = "fully_charged"


@dataclass(frozen=True, slots=True, kw_only=True)
class LedView:
    """The lights of one module. ``None`` for a light means its input is unknown (RUN
    without a current or state, SOC without a state of charge)."""

    run: LedState | None
    alm: LedState
    err: LedState
    soc: tuple[LedState, LedState, LedState, LedState] | None  #: SOC1 (lowest) .. SOC4
    mode: Mode | None
    #: flash counts the ERR light shows in turn after RESET, ascending
    fault_codes: tuple[int, ...] = ()
    buzzer_beeps: int = 0  #: beeps per 15 s period, 0 = silent

    @property
    def alm_colour(self) -> str | None:
        return {LedState.STEADY: "orange", LedState.FLASH_1HZ: "yellow"}.get(self.alm)


def lit_at(state: LedState | None, t: float) -> bool | None:
    """Whether a light in ``state`` is lit at time ``t`` (seconds on any clock; flashes
    are lit for the first half of their period, counted from t = 0)."""
    if state is None:
        return None
    if state is LedState.OFF:
        return False
    if state is LedState.STEADY:
        return True
    period = PERIOD_S[state]
    return (t % period) < period / 2


def _mode(t: Telemetry | None, b: BmsStatus | None) -> Mode | None:
    states = b.states if b is not None else State.NONE
    if State.FULLY_CHARGED in states:
        return Mode.FULL
    if State.CHARGING in states:
        return Mode.CHARGING
    if State.DISCHARGING in states:
        return Mode.DISCHARGING
    current = t.current_ma if t is not None else None
    if current is None:
        return None
    if current > IDLE_CURRENT_MA:
        return Mode.CHARGING
    if current < -IDLE_CURRENT_MA:
        return Mode.DISCHARGING
    return Mode.IDLE


_RUN = {Mode.IDLE: LedState.STEADY, Mode.FULL: LedState.STEADY,
        Mode.CHARGING: LedState.SLOW_FLASH, Mode.DISCHARGING: LedState.FAST_FLASH}


def soc_leds(soc_permille: int | None, mode: Mode | None
             ) -> tuple[LedState, LedState, LedState, LedState] | None:
    """The four SOC lights for a state of charge (whole percent, rounded down: 99.9 %
    is in the 75-99 % band; only 100 % lights all four steady)."""
    if mode is Mode.FULL:
        return (LedState.STEADY,) * 4
    if soc_permille is None:
        return None
    percent = max(0, min(100, soc_permille // 10))
    if percent == 100:
        return (LedState.STEADY,) * 4
    lit = percent // 25 + 1  # 0-24: 1, 25-49: 2, 50-74: 3, 75-99: 4
    top = LedState.SLOW_FLASH if mode is Mode.CHARGING else LedState.STEADY
    out = [LedState.STEADY] * (lit - 1) + [top] + [LedState.OFF] * (4 - lit)
    return (out[0], out[1], out[2], out[3])


def _buzzer(faults: Fault, protections: Condition) -> int:
    if Fault.REVERSE_CONNECTION in faults or Condition.SHORT_CIRCUIT in protections:
        return 4
    if Fault.BATTERY in faults:
        return 3
    if faults & (Fault.VOLTAGE_SENSOR | Fault.TEMPERATURE_SENSOR):
        return 2
    if faults & (Fault.CHARGE_CIRCUIT | Fault.DISCHARGE_CIRCUIT):
        return 1
    return 0


def derive_leds(telemetry: Telemetry | None, bms: BmsStatus | None) -> LedView:
    """The lights for a module's live telemetry and BMS status (either may be None)."""
    b = bms if bms is not None else BmsStatus()
    mode = _mode(telemetry, bms)
    cells = [v for v in (telemetry.cell_mv if telemetry is not None else ()) if v is not None]
    cell_failure = any(v < CELL_FAILURE_BELOW_MV or v > CELL_FAILURE_ABOVE_MV for v in cells)
    short = Condition.SHORT_CIRCUIT in b.protections
    err = LedState.STEADY if (b.faults or short or cell_failure) else LedState.OFF
    if b.protections:
        alm = LedState.STEADY
    elif b.warnings:
        alm = LedState.FLASH_1HZ
    else:
        alm = LedState.OFF
    codes = tuple(sorted(code for fault, code in FAULT_CODES.items() if fault in b.faults))
    return LedView(
        run=None if mode is None else _RUN[mode],
        alm=alm,
        err=err,
        soc=soc_leds(telemetry.soc_permille if telemetry is not None else None, mode),
        mode=mode,
        fault_codes=codes,
        buzzer_beeps=_buzzer(b.faults, b.protections),
    )


def fault_code_bits(codes: tuple[int, ...]) -> int:
    """The flash counts as a bit mask: bit n set = code n + 1 (Modbus ``led_err_codes``)."""
    return sum(1 << (c - 1) for c in codes)


def make_led_view(reading: ModuleReading, now: float) -> LedView | None:
    """The lights of ``reading`` at monotonic time ``now``; None unless its data is live
    then (a stale, offline or never-seen module's lights are unknown)."""
    if reading.status_at(now) is not ModuleStatus.OK:
        return None
    if reading.telemetry is None and reading.bms is None:
        return None
    return derive_leds(reading.telemetry, reading.bms)
