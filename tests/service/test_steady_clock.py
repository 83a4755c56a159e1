"""The daemon's control clock: real seconds between readings, whatever is done to the system clock."""

from __future__ import annotations

import logging

import pytest

from controller.clock import ManualClock, SteadyClock, boot_seconds
from controller.config import parse
from controller.service import daemon

TOKEN = "f00d" * 16


def clocks() -> tuple[ManualClock, ManualClock, SteadyClock]:
    wall, real = ManualClock(start=1_750_000_000.0), ManualClock(start=1000.0)
    return wall, real, SteadyClock(wall, real.monotonic)


def advance(wall: ManualClock, real: ManualClock, seconds: float) -> None:
    wall.advance(seconds)
    real.advance(seconds)


def test_without_a_step_it_reads_the_system_clock() -> None:
    wall, real, steady = clocks()
    for _ in range(100):
        assert steady.now() == wall.now()
        advance(wall, real, 5)


def test_ntp_slewing_passes_through() -> None:
    """NTP corrects small offsets by running the clock up to 0.5 ms/s fast or slow: no step."""
    wall, real, steady = clocks()
    for _ in range(720):  # an hour at 5 s, slewing 0.5 ms a second
        assert steady.now() == wall.now()
        wall.advance(5.0025)
        real.advance(5)
    assert steady.behind_s == 0


@pytest.mark.parametrize("step_s", [3600.0, -3600.0, 86400.0 * 3, -30.0])
def test_a_step_either_way_is_kept_out_and_logged(step_s: float, caplog: pytest.LogCaptureFixture) -> None:
    wall, real, steady = clocks()
    steady.now()
    advance(wall, real, 5)
    before = steady.now()
    wall.advance(step_s)
    with caplog.at_level(logging.WARNING, logger="peblar_surplus"):
        assert steady.now() == before
        advance(wall, real, 5)
        assert steady.now() == before + 5
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert f"system clock stepped {step_s:+.0f} s" in caplog.records[0].getMessage()
    assert steady.behind_s == step_s


def test_a_suspend_counted_by_the_elapsed_seconds_is_no_step() -> None:
    """On Linux the elapsed seconds (CLOCK_BOOTTIME) go on through a suspend, as the system clock does:
    an hour suspended is an hour on the controller's timers too."""
    wall, real, steady = clocks()
    steady.now()
    advance(wall, real, 3600)
    assert steady.now() == wall.now()


def test_boot_seconds_run_forward() -> None:
    first = boot_seconds()
    assert boot_seconds() >= first > 0


def test_the_daemon_keeps_steps_out_of_the_control_core_when_given_elapsed_seconds() -> None:
    cfg = parse(
        {
            "meter": {"preset": "sdm630", "host": "127.0.0.1"},
            "charger": {"url": "http://127.0.0.1:1", "token": TOKEN},
        }
    )
    wall, real, _ = clocks()
    options = daemon.RunOptions(clock=wall, elapsed=real.monotonic)
    controller = daemon._controller(cfg, None, None, None, daemon._UNPROBED, options, dry_run=True)  # type: ignore[arg-type]
    start = controller.clock.now()
    wall.advance(3600)
    real.advance(5)
    assert controller.clock.now() == start + 5
