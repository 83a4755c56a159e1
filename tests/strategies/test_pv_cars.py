"""`pv` with cars that take less than the charger offers: on fewer phases, or fewer amps."""

from __future__ import annotations

import pytest

from controller.core.state import SiteLimits
from controller.simulation.engine import SimSettings, simulate_trace
from controller.simulation.trace import parse_text

T0 = 1_464_775_200.0  # 2016-06-01T10:00:00Z
LIMITS = SiteLimits(voltage_v=230.0, main_fuse_a=25.0, min_current_a=6.0, max_current_a=16.0)


@pytest.mark.parametrize("strategy", ["pv", "minpv"])
def test_a_one_phase_car_gets_the_surplus_on_its_phase(strategy: str) -> None:
    """6 kW of surplus for two hours. Sized for three phases the car would be offered 8.7 A, which on
    its one phase is 2 kW; once its currents show it draws on L1 alone, it gets the 16 A (3.7 kW) one
    phase can take, and no more phase switches, which would only interrupt it."""
    rows = [f"{T0 + 60 * i:.0f},6500,500" for i in range(120)]
    trace = parse_text("\n".join(["timestamp,pv_w,house_w", *rows]) + "\n", source="hand-made")
    settings = SimSettings(plug_in=None, plug_out=None, car_phases=1)
    result = simulate_trace(trace, strategy, {}, LIMITS, settings)
    total = result.metrics.total
    assert total.oracle_kwh == pytest.approx(2 * 3.68)
    assert total.capture is not None and total.capture > 0.95
    assert total.phase_switches <= 1
    late = [cycle for cycle in result.timeline if cycle.time >= T0 + 1800]
    assert all(cycle.car_w > 3600 for cycle in late)


def test_a_car_that_takes_10_a_behind_a_16_a_charger_gets_3_phases_under_broken_cloud() -> None:
    """5.3 kW of surplus for 3 minutes, 3.9 kW for 1, fifteen times. On 1 phase a 10 A car takes 2.3 kW,
    not the 3.7 kW of 16 A: counting the sun it leaves behind as if it took 16 A held 1→3 off for
    14 minutes (capture 0.93)."""
    minutes = [(2500, 10)] + [(5800, 3), (4400, 1)] * 15
    rows, t = [], T0
    for pv_w, n in minutes:
        for _ in range(n):
            rows.append(f"{t:.0f},{pv_w},500")
            t += 60
    trace = parse_text("\n".join(["timestamp,pv_w,house_w", *rows]) + "\n", source="hand-made")
    settings = SimSettings(plug_in=None, plug_out=None, car_max_current_a=10.0)
    total = simulate_trace(trace, "pv", {}, LIMITS, settings).metrics.total
    assert total.capture is not None and total.capture > 0.97
    assert total.phase_switches <= 2
