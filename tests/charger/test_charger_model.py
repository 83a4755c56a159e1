"""The charger and car physics that the emulator, the demo and the simulator share."""

from __future__ import annotations

import pytest

from controller.simulation.charger_model import CarModel, ChargerModel


def model(**kwargs: object) -> ChargerModel:
    car = CarModel(max_current_a=16, lag_s=10, capacity_kwh=60, soc=0.5)
    return ChargerModel(car, now=0.0, **kwargs)  # type: ignore[arg-type]


def test_the_car_follows_the_limit_with_a_first_order_lag() -> None:
    m = model()
    m.set_limit(10000, 0.0)
    m.step(10.0)
    assert m.car_current_a() == pytest.approx(10 * (1 - 2.718281828**-1), rel=1e-3)
    m.step(100.0)
    assert m.car_current_a() == pytest.approx(10, abs=0.01)
    assert m.power_w() == pytest.approx(10 * 3 * 230, rel=1e-3)
    assert m.cp_state() == "State C"


def test_below_six_amps_the_charger_pauses() -> None:
    m = model()
    m.set_limit(5999, 0.0)
    m.step(60.0)
    assert m.limit_actual_ma() == 0
    assert m.car_current_a() == 0
    assert m.cp_state() == "State B"


def test_the_lowest_limit_wins_and_names_itself() -> None:
    m = model(hw_max_ma=32000, installation_limit_ma=20000)
    m.set_limit(25000, 0.0)
    assert (m.limit_actual_ma(), m.limit_source()) == (20000, "Installation limit")
    m.set_limit(8000, 0.0)
    assert (m.limit_actual_ma(), m.limit_source()) == (8000, "Local REST API")


def test_a_phase_change_while_charging_interrupts_the_current() -> None:
    m = model(switch_interrupt_s=5.0)
    m.set_limit(16000, 0.0)
    m.step(100.0)
    m.set_force_1_phase(True, 100.0)
    m.step(104.0)
    assert m.car_current_a() == 0
    m.step(200.0)
    assert m.active_phases() == 1
    assert m.phase_currents_a() == (pytest.approx(16, abs=0.01), 0.0, 0.0)


def test_after_the_clock_steps_back_the_car_goes_on_from_the_new_time() -> None:
    """The emulator's clock is the daemon's: a pause written an hour 'earlier' must still stop the
    car, and a phase-switch interruption still lasts its 5 s."""
    m = model(switch_interrupt_s=5.0)
    m.set_limit(16000, 0.0)
    m.step(100.0)
    m.set_force_1_phase(True, 100.0)
    m.step(100.0 - 3600)
    m.step(100.0 - 3600 + 4)
    assert m.car_current_a() == 0  # still interrupted
    m.step(100.0 - 3600 + 60)
    assert m.car_current_a() == pytest.approx(16, abs=0.1)
    m.set_limit(0, 100.0 - 3600 + 60)
    m.step(100.0 - 3600 + 61)
    assert m.car_current_a() == 0
    assert m.cp_state() == "State B"


def test_a_full_battery_draws_nothing() -> None:
    car = CarModel(capacity_kwh=1.0, soc=0.99, lag_s=1)
    m = ChargerModel(car, now=0.0)
    m.set_limit(16000, 0.0)
    m.step(3600.0)
    assert car.soc == 1.0
    m.step(3700.0)
    assert m.car_current_a() == 0


def test_reboot_forgets_the_rest_limit() -> None:
    m = model(hw_max_ma=16000)
    m.set_limit(6000, 0.0)
    m.reboot(10.0)
    assert m.rest_limit_ma == 16000


def test_a_step_that_ends_with_the_switch_interruption_carries_no_current() -> None:
    """The simulator steps from cycle to cycle: with a 5 s interval and a 5 s interruption, one step
    spans the whole interruption, and the car must not ramp up inside it."""
    m = model(switch_interrupt_s=5.0)
    m.set_limit(16000, 0.0)
    m.step(100.0)
    m.set_force_1_phase(True, 100.0)
    before = m.energy_total_wh
    m.step(105.0)
    assert m.car_current_a() == 0
    assert m.energy_total_wh == before
    m.step(107.0)
    assert 0 < m.car_current_a() < 16
