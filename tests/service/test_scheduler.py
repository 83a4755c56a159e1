"""The loop's wiring, checked by inspecting jobs and triggers instead of waiting for them."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from controller.config import ScheduleRule
from controller.service import scheduler as sched

BERLIN = ZoneInfo("Europe/Berlin")
NIGHT = ScheduleRule(cron="0 22 * * mon-fri", strategy="fast")
MORNING = ScheduleRule(cron="0 6 * * *", strategy="pv")


async def _noop() -> None:
    return None


async def _on_rule(rule: ScheduleRule) -> None:
    del rule


def test_cycle_job_never_overlaps_and_starts_at_once() -> None:
    before = datetime.now(UTC)
    scheduler = sched.build(_noop, interval_s=5, rules=[NIGHT, MORNING], on_rule=_on_rule, timezone=BERLIN)
    after = datetime.now(UTC)
    job = scheduler.get_job(sched.CYCLE_JOB)
    assert job.max_instances == 1
    assert job.coalesce is True
    assert job.trigger.interval.total_seconds() == 5
    # the first cycle is due the moment the daemon starts, not one interval later
    assert before <= job.next_run_time <= after


def test_each_schedule_rule_is_a_cron_job_in_the_site_zone() -> None:
    scheduler = sched.build(_noop, interval_s=5, rules=[NIGHT, MORNING], on_rule=_on_rule, timezone=BERLIN)
    night = scheduler.get_job("schedule-0")
    assert night.args == (NIGHT,)
    # Tuesday 2026-11-24 21:59 local → fires at 22:00 local the same day.
    before = datetime(2026, 11, 24, 21, 59, tzinfo=BERLIN)
    assert night.trigger.get_next_fire_time(None, before) == datetime(2026, 11, 24, 22, 0, tzinfo=BERLIN)
    # Friday 22:01 → next weekday firing is Monday 22:00.
    friday = datetime(2026, 11, 27, 22, 1, tzinfo=BERLIN)
    assert night.trigger.get_next_fire_time(None, friday) == datetime(2026, 11, 30, 22, 0, tzinfo=BERLIN)


def test_active_rule_after_a_restart_is_the_latest_that_fired() -> None:
    rules = [NIGHT, MORNING]
    tuesday_night = datetime(2026, 11, 24, 23, 30, tzinfo=BERLIN).astimezone(UTC)
    assert sched.active_rule(rules, tuesday_night, BERLIN) == NIGHT
    wednesday_noon = datetime(2026, 11, 25, 12, 0, tzinfo=BERLIN).astimezone(UTC)
    assert sched.active_rule(rules, wednesday_noon, BERLIN) == MORNING
    saturday_night = datetime(2026, 11, 28, 23, 0, tzinfo=BERLIN).astimezone(UTC)
    assert sched.active_rule(rules, saturday_night, BERLIN) == MORNING


def test_no_rules_means_no_scheduled_strategy() -> None:
    assert sched.active_rule([], datetime(2026, 1, 1, tzinfo=UTC), BERLIN) is None


AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def test_a_rule_that_fired_in_the_hour_the_clocks_went_back_is_found() -> None:
    """A start within 8 days of it once looped for ever: the daemon never got to READY."""
    rule = ScheduleRule(cron="15 2 * * *", strategy="fast")
    for now in (datetime(2026, 10, 25, 1, 20, tzinfo=UTC), datetime(2026, 10, 29, 12, tzinfo=UTC)):
        assert sched.active_rule([rule], now, AMSTERDAM) == rule
    every_quarter = ScheduleRule(cron="*/15 * * * *", strategy="fast")
    fired = sched.last_fire_time(every_quarter, datetime(2026, 10, 30, 12, 5, tzinfo=UTC), AMSTERDAM)
    assert fired == datetime(2026, 10, 30, 12, 0, tzinfo=UTC)


def test_in_the_repeated_hour_the_later_firing_in_real_time_wins() -> None:
    """02:45 on the first pass (00:45 UTC) came before 02:15 on the second (01:15 UTC)."""
    first_pass = ScheduleRule(cron="45 2 * * *", strategy="fast")
    second_pass = ScheduleRule(cron="15 2 * * *", strategy="pv")
    now = datetime(2026, 10, 25, 1, 20, tzinfo=UTC)  # 02:20 CET, the second pass
    assert sched.active_rule([first_pass, second_pass], now, AMSTERDAM) == second_pass


def test_a_schedule_switch_missed_by_a_late_loop_still_happens() -> None:
    scheduler = sched.build(_noop, interval_s=5, rules=[NIGHT], on_rule=_on_rule, timezone=BERLIN)
    assert scheduler.get_job("schedule-0").misfire_grace_time is None
