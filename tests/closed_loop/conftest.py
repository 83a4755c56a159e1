"""A whole site on loopback: the Modbus meter emulator, the Peblar REST emulator, and the real
clients and control cycle between them, all on one injected clock so no test sleeps."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from controller.charger.peblar.client import PeblarClient
from controller.clock import ManualClock
from controller.config import Config, parse
from controller.core.state import ChargerInfo
from controller.meter.modbus import ModbusMeter
from controller.service.cycle import Controller, CycleResult
from controller.simulation.charger_model import CarModel, ChargerModel
from controller.simulation.meter_emulator import MeterEmulator
from controller.simulation.peblar_emulator import PeblarEmulator
from strategies import load

VOLTAGE = 230.0


@dataclass
class Site:
    """Sets the house and PV power; the grid meter shows house + car − pv on each phase."""

    clock: ManualClock
    model: ChargerModel
    meter: MeterEmulator
    charger: PeblarEmulator
    cfg: Config
    token: str
    house_w: tuple[float, float, float] = (300.0, 300.0, 300.0)
    pv_w: float = 0.0
    controller: Controller | None = None
    phase_a: tuple[float, ...] = ()

    def publish(self) -> None:
        self.model.step(self.clock.now())
        car = self.model.phase_currents_a()
        phase_w = [
            house - self.pv_w / 3 + amps * VOLTAGE for house, amps in zip(self.house_w, car, strict=True)
        ]
        self.phase_a = tuple(w / VOLTAGE for w in phase_w)
        self.meter.set_values(phase_power_w=phase_w, voltage_v=[VOLTAGE] * 3)

    def build(
        self, strategy: str = "pv", *, dry_run: bool = False, params: dict[str, Any] | None = None
    ) -> Controller:
        from controller.charger.dry_run import DryRunCharger  # noqa: PLC0415

        client = PeblarClient(
            self.cfg.charger.url,
            self.token,
            timeout_s=0.5,
            max_current_ma=16000,
            max_requests_per_s=10_000,  # the emulator enforces the real budget on the test clock
        )
        meter = ModbusMeter(self.cfg.meter)
        self.controller = Controller(
            meter=meter,
            charger=DryRunCharger(client) if dry_run else client,
            strategy=load(strategy, params if params is not None else self._params(strategy)),
            strategy_name=strategy,
            limits=self.cfg.site_limits(),
            info=ChargerInfo(phase_count=3, force_1_phase_allowed=True, firmware="emulated"),
            clock=self.clock,
            dry_run=dry_run,
        )
        return self.controller

    def _params(self, strategy: str) -> dict[str, Any]:
        return self.cfg.strategy.params if strategy == self.cfg.strategy.name else {}

    async def run(
        self, seconds: float, step_s: float = 5.0, each: Callable[[float], None] | None = None
    ) -> list[CycleResult]:
        """Cycle every `step_s` of simulated time; `each(t)` may change the weather first."""
        assert self.controller is not None
        results = []
        t = 0.0
        while t < seconds:
            if each is not None:
                each(t)
            self.publish()
            results.append(await self.controller.cycle())
            self.clock.advance(step_s)
            t += step_s
        return results


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    clock = ManualClock(start=1_750_000_000.0)
    token = secrets.token_hex(32)
    model = ChargerModel(
        CarModel(max_current_a=16.0, phases=3, capacity_kwh=1000.0, lag_s=5.0), now=clock.now()
    )
    async with PeblarEmulator(clock, token=token, model=model) as charger, MeterEmulator("sdm630") as meter:
        cfg = parse(
            {
                "site": {"main_fuse_a": 25, "voltage_v": VOLTAGE},
                "meter": {"preset": "sdm630", "host": "127.0.0.1", "port": meter.port, "timeout_s": 0.5},
                "charger": {"url": charger.url, "token": token, "max_current_a": 16},
                "control": {"interval_s": 5, "stale_after_s": 20, "min_phase_switch_interval_s": 300},
                "strategy": {
                    "name": "pv",
                    "enable_delay_s": 60,
                    "disable_delay_s": 180,
                    "phase_switch_delay_s": 120,
                    "reserve_w": 100,
                },
            }
        )
        s = Site(clock=clock, model=model, meter=meter, charger=charger, cfg=cfg, token=token)
        yield s
        if s.controller is not None:
            await s.controller.meter.aclose()
            await s.controller.charger.aclose()
