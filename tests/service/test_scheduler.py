"""The loop's wiring, checked by inspecting jobs and triggers instead of waiting for them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
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


def test_of_two_rules_firing_at_the_same_minute_the_later_listed_wins() -> None:
    """A general rule, then its exception: on Fridays the exception holds, also with ten rules
    between them (job ids `schedule-2` and `schedule-10` once sorted the other way round)."""
    weekdays = ScheduleRule(cron="0 22 * * mon-fri", strategy="fast")
    friday = ScheduleRule(cron="0 22 * * fri", strategy="off")
    filler = [ScheduleRule(cron="0 12 1 1 *", strategy="pv")] * 9
    friday_night = datetime(2026, 11, 27, 22, 0, 1, tzinfo=BERLIN).astimezone(UTC)
    assert sched.active_rule([weekdays, friday], friday_night, BERLIN) == friday
    assert sched.active_rule([*filler[:2], weekdays, *filler[2:], friday], friday_night, BERLIN) == friday
    assert sched.active_rule([friday, weekdays], friday_night, BERLIN) == weekdays


SPRING_FORWARD = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
"""02:00 CET becomes 03:00 CEST in Berlin: 02:00–02:59 does not exist that night."""


def test_a_time_the_clocks_skip_fires_at_the_jump_as_in_cron() -> None:
    night = sched.cron_trigger(ScheduleRule(cron="30 2 * * *", strategy="fast"), BERLIN)
    evening = datetime(2026, 3, 28, 23, 0, tzinfo=BERLIN)
    assert night.get_next_fire_time(None, evening) == SPRING_FORWARD  # APScheduler alone: 03:30 CEST
    after = night.get_next_fire_time(SPRING_FORWARD.astimezone(BERLIN), SPRING_FORWARD.astimezone(BERLIN))
    assert after == datetime(2026, 3, 30, 2, 30, tzinfo=BERLIN)  # once, then the next night as usual


def test_a_skipped_time_comes_before_the_times_after_the_jump() -> None:
    """`30 2` → fast, then `0 3` → pv: on the night the clocks go forward the day is still pv's,
    whichever rule is listed first."""
    cheap_night = ScheduleRule(cron="30 2 * * *", strategy="fast")
    two = ScheduleRule(cron="0 2 * * *", strategy="fast")
    morning = ScheduleRule(cron="0 3 * * *", strategy="pv")
    noon = datetime(2026, 3, 29, 12, 0, tzinfo=BERLIN).astimezone(UTC)
    assert sched.active_rule([cheap_night, morning], noon, BERLIN) == morning
    assert sched.active_rule([morning, two], noon, BERLIN) == morning
    just_after = SPRING_FORWARD + timedelta(minutes=10)
    assert sched.active_rule([cheap_night], just_after, BERLIN) == cheap_night
    assert sched.last_fire_time(cheap_night, just_after, BERLIN) == SPRING_FORWARD


def test_after_a_skipped_time_the_same_rule_fires_again_after_the_jump() -> None:
    """`30 2,3`: 02:30 is skipped (it fires at the jump), 03:30 CEST still comes."""
    both = ScheduleRule(cron="30 2,3 * * *", strategy="fast")
    morning = ScheduleRule(cron="0 3 * * *", strategy="pv")
    at = datetime(2026, 3, 29, 3, 45, tzinfo=BERLIN).astimezone(UTC)
    assert sched.last_fire_time(both, at, BERLIN) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert sched.active_rule([both, morning], at, BERLIN) == both


def test_the_last_firing_of_a_rule_that_fires_every_minute_is_the_last_minute() -> None:
    every_minute = ScheduleRule(cron="* * * * *", strategy="fast")
    now = datetime(2026, 11, 25, 12, 0, 30, tzinfo=UTC)
    assert sched.last_fire_time(every_minute, now, BERLIN) == datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    weekly = ScheduleRule(cron="0 8 * * mon", strategy="fast")
    assert sched.last_fire_time(weekly, now, BERLIN) == datetime(2026, 11, 23, 7, 0, tzinfo=UTC)


def test_a_clock_stepped_forward_by_weeks_is_one_late_cycle_not_a_walk_through_every_tick() -> None:
    """A Raspberry Pi without a real-time clock, stepped forward when NTP answers: APScheduler listed
    every skipped 5 s tick before coalescing them (7 s of blocked loop for 60 days, no fuse check)."""

    async def nothing(*_: object) -> None:
        return None

    scheduler = sched.build(nothing, interval_s=5, rules=[], on_rule=nothing, timezone=UTC)
    job = scheduler.get_job(sched.CYCLE_JOB)
    later = job.next_run_time + timedelta(days=2, seconds=2)  # between two ticks
    run_times = job._get_run_times(later)
    assert len(run_times) == 2  # the tick that was due, and the last one up to the new time
    assert later - timedelta(seconds=5) < run_times[-1] <= later  # due: the coalesced cycle runs now
    assert job.trigger.get_next_fire_time(run_times[-1], later) == run_times[-1] + timedelta(seconds=5)


async def test_a_clock_stepped_forward_by_weeks_fires_a_rule_once_not_once_for_every_missed_minute() -> None:
    """A rule firing every minute, the clock stepped forward by 60 days: APScheduler listed all
    86 400 missed firings before coalescing them (1.7 s of blocked loop on a PC, several on a
    Raspberry Pi). The missed firing and the last one up to now are enough: the rule fires once, late,
    and its next firing is the next minute. A daily rule likewise."""

    async def nothing(*_: object) -> None:
        return None

    every_minute = ScheduleRule(cron="* * * * *", strategy="fast")
    scheduler = sched.build(
        nothing, interval_s=5, rules=[every_minute, NIGHT], on_rule=nothing, timezone=BERLIN
    )
    scheduler.start(paused=True)
    try:
        minutely, nightly = scheduler.get_job("schedule-0"), scheduler.get_job("schedule-1")
        later = minutely.next_run_time + timedelta(days=60, seconds=30)
        run_times = minutely._get_run_times(later)
        assert len(run_times) == 2
        assert run_times[-1] == later.replace(second=0)
        assert minutely.trigger.get_next_fire_time(run_times[-1], later) == run_times[-1] + timedelta(
            minutes=1
        )
        run_times = nightly._get_run_times(later)
        assert len(run_times) == 2
        assert run_times[-1] == sched.last_fire_time(NIGHT, later, BERLIN)
    finally:
        scheduler.shutdown(wait=False)


def test_a_rule_just_after_midnight_fires_on_the_day_after_the_clocks_go_forward() -> None:
    """APScheduler added the day as 24 hours: from 00:00 on 29 March (the clocks go forward at 02:00)
    it reached 01:00 on the 30th, the hour did not match, and the rule fired next on the 31st; the
    strategy of the rule before it held for a day. After a restart on the 30th the same walk made
    the 29th's firing the last one."""
    midnight = ScheduleRule(cron="0 0 * * *", strategy="off")
    evening = ScheduleRule(cron="0 20 * * *", strategy="pv")
    trigger = sched.cron_trigger(midnight, BERLIN)
    first = datetime(2026, 3, 29, 0, 0, tzinfo=BERLIN)
    following = trigger.get_next_fire_time(first, first)
    assert following == datetime(2026, 3, 30, 0, 0, tzinfo=BERLIN)
    assert trigger.get_next_fire_time(following, following) == datetime(2026, 3, 31, 0, 0, tzinfo=BERLIN)
    morning_of_the_30th = datetime(2026, 3, 30, 6, 0, tzinfo=BERLIN).astimezone(UTC)
    assert sched.last_fire_time(midnight, morning_of_the_30th, BERLIN) == following.astimezone(UTC)
    assert sched.active_rule([midnight, evening], morning_of_the_30th, BERLIN) == midnight
