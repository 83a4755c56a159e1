"""pv and minpv through the simulator on hand-made skies: the grid energy a dip may take, in Wh."""

from __future__ import annotations

import pytest

from controller.core.state import SiteLimits
from controller.simulation.engine import SimResult, SimSettings, simulate_trace
from controller.simulation.trace import parse_text

T0 = 1_464_775_200  # 2016-06-01T10:00:00Z
PLUGGED = SimSettings(plug_in=None, plug_out=None, car_lag_s=0.0)


def run(rows: list[str], strategy: str = "pv", settings: SimSettings = PLUGGED) -> SimResult:
    return simulate_trace(
        parse_text("\n".join(["timestamp,pv_w,house_w", *rows]) + "\n"), strategy, {}, SiteLimits(), settings
    )


def grid_wh(result: SimResult, since: float) -> float:
    return sum(c.car_wh - c.car_solar_wh for c in result.timeline if c.time >= since)


def test_five_seconds_of_sun_in_an_overcast_hour_do_not_renew_the_dip_budget() -> None:
    """245 s of shadow, 5 s of 2.5 kW, for an hour: one dip of 120 Wh, not 1.4 kWh in fresh ones."""
    rows = [f"{T0 + s},3000,300" for s in range(0, 120, 5)]
    for k in range(15):
        begin = T0 + 120 + 250 * k
        rows += [f"{begin + s},0,300" for s in range(0, 245, 5)] + [f"{begin + 245},2500,300"]
    rows.append(f"{T0 + 3870},0,300")
    result = run(rows)
    assert grid_wh(result, T0 + 120) < 130  # dip_import_wh = 120, and the last cycle's overshoot
    assert result.metrics.total.pauses == 1


def test_a_one_phase_car_gets_no_phase_switch_when_it_starts_again() -> None:
    """A plug-in hybrid behind the 3-phase charger, recognised as 1-phase, stops for a dip and
    starts again on 2.5 kW: switching to 1 phase would interrupt it for the same current."""
    rows = [f"{T0},9000,300", f"{T0 + 600},0,300", f"{T0 + 1000},2500,300", f"{T0 + 1300},2500,300"]
    result = run(rows, settings=SimSettings(plug_in=None, plug_out=None, car_lag_s=0.0, car_phases=1))
    assert result.metrics.total.pauses == 1
    assert result.metrics.total.phase_switches == 0


def test_minpv_keeps_the_minimum_on_one_phase_once_the_dip_budget_is_spent() -> None:
    """Sunset with the car on 3 phases: 6 A on 3 phases draws 4.1 kW, on 1 phase 1.4 kW. The switch
    comes with the dip budget (about 100 s), not with the phase-down delay (360 s)."""
    result = run([f"{T0},9000,300", f"{T0 + 600},0,300", f"{T0 + 1800},0,300"], strategy="minpv")
    on_three = sum(c.dt_s for c in result.timeline if c.time >= T0 + 600 and c.phases == 3)
    assert on_three <= 120
    assert result.metrics.total.pauses == 0


def test_only_the_time_below_the_minimum_counts_towards_the_longest_dip() -> None:
    """Broken cloud: 20 s at 800 W, 25 s at 3 kW, for half an hour. The sunny spells, too short to
    end the dip, must not count towards disable_delay_s (600 s): the charge goes on until the dip
    has drawn its 120 Wh, not stop at 750 s after 68 Wh."""
    rows = [f"{T0 + s},3000,300" for s in range(0, 120, 5)]
    for k in range(40):
        begin = T0 + 120 + 45 * k
        rows += [f"{begin},800,300", f"{begin + 20},3000,300"]
    rows.append(f"{T0 + 120 + 45 * 40},3000,300")
    result = run(rows)
    (stop,) = [c for c in result.timeline if "dip drew" in c.reason]
    assert stop.time - T0 > 1000
    assert "in 490 s" in stop.reason  # 25 × 20 s below the minimum, not the 1090 s since it began
    assert 115 < grid_wh(result, T0 + 120) < 135


def test_a_1_to_3_switch_the_sun_no_longer_carries_is_dropped_during_its_pause() -> None:
    """The sun falls to 3.1 kW inside the pause before a 1→3 switch: completing the switch would
    hold the charger paused for min_phase_switch_interval_s, on 1 phase the sun still charges."""
    rows = [f"{T0},2500,300", f"{T0 + 400},9000,300", f"{T0 + 617},3100,300", f"{T0 + 1200},3100,300"]
    result = run(rows)
    switches = [c.time - T0 for c in result.timeline if "force1p=off" in c.command]
    assert switches == []
    charged = [c for c in result.timeline if c.time > T0 + 700]
    assert all(c.target_a > 0 for c in charged)


@pytest.mark.parametrize("sun_back_s", [1700, 1730])  # while charging, and after the spent budget's stop
def test_a_switch_to_1_phase_held_back_keeps_the_dip_budget_and_is_dropped_when_the_sun_returns(
    sun_back_s: int,
) -> None:
    """A cloud 70 s after a 1→3 switch spends the dip budget on 3 phases; the switch back to 1 phase
    is held for min_phase_switch_interval_s. The car drew the 3-phase minimum for a second budget,
    and with the sun back at 8.4 kW the held switch was still carried out: 1 phase, 4.7 kW exported,
    then a pause to switch up again."""
    rows = [f"{T0},3300,300", f"{T0 + 1200},8700,300", f"{T0 + 1500},1950,300"]
    rows += [f"{T0 + sun_back_s},8700,300", f"{T0 + 2700},8700,300"]
    result = run(rows)
    assert [c.time - T0 for c in result.timeline if "force1p=on" in c.command and c.time > T0 + 1500] == []
    assert grid_wh(result, T0 + 1500) < 130  # dip_import_wh = 120, and the last cycle's overshoot
    assert all(c.phases == 3 for c in result.timeline if c.time > T0 + 1800)
