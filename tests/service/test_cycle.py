"""The control cycle's error handling: device failures become health, logged once, never a crash.

The devices here implement the `Meter` / `Charger` protocols in a few lines so that a test can make
them fail on cue; the closed-loop tests run the same cycle against the real emulators.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from controller.charger.base import ChargerServerError, ChargerUnreachable
from controller.charger.dry_run import DryRunCharger
from controller.clock import ManualClock
from controller.core.commands import Write
from controller.core.decision import Decision
from controller.core.state import ChargerInfo, ChargerReading, MeterReading, PhaseReading, SiteLimits
from controller.meter.base import MeterTimeout
from controller.service.cycle import Controller
from strategies import load

LIMITS = SiteLimits(main_fuse_a=25, max_current_a=16, stale_after_s=20, fallback_current_a=0)
INFO = ChargerInfo(phase_count=3, force_1_phase_allowed=True, firmware="test")


class ScriptedMeter:
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


def make(
    strategy: str = "fast", *, dry_run: bool = False
) -> tuple[Controller, ScriptedMeter, ScriptedCharger, ManualClock]:
    meter, charger, clock = ScriptedMeter(), ScriptedCharger(), ManualClock()
    device = DryRunCharger(charger) if dry_run else charger
    controller = Controller(
        meter=meter,
        charger=device,
        strategy=load(strategy, {}),
        strategy_name=strategy,
        limits=LIMITS,
        info=INFO,
        clock=clock,
        dry_run=dry_run,
    )
    return controller, meter, charger, clock


async def test_a_failing_meter_is_logged_once_then_recovery_once(caplog: pytest.LogCaptureFixture) -> None:
    controller, meter, _, clock = make()
    await controller.cycle()
    meter.fail = MeterTimeout("no answer from 192.0.2.1:502 unit 1 register 52")
    caplog.set_level(logging.INFO, logger="peblar_surplus")
    for _ in range(3):
        clock.advance(5)
        await controller.cycle()
    assert caplog.text.count("meter read failed") == 1
    assert controller.meter_health.failures == 3
    meter.fail = None
    clock.advance(5)
    await controller.cycle()
    assert caplog.text.count("meter recovered after 3 failed reads") == 1


async def test_stale_meter_falls_back_within_stale_after_plus_one_cycle() -> None:
    controller, meter, charger, clock = make()
    await controller.cycle()
    assert charger.reading.limit_ma == 16000
    meter.fail = MeterTimeout("timeout")
    fallback_at = None
    for step in range(1, 10):
        clock.advance(5)
        result = await controller.cycle()
        if result.outcome.command.limit_ma == 0 and fallback_at is None:
            fallback_at = step * 5
    assert fallback_at is not None
    assert fallback_at <= LIMITS.stale_after_s + 5
    assert charger.reading.limit_ma == 0


async def test_charger_write_failure_is_retried_next_cycle(caplog: pytest.LogCaptureFixture) -> None:
    controller, _, charger, clock = make()
    charger.write_fail = ChargerServerError("charger answered 500", status=500)
    first = await controller.cycle()
    assert not first.written
    assert not first.healthy
    assert "charger write limit=16000mA failed: charger answered 500" in caplog.text
    charger.write_fail = None
    clock.advance(5)
    second = await controller.cycle()
    assert second.written
    assert charger.writes[-1].limit_ma == 16000


async def test_unreachable_charger_does_not_stop_the_cycle() -> None:
    controller, _, charger, clock = make()
    charger.read_fail = ChargerUnreachable("cannot connect to http://192.0.2.2")
    result = await controller.cycle()
    assert not result.healthy
    assert charger.writes == []
    charger.read_fail = None
    clock.advance(5)
    assert (await controller.cycle()).healthy


async def test_dry_run_computes_but_never_writes(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="peblar_surplus")
    controller, _, charger, clock = make(dry_run=True)
    for _ in range(5):
        await controller.cycle()
        clock.advance(5)
    assert charger.writes == []
    assert "would write limit=16000mA" in caplog.text


async def test_the_periodic_re_assert_is_logged_as_such(caplog: pytest.LogCaptureFixture) -> None:
    """A write of what the charger already reports is the reassert_s safeguard, not a decision."""
    caplog.set_level(logging.INFO, logger="peblar_surplus")
    controller, _, _, clock = make()
    await controller.cycle()
    clock.advance(LIMITS.reassert_s)
    await controller.cycle()
    lines = [r.getMessage() for r in caplog.records if r.name == "peblar_surplus"]
    assert "(wrote limit=16000mA)" in lines[0]
    assert "(re-asserted limit=16000mA)" in lines[1]


async def test_one_log_line_per_cycle_with_the_numbers(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="peblar_surplus")
    controller, _, _, _ = make("off")
    await controller.cycle()
    lines = [r.getMessage() for r in caplog.records if r.name == "peblar_surplus"]
    assert len(lines) == 1
    assert lines[0].startswith("grid=-5000 W car=6900 W surplus=11900 W → pause")
    assert "off" in lines[0]


async def test_foreign_limiter_warned_once(caplog: pytest.LogCaptureFixture) -> None:
    controller, _, charger, clock = make("off")
    charger.reading = replace(charger.reading, limit_source="Solar charging", limit_ma=16000)
    charger.write_fail = ChargerServerError("x", status=500)
    for _ in range(3):
        await controller.cycle()
        clock.advance(5)
    assert caplog.text.count("'Solar charging'") == 1
    assert "Default" in caplog.text


class Crashing:
    """A plugin with a bug: it raises, or answers with something that is not a Decision."""

    def __init__(self, answer: object = None) -> None:
        self.answer = answer

    def decide(self, state: object) -> object:
        if self.answer is None:
            raise ZeroDivisionError("division by zero")
        return self.answer


@pytest.mark.parametrize(("answer", "problem"), [(None, "ZeroDivisionError"), ("16 A", "returned '16 A'")])
async def test_a_failing_strategy_gets_the_fallback_through_the_safety_layer(
    caplog: pytest.LogCaptureFixture, answer: object, problem: str
) -> None:
    caplog.set_level(logging.INFO, logger="peblar_surplus")
    controller, _, charger, _ = make()
    controller.set_strategy("buggy", Crashing(answer))  # type: ignore[arg-type]
    result = await controller.cycle()
    assert charger.writes[-1].limit_ma == 0  # the fallback of LIMITS: pause, not the 10 A it had
    assert result.healthy
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert f"STRATEGY FAILED ({problem}" in errors[0]


@pytest.mark.parametrize("device", ["meter", "charger"])
async def test_an_unforeseen_read_error_still_ends_in_the_fallback(
    caplog: pytest.LogCaptureFixture, device: str
) -> None:
    """A KeyError from a short Modbus answer once skipped the whole cycle, safety layer included."""
    controller, meter, charger, clock = make()
    await controller.cycle()
    assert charger.reading.limit_ma == 16000
    if device == "meter":
        meter.fail = KeyError(52)
    else:
        charger.read_fail = ValueError("bad gzip body")
    for _ in range(6):
        clock.advance(5)
        result = await controller.cycle()
    assert any(note.startswith("BLIND") for note in result.outcome.notes)
    if device == "meter":
        assert charger.reading.limit_ma == 0  # the fallback of LIMITS, written
    else:
        assert result.outcome.command.limit_ma == 0  # nothing can be written to a charger that fails
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert f"{device} read failed: unexpected" in errors[0]


async def test_an_unforeseen_write_error_is_retried_next_cycle() -> None:
    controller, _, charger, clock = make()
    charger.write_fail = TypeError("unexpected answer")
    assert not (await controller.cycle()).written
    charger.write_fail = None
    clock.advance(5)
    assert (await controller.cycle()).written


async def test_a_charger_that_accepts_writes_but_keeps_its_limit_is_reported_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    controller, _, charger, clock = make()
    charger.applies = False  # answers 2xx, keeps 10 A
    for _ in range(6):
        await controller.cycle()
        clock.advance(5)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "accepted ChargeCurrentLimit=16000 mA but still reports 10000 mA after 3 reads" in warnings[0]
    charger.applies = True
    caplog.set_level(logging.INFO, logger="peblar_surplus")
    for _ in range(2):
        await controller.cycle()
        clock.advance(5)
    assert "charger applies the written limit again (16000 mA)" in caplog.text


async def test_dry_run_does_not_mistake_its_unsent_writes_for_a_disobedient_charger(
    caplog: pytest.LogCaptureFixture,
) -> None:
    controller, _, _, clock = make(dry_run=True)
    for _ in range(6):
        await controller.cycle()
        clock.advance(5)
    assert "not applying our writes" not in caplog.text


class Stepping:
    """Asks one amp more every cycle, as pv does while the sun comes out."""

    def __init__(self) -> None:
        self.amps = 6.0

    def decide(self, state: object) -> Decision:
        self.amps += 1
        return Decision(self.amps, 3, "stepping")


async def test_a_read_back_that_lags_one_write_is_not_called_disobedient(
    caplog: pytest.LogCaptureFixture,
) -> None:
    controller, _, charger, clock = make()
    controller.set_strategy("stepping", Stepping())  # type: ignore[arg-type]
    charger.lagging = Write(limit_ma=10000)
    for _ in range(6):
        await controller.cycle()
        clock.advance(5)
    assert len(charger.writes) == 6
    assert "not applying our writes" not in caplog.text
