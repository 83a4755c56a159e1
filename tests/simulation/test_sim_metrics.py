"""Each metric on hand-made timelines whose right answer can be worked out on paper."""

from __future__ import annotations

import pytest

from controller.simulation.metrics import (
    ChargeRanges,
    Cycle,
    DayClock,
    Metrics,
    block,
    combine,
    most_in_window,
    summarize,
)

DAY0 = 1_464_739_200.0  # 2016-06-01T00:00:00Z


def cycle(t: float, **fields: object) -> Cycle:
    values: dict[str, object] = {
        "time": t,
        "dt_s": 60.0,
        "pv_w": 0.0,
        "house_w": 0.0,
        "car_w": 0.0,
        "grid_w": 0.0,
        "target_a": 0.0,
        "phases": 3,
        "command": "",
        "connected": True,
        "reason": "",
    }
    values.update(fields)
    return Cycle(**values)  # type: ignore[arg-type]


def test_energy_sums_and_ratios() -> None:
    rows = [
        cycle(DAY0, car_wh=100, car_solar_wh=80, oracle_wh=160, export_wh=10, surplus_wh=170),
        cycle(DAY0 + 60, car_wh=100, car_solar_wh=100, oracle_wh=40, export_wh=0, surplus_wh=40),
    ]
    m = block(rows, main_fuse_a=25)
    assert m.car_kwh == pytest.approx(0.2)
    assert m.car_solar_kwh == pytest.approx(0.18)
    assert m.car_grid_kwh == pytest.approx(0.02)
    assert m.solar_share == pytest.approx(0.9)
    assert m.oracle_kwh == pytest.approx(0.2)
    assert m.capture == pytest.approx(0.9)
    assert m.exported_kwh == pytest.approx(0.01)
    assert m.surplus_kwh == pytest.approx(0.21)
    assert m.plugged_hours == pytest.approx(2 / 60)


def test_ratios_are_null_when_undefined() -> None:
    m = block([cycle(DAY0)], main_fuse_a=25)
    assert m.solar_share is None
    assert m.capture is None
    assert m.as_json(with_timing=False)["solar_share"] is None


def test_pause_is_a_limit_going_from_running_to_zero_while_plugged() -> None:
    targets = [0, 6, 10, 0, 0, 8, 0, 16]
    rows = [cycle(DAY0 + 10 * i, target_a=a) for i, a in enumerate(targets)]
    assert block(rows, main_fuse_a=25).pauses == 2


def test_no_pause_counted_across_plug_events() -> None:
    rows = [
        cycle(DAY0, target_a=10, connected=False),
        cycle(DAY0 + 5, target_a=0, connected=True),  # arrived: not a contactor opening
        cycle(DAY0 + 10, target_a=10),
        cycle(DAY0 + 15, target_a=0, connected=False),  # left
    ]
    assert block(rows, main_fuse_a=25).pauses == 0


def test_most_pauses_in_any_ten_minutes() -> None:
    assert most_in_window([0, 100, 200, 599, 600, 1300], 600) == 4
    assert most_in_window([0, 600, 1200], 600) == 1
    assert most_in_window([], 600) == 0
    targets = [10, 0] * 5  # a pause every 2 cycles of 60 s: at 60, 180, 300, 420, 540 s
    rows = [cycle(DAY0 + 60 * i, target_a=a) for i, a in enumerate(targets)]
    m = block(rows, main_fuse_a=25)
    assert (m.pauses, m.max_pauses_10min) == (5, 5)


def test_phase_switches_and_commands() -> None:
    phases = [3, 3, 1, 1, 3, 1]
    rows = [
        cycle(DAY0 + 5 * i, phases=p, command="force1p=on" if i in {2, 5} else "")
        for i, p in enumerate(phases)
    ]
    m = block(rows, main_fuse_a=25)
    assert m.phase_switches == 3
    assert m.commands == 2


def test_fuse_maximum_and_seconds_over() -> None:
    rows = [cycle(DAY0, max_phase_a=24.0), cycle(DAY0 + 60, max_phase_a=27.5, fuse_s_over=12.0)]
    m = block(rows, main_fuse_a=25)
    assert m.max_phase_current_a == 27.5
    assert m.fuse_seconds_over == 12.0


def test_days_are_local_calendar_days() -> None:
    # 21:30 and 22:30 UTC on 1 June are 1 June 23:30 and 2 June 00:30 in Copenhagen (CEST).
    rows = [cycle(DAY0 + 21.5 * 3600, car_wh=1000), cycle(DAY0 + 22.5 * 3600, car_wh=2000)]
    run = summarize(rows, timezone="Europe/Copenhagen", main_fuse_a=25)
    assert {d: m.car_kwh for d, m in run.days.items()} == {"2016-06-01": 1.0, "2016-06-02": 2.0}
    assert run.total.days == 2
    assert summarize(rows, timezone="UTC", main_fuse_a=25).total.days == 1


def test_day_clock_handles_dst() -> None:
    clock = DayClock(1_459_040_400.0, 1_459_213_200.0, "Europe/Berlin")  # around 27 March 2016
    assert clock.day(1_459_119_600.0)[0] == "2016-03-28"  # 2016-03-27T23:00Z = 28 March 01:00 CEST
    assert clock.day(1_459_115_999.0)[0] == "2016-03-27"


def test_compute_time_percentiles() -> None:
    rows = [cycle(DAY0)]
    run = summarize(rows, timezone="UTC", main_fuse_a=25, compute_s=[0.001] * 99 + [0.005])
    assert run.total.cycle_ms_median == pytest.approx(1.0)
    assert run.total.cycle_ms_p99 == pytest.approx(5.0)


def test_combine_adds_and_recomputes_ratios() -> None:
    a = Metrics(car_kwh=10, car_solar_kwh=9, oracle_kwh=10, pauses=2, max_pauses_10min=2, days=1)
    b = Metrics(car_kwh=10, car_solar_kwh=10, oracle_kwh=10, pauses=1, max_pauses_10min=1, days=2)
    m = combine([a, b])
    assert (m.car_kwh, m.pauses, m.max_pauses_10min, m.days) == (20, 3, 2, 3)
    assert m.solar_share == pytest.approx(0.95)
    assert m.capture == pytest.approx(0.95)


@pytest.mark.parametrize(
    ("surplus_w", "expected_w"),
    [
        (0, 0),
        (1379, 0),  # below 6 A on one phase: nothing can be delivered without import
        (1380, 1380),
        (3000, 3000),
        (3900, 3680),  # between 16 A 1p and 6 A 3p: the most that fits is 16 A on one phase
        (4140, 4140),
        (9000, 9000),
        (12000, 11040),  # the car's maximum
    ],
)
def test_oracle_takes_the_largest_deliverable_power_under_the_surplus(
    surplus_w: float, expected_w: float
) -> None:
    ranges = ChargeRanges.for_site(
        voltage_v=230, min_current_a=6, max_current_a=16, one_phase=True, three_phase=True
    )
    assert ranges.oracle_power_w(surplus_w) == pytest.approx(expected_w)


def test_oracle_without_phase_switching_starts_at_three_phase_minimum() -> None:
    ranges = ChargeRanges.for_site(
        voltage_v=230, min_current_a=6, max_current_a=16, one_phase=False, three_phase=True
    )
    assert ranges.oracle_power_w(4000) == 0
    assert ranges.oracle_power_w(4140) == pytest.approx(4140)


def test_pause_before_a_phase_switch_is_counted_as_a_switch_pause() -> None:
    # 1→3 while charging: pause (t=5), switch and resume in one cycle (t=10); later a plain pause.
    rows = [
        cycle(DAY0, target_a=16, phases=1),
        cycle(DAY0 + 5, target_a=0, phases=1),
        cycle(DAY0 + 10, target_a=6, phases=3),
        cycle(DAY0 + 15, target_a=6, phases=3),
        cycle(DAY0 + 600, target_a=0, phases=3),
        cycle(DAY0 + 605, target_a=0, phases=1),  # a stop for lack of sun, then down to 1 phase
        cycle(DAY0 + 900, target_a=6, phases=1),
        cycle(DAY0 + 905, target_a=0, phases=1),
        cycle(DAY0 + 1200, target_a=0, phases=3),  # up long after the pause: not part of it
    ]
    m = block(rows, main_fuse_a=25)
    assert (m.pauses, m.switch_pauses, m.phase_switches) == (3, 1, 3)


def test_a_pause_and_a_switch_in_a_days_first_cycle_count_for_that_day() -> None:
    """Plugged in overnight: the pause at 00:00 is the new day's, against the 23:59 cycle before it."""
    rows = [
        cycle(DAY0 + 86400 - 60, target_a=10.0, phases=1),
        cycle(DAY0 + 86400, target_a=0.0, phases=3),
        cycle(DAY0 + 86400 + 60, target_a=0.0, phases=3),
    ]
    run = summarize(rows, timezone="UTC", main_fuse_a=25)
    assert (run.total.pauses, run.total.phase_switches) == (1, 1)
    assert (run.days["2016-06-02"].pauses, run.days["2016-06-02"].phase_switches) == (1, 1)
    assert (run.days["2016-06-01"].pauses, run.days["2016-06-01"].phase_switches) == (0, 0)


def test_a_switch_pause_across_midnight_counts_in_the_day_of_its_pause() -> None:
    """Plugged in overnight: paused at 23:59 for a 1→3 switch that happens at 00:00."""
    rows = [
        cycle(DAY0 + 86400 - 120, target_a=10.0, phases=1),
        cycle(DAY0 + 86400 - 60, target_a=0.0, phases=1),
        cycle(DAY0 + 86400, target_a=0.0, phases=3),
        cycle(DAY0 + 86400 + 60, target_a=6.0, phases=3),
    ]
    run = summarize(rows, timezone="UTC", main_fuse_a=25)
    first, second = run.days["2016-06-01"], run.days["2016-06-02"]
    assert (first.pauses, first.switch_pauses, first.phase_switches) == (1, 1, 0)
    assert (second.pauses, second.switch_pauses, second.phase_switches) == (0, 0, 1)
    assert (run.total.pauses, run.total.switch_pauses, run.total.phase_switches) == (1, 1, 1)


def test_the_whole_run_sums_its_days_and_counts_ten_minutes_across_midnight() -> None:
    """Three pauses within 10 minutes around midnight: no day has more than two, the run has three."""
    rows = []
    for k, t in enumerate(range(int(DAY0 + 86400 - 300), int(DAY0 + 86400 + 240), 60)):
        rows.append(cycle(float(t), target_a=10.0 if k % 3 == 0 else 0.0, car_wh=10.0, car_solar_wh=5.0))
    run = summarize(rows, timezone="UTC", main_fuse_a=25)
    assert [m.max_pauses_10min for m in run.days.values()] == [2, 1]
    assert run.total.max_pauses_10min == 3
    assert run.total.pauses == sum(m.pauses for m in run.days.values()) == 3
    assert run.total.car_kwh == pytest.approx(sum(m.car_kwh for m in run.days.values()))
    assert run.total.solar_share == pytest.approx(0.5)
    assert (run.total.days, run.total.plugged_days) == (2, 2)
