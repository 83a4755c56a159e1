"""`simulate` runs a config's `[[schedule]]` as the daemon switches strategies, in the site's local time."""

from __future__ import annotations

import csv
import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from controller.config import ScheduleRule
from controller.service.scheduler import active_rule, firings, rule_changes
from controller.simulation.cli import main

T0 = 1_464_739_200  # 2016-06-01T00:00:00Z; Berlin is at UTC+2 then


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    """One day of 5-minute rows: 6 kW of PV over a 500 W house all day."""
    path = tmp_path / "day.csv"
    path.write_text("timestamp,pv_w,house_w\n" + "".join(f"{T0 + 300 * i},6000,500\n" for i in range(288)))
    return path


def _config(tmp_path: Path, rules: str) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[site]\ntimezone = "Europe/Berlin"\n[strategy]\nname = "off"\n{rules}', encoding="utf-8"
    )
    return config


FAST_10_TO_12 = (
    '[[schedule]]\ncron = "0 10 * * *"\nstrategy = "fast"\n'
    '[[schedule]]\ncron = "0 12 * * *"\nstrategy = "off"\n'
)


def _rows(timeline: Path) -> list[dict[str, str]]:
    with timeline.open(newline="") as f:
        return list(csv.DictReader(f))


def test_the_schedule_charges_only_while_its_rule_for_fast_is_active(
    trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, report, timeline = _config(tmp_path, FAST_10_TO_12), tmp_path / "r.json", tmp_path / "t.csv"
    args = ["--trace", str(trace), "-c", str(config), "--plug-in", "none", "--plug-out", "none"]
    assert main([*args, "--report", str(report), "--timeline", str(timeline)]) == 0
    assert "schedule on" in capsys.readouterr().err

    rows = _rows(timeline)
    assert {row["strategy"] for row in rows} == {"schedule"}
    drawing = [row["time"] for row in rows if float(row["car_w"]) > 0]
    # 10:00–12:00 in Berlin: 08:00–10:00 UTC, the car's lag after the start and after the stop
    assert drawing[0] == "2016-06-01T08:00:05Z"
    assert "2016-06-01T09:59:55Z" in drawing
    assert all("2016-06-01T08:00:00Z" < when < "2016-06-01T10:02:00Z" for when in drawing)
    assert all(
        row["reason"].startswith("fast") for row in rows if "08:00:00Z" <= row["time"][11:] < "10:00:00Z"
    )
    assert all(row["reason"].startswith("off") for row in rows if row["time"][11:] < "08:00:00Z")
    assert all(row["reason"].startswith("off") for row in rows if row["time"][11:] >= "10:00:00Z")

    total = json.loads(report.read_text())["strategies"]["schedule"]["total"]
    # two hours at fast's 16 A on 3 phases, less the lag, nearly all from the 5.5 kW of surplus
    assert 2 * 11.04 * 0.97 < total["car_kwh"] < 2 * 11.04
    assert total["car_solar_kwh"] == pytest.approx(2 * 5.5, rel=0.03)


def test_a_strategy_named_on_the_command_line_runs_throughout_and_the_schedule_is_said_to_be_left_out(
    trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, report = _config(tmp_path, FAST_10_TO_12), tmp_path / "r.json"
    args = ["--trace", str(trace), "-c", str(config), "--plug-in", "none", "--plug-out", "none"]
    assert main([*args, "--strategy", "off", "--strategy", "schedule", "--report", str(report)]) == 0
    strategies = json.loads(report.read_text())["strategies"]
    assert strategies["off"]["total"]["car_kwh"] == 0
    assert strategies["schedule"]["total"]["car_kwh"] > 20
    assert "not simulated" not in capsys.readouterr().err

    assert main([*args, "--strategy", "off"]) == 0
    assert (
        "the config's 2 [[schedule]] rule(s) are not simulated; every cycle runs off"
        in capsys.readouterr().err
    )


def test_a_schedule_that_cannot_run_stops_before_the_run_naming_the_rule(
    trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--trace", str(trace), "--strategy", "schedule"]) == 2
    assert "--strategy schedule: runs the [[schedule]] rules of -c CONFIG, and no -c CONFIG given" in (
        capsys.readouterr().err
    )
    plain = _config(tmp_path, "")
    assert main(["--trace", str(trace), "-c", str(plain), "--strategy", "schedule"]) == 2
    assert f"{plain} has no [[schedule]] rules" in capsys.readouterr().err

    broken = _config(tmp_path, '[[schedule]]\ncron = "0 7 * * *"\nstrategy = "pv"\nparams = {nope = 1}\n')
    assert main(["--trace", str(trace), "-c", str(broken)]) == 2
    err = capsys.readouterr().err
    assert f"configuration error: {broken}: schedule[1] (cron '0 7 * * *')" in err
    assert "nope" in err
    assert "schedule on" not in err  # stopped before the run


def test_the_changes_are_the_rules_active_rule_gives_just_before_and_at_each_firing() -> None:
    """Over the week the clocks go back in Berlin, with two rules at one minute (the later one in the
    config wins, as in the daemon) and a rule at a time that passes twice."""
    zone = ZoneInfo("Europe/Berlin")
    rules = [
        ScheduleRule(cron="0 22 * * *", strategy="minpv"),
        ScheduleRule(cron="0 22 * * sat", strategy="off"),
        ScheduleRule(cron="30 2 * * *", strategy="fast"),
        ScheduleRule(cron="0 7 * * *", strategy="pv"),
    ]
    start = datetime(2026, 10, 22, tzinfo=UTC)
    changes = rule_changes(rules, start, start + timedelta(days=7), zone)
    assert changes[0] == (start, active_rule(rules, start, zone))
    for (_, before), (when, after) in itertools.pairwise(changes):
        assert active_rule(rules, when - timedelta(seconds=1), zone) is before
        assert active_rule(rules, when, zone) is after
    saturday = [rule for when, rule in changes if when.astimezone(zone).date().isoformat() == "2026-10-24"]
    assert [rule.strategy for rule in saturday if rule] == ["fast", "pv", "off"]


def test_a_rule_every_half_hour_fires_fifty_times_on_the_day_the_clocks_go_back() -> None:
    """Stepping from the second 02:00 by local arithmetic once landed on the first, and the listing
    alternated between 02:00 and 02:30 for ever."""
    zone = ZoneInfo("Europe/Berlin")
    day = datetime(2026, 10, 25, tzinfo=zone)
    fired = [
        when
        for when, _ in firings(
            [ScheduleRule(cron="*/30 * * * *", strategy="pv")], day, day + timedelta(days=1), zone
        )
    ]
    assert len(fired) == 50  # 25 hours, the last at midnight
    assert all(later - earlier == timedelta(minutes=30) for earlier, later in itertools.pairwise(fired))
