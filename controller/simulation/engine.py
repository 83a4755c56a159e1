"""The simulated site: a trace, a charger with a car, a grid meter, and the real control core.

Every control cycle goes through `controller.core.control.step`, the function the daemon calls, with
the strategy object `strategies.load` builds for the daemon. Only the world around it is modelled:

- PV and house come from the trace, held constant over each sample (zero-order hold);
- the charger and the car are `ChargerModel` / `CarModel`, the physics the REST emulator also uses
  (pause below 6 A, a few seconds without current on a phase change, first-order lag of the car);
- the grid meter shows `house + car − pv` per phase, refreshed every `meter_update_s`;
- between control cycles the metrics integrate the physics exactly (see `_run`), so a slow reaction
  to a cloud costs what it would cost on a real site.

The car is plugged in from `plug_in` to `plug_out` each local day (a new session each day, starting at
`car_soc`), or for the whole trace when both are None.
"""

from __future__ import annotations

import gc
import math
import time
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import strategies
from controller.clock import existing_instant
from controller.core import control
from controller.core.commands import NOTHING
from controller.core.state import (
    ChargerInfo,
    ChargerReading,
    DeviceHealth,
    MeterReading,
    PhaseReading,
    SiteLimits,
    SiteState,
)
from controller.simulation.charger_model import (
    FULL_AS,
    CarModel,
    ChargerModel,
    lag_current,
    lag_integral,
)
from controller.simulation.metrics import ChargeRanges, Cycle, RunMetrics, summarize
from controller.simulation.trace import Gap, Trace

STEADY_A = 1e-6
"""A car whose current moves less than this over a segment is treated as holding it (error < 1 mW)."""
CHARGING_A = 0.05
"""Below this the car is not charging (the model's own threshold for CP state C)."""
Progress = Callable[[float], None]
"""Called now and then with the fraction of simulated time done (0..1)."""
Switch = tuple[float, str, Mapping[str, object]]
"""(time, strategy, parameters): from this time on, a new instance of that strategy decides, as when
a `[[schedule]]` rule fires in the daemon."""


@dataclass(frozen=True)
class SimSettings:
    """How the simulated world behaves; the site's electrical limits come separately as `SiteLimits`."""

    interval_s: float = 5.0
    """Control interval, unless the strategy brings its own (`interval_s` class attribute)."""
    plug_in: str | None = "08:00"
    plug_out: str | None = "18:00"
    """Local times (in `timezone`) the car arrives and leaves each day; both None: the whole trace."""
    timezone: str = "UTC"
    """IANA name: plug times and the days of the report are local to the site."""
    car_max_current_a: float = 16.0
    car_phases: int = 3
    car_capacity_kwh: float = 1000.0
    """So large that the car never fills: the benchmark measures the controller, not the battery."""
    car_soc: float = 0.2
    """State of charge at each plug-in (0..1)."""
    car_lag_s: float = 10.0
    """Time constant of the car's first-order response to a new allowed current."""
    meter_update_s: float = 1.0
    """How often the grid meter's reading changes; the controller sees the latest one."""


@dataclass
class SimResult:
    strategy: str
    interval_s: float
    timeline: list[Cycle]
    metrics: RunMetrics
    compute_s: array[float]
    """Wall-clock seconds of each `control.step`, for the median and p99 in the report: 8 bytes a
    cycle, where a list of floats took 32."""
    wall_s: float
    """Of the simulation: the time `on_cycle` took is not in it."""
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
        a = existing_instant(datetime.combine(day, arrive, zone)).timestamp()
        if leave is None:
            b = existing_instant(
                datetime.combine(day + timedelta(days=1), clock_time(0, 0), zone)
            ).timestamp()
        else:
            leave_day = day if leave > arrive else day + timedelta(days=1)
            b = existing_instant(datetime.combine(leave_day, leave, zone)).timestamp()
        lo, hi = max(a, start), min(b, end)
        if hi > lo:
            if windows and abs(windows[-1][1] - lo) < 1e-6:
                windows[-1] = (windows[-1][0], hi)
            else:
                windows.append((lo, hi))
        day += timedelta(days=1)
    return windows


def _validate(settings: SimSettings) -> None:
    for name in ("interval_s", "meter_update_s", "car_capacity_kwh", "car_max_current_a"):
        value = getattr(settings, name)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number, not {value!r}")
    if settings.car_phases not in (1, 3):
        raise ValueError(f"car_phases must be 1 or 3, not {settings.car_phases!r}")
    if not 0.0 <= settings.car_soc <= 1.0:
        raise ValueError(f"car_soc must be between 0 and 1, not {settings.car_soc!r}")
    if settings.car_lag_s < 0:
        raise ValueError(f"car_lag_s must not be negative, not {settings.car_lag_s!r}")
    try:
        ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"timezone {settings.timezone!r} is not an IANA time zone such as 'Europe/Berlin'"
        ) from None


def simulate_trace(
    trace: Trace,
    strategy_name: str,
    params: Mapping[str, object],
    limits: SiteLimits,
    settings: SimSettings,
    *,
    info: ChargerInfo = ChargerInfo(3, True),  # noqa: B008 - frozen, shared safely
    progress: Progress | None = None,
    keep_timeline: bool = True,
    on_cycle: Callable[[Cycle], None] | None = None,
    switches: Sequence[Switch] | None = None,
    label: str | None = None,
) -> SimResult:
    """Run one strategy over a whole trace and measure it.

    The metrics are read from the cycles as they are made. `on_cycle` sees each one too (the CLI
    writes the timeline CSV and the plots that way), and with `keep_timeline=False` the result keeps
    none of them: a year at 5 s is six million cycles, some 4 GB held as a list.

    With `switches` (a schedule; empty: one that changes nothing in the trace) the strategy changes at
    those times and the run is named `label`; it runs at `settings.interval_s` throughout, as the
    daemon runs every strategy at its config's interval, and each cycle's reason names the strategy
    that decided it.
    """
    _validate(settings)
    strategy = strategies.load(strategy_name, params)
    interval = (
        settings.interval_s if switches is not None else strategy_interval_s(strategy, settings.interval_s)
    )
    wall_start = time.perf_counter()
    timeline: list[Cycle] = []
    compute = array("d")
    schedule = None if switches is None else (strategy_name, switches)
    cycles = _run(trace, strategy, limits, settings, info, interval, progress, compute, schedule)
    if keep_timeline:
        cycles = _kept(cycles, timeline)
    outputs: _Outputs | None = None
    if on_cycle is not None:
        outputs = _Outputs(on_cycle)
        cycles = outputs.through(cycles)
    # A month is ~500 000 timeline rows and few reference cycles: the cyclic collector would only
    # rescan the growing timeline again and again. Without one it stays on, for what `on_cycle` leaves
    # behind (a matplotlib figure is full of reference cycles).
    collecting = gc.isenabled()
    if keep_timeline:
        gc.disable()
    try:
        metrics = summarize(
            cycles,
            timezone=settings.timezone,
            main_fuse_a=limits.main_fuse_a,
            compute_s=compute,
            span=(trace.start, trace.end),
        )
    finally:
        if collecting:
            gc.enable()
    wall = time.perf_counter() - wall_start - (0.0 if outputs is None else outputs.seconds)
    return SimResult(
        strategy=label or strategy_name,
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
    compute: array[float],
    schedule: tuple[str, Sequence[Switch]] | None = None,
) -> Iterator[Cycle]:
    """The loop: a control cycle, then the physics up to the next one, segment by segment; each
    cycle is handed on as it is done, and the time its `control.step` took goes to `compute`.
    `schedule`: the first strategy's name and the switches to others (`simulate_trace`).

    A segment ends at every event that can change what the car does or what the meter sees: a control
    cycle, a new trace sample, a plug event, the end of a phase-switch interruption, the battery
    filling. Inside a segment the car's current is the model's first-order response to a constant
    target, so energies, the solar split, the meter sample and the time over the fuse are integrated in
    closed form (`_Segment`) instead of by small time steps: exact, and fast enough for a month of
    5-second cycles in seconds. Plain floats and local names on purpose: this is the hot loop.
    """
    volts = limits.voltage_v
    rotation = limits.phase_rotation
    start, end = trace.start, trace.end
    n_rows = len(trace.times)
    times = trace.times
    pv_row = trace.pv_w
    house_row = trace.house_w
    # Per trace row: non-car power on each grid phase, surplus and the oracle's power.
    base: list[tuple[float, float, float]] = []
    for i in range(n_rows):
        h1, h2, h3 = trace.house_phases_w(i)
        s1, s2, s3 = trace.pv_phases_w(i)
        base.append((h1 - s1, h2 - s2, h3 - s3))
    surplus_row = [max(p - h, 0.0) for p, h in zip(pv_row, house_row, strict=True)]
    idle_peak_w = [max(abs(a), abs(b), abs(c)) for a, b, c in base]
    ranges = oracle_ranges(limits, settings, info)
    oracle_row = [ranges.oracle_power_w(s) for s in surplus_row]

    plug_events: list[tuple[float, bool]] = []
    for a, b in plug_windows(start, end, settings):
        plug_events += [(a, True), (b, False)]
    plug_events.append((math.inf, False))
    next_plug = 0
    plug_t = plug_events[0][0]

    session_wh = settings.car_capacity_kwh * 1000.0 * (1.0 - settings.car_soc)
    oracle_room_wh = 0.0
    model = ChargerModel(
        _car(settings, plugged=False),
        hw_max_ma=round(limits.max_current_a * 1000),
        phase_count=info.phase_count,
        force_1p_allowed=info.force_1_phase_allowed,
        voltage_v=volts,
        now=start,
    )
    connected = False
    interrupt_end = -math.inf
    memory = control.ControlMemory()
    step = control.step
    perf = time.perf_counter
    meter_every = settings.meter_update_s
    meter_k = 0  # index of the next meter sample, taken at start + meter_k * meter_every
    meter_t = start
    meter_p = base[0]
    fuse_w = limits.main_fuse_a * volts
    seg = _Segment()
    phase_key: tuple[float, float, float] | None = None
    phase_readings: tuple[PhaseReading, ...] = ()
    limit_key: int | None = None
    limit_actual, limit_source = 0, ""
    model_unchanged = False
    currents: tuple[float, float, float] = (0.0, 0.0, 0.0)
    car_w, cp_state = 0.0, ""

    row_i = 0
    next_row_t = times[1] if n_rows > 1 else math.inf
    cycles_total = max(1, int((end - start) / interval))
    report_every = max(1, cycles_total // 200)

    active, switches = schedule or ("", ())
    switches = [*switches, (math.inf, "", {})]
    next_switch = 0
    switch_t = switches[0][0]

    k = 0
    t = start
    while t < end - 1e-9:
        # Comparisons instead of min()/max() in this loop: a builtin call costs more than the arithmetic.
        t_next = start + (k + 1) * interval
        t_next = t_next if t_next < end else end
        while switch_t <= t + 1e-9:
            _, active, params = switches[next_switch]
            strategy = strategies.load(active, params)
            next_switch += 1
            switch_t = switches[next_switch][0]
        # --- the controller's view at t ---
        if plug_t <= t + 1e-9:
            connected, next_plug = _plug(model, plug_events, next_plug, t, connected, settings)
            plug_t = plug_events[next_plug][0]
            model_unchanged = False
            if connected:
                oracle_room_wh = session_wh
        if connected:  # unplugged, the model cannot change: let it catch up lazily on the next write
            model.step(t)
        while next_row_t <= t + 1e-9:
            row_i += 1
            next_row_t = times[row_i + 1] if row_i + 1 < n_rows else math.inf
        if not model_unchanged:  # else the last cycle's currents, power and CP state still hold
            currents = model.phase_currents_a()
            car_w = model.power_w()
            cp_state = model.cp_state()
            model_unchanged = not connected
        if start + meter_k * meter_every <= t + 1e-9:
            meter_p = _grid_phases(base[row_i], currents, rotation, volts) if currents[0] else base[row_i]
            meter_k = math.floor((t - start) / meter_every + 1e-9) + 1
            meter_t = start + (meter_k - 1) * meter_every
        if meter_p != phase_key:  # readings are frozen: share them while the meter shows the same
            phase_key = meter_p
            phase_readings = (
                PhaseReading(meter_p[0], meter_p[0] / volts, volts),
                PhaseReading(meter_p[1], meter_p[1] / volts, volts),
                PhaseReading(meter_p[2], meter_p[2] / volts, volts),
            )
        # Positional arguments in field order: keywords cost a tenth of a cycle here.
        grid = MeterReading(meter_t, meter_p[0] + meter_p[1] + meter_p[2], phase_readings)
        if model.rest_limit_ma != limit_key:  # the limit's winner only changes when we write
            limit_key = model.rest_limit_ma
            limit_actual, limit_source = model.limit_actual_ma(), model.limit_source()
        reading = ChargerReading(
            t,  # time
            connected,  # vehicle_connected
            currents[0] > CHARGING_A,  # charging
            limit_key,  # limit_ma
            limit_actual,  # limit_actual_ma
            limit_source,
            model.force_1_phase,
            car_w,  # power_w
            currents,  # phase_currents_a
            cp_state,
        )
        healthy = DeviceHealth(t)  # last_ok
        state = SiteState(t, limits, info, grid, reading, healthy, healthy)
        c0 = perf()
        outcome, memory = step(state, strategy, memory)
        compute.append(perf() - c0)
        write = outcome.write
        if write is not NOTHING:
            model_unchanged = False
        if write.limit_ma is not None:
            model.set_limit(write.limit_ma, t)
        if write.force_1_phase is not None:
            was_drawing = model.car_current_a() > 0
            model.set_force_1_phase(write.force_1_phase, t)
            if was_drawing and model.car_current_a() == 0:
                interrupt_end = t + model.switch_interrupt_s
        one_phase = model.force_1_phase or info.phase_count == 1
        pv_w, house_w, row_connected = pv_row[row_i], house_row[row_i], connected

        # --- the physics until the next cycle, one closed-form segment per event ---
        seg.reset()
        s = t
        while s < t_next - 1e-9:
            if s > t:
                if plug_t <= s + 1e-9:
                    connected, next_plug = _plug(model, plug_events, next_plug, s, connected, settings)
                    plug_t = plug_events[next_plug][0]
                    model_unchanged = False
                    if connected:
                        oracle_room_wh = session_wh
                while next_row_t <= s + 1e-9:
                    row_i += 1
                    next_row_t = times[row_i + 1] if row_i + 1 < n_rows else math.inf
            s_next = t_next if t_next < next_row_t else next_row_t
            s_next = s_next if s_next < plug_t else plug_t
            if not connected:  # the house and the PV alone: the most common segment, kept short
                peak_w = idle_peak_w[row_i]
                if peak_w > seg.peak_w:
                    seg.peak_w = peak_w
                if peak_w > fuse_w:
                    seg.over_s += s_next - s
                sample_t = start + meter_k * meter_every
                if sample_t < s_next - 1e-9:
                    meter_k += math.ceil((s_next - sample_t) / meter_every - 1e-9)
                    meter_t = start + (meter_k - 1) * meter_every
                    meter_p = base[row_i]
                s = s_next
                continue
            if s < interrupt_end < s_next:
                s_next = interrupt_end
            car = model.car
            amps0 = model.car_current_a()
            phases = model.active_phases()
            full = car.full
            if not full:
                # The segment ends where the battery fills, wherever the current starts (0 A after a
                # plug-in or a phase switch ramps up) and however it moves: the model solves for the
                # point on its exponential, asked only when the most the car can draw could fill it.
                top_a = amps0 if amps0 > car.max_current_a else car.max_current_a
                room_as = model.room_as(phases * volts)
                if top_a * (s_next - s) >= room_as - FULL_AS:
                    full_t = model.full_at(s_next)
                    if full_t < s_next:
                        s_next = full_t
            model.step(s_next)
            sample_t = start + meter_k * meter_every
            meter_t_in: float | None = None
            if sample_t < s_next - 1e-9:
                # the controller only ever sees the last meter sample before the next cycle
                meter_k += math.ceil((s_next - sample_t) / meter_every - 1e-9)
                meter_t = meter_t_in = start + (meter_k - 1) * meter_every
            meter_p = seg.add(
                s,
                s_next,
                amps0,
                model.car_current_a(),
                car.tau_s,
                phases,
                rotation,
                volts,
                base[row_i],
                surplus_row[row_i],
                fuse_w,
                meter_t_in,
                meter_p,
            )
            if oracle_room_wh > 0.0:
                o = oracle_row[row_i] * (s_next - s) / 3600.0
                o = oracle_room_wh if oracle_room_wh < o else o
                seg.oracle_wh += o
                oracle_room_wh -= o
            if not full:
                seg.export_wh += seg.last_export_wh
            s = s_next
        yield Cycle(
            t,  # time
            t_next - t,  # dt_s
            pv_w,
            house_w,
            car_w,
            grid.power_w,  # grid_w
            outcome.command.limit_ma / 1000.0,  # target_a
            1 if one_phase else 3,  # phases
            "" if write is NOTHING else write.describe(),  # command
            row_connected,  # connected
            _named(active, outcome.reason()) if active else outcome.reason(),
            seg.car_wh,
            seg.solar_wh,  # car_solar_wh
            seg.export_wh,
            seg.surplus_wh,
            seg.oracle_wh,
            seg.over_s,  # fuse_s_over
            seg.peak_w / volts,  # max_phase_a
        )
        k += 1
        t = t_next
        if progress is not None and k % report_every == 0:
            progress((t - start) / (end - start))
    if progress is not None:
        progress(1.0)


def _named(strategy: str, reason: str) -> str:
    """The reason, led by the strategy that gave it when a schedule runs several (most reasons begin
    with it already)."""
    return reason if reason.startswith(f"{strategy}:") else f"{strategy}: {reason}"


def _kept(cycles: Iterator[Cycle], timeline: list[Cycle]) -> Iterator[Cycle]:
    for cycle in cycles:
        timeline.append(cycle)
        yield cycle


class _Outputs:
    """`on_cycle` with its time counted apart: a run's speed is the simulation's, not the CSV's or the
    PNGs' (a day's plot takes longer than simulating the day)."""

    __slots__ = ("on_cycle", "seconds")

    def __init__(self, on_cycle: Callable[[Cycle], None]) -> None:
        self.on_cycle = on_cycle
        self.seconds = 0.0

    def through(self, cycles: Iterator[Cycle]) -> Iterator[Cycle]:
        """The cycles, each shown to `on_cycle` on its way."""
        perf = time.perf_counter
        for cycle in cycles:
            start = perf()
            self.on_cycle(cycle)
            self.seconds += perf() - start
            yield cycle


def _plug(
    model: ChargerModel,
    events: list[tuple[float, bool]],
    index: int,
    now: float,
    connected: bool,
    settings: SimSettings,
) -> tuple[bool, int]:
    """Apply every plug event due by `now`; each arrival is a new car at `car_soc`."""
    while events[index][0] <= now + 1e-9:
        plugged = events[index][1]
        index += 1
        if plugged and not connected:
            model.step(now)
            model.car = _car(settings, plugged=False)
            model.plug(True, now)
        elif not plugged and connected:
            model.plug(False, now)
        connected = plugged
    return connected, index


def _car(settings: SimSettings, *, plugged: bool) -> CarModel:
    return CarModel(
        max_current_a=settings.car_max_current_a,
        phases=settings.car_phases,
        capacity_kwh=settings.car_capacity_kwh,
        soc=settings.car_soc,
        lag_s=settings.car_lag_s,
        plugged=plugged,
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


class _Segment:
    """Closed-form integrals of one control cycle's physics, accumulated segment by segment.

    In a segment the car's current is I(x) = T + (I0 − T)·e^(−x/τ) for x in [0, d], with the target T
    recovered from the model's own step (I0 at the start, I1 at the end), so the model stays the only
    place that decides what the car does. The car loads `phases` charger phases, mapped onto grid
    phases by the rotation; everything else on a grid phase is the constant `base` of the trace row.
    """

    __slots__ = (
        "car_wh",
        "export_wh",
        "last_export_wh",
        "oracle_wh",
        "over_s",
        "peak_w",
        "solar_wh",
        "surplus_wh",
    )

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.car_wh = 0.0
        self.solar_wh = 0.0
        self.export_wh = 0.0
        self.last_export_wh = 0.0
        self.surplus_wh = 0.0
        self.oracle_wh = 0.0
        self.over_s = 0.0
        self.peak_w = 0.0

    def add(
        self,
        s: float,
        s_next: float,
        amps0: float,
        amps1: float,
        tau: float,
        phases: int,
        rotation: tuple[int, int, int],
        volts: float,
        base: tuple[float, float, float],
        surplus_w: float,
        fuse_w: float,
        meter_t: float | None,
        meter_p: tuple[float, float, float],
    ) -> tuple[float, float, float]:
        """Integrate [s, s_next); returns the meter's per-phase power at `meter_t` (if it sampled)."""
        d = s_next - s
        w_per_a = phases * volts
        loaded = rotation[:1] if phases == 1 else rotation
        if abs(amps1 - amps0) < STEADY_A or (amps1 <= 0.0):
            return self._steady(
                d,
                0.0 if amps1 <= 0.0 else amps1,
                w_per_a,
                loaded,
                volts,
                base,
                surplus_w,
                fuse_w,
                meter_t,
                meter_p,
            )
        decay = math.exp(-d / tau)
        if decay < 1e-12:
            target = amps1
        else:
            target = (amps1 - amps0 * decay) / (1.0 - decay)
        car_wh = lag_integral(amps0, target, tau, d) * w_per_a / 3600.0
        self.car_wh += car_wh
        if surplus_w >= 0.0:  # connected
            solar_a_s = _integral_min(amps0, target, tau, d, surplus_w / w_per_a)
            solar_wh = solar_a_s * w_per_a / 3600.0
            self.solar_wh += solar_wh
            surplus_wh = surplus_w * d / 3600.0
            self.surplus_wh += surplus_wh
            self.last_export_wh = surplus_wh - solar_wh  # ∫ max(S − P, 0), the car not full
        over_start = over_end = 0.0
        for j in range(3):
            b = base[j]
            if j not in loaded:
                peak = abs(b)
                if peak > fuse_w:
                    over_start = d
                if peak > self.peak_w:
                    self.peak_w = peak
                continue
            p0 = b + amps0 * volts
            p1 = b + lag_current(amps0, target, tau, d) * volts
            peak = abs(p0) if abs(p0) > abs(p1) else abs(p1)
            if peak > self.peak_w:
                self.peak_w = peak
            for level in (fuse_w, -fuse_w):
                over0 = p0 > level if level > 0 else p0 < level
                over1 = p1 > level if level > 0 else p1 < level
                if over0 and over1:
                    over_start = d
                elif over0 or over1:
                    x = _crossing(amps0, target, tau, (level - b) / volts)
                    if over0:
                        over_start = max(over_start, x)
                    else:
                        over_end = max(over_end, d - x)
        self.over_s += min(d, over_start + over_end)
        if meter_t is None:
            return meter_p
        amps = lag_current(amps0, target, tau, meter_t - s)
        p = [base[0], base[1], base[2]]
        for j in loaded:
            p[j] += amps * volts
        return p[0], p[1], p[2]

    def _steady(
        self,
        d: float,
        amps: float,
        w_per_a: float,
        loaded: tuple[int, ...],
        volts: float,
        base: tuple[float, float, float],
        surplus_w: float,
        fuse_w: float,
        meter_t: float | None,
        meter_p: tuple[float, float, float],
    ) -> tuple[float, float, float]:
        """The common case: the car holds its current (settled, paused or unplugged) all segment long."""
        car_w = amps * w_per_a
        h = d / 3600.0
        self.car_wh += car_w * h
        if surplus_w >= 0.0:
            solar_wh = (car_w if car_w < surplus_w else surplus_w) * h
            self.solar_wh += solar_wh
            surplus_wh = surplus_w * h
            self.surplus_wh += surplus_wh
            self.last_export_wh = surplus_wh - solar_wh
        p0, p1, p2 = base
        if amps > 0.0:
            car_phase_w = amps * volts
            if 0 in loaded:
                p0 += car_phase_w
            if 1 in loaded:
                p1 += car_phase_w
            if 2 in loaded:
                p2 += car_phase_w
        peak = abs(p0)
        peak = peak if peak > abs(p1) else abs(p1)
        peak = peak if peak > abs(p2) else abs(p2)
        if peak > self.peak_w:
            self.peak_w = peak
        if peak > fuse_w:
            self.over_s += d
        return (p0, p1, p2) if meter_t is not None else meter_p


def _crossing(amps0: float, target: float, tau: float, level: float) -> float:
    """The x at which I(x) reaches `level` (the caller knows it does, inside the segment)."""
    ratio = (level - target) / (amps0 - target)
    return -tau * math.log(ratio) if ratio > 0 else 0.0


def _integral_min(amps0: float, target: float, tau: float, d: float, level: float) -> float:
    """∫₀ᵈ min(I(x), level) dx: the car's current capped at what the surplus covers."""
    amps1 = lag_current(amps0, target, tau, d)
    if amps0 <= level and amps1 <= level:
        return lag_integral(amps0, target, tau, d)
    if amps0 >= level and amps1 >= level:
        return level * d
    x = min(max(_crossing(amps0, target, tau, level), 0.0), d)
    below = lag_integral(amps0, target, tau, x)
    if amps0 < level:  # rising through the level
        return below + level * (d - x)
    after = lag_integral(lag_current(amps0, target, tau, x), target, tau, d - x)
    return level * x + after


def utc_iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")
