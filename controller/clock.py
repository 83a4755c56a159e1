"""Time as an input: the daemon, the demo, the emulators and the tests each choose their clock.

Times are float seconds on the Unix epoch (UTC), so the same number serves the control core's timers
and the cron rules of the scheduler.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class ScaledClock:
    """Runs from `start` at `speed` times real time: the demo replays hours in a minute."""

    def __init__(self, start: float, speed: float) -> None:
        self._start = start
        self._speed = speed
        self._origin = time.monotonic()

    def now(self) -> float:
        return self._start + (time.monotonic() - self._origin) * self._speed


class ManualClock:
    """A clock that moves only when told to; tests advance it instead of sleeping."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

    def set(self, when: float) -> None:
        self._now = when
