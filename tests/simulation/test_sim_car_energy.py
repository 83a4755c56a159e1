"""The car's energy is the exact integral of its current, whatever the steps, and a battery fills
exactly: the REST emulator's counters, the state of charge and the simulator's metrics agree."""

from __future__ import annotations

import math

import pytest

from controller.core.state import SiteLimits
from controller.simulation.charger_model import (
    CarModel,
    ChargerModel,
    lag_current,
    lag_integral,
    lag_time_to_charge,
)
from controller.simulation.engine import SimSettings, simulate_trace
from controller.simulation.trace import Trace, parse_text

T0 = 1_464_768_000.0  # 2016-06-01T08:00:00Z
W_PER_A_3P = 3 * 230.0


def settled(lag_s: float = 10.0, *, capacity_kwh: float = 1000.0, soc: float = 0.2) -> ChargerModel:
    """A car drawing 16 A on three phases, long settled (a minute of 6 lags) at t = 600."""
    m = ChargerModel(CarModel(capacity_kwh=capacity_kwh, soc=soc, lag_s=lag_s), now=0.0)
    m.set_limit(16000, 0.0)
    m.step(600.0)
    return m


@pytest.mark.parametrize("steps", [1, 12, 3600])
def test_a_pause_adds_no_energy_however_long_the_step(steps: int) -> None:
    """The trapezoid rule counted half the current before the pause for the whole step: 5520 Wh for
    an hour in one step."""
    m = settled()
    energy, soc = m.energy_total_wh, m.car.soc
    m.set_limit(0, 600.0)
    for k in range(1, steps + 1):
        m.step(600.0 + 3600.0 * k / steps)
    assert m.car_current_a() == 0.0
    assert m.energy_total_wh == energy
    assert m.energy_session_wh == energy
    assert m.car.soc == soc


@pytest.mark.parametrize("lag_s", [0.0, 10.0])
@pytest.mark.parametrize("steps", [1, 12, 3600])
def test_an_hour_of_charging_counts_the_same_in_any_number_of_steps(lag_s: float, steps: int) -> None:
    m = ChargerModel(CarModel(capacity_kwh=1000.0, soc=0.2, lag_s=lag_s), now=0.0)
    m.set_limit(16000, 0.0)
    for k in range(1, steps + 1):
        m.step(3600.0 * k / steps)
    tau = max(lag_s, 1e-6)
    exact_wh = (16.0 * 3600.0 - 16.0 * tau * (1 - math.exp(-3600.0 / tau))) * W_PER_A_3P / 3600
    assert m.energy_total_wh == pytest.approx(exact_wh, rel=1e-12)
    if lag_s == 0.0:
        assert m.energy_total_wh == pytest.approx(11040.0)  # a jump to 16 A counts in full
    assert m.car.soc == pytest.approx(0.2 + exact_wh / 1e6, rel=1e-12)


@pytest.mark.parametrize("lag_s", [0.0, 1.0, 10.0, 100.0])
def test_a_battery_that_fills_inside_a_step_takes_exactly_its_room_then_nothing(lag_s: float) -> None:
    car = CarModel(capacity_kwh=1.0, soc=0.99, lag_s=lag_s)  # 10 Wh of room
    m = ChargerModel(car, now=0.0)
    m.set_limit(16000, 0.0)
    m.step(3600.0)
    assert car.full
    assert m.energy_total_wh == pytest.approx(10.0, abs=1e-9)
    assert m.car_current_a() == 0.0
    m.step(7200.0)
    assert m.energy_total_wh == pytest.approx(10.0, abs=1e-9)


@pytest.mark.parametrize("lag_s", [0.0, 10.0, 100.0])
@pytest.mark.parametrize("settled_first", [False, True])
def test_stepping_to_full_at_leaves_the_battery_exactly_full(lag_s: float, settled_first: bool) -> None:
    """The simulator ends a segment at `full_at`: the car must be full there, having taken its room,
    and still draw the current of that instant (the segment's end point), whether it started at 0 A
    ramping up or settled."""
    if settled_first:
        m = settled(lag_s, capacity_kwh=60.0, soc=0.5)
        car = m.car
        car.soc = 1.0 - 0.02 / 60.0  # 20 Wh of room
        start = 600.0
    else:
        car = CarModel(capacity_kwh=2.0, soc=0.99, lag_s=lag_s)
        m = ChargerModel(car, now=1_464_768_000.0)  # a 2016 timestamp: float rounding of real times
        start = 1_464_768_000.0
        m.set_limit(16000, start)
    energy = m.energy_total_wh
    amps0 = m.car_current_a()
    full_t = m.full_at(start + 600.0)
    assert start < full_t < start + 600.0
    m.step(full_t)
    assert car.full
    assert m.energy_total_wh - energy == pytest.approx(20.0, abs=1e-6)
    tau = max(lag_s, 1e-6)
    assert m.car_current_a() == pytest.approx(lag_current(amps0, 16.0, tau, full_t - start), rel=1e-9)
    assert m.car_current_a() > 0
    assert m.full_at(start + 1200.0) == math.inf


def test_full_at_is_inf_when_the_battery_does_not_fill_or_nothing_flows() -> None:
    m = settled(capacity_kwh=60.0, soc=0.5)
    assert m.full_at(700.0) == math.inf  # 30 kWh of room, 100 s of 11 kW
    m.set_limit(0, 600.0)
    assert m.full_at(1e9) == math.inf


@pytest.mark.parametrize(("amps0", "target"), [(0.0, 16.0), (3.0, 16.0), (16.0, 6.0), (10.0, 10.0)])
@pytest.mark.parametrize("tau", [1e-6, 2.0, 10.0, 300.0])
def test_time_to_charge_inverts_the_integral(amps0: float, target: float, tau: float) -> None:
    d = 100.0
    for fraction in (1e-9, 0.01, 0.5, 0.999, 1.0):
        charge = lag_integral(amps0, target, tau, d) * fraction
        x = lag_time_to_charge(amps0, target, tau, charge, d)
        assert 0.0 <= x <= d
        assert lag_integral(amps0, target, tau, x) == pytest.approx(charge, rel=1e-9, abs=1e-9)
    assert lag_time_to_charge(amps0, target, tau, 2 * lag_integral(amps0, target, tau, d), d) == d


def five_kw_surplus(hours: int = 2) -> Trace:
    rows = [f"{T0 + 60 * i:.0f},5500,500" for i in range(60 * hours)]
    return parse_text("\n".join(["timestamp,pv_w,house_w", *rows]) + "\n", source="hand-made")


@pytest.mark.parametrize(
    ("capacity_kwh", "soc", "lag_s"),
    [(2.0, 0.99, 10.0), (2.0, 0.99, 0.0), (1.0, 0.999, 100.0), (60.0, 0.99, 2.0)],
)
@pytest.mark.parametrize("strategy", ["pv", "evcc-default", "fast"])
def test_a_constant_surplus_fills_the_battery_exactly(
    capacity_kwh: float, soc: float, lag_s: float, strategy: str
) -> None:
    """The car starts at 0 A at plug-in and ramps up; the segment must end where the battery fills,
    not where it would at the starting current (which, at 0 A, was never). The reviewer measured
    capture 1.0185 (lag 10 s) and 1.173 (no lag) for 20 Wh of room."""
    settings = SimSettings(
        plug_in="08:00", plug_out="18:00", car_capacity_kwh=capacity_kwh, car_soc=soc, car_lag_s=lag_s
    )
    result = simulate_trace(five_kw_surplus(), strategy, {}, SiteLimits(), settings)
    m = result.metrics.total
    room_kwh = capacity_kwh * (1 - soc)
    assert m.car_kwh == pytest.approx(room_kwh, abs=1e-9)
    if strategy != "fast":  # fast imports, the oracle never does
        assert m.oracle_kwh == pytest.approx(room_kwh, abs=1e-12)
        assert m.capture is not None
        assert m.capture <= 1 + 1e-9
