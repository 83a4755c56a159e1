"""The daemon's own loop in-process, against the emulators: what keeps it cycling."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from controller.clock import SystemClock
from controller.config import parse
from controller.service import daemon
from controller.service import scheduler as sched
from controller.service.cycle import CycleResult
from controller.simulation.meter_emulator import MeterEmulator
from controller.simulation.peblar_emulator import PeblarEmulator

TOKEN = "f00d" * 16


async def run_daemon_until(
    done: asyncio.Event, on_cycle: Callable[[CycleResult], None], interval_s: float | None = None
) -> None:
    """The daemon (`fast`, interval_s 1) against both emulators on real time, until `done` is set."""
    async with PeblarEmulator(SystemClock(), token=TOKEN) as charger, MeterEmulator("sdm630") as meter:
        meter.set_values(phase_power_w=(500.0, 500.0, 500.0))
        cfg = parse(
            {
                "meter": {"preset": "sdm630", "host": "127.0.0.1", "port": meter.port},
                "charger": {"url": charger.url, "token": TOKEN},
                "control": {"interval_s": 1},
                "strategy": {"name": "fast"},
            }
        )
        stop = asyncio.Event()
        options = daemon.RunOptions(stop=stop, handle_signals=False, on_cycle=on_cycle, interval_s=interval_s)
        run = asyncio.create_task(daemon.run(cfg, daemon.open_devices(cfg), options))
        try:
            await asyncio.wait_for(done.wait(), 30)
        finally:
            stop.set()
            assert await asyncio.wait_for(run, 10) == 0


async def test_a_clock_stepped_back_does_not_stop_the_cycles(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """APScheduler waits for the wall clock: stepped back an hour, its next cycle would be an hour
    away. Pushing the job's next run an hour ahead is the same situation, without touching the clock."""
    schedulers = []
    real_build = sched.build

    def build(*args: object, **kwargs: object) -> object:
        scheduler = real_build(*args, **kwargs)  # type: ignore[arg-type]
        schedulers.append(scheduler)
        return scheduler

    monkeypatch.setattr(sched, "build", build)
    cycles: list[CycleResult] = []
    enough = asyncio.Event()

    def counted(result: CycleResult) -> None:
        cycles.append(result)
        if len(cycles) == 1:
            job = schedulers[0].get_job(sched.CYCLE_JOB)
            job.modify(next_run_time=datetime.now(UTC) + timedelta(hours=1))
        if len(cycles) == 3:
            enough.set()

    await run_daemon_until(enough, counted, interval_s=0.5)
    stalls = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "no control" in r.getMessage()
    ]
    assert stalls and "the system clock stepped back?" in stalls[0]


async def test_an_interval_longer_than_the_watchdog_still_gets_pings_between_cycles(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`interval_s = 120` under the unit's `WatchdogSec=60`: pinging only after each cycle would get
    the daemon killed every minute. Here WatchdogSec is 0.2 s and cycles come every 1 s, over a real
    notify socket; systemd needs a ping at least every 0.2 s between them."""
    name = f"peblar-surplus-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind("\0" + name)
        systemd.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        monkeypatch.setenv("WATCHDOG_USEC", "200000")
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        heard: list[str] = []

        def drain() -> None:
            with contextlib.suppress(BlockingIOError):
                while True:
                    heard.append(systemd.recv(4096).decode())

        marks: list[int] = []
        two = asyncio.Event()

        def counted(result: CycleResult) -> None:
            drain()
            marks.append(len(heard))
            if len(marks) == 2:
                two.set()

        await run_daemon_until(two, counted)
    between = heard[marks[0] : marks[1]].count("WATCHDOG=1")
    assert between >= 3, heard  # 1 s / 0.1 s would be ten; the cycles' own pings are not counted here


@pytest.mark.parametrize(
    ("interval_s", "rate", "warned"), [(1, 2, True), (1, 3, False), (2, 2, False), (5, 2, False)]
)
def test_an_interval_the_request_budget_cannot_keep_is_warned_about(
    interval_s: float, rate: float, warned: bool
) -> None:
    """interval_s = 1 with the default 2 requests/s: each write waited for the rate limit, and a tick
    was skipped as if the cycle had been slow."""
    cfg = parse(
        {
            "meter": {"preset": "sdm630", "host": "127.0.0.1"},
            "charger": {"url": "http://127.0.0.1:1", "token": "t", "max_requests_per_s": rate},
            "control": {"interval_s": interval_s},
        }
    )
    problem = daemon.request_budget_problem(cfg)
    if not warned:
        assert problem is None
        return
    assert problem is not None
    assert problem.startswith("control.interval_s = 1 with charger.max_requests_per_s = 2: ")
    assert problem.endswith(
        "raise charger.max_requests_per_s to 3 (the charger allows 5 a second for all its clients together)"
    )
