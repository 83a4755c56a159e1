"""One control cycle with real devices: read both, run the core, write, log one line.

This is where a running daemon catches device errors (`check` and the start-up probe report them
their own way). They become `DeviceHealth`, which the safety layer acts on, so one dead device never
hides the other and never stops the daemon. A read that fails in a way the device modules did not
foresee counts as a failed read too: skipping the cycle instead would skip the safety layer, and the
car would keep its last current however stale the data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from controller.charger.base import Charger, ChargerError, ChargerMalformedAnswer, ChargerUnreachable
from controller.clock import Clock
from controller.core import control
from controller.core.commands import Write, reassert_due
from controller.core.decision import Decision
from controller.core.safety import SafetyMemory
from controller.core.state import (
    ChargerInfo,
    ChargerReading,
    DeviceHealth,
    MeterReading,
    SiteLimits,
    SiteState,
)
from controller.errortext import unexpected
from controller.meter.base import Meter, MeterError
from strategies import Strategy

log = logging.getLogger("peblar_surplus")


@dataclass(frozen=True, slots=True)
class CycleResult:
    state: SiteState
    outcome: control.Outcome
    written: bool
    healthy: bool
    """Both devices answered and any write went through: `run --once` exits 0 only then (a cycle
    with a meter that did not answer still commands what is safe, but a script checking an install
    must hear that the meter is missing)."""


DECIDE_BUDGET_S = 1.0
"""Real seconds a strategy's decide may take before its cycle goes on with the fallback (the daemon
gives less when half its interval is shorter). The built-ins take tens of microseconds; a decide that
needs seconds is doing I/O, and while a cycle waits for it no other cycle runs, fuse checks included."""


class _DecideWorker:
    """A daemon thread that makes the strategy's decisions, one at a time, cycle after cycle.

    A daemon thread, because one whose decide never returns must not keep the process from exiting, as
    a worker of asyncio's default executor would. One that waits for the next cycle's state, because
    starting a thread each cycle cost 0.31–0.35 ms of CPU (bench/daemon.py, 2026-12-01), a tenth of a cycle's
    budget on a small box. A worker still in a decide from an earlier cycle is `busy`: the controller
    does not ask that strategy again until it answers (`Controller.deciding`), and any other decide
    goes to a new worker; the busy one is retired and ends once its decide returns.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.busy = False
        self._thread = threading.Thread(target=self._serve, name="strategy-decide", daemon=True)
        self._thread.start()  # RuntimeError when the system has no thread to give

    def usable(self) -> bool:
        return not self.busy and self._thread.is_alive()

    def decide(self, strategy: Strategy, state: SiteState) -> asyncio.Future[Decision]:
        """`control.decide(strategy, state)` on this worker's thread, answered through the loop."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Decision] = loop.create_future()
        self.busy = True
        self._jobs.put((loop, answer, strategy, state))
        return answer

    def retire(self) -> None:
        self._jobs.put(None)

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            self._run(*job)
            del job  # while it waits, the worker holds no state, strategy or loop of a cycle gone by

    def _run(
        self,
        loop: asyncio.AbstractEventLoop,
        answer: asyncio.Future[Decision],
        strategy: Strategy,
        state: SiteState,
    ) -> None:
        try:
            decision = control.decide(strategy, state)  # turns the strategy's failures into a Decision
        except BaseException as exc:  # what even that lets through (KeyboardInterrupt, GeneratorExit)
            decision = control.fallback(state, f"{type(exc).__name__} in decide")
        self.busy = False
        with contextlib.suppress(RuntimeError):  # the loop closed while it ran: nobody is waiting
            loop.call_soon_threadsafe(_deliver, answer, decision)


_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Decision]", Strategy, SiteState]


def _deliver(answer: asyncio.Future[Decision], decision: Decision) -> None:
    if not answer.done():
        answer.set_result(decision)


class Controller:
    """Holds the devices, the active strategy and the memory the core hands back each cycle."""

    def __init__(
        self,
        *,
        meter: Meter,
        charger: Charger,
        strategy: Strategy,
        strategy_name: str,
        limits: SiteLimits,
        info: ChargerInfo,
        clock: Clock,
        dry_run: bool = False,
    ) -> None:
        self.meter = meter
        self.charger = charger
        self.strategy = strategy
        self.strategy_name = strategy_name
        self.limits = limits
        self.info = info
        self.clock = clock
        self.dry_run = dry_run
        self.warned_sources: set[str] = set()
        self.memory = control.ControlMemory()
        self.grid: MeterReading | None = None
        self.reading: ChargerReading | None = None
        self.meter_health = DeviceHealth()
        self.charger_health = DeviceHealth()
        self.requests_written = 0
        self.on_cycle: Callable[[CycleResult], None] | None = None
        self.cycle_log_level = logging.INFO
        """Level of the ordinary cycle line (BLIND and STRATEGY FAILED keep theirs): the demo lowers it."""
        self.deciding: asyncio.Future[Decision] | None = None
        """A decide still running from an earlier cycle, and since when on the clock."""
        self.deciding_since = 0.0
        self.decide_budget_s = DECIDE_BUDGET_S
        """Real seconds the cycle waits for decide; under half the interval, so the cycles keep pace."""
        self.worker: _DecideWorker | None = None
        """The thread that makes the decisions; started by the first cycle."""
        self.limit_written: int | None = None
        self.read_error: Exception | None = None
        """Why the last charger read failed. When the charger answered and only its answer was refused
        (`_answered`), a cut still goes out, so a charger whose readings cannot be used still gets the
        fallback."""
        self.unapplied = 0
        """Reads in a row that did not show the limit last written."""

    def set_strategy(self, name: str, strategy: Strategy) -> None:
        log.info("strategy %s → %s", self.strategy_name, name)
        self.strategy = strategy
        self.strategy_name = name
        self.deciding = None  # the new strategy is not the one still deciding, if one is

    async def _read_meter(self, now: float) -> bool:
        try:
            reading = await self.meter.read(now)
        except MeterError as exc:
            self.meter_health = _failed("meter", self.meter_health, exc)
            return False
        except Exception as exc:  # a bug or an unforeseen answer: the safety layer still runs
            self.meter_health = _failed("meter", self.meter_health, _unforeseen(exc))
            return False
        if self.meter_health.failures:
            log.info("meter recovered after %d failed reads", self.meter_health.failures)
        self.grid = reading
        self.meter_health = self.meter_health.succeeded(now)
        return True

    async def _read_charger(self, now: float) -> bool:
        try:
            reading = await self.charger.read(now)
        except ChargerError as exc:
            self.charger_health = _failed("charger", self.charger_health, exc)
            self.read_error = exc
            return False
        except Exception as exc:  # a bug or an unforeseen answer: the safety layer still runs
            self.charger_health = _failed("charger", self.charger_health, _unforeseen(exc))
            self.read_error = exc
            return False
        if self.charger_health.failures:
            log.info("charger recovered after %d failed reads", self.charger_health.failures)
        self.reading = reading
        self.read_error = None
        self.charger_health = self.charger_health.succeeded(now)
        self._warn_foreign_limit(reading)
        self._check_applied(reading)
        return True

    def _check_applied(self, reading: ChargerReading) -> None:
        """Once: the charger takes our writes (2xx) but keeps reporting another limit.

        The cycle would write the same limit again every time, each 'wrote' in the log, while the car
        charges at whatever the charger keeps; a user must hear that it is not obeying.
        """
        wanted = self.limit_written
        if wanted is None or self.dry_run:
            return
        if reading.limit_ma == wanted:
            if self.unapplied >= UNAPPLIED_WARN_AFTER:
                log.info("charger applies the written limit again (%d mA)", wanted)
            self.unapplied = 0
            return
        self.unapplied += 1
        if self.unapplied == UNAPPLIED_WARN_AFTER:
            log.warning(
                "charger accepted ChargeCurrentLimit=%d mA but still reports %d mA after %d reads "
                "(source %r): it is not applying our writes; check its firmware and that nothing else "
                "(Home Assistant, another controller) writes the limit",
                wanted,
                reading.limit_ma,
                self.unapplied,
                reading.limit_source,
            )

    def _warn_foreign_limit(self, reading: ChargerReading) -> None:
        """Once per source: another limiter (often Peblar's own solar mode) is overriding us."""
        source = reading.limit_source
        if source in _OWN_SOURCES or source in self.warned_sources or reading.limit_ma == 0:
            return
        self.warned_sources.add(source)
        log.warning(
            "charger current is limited by %r (%d mA), not by this controller; if that is Peblar's own "
            "solar or scheduled charging, set its smart-charging mode to 'Default'",
            source,
            reading.limit_actual_ma,
        )

    async def cycle(self) -> CycleResult:
        now = self.clock.now()
        meter_ok, charger_ok = await asyncio.gather(self._read_meter(now), self._read_charger(now))
        state = SiteState(
            now=now,
            limits=self.limits,
            info=self.info,
            grid=self.grid,
            charger=self.reading,
            meter_health=self.meter_health,
            charger_health=self.charger_health,
        )
        outcome, memory = control.decided(await self._decide(state), state, self.memory)
        # the first write after start is ours even when the charger happens to have that limit
        reassert = self.limit_written is not None and _reassert(outcome.write, state)
        sent = outcome.write and (
            charger_ok or (_answered(self.read_error) and self._cut(outcome.write, state))
        )
        written = bool(sent) and await self._write(outcome.write)
        if written or not outcome.write:
            self.memory = memory
        elif sent:
            self.memory = _perhaps_applied(memory, self.memory)
        # else nothing was sent (the charger read failed): the charger still has what the last cycle
        # left, so an unsent limit must not become the ceiling the meter-failure hold keeps, nor an
        # unsent pause count against the relay budget
        _log_cycle(
            state,
            outcome,
            written,
            None if sent else self.read_error,
            reassert=reassert,
            dry_run=self.dry_run,
            level=self.cycle_log_level,
        )
        healthy = meter_ok and charger_ok and (written or not outcome.write)
        result = CycleResult(state, outcome, written, healthy=healthy)
        if self.on_cycle is not None:
            self.on_cycle(result)
        return result

    async def _decide(self, state: SiteState) -> Decision:
        """The strategy's decision, made on the worker's thread (`_DecideWorker`).

        A plugin that calls a web service, or loops, would otherwise hold the event loop: no cycle, no
        fuse check, no shutdown on SIGTERM, and the charger at its last limit. Waited for up to
        `decide_budget_s`; a later answer is dropped, and until it comes every cycle gets the fallback
        without asking again, so the cycles keep their pace.
        """
        if self.deciding is not None:
            busy = self.clock.now() - self.deciding_since
            if not self.deciding.done():
                return control.fallback(state, f"decide has not answered for {busy:.0f} s")
            log.warning("strategy %s answered after up to %.0f s, too late to use", self.strategy_name, busy)
            self.deciding = None
        strategy, started = self.strategy, self.clock.now()
        answer = self._decide_on_worker(strategy, state)
        budget_s = self.decide_budget_s
        done, _ = await asyncio.wait({answer}, timeout=budget_s)
        if done:
            return answer.result()
        if self.strategy is strategy:  # else a schedule switched strategies during the wait
            self.deciding, self.deciding_since = answer, started
        return control.fallback(state, f"decide has not answered within {budget_s:g} s")

    def _decide_on_worker(self, strategy: Strategy, state: SiteState) -> asyncio.Future[Decision]:
        if self.worker is not None and not self.worker.usable():
            self.worker.retire()
            self.worker = None
        if self.worker is None:
            try:
                self.worker = _DecideWorker()
                weakref.finalize(self, self.worker.retire)  # a controller gone, its worker ends too
            except RuntimeError as exc:  # "can't start new thread": the cycle still gets its fuse check
                answer: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
                answer.set_result(control.fallback(state, f"decide could not be started ({exc})"))
                return answer
        return self.worker.decide(strategy, state)

    def _cut(self, write: Write, state: SiteState) -> bool:
        """A write safe to send without a fresh reading (the blind fallback, a fuse cut): one that
        lowers the limit below every limit the charger may still have, the last one read, written
        or commanded, or re-asserts the lowest of them when that is due (a charger that rebooted
        meanwhile is back at its maximum). A rise, the end of a pause or a phase switch would act on
        data as old as the last good reading, whose car current the fuse check takes off the meter's."""
        if write.force_1_phase is not None or write.limit_ma is None:
            return False
        reading = state.charger
        known = (
            reading.limit_ma if reading is not None else None,
            self.limit_written,
            self.memory.safety.last_limit_ma,
        )
        lowest = min((limit for limit in known if limit is not None), default=None)
        if lowest is None or write.limit_ma < lowest:
            return True
        return write.limit_ma == lowest and reassert_due(
            state.now, self.memory.last_write_s, self.limits.reassert_s
        )

    async def _write(self, write: Write) -> bool:
        try:
            await self.charger.write(write)
        except ChargerError as exc:
            log.error("charger write %s failed: %s", write.describe(), exc)
            return False
        except Exception as exc:  # counted as not written, so the next cycle writes again
            log.error("charger write %s failed: %s", write.describe(), _unforeseen(exc))
            return False
        self.requests_written += 1
        if write.limit_ma is not None:
            if write.limit_ma != self.limit_written:  # a new value: a read-back may lag one cycle
                self.unapplied = 0
            self.limit_written = write.limit_ma
        return True

    async def write_exit_state(self, exit_state: str) -> None:
        """On shutdown the charger keeps our last limit forever (no watchdog), so leave it safe."""
        if exit_state == "keep":
            log.info("exit: leaving the charger as it is")
            return
        current = self.limits.fallback_current_a if exit_state == "fallback" else 0.0
        limit_ma = round(current * 1000)
        try:
            await self.charger.write(Write(limit_ma=limit_ma))
        except Exception as exc:  # at exit, any failure gets the same one line
            log.error("exit: could not write %s state (%d mA): %s", exit_state, limit_ma, exc)
            return
        verb = "would write (dry-run)" if self.dry_run else "wrote"
        log.info("exit: %s %s state (%d mA)", verb, exit_state, limit_ma)


def _perhaps_applied(new: control.ControlMemory, old: control.ControlMemory) -> control.ControlMemory:
    """A write that was sent but failed (a 5xx, a timeout, an answer that broke off) may have been
    applied or not. Each uncertainty on its safe side: a pause counts against the relay budget; a
    phase switch against its interval, and one to 3 phases in the fuse check after it; the pause
    before a 1→3 switch stays under way only if it was so before the write and still is after it,
    as the interval is not checked while one is (a switch written and unconfirmed, then reversed
    the next cycle, was two switches 5 s apart); the limit in force is not remembered but read back
    from the charger next cycle (whether the car was running, the limit a meter failure holds); and
    the write time stays, so the next cycle writes again."""
    was, now = old.safety, new.safety
    safety = SafetyMemory(
        now.pause_times,
        now.last_switch_s,
        None,
        was.switching_up and now.switching_up,
        now.car_ceiling,
        now.up_switch_s,
    )
    return control.ControlMemory(safety=safety, last_write_s=old.last_write_s)


def _answered(read_error: Exception | None) -> bool:
    """The charger answered the read and only its answer was refused (garbage, a shape the client
    does not know, a bug in reading it): a write may well get through. Not after a timeout, a 401,
    a 429 or a 5xx, which a write would meet too, paying the timeout and the retries again or adding
    to the load of a charger that is struggling."""
    return isinstance(read_error, ChargerMalformedAnswer) or not isinstance(read_error, ChargerError)


def _unforeseen(exc: Exception) -> Exception:
    log.debug("unforeseen device error", exc_info=exc)
    return RuntimeError(f"{unexpected(exc)} (a bug: please report it)")


def _failed(device: str, health: DeviceHealth, exc: Exception) -> DeviceHealth:
    if health.failures == 0:
        log.error("%s read failed: %s", device, exc)
    else:
        log.debug("%s read failed again (%d): %s", device, health.failures + 1, exc)
    return health.failed(str(exc))


def _reassert(write: Write, state: SiteState) -> bool:
    charger = state.charger
    return charger is not None and write.force_1_phase is None and write.limit_ma == charger.limit_ma


UNAPPLIED_WARN_AFTER = 3
"""Reads that may miss a written limit before the warning: a write can land just after a read."""

_OWN_SOURCES = {"Local REST API", "Installation limit", "Hardware limitation", "Charging cable"}


def _log_cycle(
    state: SiteState,
    outcome: control.Outcome,
    written: bool,
    read_error: Exception | None,
    *,
    reassert: bool,
    dry_run: bool,
    level: int,
) -> None:
    grid = f"{state.grid.power_w:+.0f}" if state.grid is not None else "?"
    car = f"{state.car_power_w():.0f}" if state.charger is not None else "?"
    surplus = f"{outcome.surplus_w:.0f}" if outcome.surplus_w is not None else "?"
    command = outcome.command
    target = "pause" if command.limit_ma == 0 else f"{command.limit_ma / 1000:.1f} A"
    phases = "1p" if command.force_1_phase else ("3p" if command.force_1_phase is False else "")
    if not outcome.write:
        action = "no write"
    elif written:
        if reassert:  # the periodic write of what the charger already has
            verb = "would re-assert" if dry_run else "re-asserted"
        else:
            verb = "would write" if dry_run else "wrote"
        action = f"{verb} {outcome.write.describe()}"
    elif read_error is not None:
        action = (
            "charger unreachable" if isinstance(read_error, ChargerUnreachable) else "charger read failed"
        )
    else:
        action = f"write failed: {outcome.write.describe()}"
    if outcome.decision.reason.startswith(control.STRATEGY_FAILED):
        level = logging.ERROR
    elif any(note.startswith("BLIND") for note in outcome.notes):
        level = logging.WARNING
    log.log(
        level,
        "grid=%s W car=%s W surplus=%s W → %s %s (%s) | %s",
        grid,
        car,
        surplus,
        target,
        phases,
        action,
        outcome.reason(),
    )
