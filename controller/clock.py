"""Time as an input: the daemon, the demo, the emulators and the tests each choose their clock.

Times are float seconds on the Unix epoch (UTC), so the same number serves the control core's timers
and the cron rules of the scheduler.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


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
