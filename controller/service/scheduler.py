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

from controller.clock import existing_instant
from controller.config import ScheduleRule

log = logging.getLogger("peblar_surplus")

CYCLE_JOB = "cycle"


class _SkippedTicks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances" not in record.getMessage()


_SKIPPED_TICKS = _SkippedTicks()


def cron_trigger(rule: ScheduleRule, timezone: tzinfo) -> CronTrigger:
    """The rule's trigger; ValueError names the field that cannot work (preflight reports it)."""
    minute, hour, day, month, weekdays = rule.cron.split()
    fields = {
        "minute": minute,
        "hour": hour,
        "day": day,
        "month": month,
        "day_of_week": day_of_week(weekdays),
    }
    trigger = _CronTrigger(**fields, timezone=timezone)
    trigger.rule = rule
    trigger.wall = CronTrigger(**fields, timezone=UTC)
    return trigger


def _wall(instant: datetime, zone: tzinfo) -> datetime:
    """The local clock's reading at `instant`, as a time on a clock without daylight saving."""
    return instant.astimezone(zone).replace(tzinfo=UTC)


def _placed(wall: datetime, zone: tzinfo) -> datetime:
    """The instant the local clock reads `wall`: the first time in the hour the clocks go back, the
    moment of the jump for a time they skip."""
    return existing_instant(wall.replace(tzinfo=zone))


class _CronTrigger(CronTrigger):  # type: ignore[misc]  # APScheduler 3 ships no types
    """APScheduler's cron trigger, firing a time the clocks skip at the moment they skip it, as cron does.

    APScheduler reads 02:30 on the night the clocks go forward with the offset before the change, which
    is 03:30 after it: a rule for 02:30 would fire after a rule for 03:00, and its strategy would win
    the day. And it adds a day as 24 hours: after the clocks went forward, a rule for 00:00 landed on
    01:00 of the next day and, the hour not matching, fired a day later (Berlin 2026: 29 March, then
    31 March). So the firing is also reckoned on the local clock (`wall`: the rule on a clock without
    daylight saving, placed in the zone afterwards), and the earlier of the two is taken: APScheduler's
    second pass through the hour the clocks go back stays, the day it skipped comes back.

    Far behind (the clock stepped forward by weeks, a long suspend), the firing after the one missed
    first is the rule's last one up to now, as for the cycle (`_CycleTrigger`): APScheduler lists the
    missed firings one by one before it coalesces them, 86 400 for a rule firing every minute after
    60 days, seconds of a blocked event loop and no fuse check meanwhile.
    """

    rule: ScheduleRule
    wall: CronTrigger

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        zoned = super().get_next_fire_time(previous_fire_time, now)
        fire = None if zoned is None else existing_instant(zoned)
        on_the_wall = self._on_the_wall(previous_fire_time, now)
        if on_the_wall is not None and (fire is None or on_the_wall < fire):
            fire = on_the_wall
        if fire is None:
            return None
        if previous_fire_time is not None and now - fire > LOOKBACKS[0]:
            last = last_fire_time(self.rule, now, self.timezone)
            if last is not None and last > fire:
                return last
        return fire

    def _on_the_wall(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        """The next firing reckoned on the local clock, after `previous_fire_time` in real time."""
        zone = self.timezone
        wall_now = _wall(now, zone)
        wall_previous = None
        if previous_fire_time is not None:
            wall_previous = _wall(previous_fire_time, zone)
            if now >= previous_fire_time:  # else the clock stepped back: on from now, as APScheduler does
                wall_now = max(wall_now, wall_previous + timedelta(microseconds=1))
        set_for: datetime | None = self.wall.get_next_fire_time(wall_previous, wall_now)
        if set_for is None:
            return None
        fire = _placed(set_for, zone)
        return fire if previous_fire_time is None or fire > previous_fire_time else None


CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
"""crontab(5) numbering: 0 is Sunday, and so is 7."""
DAYS_HINT = "use 0–7 (0 and 7 are Sunday, 1 is Monday) or sun–sat, as in crontab"


def day_of_week(field: str) -> str:
    """A crontab day_of_week field as the comma list of day names APScheduler is given.

    APScheduler 3 numbers the days from Monday = 0, so a rule copied from a crontab, `0 22 * * 1-5`
    (Monday to Friday), would fire Tuesday to Saturday, and `0` (Sunday) on Mondays. Names mean the
    same to both, so the field is turned into the set of days it means and handed over by name.
    """
    days: set[int] = set()
    for item in field.split(","):
        days |= _days(item)
    return ",".join(CRON_DAYS[day] for day in sorted(days))


def _days(item: str) -> set[int]:
    """One item of the list: `*`, a day, a range `a-b`, each optionally with a step `/n`.

    `a/n` runs from a to the end of the week (7), as cronie reads it. A range that ends on Sunday
    (`sat-sun`, `5-0`) ends on day 7: APScheduler, counting from Monday, accepted `sat-sun`, and
    existing rules keep meaning Saturday and Sunday.
    """
    if not item:
        raise ValueError(f"day_of_week: an empty item in the list (two commas in a row?); {DAYS_HINT}")
    span, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not (step_text.isascii() and step_text.isdigit()) or int(step_text) == 0:
            raise ValueError(f"day_of_week {item!r}: the step after '/' must be a whole number from 1 up")
        step = int(step_text)
    if span == "*":
        first, last = 0, 6
    else:
        low, dash, high = span.partition("-")
        first = _day(low, item)
        last = _day(high, item) if dash else 7 if slash else first
        if last == 0 and first > 0:
            last = 7
        if first > last:
            raise ValueError(
                f"day_of_week {item!r}: the range runs backwards; a range runs from Sunday (0) to "
                "Sunday (7), so write e.g. Friday to Tuesday as '5-7,1-2'"
            )
    return {day % 7 for day in range(first, last + 1, step)}


def _day(text: str, item: str) -> int:
    if text.isascii() and text.isdigit() and int(text) <= 7:
        return int(text)
    if text.lower() in CRON_DAYS:
        return CRON_DAYS.index(text.lower())
    raise ValueError(f"day_of_week {item!r}: {text!r} is not a day; {DAYS_HINT}")


class _CycleTrigger(IntervalTrigger):  # type: ignore[misc]  # APScheduler 3 ships no types
    """The cycle's interval, which does not walk through every tick a clock step skipped.

    APScheduler lists the missed run times one by one before it coalesces them: a Raspberry Pi without
    a real-time clock, stepped forward by weeks when NTP answers after start-up, held the event loop
    for seconds (7 s for 60 days at 5 s), no fuse check and no watchdog ping meanwhile. Far behind,
    the next run time is the last tick up to now instead: due, and within the misfire grace, so the
    coalesced cycle runs at once (the tick after now would drop it, and with it a cycle)."""

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        if previous_fire_time is None or now - previous_fire_time <= 3 * self.interval:
            fire_time: datetime | None = super().get_next_fire_time(previous_fire_time, now)
            return fire_time
        tick: datetime = super().get_next_fire_time(None, now)  # on the start date's grid, at or after now
        return tick - self.interval if tick > now else tick


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
        _CycleTrigger(seconds=interval_s, timezone=timezone),
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
    """The rule whose most recent firing is latest: the one that should be active at `now`.

    The daemon asks this after a restart and whenever a rule fires, so the two always agree, also when
    a suspend or a clock step made several rules fire at once. Rules firing at the same moment are
    ordered by their local times (a time the clocks skipped fires at the jump, before the times after
    it), then by their place in the config: the later one wins, so a general rule followed by its
    exception (`0 22 * * mon-fri`, then `0 22 * * fri`) means what it says.
    """
    best: tuple[tuple[datetime, datetime, int], ScheduleRule] | None = None
    for index, rule in enumerate(rules):
        firing = _last_firing(rule, now, timezone)
        if firing is not None:
            key = (*firing, index)
            if best is None or key > best[0]:
                best = (key, rule)
    return best[1] if best else None


def firings(
    rules: list[ScheduleRule], start: datetime, end: datetime, timezone: tzinfo
) -> list[tuple[datetime, list[ScheduleRule]]]:
    """Every instant after `start` and up to `end` at which some of `rules` fire, as the daemon's
    scheduler fires them (the same triggers), in order, with the rules firing then."""
    found: dict[datetime, list[ScheduleRule]] = {}
    for rule in rules:
        trigger = cron_trigger(rule, timezone)
        fire = trigger.get_next_fire_time(None, start + timedelta(microseconds=1))
        while fire is not None and fire <= end:
            # in UTC: a microsecond added to the second 02:00 of the night the clocks go back lands
            # on the first, half an hour before the firing it follows, and the two alternate for ever
            fire = fire.astimezone(UTC)
            found.setdefault(fire, []).append(rule)
            fire = trigger.get_next_fire_time(fire, fire + timedelta(microseconds=1))
    return sorted(found.items(), key=lambda item: item[0])


def rule_changes(
    rules: list[ScheduleRule], start: datetime, end: datetime, timezone: tzinfo
) -> list[tuple[datetime, ScheduleRule | None]]:
    """The rule active at `start`, then each firing up to `end` with the rule active after it: what the
    daemon would run over that time, for the simulator. Where rules fire together `active_rule`
    decides, as in the daemon; a rule firing alone is the latest to have fired, so it is active (asking
    would cost a month of a rule every 15 minutes four seconds instead of a tenth)."""
    changes: list[tuple[datetime, ScheduleRule | None]] = [(start, active_rule(rules, start, timezone))]
    for fire, fired in firings(rules, start, end, timezone):
        changes.append((fire, fired[0] if len(fired) == 1 else active_rule(rules, fire, timezone)))
    return changes


LOOKBACKS = (timedelta(hours=1), timedelta(days=1), timedelta(days=8))
"""Windows searched, shortest first: a rule firing every minute is found in 60 steps, not 11 520."""
MAX_FIRINGS = 8 * 24 * 60 + 60
"""A rule fires at most once a minute: more steps than that in the look-back would be a bug looping."""


def last_fire_time(rule: ScheduleRule, now: datetime, timezone: tzinfo) -> datetime | None:
    """Latest firing within the past 8 days, in UTC."""
    firing = _last_firing(rule, now, timezone)
    return firing[0] if firing else None


def _last_firing(rule: ScheduleRule, now: datetime, timezone: tzinfo) -> tuple[datetime, datetime] | None:
    """(when, local time it was set for) of the latest firing within the past 8 days; APScheduler only
    looks forward, so this steps from the start of a window.

    Steps and comparisons are in UTC: in local time, the second pass of the hour the clocks go back
    is 'earlier' than the first, and a local step of one second from it lands an hour back, which once
    made this loop, and the daemon's start-up, run for ever.
    """
    trigger = cron_trigger(rule, timezone)
    firings = (_last_in_the_zone(trigger, now, timezone), _last_on_the_wall(trigger.wall, now, timezone))
    return max((firing for firing in firings if firing is not None), default=None)


def _last_in_the_zone(
    trigger: CronTrigger, now: datetime, timezone: tzinfo
) -> tuple[datetime, datetime] | None:
    """As APScheduler steps: through both passes of the hour the clocks go back."""
    for lookback in LOOKBACKS:
        cursor = (now - lookback).astimezone(timezone)
        last: tuple[datetime, datetime] | None = None
        previous: datetime | None = None
        for _ in range(MAX_FIRINGS):
            # the raw firing keeps the local time it was set for, also when the clocks skipped it
            set_for = CronTrigger.get_next_fire_time(trigger, previous, cursor)
            if set_for is None:
                break
            fire = existing_instant(set_for).astimezone(UTC)
            if fire > now:
                break
            last = (fire, set_for.replace(tzinfo=None))
            previous = set_for
            # on from the instant it fired: a skipped 02:30 reads as 03:30 after the jump, and stepping
            # on from there would pass over a 03:30 firing of the same rule
            cursor = (fire + timedelta(seconds=1)).astimezone(timezone)
        if last is not None:
            return last
    return None


def _last_on_the_wall(wall: CronTrigger, now: datetime, timezone: tzinfo) -> tuple[datetime, datetime] | None:
    """On the local clock, which never steps back: also on the day after the clocks went forward,
    which APScheduler's steps pass over for a rule shortly after midnight."""
    for lookback in LOOKBACKS:
        cursor = _wall(now - lookback, timezone)
        last: tuple[datetime, datetime] | None = None
        for _ in range(MAX_FIRINGS):
            set_for = wall.get_next_fire_time(None, cursor)
            if set_for is None:
                break
            fire = _placed(set_for, timezone).astimezone(UTC)
            if fire > now:
                break
            last = (fire, set_for.replace(tzinfo=None))
            cursor = set_for + timedelta(seconds=1)
        if last is not None:
            return last
    return None
