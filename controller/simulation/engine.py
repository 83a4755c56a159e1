"""The simulated site: a trace, a charger with a car, a grid meter, and the real control core.

Every control cycle goes through `controller.core.control.step`, the function the daemon calls, with
the strategy object `strategies.load` builds for the daemon. Only the world around it is modelled:

- PV and house come from the trace, held constant over each sample (zero-order hold);
- the charger and the car are `ChargerModel` / `CarModel`, the physics the REST emulator also uses
  (pause below 6 A, a few seconds without current on a phase change, first-order lag of the car);
- the grid meter shows `house + car − pv` per phase, refreshed every `meter_update_s`;
- between control cycles the physics advances in steps of `physics_step_s`, and the metrics integrate
  those steps, so a slow reaction to a cloud costs what it would cost on a real site.

The car is plugged in from `plug_in` to `plug_out` each local day (a new session each day, starting at
`car_soc`), or for the whole trace when both are None.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from zoneinfo import ZoneInfo

import strategies
from controller.core import control
from controller.core.state import (
    ChargerInfo,
    ChargerReading,
    DeviceHealth,
    MeterReading,
    PhaseReading,
    SiteLimits,
    SiteState,
)
from controller.simulation.metrics import ChargeRanges, Cycle, RunMetrics, summarize
from controller.simulation.trace import Gap, Trace

LIMIT_SOURCE = "Local REST API"
PHASE_SWITCH_GAP_S = 5.0
SNAP_A = 0.01


@dataclass(frozen=True)
class CarModel:
    """STAND-IN until `controller.simulation.charger_model` lands (then this class goes)."""

    max_current_a: float = 16.0
    phases: int = 3
    capacity_kwh: float = 1000.0
    soc: float = 0.2
    lag_s: float = 10.0


class ChargerModel:
    """STAND-IN until `controller.simulation.charger_model` lands (then this class goes).

    Pause below 6 A, no current for a few seconds after a phase change, first-order lag of the car.
    """

    def __init__(self, car: CarModel, now: float, *, voltage_v: float = 230.0) -> None:
        self.car = car
        self.voltage_v = voltage_v
        self.limit_ma = 16000
        self.force_1_phase = False
        self.connected = False
        self.current_a = 0.0
        self.soc = car.soc
        self.last = now
        self.gap_until = -math.inf

    def plug_in(self, car: CarModel, now: float) -> None:
        self.step(now)
        self.car = car
        self.soc = car.soc
        self.connected = True

    def unplug(self, now: float) -> None:
        self.step(now)
        self.connected = False
        self.current_a = 0.0

    def set_limit(self, limit_ma: int, now: float) -> None:
        self.step(now)
        self.limit_ma = limit_ma

    def set_force_1_phase(self, on: bool, now: float) -> None:
        self.step(now)
        if on != self.force_1_phase:
            self.force_1_phase = on
            self.gap_until = now + PHASE_SWITCH_GAP_S
            self.current_a = 0.0

    def phases(self) -> int:
        return 1 if self.force_1_phase or self.car.phases == 1 else 3

    def allowed_a(self, now: float) -> float:
        if not self.connected or self.soc >= 1.0 or now < self.gap_until:
            return 0.0
        amps = min(self.limit_ma / 1000.0, self.car.max_current_a)
        return amps if amps >= 6.0 else 0.0

    def step(self, now: float) -> None:
        dt = now - self.last
        if dt <= 0:
            return
        self.last = now
        if self.current_a > 0:
            wh = self.current_a * self.phases() * self.voltage_v * dt / 3600
            self.soc = min(1.0, self.soc + wh / (self.car.capacity_kwh * 1000))
        target = self.allowed_a(now)
        if target <= 0.0:
            self.current_a = 0.0
        elif self.car.lag_s <= 0:
            self.current_a = target
        else:
            start = max(self.current_a, 6.0) if self.current_a == 0.0 else self.current_a
            self.current_a = target + (start - target) * math.exp(-dt / self.car.lag_s)
            if abs(self.current_a - target) < SNAP_A:
                self.current_a = target

    def charging(self) -> bool:
        return self.current_a > 0.0

    def quiet_until(self, now: float) -> float:
        """Until when the outputs stay exactly as they are now, if nothing is written."""
        target = self.allowed_a(now)
        if self.current_a != target:
            return now
        if now < self.gap_until:
            return self.gap_until
        if self.current_a > 0:
            room_wh = (1.0 - self.soc) * self.car.capacity_kwh * 1000
            return now + room_wh / self.power_w() * 3600
        return math.inf

    def full(self) -> bool:
        return self.soc >= 1.0

    def limit_actual_ma(self) -> int:
        return self.limit_ma

    def cp_state(self) -> str:
        if not self.connected:
            return "A"
        return "C" if self.current_a > 0 else "B"

    def phase_currents_a(self) -> tuple[float, float, float]:
        a = self.current_a
        return (a, 0.0, 0.0) if self.phases() == 1 else (a, a, a)

    def power_w(self) -> float:
        return self.current_a * self.phases() * self.voltage_v


Progress = Callable[[float], None]
"""Called now and then with the fraction of simulated time done (0..1)."""


@dataclass(frozen=True)
class SimSettings:
    """How the simulated world behaves; the site's electrical limits come separately as `SiteLimits`."""

    interval_s: float = 5.0
    """Control interval, unless the strategy brings its own (`interval_s` class attribute)."""
    plug_in: str | None = "08:00"
    plug_out: str | None = "18:00"
    """Local times (in `timezone`) the car arrives and leaves each day; both None: the whole trace."""
    timezone: str = "UTC"
    car_max_current_a: float = 16.0
    car_phases: int = 3
    car_capacity_kwh: float = 1000.0
    """So large that the car never fills: the benchmark measures the controller, not the battery."""
    car_soc: float = 0.2
    """State of charge at each plug-in (0..1)."""
    car_lag_s: float = 10.0
    """Time constant of the car's first-order response to a new allowed current."""
    meter_update_s: float = 1.0
    physics_step_s: float = 1.0


@dataclass
class SimResult:
    strategy: str
    interval_s: float
    timeline: list[Cycle]
    metrics: RunMetrics
    compute_s: list[float]
    """Wall-clock seconds of each `control.step`, for the median and p99 in the report."""
    wall_s: float
    simulated_s: float
    trace: str
    gaps: tuple[Gap, ...] = ()
    settings: SimSettings = field(default_factory=SimSettings)

    def speed_s_per_day(self) -> float:
        """Wall-clock seconds per simulated day: the compute-speed figure of the benchmark."""
        return self.wall_s / (self.simulated_s / 86400) if self.simulated_s else 0.0


def strategy_interval_s(strategy: object, default: float) -> float:
    """A strategy may fix its own control interval (evcc's 30 s is part of evcc's behaviour)."""
    own = getattr(strategy, "interval_s", None)
    if isinstance(own, int | float) and not isinstance(own, bool) and own > 0:
        return float(own)
    return default


def parse_clock(text: str, what: str) -> clock_time | None:
    """'HH:MM' → a time; '24:00' → None meaning midnight at the end of the day."""
    try:
        hours, minutes = (int(part) for part in text.strip().split(":"))
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a time of day like 08:00") from None
    if (hours, minutes) == (24, 0):
        return None
    if not (0 <= hours < 24 and 0 <= minutes < 60):
        raise ValueError(f"{what}: {text!r} is not a time of day like 08:00")
    return clock_time(hours, minutes)


def plug_windows(start: float, end: float, settings: SimSettings) -> list[tuple[float, float]]:
    """The stretches of [start, end) in which the car is plugged in, in Unix seconds."""
    if settings.plug_in is None and settings.plug_out is None:
        return [(start, end)]
    if settings.plug_in is None or settings.plug_out is None:
        raise ValueError("plug-in and plug-out must both be given, or both left out for the whole trace")
    arrive = parse_clock(settings.plug_in, "plug-in") or clock_time(0, 0)
    leave = parse_clock(settings.plug_out, "plug-out")
    zone = ZoneInfo(settings.timezone)
    day = datetime.fromtimestamp(start, zone).date() - timedelta(days=1)
    last = datetime.fromtimestamp(end, zone).date()
    windows: list[tuple[float, float]] = []
    while day <= last:
        a = datetime.combine(day, arrive, zone).timestamp()
        if leave is None:
            b = datetime.combine(day + timedelta(days=1), clock_time(0, 0), zone).timestamp()
        else:
            leave_day = day if leave > arrive else day + timedelta(days=1)
            b = datetime.combine(leave_day, leave, zone).timestamp()
        lo, hi = max(a, start), min(b, end)
        if hi > lo:
            if windows and abs(windows[-1][1] - lo) < 1e-6:
                windows[-1] = (windows[-1][0], hi)
            else:
                windows.append((lo, hi))
        day += timedelta(days=1)
    return windows


def _validate(settings: SimSettings) -> None:
    for name in ("interval_s", "meter_update_s", "physics_step_s", "car_capacity_kwh", "car_max_current_a"):
        value = getattr(settings, name)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number, not {value!r}")
    if settings.car_phases not in (1, 3):
        raise ValueError(f"car_phases must be 1 or 3, not {settings.car_phases!r}")
    if not 0.0 <= settings.car_soc <= 1.0:
        raise ValueError(f"car_soc must be between 0 and 1, not {settings.car_soc!r}")
    if settings.car_lag_s < 0:
        raise ValueError(f"car_lag_s must not be negative, not {settings.car_lag_s!r}")
    ZoneInfo(settings.timezone)


def simulate_trace(
    trace: Trace,
    strategy_name: str,
    params: Mapping[str, object],
    limits: SiteLimits,
    settings: SimSettings,
    *,
    info: ChargerInfo = ChargerInfo(3, True),  # noqa: B008 - frozen, shared safely
    progress: Progress | None = None,
) -> SimResult:
    """Run one strategy over a whole trace and measure it."""
    _validate(settings)
    strategy = strategies.load(strategy_name, params)
    interval = strategy_interval_s(strategy, settings.interval_s)
    wall_start = time.perf_counter()
    timeline, compute = _run(trace, strategy, limits, settings, info, interval, progress)
    wall = time.perf_counter() - wall_start
    metrics = summarize(
        timeline, timezone=settings.timezone, main_fuse_a=limits.main_fuse_a, compute_s=compute
    )
    return SimResult(
        strategy=strategy_name,
        interval_s=interval,
        timeline=timeline,
        metrics=metrics,
        compute_s=compute,
        wall_s=wall,
        simulated_s=trace.end - trace.start,
        trace=trace.source,
        gaps=trace.gaps,
        settings=settings,
    )


def oracle_ranges(limits: SiteLimits, settings: SimSettings, info: ChargerInfo) -> ChargeRanges:
    """The power bands the oracle may use: what this charger and this car can physically draw."""
    max_a = min(limits.max_current_a, settings.car_max_current_a)
    three = info.phase_count == 3 and settings.car_phases == 3
    one = settings.car_phases == 1 or info.phase_count == 1 or info.can_switch_phases()
    return ChargeRanges.for_site(
        voltage_v=limits.voltage_v,
        min_current_a=limits.min_current_a,
        max_current_a=max_a,
        one_phase=one,
        three_phase=three,
    )


def _run(
    trace: Trace,
    strategy: strategies.Strategy,
    limits: SiteLimits,
    settings: SimSettings,
    info: ChargerInfo,
    interval: float,
    progress: Progress | None,
) -> tuple[list[Cycle], list[float]]:
    """The loop. Plain floats and local names on purpose: it runs ~100 000 physics steps a day."""
    volts = limits.voltage_v
    rotation = limits.phase_rotation
    start, end = trace.start, trace.end
    n_rows = len(trace.times)
    times = trace.times
    pv_row = trace.pv_w
    house_row = trace.house_w
    # Per trace row: net non-car power on each grid phase, surplus and the oracle's power.
    base: list[tuple[float, float, float]] = []
    for i in range(n_rows):
        h1, h2, h3 = trace.house_phases_w(i)
        s1, s2, s3 = trace.pv_phases_w(i)
        base.append((h1 - s1, h2 - s2, h3 - s3))
    surplus_row = [max(p - h, 0.0) for p, h in zip(pv_row, house_row, strict=True)]
    ranges = oracle_ranges(limits, settings, info)
    oracle_row = [ranges.oracle_power_w(s) for s in surplus_row]

    windows = plug_windows(start, end, settings)
    plug_events: list[tuple[float, bool]] = []
    for a, b in windows:
        plug_events.append((a, True))
        plug_events.append((b, False))
    plug_events.append((math.inf, False))
    next_plug = 0

    capacity_wh = settings.car_capacity_kwh * 1000.0
    session_wh = capacity_wh * (1.0 - settings.car_soc)
    oracle_room_wh = 0.0

    model = ChargerModel(_car(settings), now=start, voltage_v=volts)
    connected = False
    healthy = DeviceHealth(last_ok=start)
    memory = control.ControlMemory()
    step = control.step
    perf = time.perf_counter
    dt = min(settings.physics_step_s, settings.meter_update_s, interval)
    meter_every = settings.meter_update_s
    meter_k = 0  # index of the next meter sample, at start + meter_k * meter_every

    timeline: list[Cycle] = []
    compute: list[float] = []
    row_i = 0
    next_row_t = times[1] if n_rows > 1 else math.inf
    meter_t = start
    meter_p = (0.0, 0.0, 0.0)
    fuse = limits.main_fuse_a
    cycles_total = max(1, int((end - start) / interval))
    report_every = max(1, cycles_total // 200)

    k = 0
    t = start
    plug_t = plug_events[0][0]
    while t < end - 1e-9:
        t_next = min(start + (k + 1) * interval, end)
        # --- the controller's view at t ---
        if plug_t <= t + 1e-9:
            connected, next_plug = _plug(model, plug_events, next_plug, t, connected, settings)
            plug_t = plug_events[next_plug][0]
            if connected:
                oracle_room_wh = session_wh
        model.step(t)
        while next_row_t <= t + 1e-9:
            row_i += 1
            next_row_t = times[row_i + 1] if row_i + 1 < n_rows else math.inf
        if start + meter_k * meter_every <= t + 1e-9:
            meter_p = _grid_phases(base[row_i], model.phase_currents_a(), rotation, volts)
            meter_k = math.floor((t - start) / meter_every + 1e-9) + 1
            meter_t = start + (meter_k - 1) * meter_every
        grid = MeterReading(
            time=meter_t,
            power_w=meter_p[0] + meter_p[1] + meter_p[2],
            phases=(
                PhaseReading(meter_p[0], meter_p[0] / volts, volts),
                PhaseReading(meter_p[1], meter_p[1] / volts, volts),
                PhaseReading(meter_p[2], meter_p[2] / volts, volts),
            ),
        )
        car_w = model.power_w()
        reading = ChargerReading(
            time=t,
            vehicle_connected=connected,
            charging=model.charging(),
            limit_ma=model.limit_ma,
            limit_actual_ma=model.limit_actual_ma(),
            limit_source=LIMIT_SOURCE,
            force_1_phase=model.force_1_phase,
            power_w=car_w,
            phase_currents_a=model.phase_currents_a(),
            cp_state=model.cp_state(),
        )
        healthy = DeviceHealth(last_ok=t)
        state = SiteState(
            now=t,
            limits=limits,
            info=info,
            grid=grid,
            charger=reading,
            meter_health=healthy,
            charger_health=healthy,
        )
        c0 = perf()
        outcome, memory = step(state, strategy, memory)
        compute.append(perf() - c0)
        write = outcome.write
        if write.limit_ma is not None:
            model.set_limit(write.limit_ma, t)
        if write.force_1_phase is not None:
            model.set_force_1_phase(write.force_1_phase, t)
        row = Cycle(
            time=t,
            dt_s=t_next - t,
            pv_w=pv_row[row_i],
            house_w=house_row[row_i],
            car_w=car_w,
            grid_w=grid.power_w,
            target_a=outcome.command.limit_ma / 1000.0,
            phases=1 if model.force_1_phase or info.phase_count == 1 else 3,
            command=write.describe() if write else "",
            connected=connected,
            reason=outcome.reason(),
        )

        # --- the physics until the next cycle, integrated step by step ---
        car_wh = solar_wh = export_wh = surplus_wh = oracle_wh = over_s = 0.0
        max_a = 0.0
        s = t
        while s < t_next - 1e-9:
            if s > t:
                if plug_t <= s + 1e-9:
                    connected, next_plug = _plug(model, plug_events, next_plug, s, connected, settings)
                    plug_t = plug_events[next_plug][0]
                    if connected:
                        oracle_room_wh = session_wh
                model.step(s)
                while next_row_t <= s + 1e-9:
                    row_i += 1
                    next_row_t = times[row_i + 1] if row_i + 1 < n_rows else math.inf
            # While the charger and car hold still, one step reaches to the next event.
            grid_next = start + (math.floor((s - start) / dt + 1e-9) + 1) * dt
            s_next = min(t_next, next_row_t, plug_t, max(grid_next, model.quiet_until(s)))
            h = (s_next - s) / 3600.0
            p = _grid_phases(base[row_i], model.phase_currents_a(), rotation, volts)
            sample_t = start + meter_k * meter_every
            if sample_t < s_next - 1e-9:
                # every meter sample in [s, s_next) saw these same values
                meter_k += math.ceil((s_next - sample_t) / meter_every - 1e-9)
                meter_t = start + (meter_k - 1) * meter_every
                meter_p = p
            if connected:
                p_car = model.power_w()
                surplus = surplus_row[row_i]
                car_wh += p_car * h
                solar_wh += min(p_car, surplus) * h
                surplus_wh += surplus * h
                if oracle_room_wh > 0.0:
                    o = min(oracle_row[row_i] * h, oracle_room_wh)
                    oracle_wh += o
                    oracle_room_wh -= o
                grid_w = p[0] + p[1] + p[2]
                if grid_w < 0.0 and not model.full():
                    export_wh -= grid_w * h
            peak = max(abs(p[0]), abs(p[1]), abs(p[2])) / volts
            max_a = max(max_a, peak)
            if peak > fuse:
                over_s += s_next - s
            s = s_next
        row.car_wh = car_wh
        row.car_solar_wh = solar_wh
        row.export_wh = export_wh
        row.surplus_wh = surplus_wh
        row.oracle_wh = oracle_wh
        row.fuse_s_over = over_s
        row.max_phase_a = max_a
        timeline.append(row)
        k += 1
        t = t_next
        if progress is not None and k % report_every == 0:
            progress((t - start) / (end - start))
    if progress is not None:
        progress(1.0)
    return timeline, compute


def _plug(
    model: ChargerModel,
    events: list[tuple[float, bool]],
    index: int,
    now: float,
    connected: bool,
    settings: SimSettings,
) -> tuple[bool, int]:
    """Apply every plug event due by `now`; a new session starts with a fresh car at `car_soc`."""
    while events[index][0] <= now + 1e-9:
        plugged = events[index][1]
        index += 1
        if plugged and not connected:
            model.plug_in(_car(settings), now)
        elif not plugged and connected:
            model.unplug(now)
        connected = plugged
    return connected, index


def _car(settings: SimSettings) -> CarModel:
    return CarModel(
        max_current_a=settings.car_max_current_a,
        phases=settings.car_phases,
        capacity_kwh=settings.car_capacity_kwh,
        soc=settings.car_soc,
        lag_s=settings.car_lag_s,
    )


def _grid_phases(
    base: tuple[float, float, float],
    car_a: tuple[float, ...],
    rotation: tuple[int, int, int],
    volts: float,
) -> tuple[float, float, float]:
    """Grid power per grid phase: house − pv on it, plus the car's current on it at the site voltage."""
    p = [base[0], base[1], base[2]]
    for charger_phase, amps in enumerate(car_a[:3]):
        p[rotation[charger_phase]] += amps * volts
    return p[0], p[1], p[2]


def utc_iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")
