"""`[[schedule]] cron` day_of_week as crontab(5) has it: 0 and 7 are Sunday, 1 is Monday.

APScheduler 3 counts from Monday = 0, so a rule copied from a crontab (`0 22 * * 1-5`) would fire
Tuesday to Saturday; the field is translated to day names before APScheduler sees it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from controller.config import ConfigError, ScheduleRule, parse
from controller.service import scheduler as sched
from controller.service.preflight import preflight

BERLIN = ZoneInfo("Europe/Berlin")
SATURDAY_NOON = datetime(2026, 11, 28, 12, 0, tzinfo=BERLIN)


def next_fire(cron: str, after: datetime = SATURDAY_NOON) -> datetime:
    trigger = sched.cron_trigger(ScheduleRule(cron=cron, strategy="fast"), BERLIN)
    fire: datetime = trigger.get_next_fire_time(None, after)
    return fire


def test_weekdays_by_number_start_on_monday_as_in_crontab() -> None:
    assert next_fire("0 22 * * 1-5") == datetime(2026, 11, 30, 22, 0, tzinfo=BERLIN)  # Monday
    friday_night = datetime(2026, 11, 27, 22, 1, tzinfo=BERLIN)
    assert next_fire("0 22 * * 1-5", friday_night) == datetime(2026, 11, 30, 22, 0, tzinfo=BERLIN)
    assert next_fire("0 22 * * 6") == datetime(2026, 11, 28, 22, 0, tzinfo=BERLIN)  # Saturday


@pytest.mark.parametrize("sunday", ["0", "7", "sun", "SUN"])
def test_sunday_is_0_or_7(sunday: str) -> None:
    assert next_fire(f"0 8 * * {sunday}") == datetime(2026, 11, 29, 8, 0, tzinfo=BERLIN)


@pytest.mark.parametrize(
    ("field", "days"),
    [
        ("*", "sun,mon,tue,wed,thu,fri,sat"),
        ("1-5", "mon,tue,wed,thu,fri"),
        ("mon-fri", "mon,tue,wed,thu,fri"),
        ("Mon-Fri", "mon,tue,wed,thu,fri"),
        ("0", "sun"),
        ("7", "sun"),
        ("0,6", "sun,sat"),
        ("6,7", "sun,sat"),
        ("sat,sun", "sun,sat"),
        ("sat-sun", "sun,sat"),  # APScheduler's own reading of names, which configs already use
        ("5-7", "sun,fri,sat"),
        ("5-0", "sun,fri,sat"),
        ("0-6", "sun,mon,tue,wed,thu,fri,sat"),
        ("0-7", "sun,mon,tue,wed,thu,fri,sat"),
        ("sun-sat", "sun,mon,tue,wed,thu,fri,sat"),
        ("*/2", "sun,tue,thu,sat"),
        ("*/3", "sun,wed,sat"),
        ("1-5/2", "mon,wed,fri"),
        ("mon-fri/2", "mon,wed,fri"),
        ("1/2", "sun,mon,wed,fri"),  # from Monday to the end of the week (7), as cronie reads it
        ("1,3-4,sat", "mon,wed,thu,sat"),
        ("mon,1", "mon"),
    ],
)
def test_day_of_week_is_translated_into_day_names(field: str, days: str) -> None:
    assert sched.day_of_week(field) == days


@pytest.mark.parametrize(
    ("field", "hint"),
    [
        ("8", "'8' is not a day"),
        ("-1", "not a day"),
        ("monday", "'monday' is not a day"),
        ("fri-tue", "runs backwards"),
        ("5-2", "runs backwards"),
        ("*/0", "step"),
        ("1-5/0", "step"),
        ("1-5/x", "step"),
        ("1,,2", "empty"),
        ("mon-", "not a day"),
        ("L", "not a day"),
    ],
)
def test_a_day_of_week_that_cannot_work_is_named(field: str, hint: str) -> None:
    with pytest.raises(ValueError, match="day_of_week") as err:
        sched.day_of_week(field)
    assert hint in str(err.value)


def test_preflight_names_the_rule_and_the_field() -> None:
    cfg = parse(
        {
            "meter": {"preset": "sdm630", "host": "h"},
            "charger": {"url": "http://c", "token": "x"},
            "schedule": [{"cron": "0 22 * * 1-8", "strategy": "fast"}],
        }
    )
    with pytest.raises(ConfigError) as err:
        preflight(cfg, "config.toml")
    message = str(err.value)
    assert message.startswith("config.toml: schedule[1].cron: '0 22 * * 1-8' is not a valid cron expression")
    assert "day_of_week" in message
    assert "0 and 7 are Sunday" in message
    assert "\n" not in message


def test_a_restart_on_sunday_finds_the_rule_that_fired_on_sunday() -> None:
    sunday = ScheduleRule(cron="0 8 * * 0", strategy="fast")
    weekdays = ScheduleRule(cron="0 6 * * 1-5", strategy="pv")
    sunday_noon = datetime(2026, 11, 29, 12, 0, tzinfo=BERLIN).astimezone(UTC)
    assert sched.active_rule([weekdays, sunday], sunday_noon, BERLIN) == sunday
    monday_noon = datetime(2026, 11, 30, 12, 0, tzinfo=BERLIN).astimezone(UTC)
    assert sched.active_rule([weekdays, sunday], monday_noon, BERLIN) == weekdays
