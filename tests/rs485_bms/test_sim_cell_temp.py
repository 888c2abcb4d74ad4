"""The simulator's ``cell_temp`` fault: the cell sensors of the packs it names read its
temperature, in every family's layout (a cold or a hot bank for the charge limits)."""

from __future__ import annotations

import pytest

from gateway.model import TempRole

from plugins.rs485_bms.poller.dialect import make_dialect
from plugins.rs485_bms.protocol import parse_frame
from plugins.rs485_bms.sim.scenario import Scenario
from plugins.rs485_bms.sim.simulator import BankSimulator


def telemetry(family: str, steps, t: float = 5.0):
    sim = BankSimulator(family=family, addresses=[1, 2, 3],
                        scenario=Scenario.model_validate({"steps": steps}), clock=lambda: 0.0)
    d = make_dialect(family)
    out = []
    for adr in (1, 2, 3):  # each pack at its own address (Seplos has no all-packs form)
        request = d.request(0x42, adr)
        (emission,) = sim.respond(request, t)
        (one,) = d.telemetry(d.decode(request, parse_frame(emission.data)))
        out.append(one)
    return out


@pytest.mark.parametrize("family", ["pace_v25", "pylontech", "seplos_v2"])
def test_cell_sensors_read_the_step_temperature(family):
    packs = telemetry(family, [{"packs": [2], "fault": "cell_temp", "degc": 2}])
    cells = [[dc for dc, role in zip(t.temp_dc, t.temp_roles) if role is TempRole.CELL]
             for t in packs]
    assert cells[1] and set(cells[1]) == {20}
    assert all(dc > 100 for dc in cells[0] + cells[2])  # the others stay warm
    others = [dc for dc, role in zip(packs[1].temp_dc, packs[1].temp_roles)
              if role is not TempRole.CELL]
    assert all(dc > 100 for dc in others)  # MOSFET and ambient sensors untouched


def test_outside_its_window_the_fault_is_gone():
    packs = telemetry("pace_v25", [{"at_s": 10, "fault": "cell_temp", "degc": -15}], t=5.0)
    assert all(dc > 100 for t in packs for dc in t.temp_dc)


def test_degc_is_range_checked():
    with pytest.raises(ValueError, match="degc"):
        Scenario.model_validate({"steps": [{"fault": "cell_temp", "degc": -80}]})
