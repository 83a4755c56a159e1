"""The control cycle's error handling: device failures become health, logged once, never a crash.

The cycle runs with the real `ModbusMeter` and `PeblarClient` against the closed-loop tests' site: the
Modbus meter emulator and the Peblar REST emulator on loopback, on one `ManualClock`. Faults come from
the emulators (an exception reply, a 500, a stopped server, a ReadOnly API). Only what no emulator can
answer (an exception our device modules did not foresee, a charger that ignores or lags its writes)
comes from the two scripted devices below.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from dataclasses import replace
from fractions import Fraction

import httpx
import pytest

from controller.charger.base import Charger
from controller.charger.dry_run import DryRunCharger
from controller.charger.peblar.client import PeblarClient
from controller.clock import SteadyClock
from controller.core.commands import Write
from controller.core.decision import Decision
from controller.core.state import ChargerInfo, ChargerReading, MeterReading, PhaseReading, SiteState
from controller.meter.base import Meter
from controller.meter.modbus import ModbusMeter
from controller.service.cycle import Controller
from strategies import load
from tests.closed_loop import conftest as closed_loop
from tests.closed_loop.conftest import Site

site = closed_loop.site
"""The fixture: both emulators on loopback; it closes the controller's devices at the end."""

INFO = ChargerInfo(phase_count=3, force_1_phase_allowed=True, firmware="test")


class ScriptedMeter:
    """Raises what it is told to. Kept only for an exception `ModbusMeter` never lets out (it turns
    every failure into a `MeterError`), to show that the cycle survives even that."""

    def __init__(self) -> None:
        self.power_w = -5000.0
        self.fail: Exception | None = None

    async def read(self, now: float) -> MeterReading:
        if self.fail is not None:
            raise self.fail
        per_phase = self.power_w / 3
        phase = PhaseReading(power_w=per_phase, current_a=per_phase / 230, voltage_v=230)
        return MeterReading(time=now, power_w=self.power_w, phases=(phase, phase, phase))

    def describe(self) -> str:
        return "scripted meter"

    async def aclose(self) -> None:
        return None


class ScriptedCharger:
    """Kept only for what the Peblar emulator cannot do: raise an exception `PeblarClient` did not
    foresee (ValueError, TypeError), accept writes with a 2xx but keep its limit, or show each write
    one read late. Every other charger behaviour here comes from the emulator."""

    def __init__(self) -> None:
        self.reading = ChargerReading(
            time=0,
            vehicle_connected=True,
            charging=True,
            limit_ma=10000,
            limit_actual_ma=10000,
            limit_source="Local REST API",
            force_1_phase=False,
            power_w=6900,
            phase_currents_a=(10.0, 10.0, 10.0),
            cp_state="State C",
        )
        self.writes: list[Write] = []
        self.applies = True
        self.lagging: Write | None = None
        """Set (to any Write) for a charger whose read-back shows each write one write late."""
        self.read_fail: Exception | None = None
        self.write_fail: Exception | None = None

    async def probe(self, needs_write: bool = True) -> ChargerInfo:
        return INFO

    async def read(self, now: float) -> ChargerReading:
        if self.read_fail is not None:
            raise self.read_fail
        return replace(self.reading, time=now)

    async def write(self, write: Write) -> None:
        if self.write_fail is not None:
            raise self.write_fail
        self.writes.append(write)
        if not self.applies:
            return
        if self.lagging is not None:
            write, self.lagging = self.lagging, write
        if write.limit_ma is not None:
            self.reading = replace(self.reading, limit_ma=write.limit_ma)
        if write.force_1_phase is not None:
            self.reading = replace(self.reading, force_1_phase=write.force_1_phase)

    async def aclose(self) -> None:
        return None


def client(site: Site, http: httpx.AsyncClient | None = None) -> PeblarClient:
    """The real client, without retries: those wait in real time, and here a failure must reach the cycle."""
    return PeblarClient(
        site.cfg.charger.url,
        site.token,
        http=http,
        timeout_s=0.5,
        retry_budget_s=0,
        max_current_ma=16000,
        max_requests_per_s=10_000,  # the emulator enforces the real budget on the test clock
    )


def make(
    site: Site,
    strategy: str = "fast",
    *,
    meter: Meter | None = None,
    charger: Charger | None = None,
    dry_run: bool = False,
    limit_ma: int = 10000,
) -> Controller:
    """The cycle on the site's emulators (unless a scripted device stands in); the charger starts at
    `limit_ma`, so the first write of the fast strategy (16 A) changes something."""
    site.model.set_limit(limit_ma, site.clock.now())
    device = charger if charger is not None else client(site)
    site.controller = Controller(
        meter=meter if meter is not None else ModbusMeter(site.cfg.meter),
        charger=DryRunCharger(device) if dry_run else device,
        strategy=load(strategy, {}),
        strategy_name=strategy,
        limits=site.cfg.site_limits(),
        info=INFO,
        clock=site.clock,
        dry_run=dry_run,
    )
    return site.controller


def limits_written(site: Site) -> list[int]:
    """Every ChargeCurrentLimit the charger emulator received and applied, in order."""
    return [body["ChargeCurrentLimit"] for _, body in site.charger.write_log if "ChargeCurrentLimit" in body]


async def test_a_failing_meter_is_logged_once_then_recovery_once(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    controller = make(site)
    await site.run(5)
    site.meter.fault = "exception"  # a Modbus exception reply to every request
    caplog.set_level(logging.INFO, logger="peblar_surplus")
    await site.run(15)
    assert caplog.text.count("meter read failed") == 1
    assert controller.meter_health.failures == 3
    site.meter.fault = None
    await site.run(5)
    assert caplog.text.count("meter recovered after 3 failed reads") == 1


async def test_stale_meter_falls_back_within_stale_after_plus_one_cycle(site: Site) -> None:
    """tests/closed_loop stops the meter; here it answers every request with an exception reply."""
    controller = make(site)
    await site.run(5)
    assert site.model.rest_limit_ma == 16000
    site.meter.fault = "exception"
    fallback_at = None
    for step in range(1, 10):
        (result,) = await site.run(5)
        if result.outcome.command.limit_ma == 0 and fallback_at is None:
            fallback_at = step * 5
    assert fallback_at is not None
    assert fallback_at <= controller.limits.stale_after_s + 5
    assert site.model.rest_limit_ma == 0
    assert limits_written(site)[-1] == 0


async def test_charger_write_failure_is_retried_next_cycle(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    patches = 0

    async def first_patch_gets_a_500(request: httpx.Request) -> None:
        """The emulator's status fault hits its next request, whatever it is: armed as the PATCH leaves."""
        nonlocal patches
        if request.method == "PATCH":
            patches += 1
            site.charger.faults.status_count = 1 if patches == 1 else 0

    async with httpx.AsyncClient(event_hooks={"request": [first_patch_gets_a_500]}) as http:
        # The charger already has 16 A, so only the cycle's memory of the failed write (not the
        # read-back) makes the next cycle write again: this first write is the one every start makes.
        make(site, charger=client(site, http), limit_ma=16000)
        (first,) = await site.run(5)
        assert site.charger.faults.status_count == 0, "the 500 went to the PATCH"
        assert not first.written
        assert not first.healthy
        assert (
            f"charger write limit=16000mA failed: PATCH {site.charger.url}/api/wlac/v1/evinterface: "
            "charger error 500: An internal server error occurred"
        ) in caplog.text
        assert site.charger.write_log == []
        (second,) = await site.run(5)
        assert second.written
        assert limits_written(site) == [16000]


async def test_unreachable_charger_does_not_stop_the_cycle(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="peblar_surplus")
    controller = make(site)
    await site.charger.stop()
    site.publish()
    result = await controller.cycle()
    assert not result.healthy
    assert "cannot connect" in caplog.text
    assert "unexpected" not in caplog.text  # a charger that is off is no bug to report
    assert "(charger unreachable)" in caplog.text
    assert "charger write" not in caplog.text  # no write was even tried
    await site.charger.start()  # the same port again
    site.clock.advance(5)
    (result,) = await site.run(5)
    assert result.healthy
    assert limits_written(site) == [16000]


async def test_a_cycle_whose_meter_did_not_answer_is_not_healthy(site: Site) -> None:
    """`run --dry-run --once`, the install's check, exited 0 with the meter off."""
    controller = make(site)
    site.meter.fault = "exception"  # a Modbus exception reply to every request
    result = await controller.cycle()
    assert not result.healthy
    assert result.outcome.command.limit_ma == 0  # blind from the start: the fallback, a pause
    site.meter.fault = None
    site.clock.advance(5)
    (result,) = await site.run(5)
    assert result.healthy


async def test_dry_run_computes_but_never_writes(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="peblar_surplus")
    make(site, dry_run=True)
    results = await site.run(25)
    assert results[0].outcome.write
    assert site.charger.writes == 0
    assert site.charger.write_log == []
    assert site.model.rest_limit_ma == 10000
    assert "would write limit=16000mA" in caplog.text


async def test_the_periodic_re_assert_is_logged_as_such(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    """A write of what the charger already reports is the reassert_s safeguard, not a decision."""
    caplog.set_level(logging.INFO, logger="peblar_surplus")
    controller = make(site)
    await site.run(5)
    site.clock.advance(controller.limits.reassert_s - 5)
    await site.run(5)
    lines = [r.getMessage() for r in caplog.records if r.name == "peblar_surplus"]
    assert "(wrote limit=16000mA)" in lines[0]
    assert "(re-asserted limit=16000mA)" in lines[1]
    assert limits_written(site) == [16000, 16000]


async def test_one_log_line_per_cycle_with_the_numbers(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    make(site, "off")
    site.clock.advance(120)  # the car settles on the charger's 10 A: 6900 W
    site.house_w = (0.0, 0.0, 0.0)
    site.pv_w = 11900.0  # the grid exports 5000 W
    caplog.set_level(logging.INFO, logger="peblar_surplus")
    await site.run(5)
    lines = [r.getMessage() for r in caplog.records if r.name == "peblar_surplus"]
    assert len(lines) == 1
    assert lines[0].startswith("grid=-5000 W car=6900 W surplus=11900 W → pause")
    assert "off" in lines[0]


async def test_foreign_limiter_warned_once(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    make(site, "off", limit_ma=16000)
    site.charger.limit_source_override = "Solar charging"
    site.charger.access_mode = "ReadOnly"  # every write gets a 403, so the 16 A stays
    await site.run(15)
    assert site.charger.requests == 9  # three cycles: two reads and a refused write each
    assert caplog.text.count("'Solar charging'") == 1
    assert "Default" in caplog.text


class Crashing:
    """A plugin with a bug: it raises, or answers with something that is not a Decision."""

    def __init__(self, answer: object = None) -> None:
        self.answer = answer

    def decide(self, state: object) -> object:
        if self.answer is None:
            raise ZeroDivisionError("division by zero")
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


class ForecastError(Exception):
    """A bug in the bug: its message uses an attribute nobody set."""

    def __str__(self) -> str:
        return f"forecast service said {self.detail}"  # type: ignore[attr-defined]


class Amps(int):
    """A plugin's own unit type: an int, until the safety layer formats it for a clamp note."""

    def __format__(self, spec: str) -> str:
        raise ValueError(f"Amps cannot be formatted as {spec!r}")


class Unshowable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (None, "ZeroDivisionError"),
        ("16 A", "returned '16 A'"),
        (Decision(16, 3, 42), "returned Decision(current_a=16, phases=3, reason=42)"),  # type: ignore[arg-type]
        (ForecastError(), "ForecastError (its message cannot be shown)"),
        (Unshowable(), "returned a Unshowable that cannot be shown"),
        (SystemExit(3), "SystemExit: 3"),
        (Decision(float("nan"), 3, "model says"), "returned a current of NaN"),
        (Decision(10**400, 3, "model says"), "OverflowError: int too large to convert to float"),
        (Decision(Amps(20), 3, "model says"), "the safety layer could not take its decision: ValueError"),
    ],
)
async def test_a_failing_strategy_gets_the_fallback_through_the_safety_layer(
    site: Site, caplog: pytest.LogCaptureFixture, answer: object, problem: str
) -> None:
    caplog.set_level(logging.INFO, logger="peblar_surplus")
    controller = make(site)
    controller.set_strategy("buggy", Crashing(answer))  # type: ignore[arg-type]
    (result,) = await site.run(5)
    assert limits_written(site) == [0]  # the fallback of the site limits: pause, not the 10 A it had
    assert result.healthy
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert f"STRATEGY FAILED ({problem}" in errors[0]


@pytest.mark.parametrize("level", [logging.DEBUG, logging.INFO])
async def test_a_failing_strategy_s_traceback_is_logged_at_debug_only(
    site: Site, caplog: pytest.LogCaptureFixture, level: int
) -> None:
    """The ERROR line names the exception; the plugin's author needs the line it came from."""
    caplog.set_level(level, logger="peblar_surplus")
    controller = make(site)
    controller.set_strategy("buggy", Crashing(None))  # type: ignore[arg-type]
    await site.run(5)
    assert "STRATEGY FAILED (ZeroDivisionError: division by zero)" in caplog.text
    with_traceback = [r for r in caplog.records if r.exc_info is not None]
    if level == logging.INFO:
        assert with_traceback == []
        return
    (debug,) = with_traceback
    assert debug.levelno == logging.DEBUG
    assert "strategy Crashing raised in decide" in debug.getMessage()
    assert 'raise ZeroDivisionError("division by zero")' in caplog.text  # the plugin's own line


async def test_a_decision_in_other_number_types_is_taken_as_it_means(site: Site) -> None:
    """A model's output (numpy's floats, a Fraction) is a current all the same."""
    controller = make(site)
    controller.set_strategy("model", Crashing(Decision(Fraction(21, 2), 3, "model")))  # type: ignore[arg-type]
    (result,) = await site.run(5)
    assert limits_written(site) == [10500]
    assert result.outcome.decision == Decision(10.5, 3, "model")


class Hanging:
    """A plugin waiting for a web service that does not answer, until the test lets it go."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = threading.Event()
        self.thread: threading.Thread | None = None

    def decide(self, state: SiteState) -> Decision:
        self.calls += 1
        self.thread = threading.current_thread()
        self.release.wait(30)
        return Decision(16, 3, "hanging: 16 A")


async def test_a_strategy_that_hangs_does_not_hold_the_cycle_and_gets_the_fallback(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    """Waited for up to its budget (0.3 s here, in real time: the thread is real), then the fallback
    through the fuse check, every cycle until it answers; its late answer is dropped, and the cycle
    after asks it again."""
    caplog.set_level(logging.INFO, logger="peblar_surplus")
    controller = make(site)
    controller.limits = replace(controller.limits, fallback_current_a=8)
    controller.decide_budget_s = 0.3
    site.house_w = (5000.0, 5000.0, 5000.0)  # 21.7 A a phase: the 8 A fallback does not fit the fuse
    hanging = Hanging()
    controller.set_strategy("hanging", hanging)  # type: ignore[arg-type]
    first, second = await site.run(10)
    assert "STRATEGY FAILED (decide has not answered within 0.3 s): fallback 8 A" in first.outcome.reason()
    assert "fuse: headroom" in first.outcome.reason()
    assert "STRATEGY FAILED (decide has not answered for 5 s)" in second.outcome.reason()
    assert hanging.calls == 1  # not asked again while it is still busy
    assert limits_written(site) == [0]
    hanging.release.set()
    assert controller.deciding is not None
    await asyncio.wait_for(controller.deciding, 5)  # the thread delivers its answer through the loop
    site.house_w = (300.0, 300.0, 300.0)
    await site.run(5)
    assert hanging.calls == 2
    assert limits_written(site) == [0, 16000]
    assert "strategy hanging answered after up to 10 s, too late to use" in caplog.text


async def test_a_strategy_switched_to_during_the_wait_is_asked_at_once(site: Site) -> None:
    """A schedule switching away from a hanging plugin is the way out of it."""
    controller = make(site)
    controller.decide_budget_s = 0.3
    hanging = Hanging()
    controller.set_strategy("hanging", hanging)  # type: ignore[arg-type]
    asyncio.get_running_loop().call_later(0.1, controller.set_strategy, "fast", load("fast", {}))
    await site.run(5)
    (after,) = await site.run(5)
    assert after.outcome.decision.reason.startswith("fast")
    hanging.release.set()


class Interrupted:
    def __init__(self) -> None:
        self.calls = 0

    def decide(self, state: SiteState) -> Decision:
        self.calls += 1
        raise KeyboardInterrupt("plugin interrupted")


async def test_what_even_the_strategy_check_lets_through_fails_that_cycle_only(site: Site) -> None:
    controller = make(site)
    interrupted = Interrupted()
    controller.set_strategy("interrupted", interrupted)  # type: ignore[arg-type]
    first, second = await site.run(10)
    assert "STRATEGY FAILED (KeyboardInterrupt in decide)" in first.outcome.reason()
    assert "STRATEGY FAILED (KeyboardInterrupt in decide)" in second.outcome.reason()
    assert interrupted.calls == 2  # asked again: it did answer, with an exception


class Recording:
    """Which thread each decide ran on."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []

    def decide(self, state: SiteState) -> Decision:
        self.threads.append(threading.current_thread())
        return Decision(16, 3, "recording")


async def test_one_thread_makes_every_cycles_decision_while_it_answers(site: Site) -> None:
    """A thread started for each cycle cost a tenth of a small box's budget for a cycle."""
    controller = make(site)
    recording = Recording()
    controller.set_strategy("recording", recording)  # type: ignore[arg-type]
    await site.run(15)
    first, second, third = recording.threads
    assert first is second is third
    assert first is not threading.main_thread()


async def test_the_thread_of_a_strategy_switched_away_from_while_it_hangs_ends_when_it_answers(
    site: Site,
) -> None:
    controller = make(site)
    controller.decide_budget_s = 0.3
    hanging = Hanging()
    controller.set_strategy("hanging", hanging)  # type: ignore[arg-type]
    await site.run(5)
    recording = Recording()
    controller.set_strategy("recording", recording)  # type: ignore[arg-type]
    await site.run(5)
    hung = hanging.thread
    assert hung is not None
    assert recording.threads[0] is not hung  # the new strategy was asked on a thread of its own
    hanging.release.set()
    hung.join(5)
    assert not hung.is_alive()
    await site.run(5)
    assert recording.threads[0] is recording.threads[1]


async def test_a_thread_that_cannot_start_still_gives_the_cycle_its_fallback(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    make(site)

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    (result,) = await site.run(5)
    assert "STRATEGY FAILED (decide could not be started (can't start new thread))" in result.outcome.reason()
    assert limits_written(site) == [0]


@pytest.mark.parametrize("device", ["meter", "charger"])
async def test_an_unforeseen_read_error_still_ends_in_the_fallback(
    site: Site, caplog: pytest.LogCaptureFixture, device: str
) -> None:
    """A KeyError from a short Modbus answer once skipped the whole cycle, safety layer included.

    The failing device is scripted (the real clients let no such error out); the other one is real.
    """
    meter, charger = ScriptedMeter(), ScriptedCharger()
    if device == "meter":
        controller = make(site, meter=meter)
    else:
        controller = make(site, charger=charger)
    await site.run(5)
    if device == "meter":
        assert site.model.rest_limit_ma == 16000
        meter.fail = KeyError(52)
    else:
        assert charger.reading.limit_ma == 16000
        charger.read_fail = ValueError("bad gzip body")
    results = await site.run(30)
    result = results[-1]
    assert controller.limits.stale_after_s < 30
    assert any(note.startswith("BLIND") for note in result.outcome.notes)
    if device == "meter":
        assert site.model.rest_limit_ma == 0  # the fallback of the site limits, written
    else:
        assert result.outcome.command.limit_ma == 0  # nothing can be written to a charger that fails
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert f"{device} read failed: unexpected" in errors[0]


async def test_an_unforeseen_write_error_is_retried_next_cycle(site: Site) -> None:
    charger = ScriptedCharger()
    controller = make(site, charger=charger)
    charger.write_fail = TypeError("unexpected answer")
    assert not (await controller.cycle()).written
    charger.write_fail = None
    site.clock.advance(5)
    assert (await controller.cycle()).written


async def test_a_charger_that_accepts_writes_but_keeps_its_limit_is_reported_once(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    charger = ScriptedCharger()
    make(site, charger=charger)
    charger.applies = False  # answers 2xx, keeps 10 A
    await site.run(30)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "accepted ChargeCurrentLimit=16000 mA but still reports 10000 mA after 3 reads" in warnings[0]
    charger.applies = True
    caplog.set_level(logging.INFO, logger="peblar_surplus")
    await site.run(10)
    assert "charger applies the written limit again (16000 mA)" in caplog.text


async def test_dry_run_does_not_mistake_its_unsent_writes_for_a_disobedient_charger(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    make(site, dry_run=True)
    await site.run(30)
    assert site.model.rest_limit_ma == 10000  # the read-back never shows what the cycle wanted
    assert "not applying our writes" not in caplog.text


class Stepping:
    """Asks one amp more every cycle, as pv does while the sun comes out."""

    def __init__(self) -> None:
        self.amps = 6.0

    def decide(self, state: object) -> Decision:
        self.amps += 1
        return Decision(self.amps, 3, "stepping")


async def test_a_read_back_that_lags_one_write_is_not_called_disobedient(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    charger = ScriptedCharger()
    controller = make(site, charger=charger)
    controller.set_strategy("stepping", Stepping())  # type: ignore[arg-type]
    charger.lagging = Write(limit_ma=10000)
    await site.run(30)
    assert len(charger.writes) == 6
    assert "not applying our writes" not in caplog.text


V = closed_loop.VOLTAGE


async def _settle_at_10_a_under_a_kettle(site: Site) -> int:
    """`fast` on a 25 A fuse with 15 A of house load on L1: the fuse leaves the car 10 A."""
    site.house_w = (15 * V, 300.0, 300.0)
    await site.run(60)
    assert 9900 <= site.model.rest_limit_ma <= 10000
    return site.model.rest_limit_ma


async def _meter_fails_while_the_kettle_is_back(site: Site, settled_ma: int) -> None:
    """The kettle on L1 again, and the meter answers with an exception: its reading is behind the
    charger's, so the limit may hold or fall but not rise, until the meter is stale (20 s)."""
    site.house_w = (15 * V, 300.0, 300.0)
    site.meter.fault = "exception"
    for result in await site.run(15):
        assert not any(note.startswith("BLIND") for note in result.outcome.notes)
        assert site.model.rest_limit_ma <= settled_ma, result.outcome.reason()
        assert site.phase_a[0] <= 25.0 + 1e-6


async def test_a_limit_never_sent_because_the_charger_read_failed_is_not_held_later(site: Site) -> None:
    make(site, limit_ma=16000)
    settled = await _settle_at_10_a_under_a_kettle(site)
    site.house_w = (1 * V, 300.0, 300.0)  # the kettle goes off …
    site.charger.faults.status_count = 1  # … while the charger's read answers 500: nothing is sent
    (result,) = await site.run(5)
    assert result.outcome.command.limit_ma == 16000 and not result.written
    await _meter_fails_while_the_kettle_is_back(site, settled)


async def test_a_limit_whose_write_failed_is_not_held_later(site: Site) -> None:
    patches = 0

    async def one_patch_gets_a_500(request: httpx.Request) -> None:
        nonlocal patches
        if request.method == "PATCH" and site.house_w[0] < 2 * V:
            patches += 1
            site.charger.faults.status_count = 1

    async with httpx.AsyncClient(event_hooks={"request": [one_patch_gets_a_500]}) as http:
        make(site, charger=client(site, http), limit_ma=16000)
        settled = await _settle_at_10_a_under_a_kettle(site)
        site.house_w = (1 * V, 300.0, 300.0)  # the kettle goes off; the write of 16 A answers 500
        (result,) = await site.run(5)
        assert patches == 1 and not result.written and site.model.rest_limit_ma == settled
        await _meter_fails_while_the_kettle_is_back(site, settled)


async def test_pauses_that_could_not_be_sent_do_not_use_up_the_relay_budget(site: Site) -> None:
    """Three Wi-Fi drop-outs of 30 s in ten minutes: each time the controller is blind and wants the
    fallback pause, which cannot reach the charger, so the car charges on. None of them opened the
    contactor, so none may count against `max_pauses`: the car keeps charging when the charger is back."""
    make(site, limit_ma=16000)
    await site.run(30)
    for _ in range(3):
        site.charger.faults.status_count = 10**6
        blind = await site.run(30)
        assert any(note.startswith("BLIND") for note in blind[-1].outcome.notes)
        site.charger.faults.status_count = 0
        back = await site.run(60)
        assert all("relay budget" not in result.outcome.reason() for result in back)
    assert 0 not in limits_written(site)
    assert site.model.rest_limit_ma == 16000


class Alternating(Crashing):
    """Asks for 16 A and for a pause in turn, a minute each: a contactor that would open every 2 min."""

    def decide(self, state: object) -> object:
        assert isinstance(state, SiteState)
        if int(state.now // 60) % 2:
            return Decision.pause("test: pause", 3)
        return Decision(16.0, 3, "test: charge")


async def test_a_pause_the_charger_applied_but_did_not_confirm_counts_against_the_relay_budget(
    site: Site,
) -> None:
    """Every PATCH is applied, and its answer comes back garbled: the write counts as failed, yet the
    contactor opened. Such pauses must count, or the relay budget (3 in 10 minutes) never holds."""

    async def garble_the_answer(request: httpx.Request) -> None:
        if request.method == "PATCH":
            site.charger.faults.malformed_count = 1

    async with httpx.AsyncClient(event_hooks={"request": [garble_the_answer]}) as http:
        controller = make(site, charger=client(site, http), limit_ma=16000)
        controller.set_strategy("alternating", Alternating())  # type: ignore[arg-type]
        site.clock.advance(60 - site.clock.now() % 60)  # start on a whole minute
        results = await site.run(600)
    assert not any(result.written for result in results if result.outcome.write)
    limits = limits_written(site)  # each one applied, and re-sent while unconfirmed
    openings = sum(1 for before, after in itertools.pairwise(limits) if before > 0 and after == 0)
    assert 1 <= openings <= 3


class Contrary(Crashing):
    """Wants 1 phase whenever the charger reads 3, and 3 whenever it reads 1: a switch the moment the
    safety layer lets one through."""

    def decide(self, state: object) -> object:
        assert isinstance(state, SiteState) and state.charger is not None
        if state.charger.force_1_phase:
            return Decision(10.0, 3, "test: 3 phases")
        return Decision(8.0, 1, "test: 1 phase")


async def test_a_1_to_3_switch_applied_but_not_confirmed_still_holds_the_switch_interval(site: Site) -> None:
    """The PATCH that switches to 3 phases is applied, and its answer comes back garbled. Counted as a
    switch that was still under way, it let the next cycle switch back at once: two contactor
    operations 5 s apart, where `min_phase_switch_interval_s` asks for 300."""

    async def garble_the_switch(request: httpx.Request) -> None:
        if request.method == "PATCH" and b'"Force1Phase":false' in request.content.replace(b" ", b""):
            site.charger.faults.malformed_count = 1

    site.model.set_force_1_phase(True, site.clock.now())
    async with httpx.AsyncClient(event_hooks={"request": [garble_the_switch]}) as http:
        controller = make(site, charger=client(site, http), limit_ma=16000)
        controller.set_strategy("1 phase", Crashing(Decision(16.0, 1, "test: charging")))  # type: ignore[arg-type]
        await site.run(15)  # the car charges on 1 phase: the switch to 3 goes pause → switch → resume
        controller.set_strategy("contrary", Contrary())  # type: ignore[arg-type]
        await site.run(400)
    switches = [(t, body["Force1Phase"]) for t, body in site.charger.write_log if "Force1Phase" in body]
    assert switches[0][1] is False  # the 1→3 switch, applied
    assert all(later - earlier >= 300 for (earlier, _), (later, _) in itertools.pairwise(switches))
    assert [on for _, on in switches] == [False, True]  # and back to 1 phase once the interval is over


class RefusedReads:
    """An httpx request hook: once `on`, the emulator answers every GET with garbage, which the client
    must refuse, and still takes every PATCH."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.on = False

    async def __call__(self, request: httpx.Request) -> None:
        if self.on and request.method == "GET":
            self.site.charger.faults.malformed_count = 1


async def test_a_charger_whose_readings_are_refused_still_gets_the_fallback(site: Site) -> None:
    """The charger answers every read with something the client must refuse (a firmware that changed
    its answers) and still takes writes. Blind after `stale_after_s`, the controller wanted the
    fallback pause but sent nothing, as if the charger were off: it charged on at 16 A for good."""
    refused = RefusedReads(site)
    async with httpx.AsyncClient(event_hooks={"request": [refused]}) as http:
        make(site, charger=client(site, http), limit_ma=10000)
        await site.run(10)
        assert site.model.rest_limit_ma == 16000
        refused.on = True
        results = await site.run(30)
    # the last good reading came 5 s before the first refused one: blind 20 s after it
    assert [result.written for result in results[:3]] == [False] * 3  # nothing to cut till then
    assert results[3].outcome.notes[0].startswith("BLIND (no valid charger data for 20 s)")
    assert results[3].written and site.model.rest_limit_ma == 0  # the fallback: 0 A, a pause


async def test_a_charger_refusing_the_token_is_not_logged_as_unreachable(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    """The token revoked on the charger's web UI while the daemon runs: every cycle said
    '(charger unreachable)' of a charger that answers each request, with a 401."""
    caplog.set_level(logging.INFO, logger="peblar_surplus")
    make(site)
    await site.run(5)
    site.charger.change_token("another")
    caplog.clear()
    await site.run(10)
    assert "charger read failed: " in caplog.text  # once, with the charger's answer
    assert "(charger read failed)" in caplog.text
    assert "unreachable" not in caplog.text  # which a charger that is off still gets (test above)


async def test_without_a_usable_reading_only_cuts_go_out_never_a_rise_or_a_resume(site: Site) -> None:
    """Reads refused, writes taken, and a kettle on every phase: the fuse cut goes out. Compared with
    the last good reading (16 A), the next cycle's higher limit looked like a cut too, while the fuse
    check took the car's old 16 A off the meter's current. Then the blind fallback, once, and again
    only when the re-assert is due."""
    refused = RefusedReads(site)
    async with httpx.AsyncClient(event_hooks={"request": [refused]}) as http:
        make(site, charger=client(site, http), limit_ma=10000)
        await site.run(30)
        assert limits_written(site) == [16000] and site.model.car_current_a() > 15
        refused.on = True
        site.house_w = (12 * V, 12 * V, 12 * V)
        results = await site.run(90)
    start = results[0].state.now
    after = [(t - start, body["ChargeCurrentLimit"]) for t, body in site.charger.write_log[1:]]
    limits = [limit for _, limit in after]
    assert 6000 <= limits[0] < 16000  # the fuse cut, in the first cycle
    assert limits[1:] == [0, 0]  # the fallback and its re-assert: nothing in between rose
    (cut_at, _), (fallback_at, _), (reassert_at, _) = after
    assert cut_at == 0 and fallback_at <= 20
    assert reassert_at - fallback_at >= site.cfg.control.reassert_s


class SteppedClock:
    """The system clock of a box that NTP steps: `step` moves the site's clock (which the emulators
    and the controller's system clock read) without any real time passing."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.stepped_s = 0.0

    def step(self, seconds: float) -> None:
        self.site.clock.advance(seconds)
        self.stepped_s += seconds

    def elapsed(self) -> float:
        return self.site.clock.now() - self.stepped_s

    def real(self, system_time: float, step_at: float) -> float:
        """A time the emulator logged, in real seconds: without the step if it came after it."""
        return system_time - self.stepped_s if system_time >= step_at + self.stepped_s else system_time


async def test_a_clock_step_forward_does_not_end_the_phase_switch_interval(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    """NTP steps a Raspberry Pi's clock forward by hours when it first answers. Read as it was, the
    step ended the 300 s between phase switches at once: the contactor switched back 60 s after it
    had switched. The daemon's clock keeps the step out and says so."""
    clock = SteppedClock(site)
    controller = make(site, limit_ma=16000)
    controller.clock = SteadyClock(site.clock, clock.elapsed)
    controller.set_strategy("contrary", Contrary())  # type: ignore[arg-type]
    await site.run(60)
    step_at = site.clock.now()
    with caplog.at_level(logging.WARNING, logger="peblar_surplus"):
        clock.step(3600)
        await site.run(400)
    switches = [clock.real(t, step_at) for t, body in site.charger.write_log if "Force1Phase" in body]
    assert len(switches) == 2  # at once, and once the interval is over
    assert all(later - earlier >= 300 for earlier, later in itertools.pairwise(switches))
    stepped = [r.getMessage() for r in caplog.records if "clock stepped" in r.getMessage()]
    assert stepped == [
        "system clock stepped +3600 s; the controller's timers (relay budget, phase-switch interval, "
        "the strategy's delays) count on in real seconds (controller time = system time -3600 s)"
    ]


async def test_a_clock_step_forward_does_not_free_the_relay_budget(site: Site) -> None:
    """Three pauses in ten minutes are all the relay budget allows. A forward step of the clock made
    them look an hour old, and the contactor opened a fourth time within the same real ten minutes."""
    clock = SteppedClock(site)
    controller = make(site, limit_ma=16000)
    controller.clock = SteadyClock(site.clock, clock.elapsed)
    controller.set_strategy("alternating", Alternating())  # type: ignore[arg-type]
    site.clock.advance(60 - site.clock.now() % 60)  # start on a whole minute
    await site.run(330)
    step_at = site.clock.now()
    clock.step(3600)
    await site.run(600)
    writes = [(clock.real(t, step_at), body["ChargeCurrentLimit"]) for t, body in site.charger.write_log]
    openings = [t for (_, before), (t, after) in itertools.pairwise(writes) if before > 0 and after == 0]
    assert len(openings) >= 4  # the budget is used, and frees again as the pauses age in real time
    assert all(later - earlier >= 600 for earlier, later in zip(openings, openings[3:], strict=False))
