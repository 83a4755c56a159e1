"""`peblar-surplus demo`: the real daemon path against emulators, replaying a bundled real trace.

Everything the daemon does runs here unchanged (config validation, the scheduler, the Modbus reader,
the REST client, the control core); only the devices are emulators on loopback and the clock runs a
few hundred times faster than real time. A small "site" task stands in for the physics: it feeds the
meter emulator the grid power `house + car − pv` from the trace and the emulated charger's car.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path

from controller.clock import ScaledClock
from controller.config import parse
from controller.console import reader_gone
from controller.core.safety import PAUSE_FOR_SWITCH
from controller.service.cycle import CycleResult
from controller.service.daemon import RunOptions, open_devices, run
from controller.simulation.charger_model import CarModel, ChargerModel
from controller.simulation.meter_emulator import MeterEmulator
from controller.simulation.peblar_emulator import PeblarEmulator
from controller.simulation.trace import Trace, read_trace

log = logging.getLogger("peblar_surplus")

SITE_STEP_S = 0.02
"""Real seconds between updates of the emulated site (a few per control cycle)."""

DEMO_INTERVAL_S = 10.0
STATUS_EVERY_S = 1800.0
SITE_ZONE = timezone(timedelta(hours=-7))
"""The bundled trace's site clock: Golden, Colorado, in standard time (controller/data/README.md)."""


def bundled_trace() -> Path:
    return Path(str(resources.files("controller") / "data" / "demo-trace.csv.gz"))


def daylight_window(trace: Trace) -> tuple[float, float]:
    """The first day's span from sunrise to sunset, where surplus charging has something to do."""
    day_end = trace.times[0] + 86400
    lit = [t for t, pv in zip(trace.times, trace.pv_w, strict=True) if pv > 200 and t < day_end]
    return (lit[0], lit[-1]) if lit else (trace.times[0], trace.times[0] + 36000)


@dataclass
class Tally:
    """Energy integrated from the emulated site, so the summary reports what physically happened."""

    car_wh: float = 0.0
    car_solar_wh: float = 0.0
    surplus_wh: float = 0.0
    grid_import_wh: float = 0.0
    cycles: int = 0
    pauses: int = 0
    switch_pauses: int = 0
    """Of the pauses, those of the safety layer's pause → switch → resume for 1→3."""
    phase_switches: int = 0
    last: list[float] = field(default_factory=list)
    pv_w: float = 0.0
    house_w: float = 0.0
    next_status_s: float = 0.0

    def add(self, dt_s: float, pv_w: float, house_w: float, car_w: float) -> None:
        hours = dt_s / 3600
        self.car_wh += car_w * hours
        self.car_solar_wh += min(car_w, max(pv_w - house_w, 0.0)) * hours
        self.surplus_wh += max(pv_w - house_w, 0.0) * hours
        self.grid_import_wh += max(house_w + car_w - pv_w, 0.0) * hours
        self.pv_w, self.house_w = pv_w, house_w

    def summary(self) -> str:
        share = self.car_solar_wh / self.car_wh if self.car_wh else 0.0
        used = self.car_solar_wh / self.surplus_wh if self.surplus_wh else 0.0
        return (
            f"demo summary: {self.cycles} cycles, car {self.car_wh / 1000:.2f} kWh, "
            f"solar share {share:.1%}, grid import {self.grid_import_wh / 1000:.2f} kWh "
            f"(house and car), surplus {self.surplus_wh / 1000:.2f} kWh of which {used:.0%} went into "
            f"the car, pauses {self.pauses} ({self.switch_pauses} of them for a 1→3 switch), "
            f"phase switches {self.phase_switches}"
        )


async def run_demo(*, seconds: float = 60.0, strategy: str = "pv", trace_path: Path | None = None) -> int:
    trace = read_trace(trace_path or bundled_trace())
    start, end = daylight_window(trace)
    speed = (end - start) / seconds
    clock = ScaledClock(start=start, speed=speed)
    token = secrets.token_hex(32)
    model = ChargerModel(CarModel(max_current_a=16.0, phases=3, capacity_kwh=1000.0), now=start)
    tally = Tally()
    stop = asyncio.Event()
    async with (
        PeblarEmulator(clock, token=token, model=model) as charger_emulator,
        MeterEmulator("sdm630") as meter_emulator,
    ):
        cfg = parse(
            {
                "site": {"main_fuse_a": 25, "voltage_v": 230},
                "meter": {"preset": "sdm630", "host": "127.0.0.1", "port": meter_emulator.port},
                "charger": {
                    "url": charger_emulator.url,
                    "token": token,
                    "max_current_a": 16,
                },
                "control": {"interval_s": DEMO_INTERVAL_S},
                "strategy": {"name": strategy},
            },
            source="demo config",
        )
        # Beyond what a real charger allows: the emulator enforces its 5/s on its own fast clock,
        # while the client's rate limit runs on real time.
        cfg.charger.max_requests_per_s = 10_000
        print(
            f"demo: {strategy} on the bundled trace, {(end - start) / 3600:.1f} h of daylight "
            f"in {seconds:.0f} s ({speed:.0f}× real time), control every {DEMO_INTERVAL_S:g} s; the "
            "emulated charger starts at its maximum, as a real one does with no controller. One line per "
            f"start, pause and phase switch, and the site every {STATUS_EVERY_S / 60:.0f} min, in the "
            "trace's local time (UTC−7); --log-level DEBUG shows the daemon's line for every cycle",
            file=sys.stdout,
        )
        site = asyncio.create_task(_site(trace, clock, model, meter_emulator, tally, end, stop))
        options = RunOptions(
            clock=clock,
            interval_s=DEMO_INTERVAL_S / speed,
            stop=stop,
            on_cycle=_counter(tally, stop),
            log_slow_cycles=False,
            cycle_log_level=logging.DEBUG,
        )
        code = await run(cfg, open_devices(cfg, token=token), options)
        await site
    print(tally.summary(), file=sys.stdout)
    return code


def _counter(tally: Tally, stop: asyncio.Event) -> Callable[[CycleResult], None]:
    def count(result: CycleResult) -> None:
        tally.cycles += 1
        state, outcome = result.state, result.outcome
        write, before = outcome.write, state.charger
        events = []
        if result.written and write.limit_ma is not None and before is not None:
            if write.limit_ma == 0 and before.limit_ma >= 6000:
                tally.pauses += 1
                tally.switch_pauses += PAUSE_FOR_SWITCH in outcome.notes
                events.append("pause")
            elif write.limit_ma >= 6000 > before.limit_ma:
                events.append(f"start at {write.limit_ma / 1000:.1f} A")
        if result.written and write.force_1_phase is not None:
            tally.phase_switches += 1
            events.append(f"switch to {'1 phase' if write.force_1_phase else '3 phases'}")
        if events:
            _say(state.now, f"{', '.join(events)}: {outcome.reason()}", stop)
        if state.now >= tally.next_status_s:
            tally.next_status_s = state.now - state.now % STATUS_EVERY_S + STATUS_EVERY_S
            _say(state.now, _status(tally, result), stop)

    return count


def _status(tally: Tally, result: CycleResult) -> str:
    state, command = result.state, result.outcome.command
    grid = f"{state.grid.power_w / 1000:+.1f}" if state.grid is not None else "?"
    if command.limit_ma == 0:
        target = "paused"
    else:
        target = f"{command.limit_ma / 1000:.1f} A {'1p' if command.force_1_phase else '3p'}"
    return (
        f"pv {tally.pv_w / 1000:.1f} kW, house {tally.house_w / 1000:.1f} kW, car "
        f"{state.car_power_w() / 1000:.1f} kW (set: {target}), grid {grid} kW"
    )


def _say(now: float, text: str, stop: asyncio.Event) -> None:
    """A line on stdout; when its reader has gone (`demo | head`), the demo ends, as the daemon does
    on SIGTERM, instead of failing every cycle that has something to say."""
    try:
        print(f"{datetime.fromtimestamp(now, SITE_ZONE):%H:%M}  {text}", file=sys.stdout, flush=True)
    except BrokenPipeError:
        reader_gone()  # the summary goes nowhere too
        stop.set()


async def _site(
    trace: Trace,
    clock: ScaledClock,
    model: ChargerModel,
    meter: MeterEmulator,
    tally: Tally,
    end: float,
    stop: asyncio.Event,
) -> None:
    previous = clock.now()
    while not stop.is_set():
        now = clock.now()
        if now >= end:
            stop.set()
            break
        pv_w, house_w = trace.at(now)
        model.step(now)
        car_w = model.power_w()
        tally.add(now - previous, pv_w, house_w, car_w)
        previous = now
        currents = model.phase_currents_a()
        phase_w = [(house_w - pv_w) / 3 + amps * 230.0 for amps in currents]
        meter.set_values(phase_power_w=phase_w, voltage_v=[230.0, 230.0, 230.0])
        await asyncio.sleep(SITE_STEP_S)
