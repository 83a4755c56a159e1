"""The daemon: devices from the config, the start-up probe, the scheduler, signals and a safe exit.

Devices and the clock can be handed in, which is how the demo and the closed-loop tests run this very
code against the emulators.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from controller.charger.base import Charger, ChargerAuthError, ChargerError, ChargerWriteRefused
from controller.charger.dry_run import DryRunCharger
from controller.clock import Clock, SteadyClock, SystemClock
from controller.config import CHARGER_REQUESTS_PER_S, Config, ConfigError, ScheduleRule, redacted
from controller.core.state import ChargerInfo
from controller.meter.base import Meter
from controller.service import scheduler as sched
from controller.service import systemd
from controller.service.cycle import DECIDE_BUDGET_S, Controller, CycleResult
from strategies import Strategy, StrategyError, load

log = logging.getLogger("peblar_surplus")

EXIT_TIMEOUT_S = 4.0
"""From the signal to the exit state written (or given up): with the devices closed after it
(`CLOSE_TIMEOUT_S` each), the daemon is gone within 5 s of SIGTERM, as the README says."""
CLOSE_TIMEOUT_S = 0.25
STALL_INTERVALS = 3
"""Intervals without a cycle starting or ending, by the monotonic clock, before the loop is nudged."""
STALL_MIN_S = 2.0
"""…and at least this long, for the demo's millisecond intervals and the scheduler's own latency."""


class StartupError(Exception):
    """The charger refuses to be controlled (token, ReadOnly); restarting will not help."""


@dataclass
class Devices:
    meter: Meter
    charger: Charger


@dataclass
class RunOptions:
    dry_run: bool = False
    once: bool = False
    clock: Clock = field(default_factory=SystemClock)
    elapsed: Callable[[], float] | None = None
    """Seconds no clock step moves (`clock.boot_seconds`, as `run` passes): the control core's time
    runs on by them, and a step of `clock` is kept out of it (`SteadyClock`). None: the core reads
    `clock` as it is, as the demo's scaled clock and the tests' manual one are read."""
    interval_s: float | None = None
    """Real seconds between cycles; defaults to `[control] interval_s` (the demo runs faster)."""
    stop: asyncio.Event | None = None
    handle_signals: bool = True
    on_cycle: Callable[[CycleResult], None] | None = None
    """Called after every cycle (the demo's summary counts pauses and switches with it)."""
    log_slow_cycles: bool = True
    """Say when a cycle outlasts the interval; off for the demo, whose interval is a few milliseconds."""
    cycle_log_level: int = logging.INFO
    """Level of the ordinary one-line-per-cycle log; the demo, a day in a minute, sums up instead."""


def _built_aside(name: str, params: dict[str, Any]) -> asyncio.Future[Strategy]:
    """`load(name, params)` on a daemon thread of its own, answered through the loop.

    Not asyncio's default executor: `asyncio.run` waits for its threads at exit, so a plugin's
    constructor that never returns would hold the shutdown, the exit state written or not, until
    systemd kills the process."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[Strategy] = loop.create_future()

    def settle(outcome: Strategy | StrategyError) -> None:
        if answer.done():
            return
        if isinstance(outcome, StrategyError):
            answer.set_exception(outcome)
        else:
            answer.set_result(outcome)

    def build() -> None:
        outcome: Strategy | StrategyError
        try:
            outcome = load(name, params)
        except StrategyError as exc:
            outcome = exc
        except BaseException as exc:  # sys.exit in a plugin's constructor: awaited, it would end the loop
            outcome = StrategyError.about_name(name, f"it could not be created ({type(exc).__name__})")
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits for it
            loop.call_soon_threadsafe(settle, outcome)

    threading.Thread(target=build, name="strategy-build", daemon=True).start()
    return answer


def open_devices(cfg: Config, *, token: str | None = None) -> Devices:
    """The real meter and charger described by the config.

    `token` overrides the config's token sources: the demo talks to its own emulator, and a
    `$PEBLAR_SURPLUS_TOKEN` meant for the real charger must neither break it nor be sent there.
    """
    from controller.charger.peblar.client import PeblarClient  # noqa: PLC0415 - keeps `check --help` light
    from controller.meter.modbus import ModbusMeter  # noqa: PLC0415

    token, source = (token, "the demo") if token is not None else cfg.charger.credential()
    charger = PeblarClient(
        cfg.charger.url,
        token,
        timeout_s=cfg.charger.timeout_s,
        max_requests_per_s=cfg.charger.max_requests_per_s,
        max_current_ma=round(cfg.charger.max_current_a * 1000),
        token_source=source,
    )
    return Devices(meter=ModbusMeter(cfg.meter), charger=charger)


async def probe(charger: Charger, *, needs_write: bool, again: bool = False) -> ChargerInfo | None:
    """Capabilities, or None when the charger cannot answer yet (the loop probes again, `again`,
    and says so only once: the cycle's own line already reports the failing charger).

    Only a refusal is final: a wrong token or a ReadOnly API stays so until the user acts, so the
    daemon exits with 3 and systemd does not restart it. A charger that is booting (5xx, 404), busy
    (429) or half-answering is waited for like an unreachable one; exiting 3 for it would leave the car
    uncontrolled until someone noticed.
    """
    try:
        return await charger.probe(needs_write=needs_write)
    except (ChargerAuthError, ChargerWriteRefused) as exc:
        raise StartupError(str(exc)) from exc
    except ChargerError as exc:
        if again:
            log.debug("charger still not ready for its first probe (%s)", exc)
        else:
            log.error("charger not ready at start-up (%s); will keep trying every cycle", exc)
        return None


BUILD_WAIT_S = 5.0
"""How long a schedule job waits for its strategy to be built before it returns (the switch still
comes when the build is done)."""
Active = tuple[str, dict[str, Any]]
"""The (name, parameters) of a strategy, as `Config.strategy_for` gives them."""

REQUESTS_PER_CYCLE = 3
"""A cycle's two reads (`/evinterface`, `/meter`) and a write."""


def request_budget_problem(cfg: Config) -> str | None:
    """Why the client's rate limit would hold cycles up, or None.

    At interval_s = 1 with the default 2 requests/s, the two reads use the whole budget: every write
    waited half a second, the cycle overran its interval and a tick was skipped, reported as a slow
    cycle. It still works (the cycles that run check the fuse), so a warning, not an error."""
    interval_s, rate = cfg.control.interval_s, cfg.charger.max_requests_per_s
    if rate * interval_s >= REQUESTS_PER_CYCLE:
        return None
    needed = math.ceil(REQUESTS_PER_CYCLE / interval_s * 10) / 10  # at most 3: interval_s >= 1
    return (
        f"control.interval_s = {interval_s:g} with charger.max_requests_per_s = {rate:g}: a cycle's two "
        f"reads and a write need {REQUESTS_PER_CYCLE} requests per interval, so a cycle that writes "
        f"waits for the rate limit and the next tick is skipped; raise charger.max_requests_per_s to "
        f"{needed:g} (the charger allows {CHARGER_REQUESTS_PER_S} a second for all its clients together)"
    )


async def run(cfg: Config, devices: Devices, options: RunOptions) -> int:
    dry_run = options.dry_run or cfg.control.dry_run
    charger: Charger = DryRunCharger(devices.charger) if dry_run else devices.charger
    if dry_run:
        log.warning("DRY-RUN: reading meter and charger, computing decisions, writing nothing")
    short = None if dry_run else request_budget_problem(cfg)  # a dry run writes nothing to wait for
    if short is not None:
        log.warning("%s", short)
    stop = options.stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handle_signals = options.handle_signals and not options.once  # --once: a script's single cycle
    if handle_signals:
        # From the start, the probe included (a charger that does not answer holds it for seconds),
        # and kept until the exit state is written: a second Ctrl-C or SIGTERM during shutdown must not
        # kill the process before the charger is left safe (EXIT_TIMEOUT_S bounds the wait).
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    log.info("meter: %s", devices.meter.describe())
    try:
        rule = sched.active_rule(cfg.schedule, _now(options.clock), ZoneInfo(cfg.site.timezone))
        controller = _controller(cfg, rule, devices.meter, charger, _UNPROBED, options, dry_run)
        controller.on_cycle = options.on_cycle
        controller.cycle_log_level = options.cycle_log_level
        probing = asyncio.ensure_future(probe(devices.charger, needs_write=not dry_run))
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({probing, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not probing.done():
            probing.cancel()
            log.info("stopping during start-up")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(controller.write_exit_state(cfg.control.exit_state), EXIT_TIMEOUT_S)
            return 0
        info = probing.result()
        if info is not None:
            controller.info = info
        if options.once:
            result = await controller.cycle()
            return 0 if result.healthy else 1
        return await _serve(
            cfg, controller, options, stop, probed=info is not None, active=cfg.strategy_for(rule)
        )
    finally:
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        await _close(devices)


def _now(clock: Clock) -> datetime:
    return datetime.fromtimestamp(clock.now(), UTC)


_UNPROBED = ChargerInfo(phase_count=3, force_1_phase_allowed=False, firmware="not probed yet")


def _controller(
    cfg: Config,
    rule: ScheduleRule | None,
    meter: Meter,
    charger: Charger,
    info: ChargerInfo,
    options: RunOptions,
    dry_run: bool,
) -> Controller:
    """The controller, with the strategy of the schedule `rule` active at start-up (None: `[strategy]`)."""
    name, params = cfg.strategy_for(rule)
    try:
        strategy = load(name, params)
    except StrategyError as exc:  # preflight made it once; a plugin may refuse a second instance
        raise ConfigError(redacted(str(exc))) from exc
    log.info("strategy %s%s", name, f" (from schedule {rule.cron!r})" if rule else "")
    controller = Controller(
        meter=meter,
        charger=charger,
        strategy=strategy,
        strategy_name=name,
        limits=cfg.site_limits(),
        info=info,
        clock=options.clock if options.elapsed is None else SteadyClock(options.clock, options.elapsed),
        dry_run=dry_run,
    )
    controller.decide_budget_s = min(DECIDE_BUDGET_S, cfg.control.interval_s / 2)
    return controller


async def _serve(
    cfg: Config,
    controller: Controller,
    options: RunOptions,
    stop: asyncio.Event,
    *,
    probed: bool,
    active: tuple[str, dict[str, Any]],
) -> int:
    """The loop until `stop`; `active` is the (name, parameters) of the strategy the controller runs."""
    loop = asyncio.get_running_loop()

    running = asyncio.Lock()
    stopping = False
    refused: StartupError | None = None
    interval_s = options.interval_s or cfg.control.interval_s
    last_active = last_done = loop.time()

    async def cycle() -> None:
        nonlocal last_active
        if stopping:
            return
        began = last_active = loop.time()
        try:
            async with running:
                await _one_cycle()
        except asyncio.CancelledError:  # the loop closing under a cycle in flight at shutdown
            log.debug("control cycle cancelled by shutdown")
            return
        last_active = loop.time()
        took = last_active - began
        if took > interval_s and options.log_slow_cycles:
            log.info(
                "cycle took %.1f s, longer than interval_s %g s: the ticks in between were skipped",
                took,
                interval_s,
            )

    async def _one_cycle() -> None:
        nonlocal probed, refused
        if not probed:
            try:
                info = await probe(controller.charger, needs_write=not controller.dry_run, again=True)
            except StartupError as exc:  # the charger came up refusing us: as at start-up, exit 3
                log.error("charger refuses control: %s", exc)
                refused = exc
                stop.set()
                return
            if info is not None:
                controller.info = info
                probed = True
        try:
            await controller.cycle()
        except Exception:
            log.exception("control cycle failed unexpectedly; the daemon keeps running")
            return
        # The loop is alive and the safety layer ran. A charger that is off stays off however often
        # systemd restarts us, so its absence is the cycle's log line and the fallback, not a restart.
        nonlocal last_done
        last_done = loop.time()
        systemd.notify("WATCHDOG=1")

    zone = ZoneInfo(cfg.site.timezone)
    firings = 0  # schedule firings so far: a strategy built for an older one is not switched to

    async def switch(fired: ScheduleRule) -> None:
        """Switch to the rule that should be active now, which is not always the one that fired:
        after a suspend every missed rule fires at once, in no useful order, and rules due at the
        same minute fire in the order of their job ids. Asking `active_rule`, as a restart does,
        makes the live daemon and a restart agree.

        The new strategy is built on a thread of its own: a plugin's constructor may take its time (a
        model to load, a web service to ask), and on the event loop it would hold every cycle, fuse
        check and fallback included. The strategy in force keeps running meanwhile, and the switch
        happens when the build is done. The job waits for that only `BUILD_WAIT_S`: a job still
        running is not started again, so a build that never returns would silence the rule's later
        firings. Any later firing supersedes a build still under way."""
        nonlocal firings
        firings += 1
        mine = firings
        rule = sched.active_rule(cfg.schedule, _now(options.clock), zone) or fired
        wanted = cfg.strategy_for(rule)
        if wanted == active:
            log.debug("schedule %r fired; strategy %s stays (schedule %r)", fired.cron, wanted[0], rule.cron)
            return
        building = _built_aside(*wanted)
        building.add_done_callback(lambda built: switch_to(built, mine, rule, wanted))
        try:
            await asyncio.wait({building}, timeout=BUILD_WAIT_S)
        except asyncio.CancelledError:  # shutting down with a build under way: nothing to switch to
            return
        if not building.done():
            log.warning(
                "schedule %r: strategy %s still being built after %g s; %s runs until it is ready",
                rule.cron,
                wanted[0],
                BUILD_WAIT_S,
                active[0],
            )

    def switch_to(built: asyncio.Future[Strategy], mine: int, rule: ScheduleRule, wanted: Active) -> None:
        nonlocal active
        if built.cancelled():
            return
        error = built.exception()
        if error is not None:
            log.error("schedule %r: %s", rule.cron, error)
            return
        if mine != firings:
            log.info("schedule %r: %s built, but a later firing has chosen since", rule.cron, wanted[0])
            return
        controller.set_strategy(rule.strategy, built.result())
        active = wanted
        sched.request_cycle(scheduler)

    scheduler = sched.build(
        cycle,
        interval_s=interval_s,
        rules=cfg.schedule,
        on_rule=switch,
        timezone=zone,
    )

    def unstick() -> None:
        """APScheduler times the cycle by the wall clock: stepped back by a minute, it would run no
        cycle for a minute, fuse check included. The event loop's clock cannot step, so it checks."""
        if stopping:
            return
        idle = loop.time() - last_active
        if idle > stall_s and not running.locked():
            log.warning("no control cycle for %.0f s (the system clock stepped back?); running one now", idle)
            sched.request_cycle(scheduler)
        loop.call_later(stall_s / STALL_INTERVALS, unstick)

    def keep_alive(every_s: float) -> None:
        """Pings between cycles, for an interval_s longer than WatchdogSec, as long as the cycles are
        on time: a cycle that hangs, or a blocked event loop, still gets the daemon restarted."""
        if stopping:
            return
        if loop.time() - last_done < interval_s + every_s:
            systemd.notify("WATCHDOG=1")
        loop.call_later(every_s, keep_alive, every_s)

    stall_s = max(STALL_INTERVALS * interval_s, STALL_MIN_S)
    scheduler.start()
    loop.call_later(stall_s / STALL_INTERVALS, unstick)
    watchdog_s = systemd.watchdog_s()
    if watchdog_s is not None:
        loop.call_later(watchdog_s / 2, keep_alive, watchdog_s / 2)
    systemd.notify("READY=1")
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        systemd.notify("STOPPING=1")
        stopping = True
        scheduler.pause()
        # Let a cycle in flight finish (bounded), so the exit state is the last thing written; both
        # within one EXIT_TIMEOUT_S, so a charger that does not answer cannot stretch the exit.
        deadline = loop.time() + EXIT_TIMEOUT_S
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(running.acquire(), EXIT_TIMEOUT_S / 2)
        scheduler.shutdown(wait=False)
        with contextlib.suppress(TimeoutError):
            exit_write = controller.write_exit_state(cfg.control.exit_state)
            await asyncio.wait_for(exit_write, max(deadline - loop.time(), EXIT_TIMEOUT_S / 4))
    if refused is not None:
        raise refused
    return 0


async def _close(devices: Devices) -> None:
    for close in (devices.meter.aclose, devices.charger.aclose):
        with contextlib.suppress(Exception):
            await asyncio.wait_for(close(), CLOSE_TIMEOUT_S)
