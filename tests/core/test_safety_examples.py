"""Worked examples of the safety layer, one rule each, with numbers a user can check by hand."""

from __future__ import annotations

from dataclasses import replace

import pytest

from controller.core.decision import Decision
from controller.core.safety import CAR_SETTLE_S, SafetyMemory, apply, fuse_headroom_a
from controller.core.state import (
    ChargerInfo,
    ChargerReading,
    DeviceHealth,
    MeterReading,
    PhaseReading,
    SiteLimits,
    SiteState,
)

LIMITS = SiteLimits(main_fuse_a=25, min_current_a=6, max_current_a=16, stale_after_s=20)
SWITCHING = ChargerInfo(phase_count=3, force_1_phase_allowed=True)


def site(
    *,
    now: float = 1000,
    phase_a: tuple[float, float, float] = (5, 5, 5),
    car_a: tuple[float, float, float] = (0, 0, 0),
    force_1p: bool = False,
    charging: bool = False,
    limit_ma: int = 0,
    limits: SiteLimits = LIMITS,
    info: ChargerInfo = SWITCHING,
    meter_ok: float | None = None,
) -> SiteState:
    phases = tuple(PhaseReading(power_w=a * 230, current_a=a, voltage_v=230) for a in phase_a)
    grid = MeterReading(time=now, power_w=sum(a * 230 for a in phase_a), phases=phases)
    charger = ChargerReading(
        time=now,
        vehicle_connected=True,
        charging=charging,
        limit_ma=limit_ma,
        limit_actual_ma=limit_ma,
        limit_source="Local REST API",
        force_1_phase=force_1p,
        power_w=sum(car_a) * 230,
        phase_currents_a=car_a,
    )
    ok = DeviceHealth(last_ok=now)
    return SiteState(
        now=now,
        limits=limits,
        info=info,
        grid=grid,
        charger=charger,
        meter_health=DeviceHealth(last_ok=meter_ok) if meter_ok is not None else ok,
        charger_health=ok,
    )


def in_force(state: SiteState) -> int:
    """The car ceiling `apply` uses when the limit has not fallen lately: the limit in force now."""
    return state.charger.limit_actual_ma if state.charger is not None else 0


def test_clamped_to_min_and_max() -> None:
    cmd, _, notes = apply(Decision(40, 3, "greedy plugin"), site(), SafetyMemory())
    assert cmd.limit_ma == 16000
    assert any("clamp" in n for n in notes)
    cmd, _, _ = apply(Decision(2, 3, "timid plugin"), site(), SafetyMemory())
    assert cmd.limit_ma == 6000


def test_fuse_cut_on_the_loaded_phase_only() -> None:
    # L2 carries 18 A of other load: 25 − 18 = 7 A left for the car on L2.
    state = site(phase_a=(3, 18, 3))
    cmd, _, notes = apply(Decision(16, 3, "fast"), state, SafetyMemory())
    assert cmd.limit_ma == 7000
    assert any(n.startswith("fuse: 16.0→7.0") for n in notes)


def test_the_cars_own_draw_is_not_counted_as_other_load() -> None:
    # The meter sees 22 A on each phase, 16 A of which is the car: other load 6 A, room 19 A.
    state = site(phase_a=(22, 22, 22), car_a=(16, 16, 16), charging=True, limit_ma=16000)
    assert fuse_headroom_a(state, 3, in_force(state)) == 19
    cmd, _, _ = apply(Decision(16, 3, "fast"), state, SafetyMemory())
    assert cmd.limit_ma == 16000


def test_a_car_current_above_what_the_charger_allows_does_not_hide_house_load() -> None:
    """A charger answering 45 A on L1 while its limit is 10 A: the meter's 30 A on L1 would leave no
    house load at all if all 45 A were the car's. The car cannot draw more than 10 A, so 20 A is the
    house and 5 A is left under the fuse."""
    state = site(phase_a=(30, 10, 10), car_a=(45, 10, 10), charging=True, limit_ma=10000)
    assert fuse_headroom_a(state, 3, in_force(state)) == 5
    cmd, _, _ = apply(Decision(16, 3, "fast"), state, SafetyMemory(last_limit_ma=10000))
    assert cmd.limit_ma == 0  # 5 A is below the minimum
    # without per-phase currents, the car's power is capped the same way
    assert state.charger is not None
    no_phases = replace(state, charger=replace(state.charger, phase_currents_a=(), power_w=3 * 45 * 230))
    assert fuse_headroom_a(no_phases, 3, in_force(no_phases)) == 5


def test_a_car_still_slowing_down_after_a_cut_is_not_counted_as_house_load() -> None:
    """17 A of house on L1 and the car at 16 A: cut to 8 A. A cycle later the charger's limit is 8 A
    but the car still draws 12.85 A on its way down; counting the 4.85 A above the new limit as house
    load left 3.15 A and paused the car after every load step. For `CAR_SETTLE_S` the car may still
    draw up to the limit it had; after that, what it draws above its limit counts as house load."""
    before = site(phase_a=(33, 16, 16), car_a=(16, 16, 16), charging=True, limit_ma=16000)
    cut, memory, _ = apply(Decision(16, 3, "fast"), before, SafetyMemory(last_limit_ma=16000))
    assert cut.limit_ma == 8000
    slowing = site(now=1005, phase_a=(29.85, 12.85, 12.85), car_a=(12.85,) * 3, charging=True, limit_ma=8000)
    cmd, memory, _ = apply(Decision(16, 3, "fast"), slowing, memory)
    assert cmd.limit_ma == 8000
    later = replace(slowing, now=1000 + CAR_SETTLE_S)
    assert apply(Decision(16, 3, "fast"), later, memory)[0].limit_ma == 0


def test_one_phase_charging_uses_the_first_phase_of_the_rotation() -> None:
    # Charger L1 is wired to grid L3, which is heavily loaded; grid L1 is free.
    limits = replace(LIMITS, phase_rotation=(2, 0, 1))
    state = site(phase_a=(2, 2, 20), limits=limits, force_1p=True)
    assert fuse_headroom_a(state, 1, in_force(state)) == 5
    cmd, _, notes = apply(Decision(10, 1, "pv"), state, SafetyMemory())
    assert cmd.limit_ma == 0
    assert any("below minimum" in n or "< minimum" in n for n in notes)


def test_export_on_a_phase_is_not_headroom() -> None:
    state = site(phase_a=(-20, -20, -20))
    assert fuse_headroom_a(state, 3, in_force(state)) == 25


def test_without_phase_values_all_other_import_is_assumed_on_each_phase() -> None:
    """4600 W in total, phases unknown: at 207 V, the lowest voltage the grid may have, 22.2 A."""
    state = site()
    grid = MeterReading(time=state.now, power_w=4600)
    state = replace(state, grid=grid)
    assert fuse_headroom_a(state, 3, in_force(state)) == pytest.approx(25 - 4600 / 207)


def test_a_total_only_meter_takes_no_more_car_power_off_than_its_capped_current_draws() -> None:
    """A charger reading 15.6 kW at 16 A on 3 phases (11 kW) would hide 4.6 kW of house load: 20 A
    on L1, 36 A with the car. Its current is capped, so is its power."""
    state = site(car_a=(16, 16, 16), charging=True, limit_ma=16000)
    assert state.charger is not None
    inflated = replace(state.charger, power_w=15640.0)
    state = replace(state, grid=MeterReading(time=state.now, power_w=15640.0), charger=inflated)
    assert fuse_headroom_a(state, 3, 16000) == pytest.approx(25 - 4600 / 207)
    cmd, _, _ = apply(Decision(16, 3, "fast"), state, SafetyMemory(last_limit_ma=16000))
    assert cmd.limit_ma == 0  # 2.8 A of headroom is below the minimum


@pytest.mark.parametrize("phase_a", [(), (5.0, float("nan"), 5.0)])
def test_a_reading_of_nan_leaves_no_headroom(phase_a: tuple[float, ...]) -> None:
    """The meter and charger clients refuse NaN; a reading built past them (a plugin meter, a test
    harness) must not switch the fuse check off, as a NaN compares False with every limit: a total
    of NaN from a total-only meter, or a phase of NaN beside two that read."""
    state = site(phase_a=(30, 30, 30), car_a=(16, 16, 16), charging=True, limit_ma=16000)
    nan = float("nan")
    phases = tuple(PhaseReading(power_w=a * 230, current_a=a, voltage_v=230) for a in phase_a)
    state = replace(state, grid=MeterReading(time=state.now, power_w=nan, phases=phases))
    assert fuse_headroom_a(state, 3, 16000) == 0.0
    cmd, _, _ = apply(Decision(16, 3, "fast"), state, SafetyMemory(last_limit_ma=16000))
    assert cmd.limit_ma == 0


def test_a_single_phase_meter_ahead_of_three_phases_allows_charging_on_its_phase_only() -> None:
    """An sdm120 measures L1 alone, and its total is L1's power. With 24 A of house load on L2 and
    L3, taking that total for the site's gave 16 A on 3 phases: 40 A on L2 and L3 of a 25 A fuse."""
    state = site(phase_a=(2 + 16, 24 + 16, 24 + 16), car_a=(16, 16, 16), charging=True, limit_ma=16000)
    l1 = PhaseReading(power_w=18 * 230, current_a=18, voltage_v=230)
    state = replace(state, grid=MeterReading(time=state.now, power_w=18 * 230, phases=(l1,)))
    cmd, _, notes = apply(Decision(16, 3, "fast"), state, SafetyMemory(last_limit_ma=16000))
    assert cmd.limit_ma == 0
    assert "fuse: the meter does not measure grid L2, pausing 3p charging" in notes
    on_l1 = site(phase_a=(2, 24, 24), force_1p=True)
    only_l1 = (PhaseReading(power_w=2 * 230, current_a=2, voltage_v=230),)
    on_l1 = replace(on_l1, grid=MeterReading(time=on_l1.now, power_w=2 * 230, phases=only_l1))
    cmd, _, _ = apply(Decision(16, 1, "fast"), on_l1, SafetyMemory())
    assert cmd.limit_ma == 16000


def test_a_meter_with_phase_voltages_alone_is_a_total_only_meter() -> None:
    """A custom map with `power` and `voltage_l1..3` (or a SunSpec meter that leaves phase currents
    and powers unimplemented): taken for one that does not measure its phases, it never charged."""
    state = site(phase_a=(1, 1, 1))
    voltages = tuple(PhaseReading(voltage_v=230) for _ in range(3))
    state = replace(state, grid=MeterReading(time=state.now, power_w=690, phases=voltages))
    assert fuse_headroom_a(state, 3, in_force(state)) == pytest.approx(25 - 690 / 207)
    cmd, _, _ = apply(Decision(10, 3, "fast"), state, SafetyMemory())
    assert cmd.limit_ma == 10000


def test_phase_power_without_voltage_is_counted_at_the_lowest_grid_voltage() -> None:
    """A meter with phase powers only (the Victron GX system service) on a feeder at 207 V: 26 A of
    house load on L1 is 5382 W, which 230 V would read as 23.4 A."""
    state = site(info=ChargerInfo(phase_count=1))
    phases = (PhaseReading(power_w=26 * 207), PhaseReading(power_w=0.0), PhaseReading(power_w=0.0))
    state = replace(state, grid=MeterReading(time=state.now, power_w=26 * 207, phases=phases))
    assert fuse_headroom_a(state, 1, 0) == pytest.approx(-1)
    cmd, _, _ = apply(Decision(16, 1, "fast"), state, SafetyMemory())
    assert cmd.limit_ma == 0


def test_after_a_3_to_1_switch_all_three_phases_count_while_the_charger_still_draws_on_them() -> None:
    """Force1Phase reads back on, but the contactors have not dropped L2 and L3 yet: 16 A on L2
    beside its 14 A of other load would be 30 A."""
    state = site(phase_a=(13, 25, 25), car_a=(11, 11, 11), force_1p=True, charging=True, limit_ma=11000)
    cmd, _, notes = apply(Decision(16, 1, "pv"), state, SafetyMemory(last_limit_ma=11000))
    assert cmd.limit_ma == 11000
    assert "fuse: 16.0→11.0 A" in notes
    gone = site(phase_a=(13, 14, 14), car_a=(11, 0, 0), force_1p=True, charging=True, limit_ma=11000)
    cmd, _, _ = apply(Decision(16, 1, "pv"), gone, SafetyMemory(last_limit_ma=11000))
    assert cmd.limit_ma == 16000  # L1: 2 A of other load; L2 and L3 no longer carry the car


def test_blind_meter_gives_the_fallback() -> None:
    limits = replace(LIMITS, fallback_current_a=6)
    state = site(now=1000, meter_ok=979, limits=limits)
    cmd, _, notes = apply(Decision(16, 3, "fast"), state, SafetyMemory())
    assert cmd.limit_ma == 6000
    assert notes[0].startswith("BLIND (no valid meter data for 21 s)")
    fresh = site(now=1000, meter_ok=981, limits=limits, limit_ma=16000)
    assert apply(Decision(16, 3, "fast"), fresh, SafetyMemory())[0].limit_ma == 16000


def test_the_fallback_comes_when_the_last_good_reading_is_stale_after_s_old_not_a_cycle_later() -> None:
    """Last good meter read at 980, stale_after_s 20: the cycle at 1000 is blind (README: no valid
    data *for* stale_after_s); with a 5 s interval the fallback came at 1005 before."""
    limits = replace(LIMITS, fallback_current_a=6)
    state = site(now=1000, meter_ok=980, limits=limits)
    cmd, _, notes = apply(Decision(16, 3, "fast"), state, SafetyMemory())
    assert cmd.limit_ma == 6000
    assert notes[0].startswith("BLIND (no valid meter data for 20 s)")


def test_a_resume_to_the_blind_fallback_waits_for_the_relay_budget() -> None:
    """Paused after three pauses in ten minutes, then the meter goes quiet: resuming to the 6 A
    fallback would be the fourth contactor operation. Running, the fallback is a cut and passes."""
    limits = replace(LIMITS, fallback_current_a=6)
    spent = SafetyMemory(pause_times=(500.0, 600.0, 700.0), last_limit_ma=0)
    cmd, _, notes = apply(Decision(16, 3, "fast"), site(now=1000, meter_ok=979, limits=limits), spent)
    assert cmd.limit_ma == 0
    assert "relay budget: 3 pauses in 600 s, stay paused" in notes
    running = replace(spent, last_limit_ma=16000)
    state = site(now=1000, meter_ok=979, limits=limits, limit_ma=16000)
    assert apply(Decision(16, 3, "fast"), state, running)[0].limit_ma == 6000


def test_an_old_meter_reading_holds_the_limit_instead_of_ratcheting_it_up() -> None:
    """The meter failed this cycle: 18 A of house on L1 measured with the car at 7 A, the car now at
    10 A. Subtracting the new car current from the old phase current would free 3 A every cycle."""
    state = site(
        now=1005, meter_ok=1000, phase_a=(25, 7, 7), car_a=(10, 10, 10), charging=True, limit_ma=10000
    )
    memory = SafetyMemory(last_limit_ma=10000)
    cmd, _, notes = apply(Decision(16, 3, "fast"), state, memory)
    assert cmd.limit_ma == 10000
    assert "meter reading from an earlier cycle: holding 10.0 A" in notes
    cut, _, _ = apply(Decision(8, 3, "pv"), state, memory)
    assert cut.limit_ma == 8000  # falling is always allowed
    one_phase = site(now=1005, meter_ok=1000, force_1p=True, charging=True, car_a=(10, 0, 0), limit_ma=10000)
    up, _, _ = apply(Decision(10, 3, "pv"), one_phase, SafetyMemory(last_limit_ma=10000))
    assert up.force_1_phase is True  # no 1→3 either: three times the power on an old reading


def test_relay_budget_holds_the_fourth_resume() -> None:
    memory = SafetyMemory(pause_times=(100.0, 200.0, 300.0), last_limit_ma=0)
    cmd, memory, notes = apply(Decision(10, 3, "pv"), site(now=650), memory)
    assert cmd.limit_ma == 0
    assert any("relay budget" in n for n in notes)
    # Ten minutes after the first pause the oldest drops out of the window.
    cmd, _, _ = apply(Decision(10, 3, "pv"), site(now=701), memory)
    assert cmd.limit_ma == 10000


def test_after_the_clock_steps_back_pauses_and_a_switch_hold_for_one_window_not_the_step() -> None:
    """NTP moves the clock back an hour: the three pauses and the last switch are stamped in the
    future. Counted from the step, they hold the budget 10 min and the switch 5 min, not 70 and 65."""
    memory = SafetyMemory(pause_times=(4400.0, 4450.0, 4500.0), last_switch_s=4500.0, last_limit_ma=0)
    cmd, memory, notes = apply(Decision(10, 3, "pv"), site(now=1000, force_1p=True), memory)
    assert (cmd.limit_ma, cmd.force_1_phase) == (0, True)
    assert any("relay budget" in n for n in notes)
    assert "phase switch held: 0 s since last" in notes
    cmd, memory, _ = apply(Decision(10, 3, "pv"), site(now=1300, force_1p=True), memory)
    assert cmd.force_1_phase is False  # the switch, 5 min after the step
    cmd, _, _ = apply(Decision(10, 3, "pv"), site(now=1600), memory)
    assert cmd.limit_ma == 10000  # the budget, 10 min after the step


def test_pause_is_recorded_when_a_running_charger_stops() -> None:
    memory = SafetyMemory(last_limit_ma=10000)
    _, memory, _ = apply(Decision.pause("no sun", 3), site(now=500), memory)
    assert memory.pause_times == (500,)
    _, memory, _ = apply(Decision.pause("no sun", 3), site(now=505), memory)
    assert memory.pause_times == (500,)


def test_one_to_three_while_charging_goes_pause_switch_resume() -> None:
    running = site(now=1000, force_1p=True, charging=True, car_a=(10, 0, 0), limit_ma=10000)
    memory = SafetyMemory(last_limit_ma=10000)
    cmd, memory, _ = apply(Decision(8, 3, "pv"), running, memory)
    assert (cmd.limit_ma, cmd.force_1_phase) == (0, True)
    stopped = site(now=1005, force_1p=True, charging=False, limit_ma=0)
    cmd, memory, _ = apply(Decision(8, 3, "pv"), stopped, memory)
    assert (cmd.limit_ma, cmd.force_1_phase) == (8000, False)
    assert memory.last_switch_s == 1005


def test_after_a_1_to_3_switch_a_reading_still_on_1_phase_gets_a_current_that_fits_all_three() -> None:
    """House load 2/15/15 A. The switch to 3 phases at 10 A fits (25 A on L2); the next read-back
    still says 1 phase (one read late). Sized for L1 alone that was 16 A: on the 3 phases the charger
    is really on, 31 A on L2 and L3 of a 25 A fuse."""
    running = site(
        now=1000, phase_a=(18, 15, 15), car_a=(16, 0, 0), force_1p=True, charging=True, limit_ma=16000
    )
    cmd, memory, _ = apply(Decision(10, 3, "pv"), running, SafetyMemory(last_limit_ma=16000))
    assert cmd.limit_ma == 0  # the pause before the switch
    stopped = site(now=1005, phase_a=(2, 15, 15), force_1p=True, limit_ma=0)
    cmd, memory, _ = apply(Decision(10, 3, "pv"), stopped, memory)
    assert (cmd.limit_ma, cmd.force_1_phase) == (10000, False)
    late = site(now=1010, phase_a=(2, 15, 15), force_1p=True, limit_ma=0)
    cmd, memory, notes = apply(Decision(10, 3, "pv"), late, memory)
    assert cmd.limit_ma == 10000
    assert "fuse: 16.0→10.0 A" in notes
    settled = site(now=1040, phase_a=(12, 25, 25), car_a=(10, 10, 10), charging=True, limit_ma=10000)
    assert apply(Decision(10, 3, "pv"), settled, memory)[0].limit_ma == 10000
    back_on_1p = site(
        now=1400, phase_a=(2, 15, 15), force_1p=True, charging=True, car_a=(0, 0, 0), limit_ma=6000
    )
    cmd, _, _ = apply(Decision(16, 1, "pv"), back_on_1p, SafetyMemory(last_limit_ma=6000, up_switch_s=1005))
    assert cmd.limit_ma == 16000  # long after the switch only L1 counts: 2 A of other load


def test_a_charger_that_cannot_switch_but_reads_1_phase_is_not_taken_for_a_1_to_3_switch() -> None:
    """Force1Phase reads on while switching is not allowed: no switch is commanded, so nothing may be
    stamped as one. Stamped each cycle, a later probe allowing switches had this 1-phase charge
    checked on all three phases for 30 s (house 2/20/20 A: a pause instead of 16 A on L1)."""
    fixed = ChargerInfo(phase_count=3, force_1_phase_allowed=False)
    state = site(
        phase_a=(18, 2, 2), car_a=(16, 0, 0), force_1p=True, charging=True, limit_ma=16000, info=fixed
    )
    memory = SafetyMemory(last_limit_ma=16000, car_ceiling=(16000, None))
    cmd, after, _ = apply(Decision(16, 3, "fast"), state, memory)
    assert (cmd.limit_ma, cmd.force_1_phase) == (16000, None)
    assert after is memory  # nothing changed: the same memory object, as the simulator relies on
    kettles = site(
        now=1005, phase_a=(18, 20, 20), car_a=(16, 0, 0), force_1p=True, charging=True, limit_ma=16000
    )
    cmd, _, _ = apply(Decision(16, 1, "fast"), kettles, after)
    assert cmd.limit_ma == 16000  # L1 alone carries the car, beside 2 A of other load


def test_phase_switches_keep_their_minimum_interval() -> None:
    memory = SafetyMemory(last_switch_s=900, last_limit_ma=0)
    cmd, _, notes = apply(Decision(8, 1, "pv"), site(now=1000), memory)
    assert cmd.force_1_phase is False
    assert any("phase switch held" in n for n in notes)
    cmd, _, _ = apply(Decision(8, 1, "pv"), site(now=1201), memory)
    assert cmd.force_1_phase is True


def test_a_held_switch_keeps_the_power_the_strategy_asked_for() -> None:
    recent = SafetyMemory(last_switch_s=900, last_limit_ma=8000)
    # 7.7 A on 1 phase is 1.8 kW; on the 3 phases still held that is 2.6 A, so the 6 A minimum
    three = site(now=1000, charging=True, car_a=(8, 8, 8), limit_ma=8000)
    cmd, _, notes = apply(Decision(7.7, 1, "pv"), three, recent)
    assert (cmd.limit_ma, cmd.force_1_phase) == (6000, False)
    assert any("7.7 A on 1p is 2.6 A on 3p" in n for n in notes)
    # 5 A × 3 phases asked while 1 phase is held: 15 A on that phase
    one = site(now=1000, force_1p=True, charging=True, car_a=(8, 0, 0), limit_ma=8000)
    cmd, _, _ = apply(Decision(5, 3, "pv"), one, recent)
    assert (cmd.limit_ma, cmd.force_1_phase) == (15000, True)


def test_a_charger_that_cannot_switch_is_never_asked_to() -> None:
    fixed = ChargerInfo(phase_count=3, force_1_phase_allowed=False)
    cmd, _, _ = apply(Decision(8, 1, "pv"), site(info=fixed), SafetyMemory())
    assert cmd.force_1_phase is None
    assert cmd.limit_ma == 8000  # as asked: strategies size the current for the phases they read


def test_without_pause_before_phase_up_the_switch_is_left_to_the_charger() -> None:
    limits = replace(LIMITS, pause_before_phase_up=False)
    running = site(now=1000, force_1p=True, charging=True, car_a=(10, 0, 0), limit_ma=10000, limits=limits)
    cmd, memory, _ = apply(Decision(8, 3, "pv"), running, SafetyMemory(last_limit_ma=10000))
    assert (cmd.limit_ma, cmd.force_1_phase) == (8000, False)
    assert memory.pause_times == ()
    assert memory.last_switch_s == 1000


def test_after_the_clock_steps_back_a_failing_meter_still_ends_in_the_fallback() -> None:
    """The last good read is stamped an hour ahead of `now`: its age is unknown, so it is blind."""
    state = site(now=1000, meter_ok=4600, limit_ma=16000)
    cmd, _, notes = apply(Decision(16, 3, "fast"), state, SafetyMemory())
    assert cmd.limit_ma == 0
    assert notes[0].startswith("BLIND (the clock stepped back 3600 s since the last valid meter data)")


def test_a_3_to_1_switch_limit_fits_all_three_phases_in_its_cycle() -> None:
    """The charger may apply the new 1-phase limit before its contactors drop L2 and L3: for that
    moment 16 A would sit on L2 beside its 12 A of other load."""
    state = site(phase_a=(8, 18, 8), car_a=(6, 6, 6), charging=True, limit_ma=6000)
    memory = SafetyMemory(last_limit_ma=6000)
    cmd, next_memory, notes = apply(Decision(16, 1, "pv"), state, memory)
    assert cmd.force_1_phase is True
    assert cmd.limit_ma == 13000  # 25 A − (18 A − 6 A of car) on L2
    assert "fuse: 16.0→13.0 A" in notes
    after = site(phase_a=(18, 12, 2), car_a=(16, 0, 0), force_1p=True, charging=True, limit_ma=13000)
    later, _, _ = apply(Decision(16, 1, "pv"), replace(after, now=1005), next_memory)
    assert later.limit_ma == 16000  # switched: only L1 counts again
