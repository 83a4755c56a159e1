"""`pv` with a car that charges on one phase only (many plug-in hybrids) behind a 3-phase charger."""

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
