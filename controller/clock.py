"""Time as an input: the daemon, the demo, the emulators and the tests each choose their clock.

Times are float seconds on the Unix epoch (UTC), so the same number serves the control core's timers
and the cron rules of the scheduler. Local wall times (a schedule's 07:00, the simulator's plug-in at
08:00) become instants in one way everywhere (`existing_instant`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

log = logging.getLogger("peblar_surplus")


def existing_instant(local: datetime) -> datetime:
    """`local` if its wall time exists, else the instant the clocks jumped over it, as cron fires.

    Python reads 02:30 on the night the clocks go forward with the offset before the change, which is
    03:30 after it: a schedule rule for 02:30 would fire after one for 03:00, and a car plugged in at
    02:30 would arrive at 03:30.
    """
    zone = local.tzinfo
    wall = local.replace(tzinfo=None)
    if zone is None or local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall:
        return local
    # In a gap fold=1 reads the wall time with the offset after the jump, fold=0 with the one before:
    # the jump lies between the two readings, and bisection finds it to the second.
    before = int(local.replace(fold=1).timestamp())
    after = int(local.replace(fold=0).timestamp())
    offset_after = datetime.fromtimestamp(after, zone).utcoffset()
    while after - before > 1:
        middle = (before + after) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == offset_after:
            after = middle
        else:
            before = middle
    return datetime.fromtimestamp(after, zone)


class Clock(Protocol):
    def now(self) -> float: ...


class Waits(Protocol):
    """Elapsed time and waiting, for the charger client's retries and rate limit: tests pass a
    `ManualClock`, so a back-off is checked to the tenth of a second without waiting for it."""

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class RealWaits:
    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class SystemClock:
    def now(self) -> float:
        return time.time()


BOOTTIME: int | None = getattr(time, "CLOCK_BOOTTIME", None)


def boot_seconds() -> float:
    """Seconds that no setting of the system clock moves, a suspend included (Linux's CLOCK_BOOTTIME;
    the monotonic clock elsewhere): a box suspended for an hour resumes an hour later on it too."""
    return time.clock_gettime(BOOTTIME) if BOOTTIME is not None else time.monotonic()


STEP_TOLERANCE_S = 2.0
"""A difference between the system clock and the elapsed seconds, since the last reading, taken as a
step. NTP slews by at most 0.5 ms a second, which passes through; a cycle reads the clock every
`interval_s` (≤ 300 s), so slewing stays far below this."""


class SteadyClock:
    """The system clock without its steps: the control core's time in the daemon.

    A box without a real-time clock (a Raspberry Pi) starts on the time it shut down with, and NTP steps
    it forward by hours or days when it first answers, often after the service started. Read as it is,
    that step aged every timer of the control core at once: the relay budget's pauses left its window,
    the phase-switch interval was over, a strategy's dip had lasted the whole step. Here the time runs
    on by `elapsed` seconds, and a reading of the system clock that differs from that by more than
    `STEP_TOLERANCE_S` is a step: logged, and kept out. Afterwards the controller's time is the system
    clock's less the steps until the daemon restarts; nothing in the control core reads the time of
    day (the schedule runs on the system clock).
    """

    def __init__(self, wall: Clock, elapsed: Callable[[], float]) -> None:
        self._wall = wall
        self._elapsed = elapsed
        self._last: tuple[float, float] | None = None
        """(the time given, `elapsed` then)"""
        self.behind_s = 0.0
        """How far this clock is behind the system clock: the sum of the steps kept out."""

    def now(self) -> float:
        wall, elapsed = self._wall.now(), self._elapsed()
        given = wall - self.behind_s
        if self._last is not None:
            expected = self._last[0] + (elapsed - self._last[1])
            step = given - expected
            if step > STEP_TOLERANCE_S or step < -STEP_TOLERANCE_S:
                self.behind_s += step
                given = expected
                log.warning(
                    "system clock stepped %+.0f s; the controller's timers (relay budget, phase-switch "
                    "interval, the strategy's delays) count on in real seconds "
                    "(controller time = system time %+.0f s)",
                    step,
                    -self.behind_s,
                )
        self._last = (given, elapsed)
        return given


class ScaledClock:
    """Runs from `start` at `speed` times real time: the demo replays hours in a minute."""

    def __init__(self, start: float, speed: float) -> None:
        self._start = start
        self._speed = speed
        self._origin = time.monotonic()

    def now(self) -> float:
        return self._start + (time.monotonic() - self._origin) * self._speed


class ManualClock:
    """A clock that moves only when told to; tests advance it instead of sleeping. As `Waits`, a
    sleep moves it at once and is recorded in `slept`."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self.slept: list[float] = []

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self._now += seconds

    def advance(self, seconds: float) -> None:
        self._now += seconds

    def set(self, when: float) -> None:
        self._now = when
