"""The simulated site on small hand-made traces whose right answers can be worked out on paper."""

from __future__ import annotations

from typing import ClassVar

import pytest
from pydantic import BaseModel, ConfigDict

import strategies
from controller.core.decision import Decision
from controller.core.state import ChargerInfo, SiteLimits, SiteState
from controller.simulation.engine import SimResult, SimSettings, plug_windows, simulate_trace
from controller.simulation.trace import Trace, parse_text

T0 = 1_464_775_200.0  # 2016-06-01T10:00:00Z
LIMITS = SiteLimits(voltage_v=230.0, main_fuse_a=25.0, min_current_a=6.0, max_current_a=16.0)
ALWAYS = SimSettings(plug_in=None, plug_out=None, car_lag_s=0.0)


class Follow:
    """Charges at exactly the surplus on three phases: the ideal a real strategy approaches."""

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")

    summary: ClassVar[str] = "test: follow the surplus"

    def __init__(self, params: BaseModel) -> None:
        self.params = params

    def decide(self, state: SiteState) -> Decision:
        assert state.grid is not None
        surplus = -state.grid.power_w + state.car_power_w()
        amps = surplus / (3 * state.limits.voltage_v)
        if amps < 6:
            return Decision.pause("test: too little", 3)
        return Decision(amps, 3, "test: follow")


class OnePhaseAfterTenMinutes(Follow):
    summary: ClassVar[str] = "test: 3 phases, then 1 phase at 10 A"

    def decide(self, state: SiteState) -> Decision:
        if state.now - T0 < 600:
            return Decision(10.0, 3, "test: 3p")
        return Decision(10.0, 1, "test: 1p")


class ThreePhaseAfterTenMinutes(Follow):
    summary: ClassVar[str] = "test: 1 phase at 10 A, then 3 phases"

    def decide(self, state: SiteState) -> Decision:
        return Decision(10.0, 1 if state.now - T0 < 600 else 3, "test")


class Slow(Follow):
    summary: ClassVar[str] = "test: its own 30 s interval"
    interval_s: ClassVar[float] = 30.0


@pytest.fixture(autouse=True)
def _test_strategies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, cls in (
        ("follow", "Follow"),
        ("one-phase", "OnePhaseAfterTenMinutes"),
        ("three-phase", "ThreePhaseAfterTenMinutes"),
        ("slow", "Slow"),
    ):
        monkeypatch.setitem(strategies.BUILTINS, name, f"{__name__}:{cls}")


def constant(
    pv_w: float, house_w: float, minutes: int = 60, *, header: str = "timestamp,pv_w,house_w"
) -> Trace:
    rows = [f"{T0 + 60 * i:.0f},{pv_w},{house_w}" for i in range(minutes)]
    return parse_text("\n".join([header, *rows]) + "\n", source="hand-made")


def run(trace: Trace, name: str, settings: SimSettings = ALWAYS, **kwargs: object) -> SimResult:
    return simulate_trace(trace, name, {}, LIMITS, settings, **kwargs)  # type: ignore[arg-type]


def test_constant_5kw_surplus_for_an_hour_is_5kwh_of_solar() -> None:
    m = run(constant(6000, 1000), "follow").metrics.total
    # The first physics step (1 s) passes before the car reacts, and the limit is floored to whole mA.
    assert m.car_kwh == pytest.approx(5.0, rel=1e-3)
    assert m.car_solar_kwh == pytest.approx(m.car_kwh)
    assert m.car_grid_kwh == pytest.approx(0.0, abs=1e-9)
    assert m.solar_share == pytest.approx(1.0)
    assert m.oracle_kwh == pytest.approx(5.0)
    assert m.capture == pytest.approx(1.0, rel=1e-3)
    assert m.exported_kwh == pytest.approx(0.0, abs=5e-3)
    assert m.surplus_kwh == pytest.approx(5.0)
    assert m.plugged_hours == pytest.approx(1.0)
    assert (m.pauses, m.phase_switches) == (0, 0)


def test_fast_without_sun_is_all_grid() -> None:
    m = run(constant(0, 500), "fast").metrics.total
    assert m.car_kwh == pytest.approx(16 * 3 * 230 / 1000, rel=1e-3)
    assert m.car_solar_kwh == 0.0
    assert m.car_grid_kwh == pytest.approx(m.car_kwh)
    assert m.solar_share == 0.0
    assert m.oracle_kwh == 0.0
    assert m.capture is None
    assert m.max_phase_current_a == pytest.approx(16 + 500 / 3 / 230, rel=1e-6)
    assert m.fuse_seconds_over == 0.0


def test_off_exports_everything_the_oracle_would_have_taken() -> None:
    m = run(constant(6000, 1000), "off").metrics.total
    assert m.car_kwh == 0.0
    assert m.exported_kwh == pytest.approx(5.0)
    assert m.oracle_kwh == pytest.approx(5.0)
    assert m.capture == 0.0


def test_oracle_between_the_bands_takes_16a_on_one_phase() -> None:
    # 4 kW surplus: too little for 6 A on 3 phases (4140 W), too much for 16 A on 1 (3680 W)
    assert run(constant(5000, 1000), "off").metrics.total.oracle_kwh == pytest.approx(3.68)


def test_one_phase_house_load_keeps_the_fuse() -> None:
    # 5 kW of house on L1 = 21.7 A: the safety layer cannot fit 6 A more on it and pauses the car.
    trace = parse_text(
        "timestamp,pv_w,house_l1_w,house_l2_w,house_l3_w\n"
        + "".join(f"{T0 + 60 * i:.0f},0,5000,0,0\n" for i in range(60)),
        source="hand-made",
    )
    m = run(trace, "fast").metrics.total
    assert m.car_kwh == 0.0
    assert m.max_phase_current_a == pytest.approx(5000 / 230)
    assert m.fuse_seconds_over == 0.0


def test_a_house_load_stepping_on_one_phase_cuts_the_car_without_pausing_it() -> None:
    """`fast` on a 25 A fuse, L1's house load stepping between 9 A and 17 A every minute: the fuse
    leaves the car 8–16 A, never less than the minimum, so a pause is never needed; the car's own
    slow-down after each cut must not be taken for house load."""
    rows = [f"{T0 + 60 * i:.0f},0,{3910 if i % 2 else 2070},300,300" for i in range(120)]
    header = "timestamp,pv_w,house_l1_w,house_l2_w,house_l3_w"
    trace = parse_text("\n".join([header, *rows]) + "\n", source="hand-made")
    m = run(trace, "fast", SimSettings(plug_in=None, plug_out=None)).metrics.total
    assert m.pauses == 0
    assert m.car_kwh > 16


def test_phase_switch_is_counted_and_interrupts_the_car() -> None:
    result = run(constant(0, 0, minutes=20), "one-phase")
    m = result.metrics.total
    assert m.phase_switches == 1
    full_hour_3p = 10 * 230 * (3 * 600 + 600) / 3600 / 1000
    assert m.car_kwh < full_hour_3p  # the switch costs a few seconds without current
    assert m.car_kwh == pytest.approx(full_hour_3p, rel=0.01)
    assert {row.phases for row in result.timeline} == {1, 3}


def test_the_results_do_not_depend_on_the_traces_resolution() -> None:
    """The same minute values given as 60-second rows and as 1-second rows are the same site; a phase
    switch's interruption once got lost in whole-cycle model steps at 60 s but not at 1 s."""
    levels = [500, 2500, 4500, 8000, 12000, 2500, 8000, 500, 12000, 4500] * 12
    minutes = parse_text(
        "timestamp,pv_w,house_w\n" + "".join(f"{T0 + 60 * i:.0f},{w},700\n" for i, w in enumerate(levels))
    )
    seconds = parse_text(
        "timestamp,pv_w,house_w\n"
        + "".join(f"{T0 + i:.0f},{levels[i // 60]},700\n" for i in range(60 * len(levels)))
    )
    by_minute, by_second = (run(trace, "pv").metrics.total for trace in (minutes, seconds))
    assert by_minute.phase_switches > 0
    assert by_second.car_kwh == pytest.approx(by_minute.car_kwh, rel=1e-9)
    assert by_second.car_solar_kwh == pytest.approx(by_minute.car_solar_kwh, rel=1e-9)


def test_one_to_three_while_charging_goes_pause_switch_resume() -> None:
    result = run(constant(0, 0, minutes=20), "three-phase")
    m = result.metrics.total
    assert (m.pauses, m.switch_pauses, m.phase_switches) == (1, 1, 1)
    assert any("1→3 switch: pausing first" in row.reason for row in result.timeline)
    assert result.timeline[-1].phases == 3


def test_strategy_may_bring_its_own_interval() -> None:
    result = run(constant(6000, 1000), "slow")
    assert result.interval_s == 30.0
    assert len(result.timeline) == 120
    assert len(run(constant(6000, 1000), "follow").timeline) == 720


def test_battery_full_stops_the_car_the_oracle_and_the_export_count() -> None:
    settings = SimSettings(plug_in=None, plug_out=None, car_lag_s=0.0, car_capacity_kwh=2.0, car_soc=0.5)
    m = run(constant(6000, 1000), "follow", settings).metrics.total
    assert m.car_kwh == pytest.approx(1.0, abs=1e-9)  # exactly the room: 2 kWh from half full
    assert m.oracle_kwh == pytest.approx(1.0)
    assert m.exported_kwh == pytest.approx(0.0, abs=5e-3)  # exporting while full is not the controller's loss


def test_car_plugged_only_in_its_window() -> None:
    # 10:00–11:00 UTC trace, car plugged 10:15–10:45 UTC
    settings = SimSettings(plug_in="10:15", plug_out="10:45", car_lag_s=0.0)
    result = run(constant(6000, 1000), "follow", settings)
    m = result.metrics.total
    assert m.plugged_hours == pytest.approx(0.5)
    assert m.oracle_kwh == pytest.approx(2.5)
    assert m.car_kwh == pytest.approx(2.5, rel=2e-3)
    assert not result.timeline[0].connected
    assert result.timeline[200].connected


def test_timeline_rows_sum_to_the_totals() -> None:
    result = run(constant(6000, 1000), "follow")
    assert sum(r.car_wh for r in result.timeline) / 1000 == pytest.approx(result.metrics.total.car_kwh)
    assert sum(r.dt_s for r in result.timeline) == pytest.approx(3600)
    assert result.timeline[0].command.startswith("limit=")
    assert len(result.compute_s) == len(result.timeline)


def test_charger_without_phase_switching() -> None:
    m = run(constant(6000, 1000), "follow", info=ChargerInfo(3, False)).metrics.total
    assert m.phase_switches == 0
    assert m.capture == pytest.approx(1.0, rel=1e-3)


def test_plug_windows_in_local_time_across_dst_and_overnight() -> None:
    start = 1_459_036_800.0  # 2016-03-27T00:00:00Z, the night Europe/Berlin moves to summer time
    end = start + 2 * 86400
    day = SimSettings(plug_in="08:00", plug_out="18:00", timezone="Europe/Berlin")
    windows = plug_windows(start, end, day)
    assert windows == [
        (start + 6 * 3600, start + 16 * 3600),
        (start + 86400 + 6 * 3600, start + 86400 + 16 * 3600),
    ]
    night = SimSettings(plug_in="18:00", plug_out="07:00", timezone="UTC")
    assert plug_windows(start, end, night)[0] == (start, start + 7 * 3600)
    assert plug_windows(start, end, night)[1] == (start + 18 * 3600, start + 86400 + 7 * 3600)
    assert plug_windows(start, end, SimSettings(plug_in=None, plug_out=None)) == [(start, end)]


def test_a_plug_in_time_the_clocks_skip_is_the_moment_they_skip_it() -> None:
    """02:30 does not exist on 2016-03-27 in Berlin: the clocks go from 02:00 CET to 03:00 CEST at
    01:00 UTC. Read with the winter offset it would be 03:30 CEST, half an hour late."""
    start = 1_459_036_800.0  # 2016-03-27T00:00:00Z
    settings = SimSettings(plug_in="02:30", plug_out="04:00", timezone="Europe/Berlin")
    assert plug_windows(start, start + 2 * 86400, settings) == [
        (start + 3600, start + 7200),  # 01:00Z, the jump, to 04:00 CEST
        (start + 86400 + 1800, start + 86400 + 7200),  # the next day in summer time: 00:30Z to 02:00Z
    ]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (SimSettings(plug_in="8 am"), "plug-in: '8 am' is not a time of day"),
        (SimSettings(plug_in=None), "both"),
        (SimSettings(car_phases=2), "car_phases"),
        (SimSettings(interval_s=0), "interval_s"),
        (SimSettings(timezone="Mars/Olympus"), "IANA"),
    ],
)
def test_bad_settings_are_named(settings: SimSettings, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run(constant(0, 0, minutes=2), "off", settings)
