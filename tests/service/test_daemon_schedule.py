"""Schedule switches in the running daemon, against the emulators, on a clock the test moves.

APScheduler fires the rules by the wall clock, so the test calls the jobs' own functions as the
scheduler would (after a suspend it calls every missed one at once, in an order of its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import strategies
from controller.clock import ManualClock
from controller.config import parse
from controller.service import daemon
from controller.service import scheduler as sched
from controller.service.cycle import CycleResult
from controller.simulation.meter_emulator import MeterEmulator
from controller.simulation.peblar_emulator import PeblarEmulator

TOKEN = "f00d" * 16
BERLIN = ZoneInfo("Europe/Berlin")
RULES = [
    {"cron": "0 22 * * mon-fri", "strategy": "fast"},
    {"cron": "0 22 * * fri", "strategy": "off"},  # the exception, after the general rule
    {"cron": "0 6 * * *", "strategy": "pv"},
]


class Daemon:
    """The running daemon's scheduler, and which strategy its cycles run."""

    def __init__(self) -> None:
        self.schedulers: list[Any] = []
        self.reasons: asyncio.Queue[str] = asyncio.Queue()

    def on_cycle(self, result: CycleResult) -> None:
        self.reasons.put_nowait(result.outcome.decision.reason)

    async def next_strategy(self) -> str:
        """The strategy of the next cycle to end from now."""
        while not self.reasons.empty():
            self.reasons.get_nowait()
        return (await asyncio.wait_for(self.reasons.get(), 10)).split(":")[0]

    async def fire(self, job_id: str) -> None:
        """What APScheduler does when the rule's time comes."""
        job = self.schedulers[0].get_job(job_id)
        await job.func(*job.args)


@contextlib.asynccontextmanager
async def running(
    monkeypatch: pytest.MonkeyPatch, clock: ManualClock, strategy: dict[str, object]
) -> AsyncIterator[Daemon]:
    """The daemon with RULES against the emulators, cycling every 50 ms of real time on `clock`."""
    seen = Daemon()
    real_build = sched.build

    def build(*args: Any, **kwargs: Any) -> Any:
        seen.schedulers.append(real_build(*args, **kwargs))
        return seen.schedulers[-1]

    monkeypatch.setattr(sched, "build", build)
    async with PeblarEmulator(clock, token=TOKEN) as charger, MeterEmulator("sdm630") as meter:
        meter.set_values(phase_power_w=(500.0, 500.0, 500.0))
        cfg = parse(
            {
                "site": {"timezone": "Europe/Berlin"},
                "meter": {"preset": "sdm630", "host": "127.0.0.1", "port": meter.port},
                "charger": {"url": charger.url, "token": TOKEN},
                "strategy": strategy,
                "schedule": RULES,
            }
        )
        stop = asyncio.Event()
        options = daemon.RunOptions(
            stop=stop, handle_signals=False, on_cycle=seen.on_cycle, interval_s=0.05, clock=clock
        )
        run = asyncio.create_task(daemon.run(cfg, daemon.open_devices(cfg), options))
        try:
            yield seen
        finally:
            stop.set()
            assert await asyncio.wait_for(run, 10) == 0


async def test_the_live_daemon_switches_to_the_rule_a_restart_would_pick(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loaded: list[tuple[str, dict[str, object]]] = []
    real_load = strategies.load

    def load(name: str, params: Mapping[str, object]) -> strategies.Strategy:
        loaded.append((name, dict(params)))
        return real_load(name, params)

    monkeypatch.setattr(daemon, "load", load)
    clock = ManualClock(datetime(2026, 11, 27, 22, 0, 30, tzinfo=BERLIN).timestamp())  # a Friday
    async with running(monkeypatch, clock, {"name": "pv", "reserve_w": 300}) as seen:
        assert await seen.next_strategy() == "off"  # at start-up Friday's exception wins
        made = len(loaded)
        await seen.fire("schedule-0")  # fires for Friday 22:00 too
        assert await seen.next_strategy() == "off"
        assert len(loaded) == made  # the strategy in force keeps running, its timers with it

        # Suspended from Monday 21:00 to Tuesday 23:00: the missed rules fire at once, in the
        # order of their first missed firing, the morning rule last; the night rule fired last.
        clock.advance(datetime(2026, 12, 1, 23, 0, tzinfo=BERLIN).timestamp() - clock.now())
        await seen.fire("schedule-0")
        await seen.fire("schedule-2")
        assert await seen.next_strategy() == "fast"

        clock.advance(8 * 3600)  # Wednesday 07:00
        await seen.fire("schedule-2")
        assert await seen.next_strategy() == "pv"
    assert loaded[-1] == ("pv", {"reserve_w": 300})  # the rule runs pv as [strategy] tunes it


async def test_a_strategy_slow_to_build_holds_no_cycle_and_a_later_rule_supersedes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A plugin whose constructor takes its time (a model to load) once held the event loop: no
    cycle, no fuse check, no fallback, for as long as it took."""
    gate = threading.Event()
    real_load = strategies.load

    def load(name: str, params: Mapping[str, object]) -> strategies.Strategy:
        if name == "fast":  # the slow plugin
            gate.wait(5)
        return real_load(name, params)

    monkeypatch.setattr(daemon, "load", load)
    clock = ManualClock(datetime(2026, 11, 27, 22, 0, 30, tzinfo=BERLIN).timestamp())  # Friday: off
    async with running(monkeypatch, clock, {"name": "pv"}) as seen:
        try:
            assert await seen.next_strategy() == "off"
            clock.advance(datetime(2026, 12, 1, 22, 0, 30, tzinfo=BERLIN).timestamp() - clock.now())
            building = asyncio.create_task(seen.fire("schedule-0"))  # Tuesday 22:00: fast
            for _ in range(3):
                assert await seen.next_strategy() == "off"  # the cycles go on while fast is built
            clock.advance(8 * 3600)  # Wednesday 06:00, fast still being built
            await seen.fire("schedule-2")
            assert await seen.next_strategy() == "pv"
            gate.set()
            await building
            assert await seen.next_strategy() == "pv"  # the older firing's strategy is not switched to
        finally:
            gate.set()


@pytest.mark.parametrize(("interval_s", "budget_s"), [(1, 0.5), (5, 1.0)])
def test_a_slow_decide_is_waited_for_under_half_an_interval(interval_s: float, budget_s: float) -> None:
    """At interval_s = 1 a full second's wait skipped every other cycle, and its fuse check with it."""
    cfg = parse(
        {
            "meter": {"preset": "sdm630", "host": "127.0.0.1"},
            "charger": {"url": "http://127.0.0.1:1", "token": TOKEN},
            "control": {"interval_s": interval_s},
        }
    )
    info = daemon._UNPROBED
    controller = daemon._controller(cfg, None, None, None, info, daemon.RunOptions(), dry_run=True)  # type: ignore[arg-type]
    assert controller.decide_budget_s == budget_s


async def test_a_rule_whose_strategy_is_slow_to_build_returns_and_switches_when_it_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """APScheduler starts no second run of a job still running: a schedule job awaiting a build that
    never returned would have silenced its rule's later firings."""
    gate = threading.Event()
    real_load = strategies.load

    def load(name: str, params: Mapping[str, object]) -> strategies.Strategy:
        if name == "fast":
            gate.wait(5)
        return real_load(name, params)

    monkeypatch.setattr(daemon, "load", load)
    monkeypatch.setattr(daemon, "BUILD_WAIT_S", 0.1)
    clock = ManualClock(datetime(2026, 11, 27, 22, 0, 30, tzinfo=BERLIN).timestamp())  # Friday: off
    async with running(monkeypatch, clock, {"name": "pv"}) as seen:
        try:
            assert await seen.next_strategy() == "off"
            clock.advance(datetime(2026, 12, 1, 22, 0, 30, tzinfo=BERLIN).timestamp() - clock.now())
            await seen.fire("schedule-0")  # Tuesday 22:00: fast, still being built when the job returns
            assert await seen.next_strategy() == "off"
            gate.set()
            for _ in range(20):
                if await seen.next_strategy() == "fast":
                    break
            else:
                pytest.fail("the switch did not come once the strategy was built")
        finally:
            gate.set()


def test_a_strategy_still_being_built_does_not_hold_the_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    """asyncio.run waits for the threads of its default executor: a plugin's constructor that did not
    return held the shutdown until systemd killed the daemon, exit state written or not."""
    gate, finished = threading.Event(), threading.Event()

    def load(name: str, params: Mapping[str, object]) -> strategies.Strategy:
        gate.wait(10)
        finished.set()
        return strategies.load(name, params)

    monkeypatch.setattr(daemon, "load", load)

    async def switch_then_stop() -> None:
        building = daemon._built_aside("fast", {})
        await asyncio.sleep(0)
        assert not building.done()

    asyncio.run(switch_then_stop())
    try:
        assert not finished.is_set()  # the loop has closed while the build goes on
    finally:
        gate.set()
