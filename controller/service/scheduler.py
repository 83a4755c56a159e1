"""The daemon's loop: an APScheduler interval job for the cycle, cron jobs for strategy switches.

`max_instances=1` and `coalesce=True` mean a slow cycle (a charger timing out) delays the next one
instead of stacking cycles on top of each other. APScheduler warns once for every tick it skips that
way; the daemon says it once per slow cycle instead, with its duration (see `daemon._serve`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from controller.config import ScheduleRule

log = logging.getLogger("peblar_surplus")

CYCLE_JOB = "cycle"


class _SkippedTicks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances" not in record.getMessage()


_SKIPPED_TICKS = _SkippedTicks()


def cron_trigger(rule: ScheduleRule, timezone: tzinfo) -> CronTrigger:
    minute, hour, day, month, day_of_week = rule.cron.split()
    return CronTrigger(
        minute=minute, hour=hour, day=day, month=month, day_of_week=day_of_week, timezone=timezone
    )


def build(
    cycle: Callable[[], Awaitable[Any]],
    *,
    interval_s: float,
    rules: list[ScheduleRule],
    on_rule: Callable[[ScheduleRule], Awaitable[None]],
    timezone: tzinfo,
) -> AsyncIOScheduler:
    """A scheduler with the cycle job (first run at once) and one cron job per `[[schedule]]` rule."""
    for name in ("apscheduler.scheduler", "apscheduler.executors.default"):
        logging.getLogger(name).addFilter(_SKIPPED_TICKS)  # the same object is added once
    scheduler = AsyncIOScheduler(timezone=timezone)
    scheduler.add_job(
        cycle,
        IntervalTrigger(seconds=interval_s, timezone=timezone),
        id=CYCLE_JOB,
        max_instances=1,
        coalesce=True,
        misfire_grace_time=max(1, int(interval_s)),
        next_run_time=datetime.now(UTC),
    )
    for index, rule in enumerate(rules):
        scheduler.add_job(
            on_rule,
            cron_trigger(rule, timezone),
            args=[rule],
            id=f"schedule-{index}",
            max_instances=1,
            coalesce=True,
            # however late (a suspend, the clock stepping forward after boot): a missed switch would
            # otherwise leave the wrong strategy until the rule's next firing, a day or a week later
            misfire_grace_time=None,
        )
        log.info("schedule: %r → strategy %s", rule.cron, rule.strategy)
    return scheduler


def request_cycle(scheduler: AsyncIOScheduler) -> None:
    """Run the cycle now (after a strategy switch) instead of waiting for the next tick."""
    job = scheduler.get_job(CYCLE_JOB)
    if job is not None:
        job.modify(next_run_time=datetime.now(UTC))


def active_rule(rules: list[ScheduleRule], now: datetime, timezone: tzinfo) -> ScheduleRule | None:
    """The rule whose most recent firing is latest: what should be active after a restart at `now`."""
    best: tuple[datetime, ScheduleRule] | None = None
    for rule in rules:
        fired = last_fire_time(rule, now, timezone)
        if fired is not None and (best is None or fired > best[0]):
            best = (fired, rule)
    return best[1] if best else None


LOOKBACK = timedelta(days=8)
MAX_FIRINGS = 8 * 24 * 60 + 60
"""A rule fires at most once a minute: more steps than that in the look-back would be a bug looping."""


def last_fire_time(rule: ScheduleRule, now: datetime, timezone: tzinfo) -> datetime | None:
    """Latest firing within the past 8 days, in UTC (APScheduler only looks forward, so step from a
    week ago).

    Steps and comparisons are in UTC: in local time, the second pass of the hour the clocks go back
    is 'earlier' than the first, and a local step of one second from it lands an hour back, which once
    made this loop, and the daemon's start-up, run for ever.
    """
    trigger = cron_trigger(rule, timezone)
    cursor = (now - LOOKBACK).astimezone(timezone)
    last: datetime | None = None
    previous: datetime | None = None
    for _ in range(MAX_FIRINGS):
        fire = trigger.get_next_fire_time(previous, cursor)
        if fire is None or fire > now:
            break
        last = fire.astimezone(UTC)
        previous = fire
        cursor = (last + timedelta(seconds=1)).astimezone(timezone)
    return last
