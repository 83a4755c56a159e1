"""Invariants of the safety layer for any site state and any decision, a hostile plugin's included."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.decision import Decision
from controller.core.safety import SafetyMemory, apply
from controller.core.state import (
    ChargerInfo,
    ChargerReading,
    DeviceHealth,
    MeterReading,
    PhaseReading,
    SiteLimits,
    SiteState,
)

LIMITS = SiteLimits(main_fuse_a=25, min_current_a=6, max_current_a=16, stale_after_s=20, fallback_current_a=0)
amps = st.floats(min_value=-60, max_value=60, allow_nan=False)
currents = st.one_of(
    st.floats(min_value=0, max_value=20),
    st.floats(min_value=-1e6, max_value=1e6),
    st.sampled_from([float("nan"), float("inf")]),
)
rotations = st.permutations([0, 1, 2]).map(lambda p: (p[0], p[1], p[2]))


@st.composite
def sites(draw: st.DrawFn) -> SiteState:
    now = 10_000.0
    limits = SiteLimits(
        max_increase_a_per_cycle=draw(st.sampled_from([None, 2.0])),
        main_fuse_a=draw(st.sampled_from([16.0, 25.0, 35.0])),
        min_current_a=6,
        max_current_a=16,
        stale_after_s=20,
        fallback_current_a=draw(st.sampled_from([0.0, 6.0])),
        phase_rotation=draw(rotations),
        pause_before_phase_up=draw(st.booleans()),
    )
    grid_a = draw(st.tuples(amps, amps, amps))
    force_1p = draw(st.booleans())
    car = draw(st.floats(min_value=0, max_value=16))
    car_a = (car, 0.0, 0.0) if force_1p else (car, car, car)
    phases = tuple(PhaseReading(power_w=a * 230, current_a=a, voltage_v=230) for a in grid_a)
    meter_age = draw(st.sampled_from([0.0, 19.0, 21.0, 500.0]))
    one_phase_charger = draw(st.booleans())
    info = (
        ChargerInfo(phase_count=1)
        if one_phase_charger
        else ChargerInfo(phase_count=3, force_1_phase_allowed=draw(st.booleans()))
    )
    return SiteState(
        now=now,
        limits=limits,
        info=info,
        grid=MeterReading(time=now - meter_age, power_w=sum(a * 230 for a in grid_a), phases=phases),
        charger=ChargerReading(
            time=now,
            vehicle_connected=True,
            charging=car > 0,
            limit_ma=draw(st.sampled_from([0, 6000, 16000])),
            limit_actual_ma=16000,
            limit_source="Local REST API",
            force_1_phase=force_1p,
            power_w=sum(car_a) * 230,
            phase_currents_a=car_a,
        ),
        meter_health=DeviceHealth(last_ok=now - meter_age),
        charger_health=DeviceHealth(last_ok=now),
    )


decisions = st.builds(
    Decision, current_a=currents, phases=st.sampled_from([0, 1, 3, 7]), reason=st.just("plugin")
)
memories = st.builds(
    SafetyMemory,
    pause_times=st.lists(st.sampled_from([9_300.0, 9_500.0, 9_800.0, 9_990.0]), max_size=4, unique=True).map(
        lambda times: tuple(sorted(times))
    ),
    last_switch_s=st.sampled_from([None, 9_900.0, 9_000.0]),  # a switch 100 s ago holds the next one back
    last_limit_ma=st.sampled_from([None, 0, 6000, 16000]),
    switching_up=st.booleans(),
)


@given(site=sites(), decision=decisions, memory=memories)
@settings(max_examples=600, deadline=None)
def test_command_is_paused_or_within_limits_and_under_the_fuse(
    site: SiteState, decision: Decision, memory: SafetyMemory
) -> None:
    command, _, _ = apply(decision, site, memory)
    limits = site.limits
    blind = site.meter_health.stale(site.now, limits.stale_after_s)
    if blind:
        assert site.charger is not None
        running = (
            memory.last_limit_ma > 0 if memory.last_limit_ma is not None else site.charger.limit_ma >= 6000
        )
        budget_spent = sum(1 for t in memory.pause_times if site.now - t < limits.pause_window_s) >= 3
        held = not running and budget_spent  # a resume to the fallback waits for the relay budget too
        assert command.limit_ma == (0 if held else round(limits.fallback_current_a * 1000))
        return
    assert command.limit_ma == 0 or 6000 <= command.limit_ma <= 16000
    if command.limit_ma == 0 or site.grid is None or site.charger is None:
        return
    phases = 1 if command.force_1_phase else (site.active_phases() if command.force_1_phase is None else 3)
    car_on = [0.0, 0.0, 0.0]
    for index, amps_now in enumerate(site.charger.phase_currents_a):
        car_on[limits.phase_rotation[index]] += amps_now
    for grid_phase in limits.grid_phases(phases):
        measured = site.grid.phases[grid_phase].current_a or 0.0
        other = max(measured - car_on[grid_phase], 0.0)
        assert other + command.limit_ma / 1000 <= limits.main_fuse_a + 1e-6
    if site.info.can_switch_phases() and command.limit_ma > 6000:
        # above the minimum, never more power than the strategy asked for, whatever phases it gets
        wanted = 3 if decision.phases >= 3 else 1
        assert command.limit_ma / 1000 * phases <= decision.current_a * wanted + 1e-6


@given(
    steps=st.lists(
        st.tuples(st.floats(min_value=0, max_value=20), st.sampled_from([1, 3])), min_size=20, max_size=200
    ),
    gap_s=st.sampled_from([5.0, 10.0, 30.0]),
)
@settings(max_examples=150, deadline=None)
def test_relay_budget_and_phase_switch_spacing_hold_over_any_sequence(
    steps: list[tuple[float, int]], gap_s: float
) -> None:
    memory = SafetyMemory()
    now = 0.0
    force_1p = False
    limit_ma = 0
    pauses: list[float] = []
    switches: list[float] = []
    info = ChargerInfo(phase_count=3, force_1_phase_allowed=True)
    for current, phases in steps:
        now += gap_s
        state = SiteState(
            now=now,
            limits=LIMITS,
            info=info,
            grid=MeterReading(time=now, power_w=0, phases=(PhaseReading(0, 0, 230),) * 3),
            charger=ChargerReading(
                time=now,
                vehicle_connected=True,
                charging=limit_ma > 0,
                limit_ma=limit_ma,
                limit_actual_ma=limit_ma,
                limit_source="Local REST API",
                force_1_phase=force_1p,
                power_w=0,
            ),
            meter_health=DeviceHealth(last_ok=now),
            charger_health=DeviceHealth(last_ok=now),
        )
        command, memory, _ = apply(Decision(current, phases, "flicker"), state, memory)
        if limit_ma > 0 and command.limit_ma == 0:
            pauses.append(now)
        if command.force_1_phase is not None and command.force_1_phase != force_1p:
            switches.append(now)
            force_1p = command.force_1_phase
        limit_ma = command.limit_ma
    for i, start in enumerate(pauses):
        assert len([p for p in pauses[i:] if p - start < LIMITS.pause_window_s]) <= LIMITS.max_pauses
    for a, b in itertools.pairwise(switches):
        assert b - a >= LIMITS.min_phase_switch_interval_s
