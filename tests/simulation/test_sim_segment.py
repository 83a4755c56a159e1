"""The closed-form integrals of one physics segment agree with brute-force small steps."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.simulation.engine import _Segment

VOLTS = 230.0
FUSE_W = 25 * VOLTS
ROTATION = (0, 1, 2)


def brute(
    amps0: float,
    target: float,
    tau: float,
    d: float,
    phases: int,
    base: tuple[float, float, float],
    surplus_w: float,
    steps: int = 10000,
) -> tuple[float, float, float, float]:
    """(car Wh, solar Wh, seconds over the fuse, peak W on a phase): midpoint rule, peak on the grid."""
    car = solar = over = peak = 0.0
    dx = d / steps
    loaded = ROTATION[:1] if phases == 1 else ROTATION
    for i in range(steps + 1):
        for x, integrate in ((i * dx, False), (i * dx + dx / 2, i < steps)):
            amps = target + (amps0 - target) * math.exp(-x / tau)
            p_car = amps * phases * VOLTS
            phase_w = [base[j] + (amps * VOLTS if j in loaded else 0.0) for j in range(3)]
            top = max(abs(w) for w in phase_w)
            if integrate:
                car += p_car * dx / 3600
                solar += min(p_car, surplus_w) * dx / 3600
                if top > FUSE_W:
                    over += dx
            else:
                peak = max(peak, top)
    return car, solar, over, peak


@settings(max_examples=60, deadline=None)
@given(
    amps0=st.floats(0.0, 16.0),
    target=st.floats(6.0, 16.0),
    tau=st.floats(1.0, 30.0),
    d=st.floats(0.5, 60.0),
    phases=st.sampled_from([1, 3]),
    surplus_w=st.floats(0.0, 12000.0),
    base_l1=st.floats(-4000.0, 4000.0),
)
def test_segment_matches_small_steps(
    amps0: float, target: float, tau: float, d: float, phases: int, surplus_w: float, base_l1: float
) -> None:
    amps1 = target + (amps0 - target) * math.exp(-d / tau)
    base = (base_l1, 300.0, -200.0)
    seg = _Segment()
    seg.add(0.0, d, amps0, amps1, tau, phases, ROTATION, VOLTS, base, surplus_w, FUSE_W, None, base)
    car, solar, over, peak = brute(amps0, target, tau, d, phases, base, surplus_w)
    scale = 16 * 3 * VOLTS * d / 3600
    assert seg.car_wh == pytest.approx(car, abs=1e-4 * scale)
    assert seg.solar_wh == pytest.approx(solar, abs=1e-4 * scale)
    assert seg.last_export_wh == pytest.approx(surplus_w * d / 3600 - solar, abs=1e-4 * scale)
    assert seg.over_s == pytest.approx(over, abs=2e-3 * d)
    assert seg.peak_w == pytest.approx(peak, rel=1e-3)


def test_fuse_seconds_when_the_car_ramps_through_the_fuse() -> None:
    # L1 carries 20 A of house; the car ramps 0 → 16 A with τ = 10 s: over 25 A once I > 5 A.
    base = (20 * VOLTS, 0.0, 0.0)
    amps1 = 16 - 16 * math.exp(-3)
    seg = _Segment()
    seg.add(0.0, 30.0, 0.0, amps1, 10.0, 3, ROTATION, VOLTS, base, -1.0, FUSE_W, None, base)
    crossing = -10 * math.log(11 / 16)  # 16 − 16·e^(−x/10) = 5
    assert seg.over_s == pytest.approx(30 - crossing)
    assert seg.peak_w == pytest.approx((20 + amps1) * VOLTS)


def test_meter_sample_inside_a_segment_sees_the_current_at_its_time() -> None:
    amps1 = 16 - 10 * math.exp(-1)
    seg = _Segment()
    sampled = seg.add(
        100.0, 110.0, 6.0, amps1, 10.0, 1, ROTATION, VOLTS, (0, 0, 0), 0.0, FUSE_W, 105.0, (0, 0, 0)
    )
    assert sampled[0] == pytest.approx((16 - 10 * math.exp(-0.5)) * VOLTS)
    assert sampled[1:] == (0, 0)


def test_a_pause_drops_the_current_at_once() -> None:
    seg = _Segment()
    seg.add(0.0, 5.0, 16.0, 0.0, 10.0, 3, ROTATION, VOLTS, (0, 0, 0), 5000.0, FUSE_W, None, (0, 0, 0))
    assert seg.car_wh == 0.0
    assert seg.last_export_wh == pytest.approx(5000 * 5 / 3600)
