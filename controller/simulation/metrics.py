"""Control-quality metrics, computed from the simulation timeline, and the solar oracle.

The engine writes one `Cycle` per control cycle. Energies in a cycle are exact integrals of the
modelled physics over the cycle's interval (not samples at the control instant), so a controller
that is slow to follow a cloud pays for every second of it. Everything below is a sum, maximum or count over
those rows, which keeps the definitions short enough to check by hand.

Definitions (the README's "Metrics" section copies them):

- `car_kwh`: energy into the car, ∫ car power dt, while it is plugged in.
- `car_solar_kwh`: ∫ min(car power, max(pv − house, 0)) dt — the part of the car's power that the PV
  could have covered after the house. `car_grid_kwh` = `car_kwh` − `car_solar_kwh`.
- `solar_share` = `car_solar_kwh` / `car_kwh` (null when the car got nothing).
- `oracle_kwh`: the most solar energy any controller could have put into this car on this trace
  without importing for it: at each instant the oracle charges at the largest power the charger can
  deliver that is not above the surplus max(pv − house, 0), with 1 phase delivering min–max A and
  3 phases 3 × (min–max A) at the site voltage (only the modes this charger and car can use), switching
  freely and instantly; it stops when the car's battery is full. `capture` = `car_solar_kwh` /
  `oracle_kwh` (null when the oracle is 0).
- `exported_kwh`: ∫ max(−grid, 0) dt while the car is plugged in and not full: sun that went to the grid
  although the car could have taken it.
- `surplus_kwh`: ∫ max(pv − house, 0) dt while the car is plugged in (context for the above).
- `pauses`: control cycles whose command takes the charger from a limit ≥ 6 A to 0 (pause) while the
  car is plugged in — each one opens the contactor. `max_pauses_10min`: the most pauses that start
  within any 600 s. `switch_pauses`: those of the pauses that are followed within 120 s, before any
  resume, by a change from 1 to 3 phases — the safety layer's pause → switch → resume for a 1→3
  switch while charging. (A stop for lack of sun followed by a drop to 1 phase is not one of them.)
- `phase_switches`: cycles in which the charger's phase mode (1 or 3) changes while the car is plugged in.
  (Pauses and switches count only between two cycles that both saw the car plugged in.)
- `commands`: cycles that wrote anything to the charger (`ChargeCurrentLimit` and/or `Force1Phase`),
  re-asserts included: the load we put on the charger's API.
- `max_phase_current_a`: the highest current magnitude on any grid phase at the meter (import or
  export), over the whole run; `fuse_seconds_over`: seconds in which it exceeded `main_fuse_a`.
- `cycle_ms_median`, `cycle_ms_p99` (totals only): wall-clock time of one `control.step` (strategy +
  safety layer + command diff) on the machine that ran the simulation.

A day is a calendar day in the site's time zone; a cycle belongs to the day its interval starts in,
and a switch pause to the day of its pause. The whole run's block is the sum of its days'.
`days` counts the days the run touches, `plugged_days` those on which the car was plugged in: the
per-day figures of the summary and the benchmark divide by `plugged_days`.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from controller.core.units import MIN_SIGNAL_A

PAUSE_WINDOW_S = 600.0
SWITCH_PAUSE_S = 120.0
"""A pause followed this soon by a 1→3 change, before any resume, is part of that switch."""


@dataclass(slots=True)
class Cycle:
    """One control cycle: the instant the controller saw, what it commanded, and the interval after it.

    Instant values (at `time`): `pv_w`, `house_w` (held trace values), `car_w` (the charger's own
    meter), `grid_w` (what the grid meter showed the controller). Command: `target_a` (the limit the
    charger holds after this cycle, 0 = paused), `phases` (its phase mode), `command` (what was
    written, empty when nothing was). Integrals over [time, time + dt_s): the `*_wh` fields,
    `fuse_s_over` and `max_phase_a`.
    """

    time: float
    dt_s: float
    pv_w: float
    house_w: float
    car_w: float
    grid_w: float
    target_a: float
    phases: int
    command: str
    connected: bool
    reason: str
    car_wh: float = 0.0
    car_solar_wh: float = 0.0
    export_wh: float = 0.0
    surplus_wh: float = 0.0
    oracle_wh: float = 0.0
    fuse_s_over: float = 0.0
    max_phase_a: float = 0.0


@dataclass(frozen=True, slots=True)
class ChargeRanges:
    """The power bands the charger and car can deliver, for the oracle: (low W, high W) per phase mode."""

    bands: tuple[tuple[float, float], ...]

    @classmethod
    def for_site(
        cls,
        *,
        voltage_v: float,
        min_current_a: float,
        max_current_a: float,
        one_phase: bool,
        three_phase: bool,
    ) -> ChargeRanges:
        low = max(min_current_a, MIN_SIGNAL_A)
        bands: list[tuple[float, float]] = []
        if max_current_a >= low:
            if one_phase:
                bands.append((low * voltage_v, max_current_a * voltage_v))
            if three_phase:
                bands.append((3 * low * voltage_v, 3 * max_current_a * voltage_v))
        return cls(tuple(bands))

    def oracle_power_w(self, surplus_w: float) -> float:
        """The largest deliverable power that is not above the surplus; 0 below the smallest band."""
        best = 0.0
        for low, high in self.bands:
            if surplus_w >= low:
                best = max(best, min(surplus_w, high))
        return best


@dataclass(slots=True)
class Metrics:
    """One block of the JSON report: a whole run (`total`) or one day."""

    car_kwh: float = 0.0
    car_solar_kwh: float = 0.0
    car_grid_kwh: float = 0.0
    solar_share: float | None = None
    oracle_kwh: float = 0.0
    capture: float | None = None
    exported_kwh: float = 0.0
    surplus_kwh: float = 0.0
    pauses: int = 0
    switch_pauses: int = 0
    max_pauses_10min: int = 0
    phase_switches: int = 0
    commands: int = 0
    max_phase_current_a: float = 0.0
    fuse_seconds_over: float = 0.0
    main_fuse_a: float = 0.0
    plugged_hours: float = 0.0
    days: int = 1
    plugged_days: int = 0
    cycle_ms_median: float | None = None
    cycle_ms_p99: float | None = None

    def as_json(self, *, with_timing: bool) -> dict[str, float | int | None]:
        block: dict[str, float | int | None] = {
            "car_kwh": round(self.car_kwh, 4),
            "car_solar_kwh": round(self.car_solar_kwh, 4),
            "car_grid_kwh": round(self.car_grid_kwh, 4),
            "solar_share": _round(self.solar_share, 5),
            "oracle_kwh": round(self.oracle_kwh, 4),
            "capture": _round(self.capture, 5),
            "exported_kwh": round(self.exported_kwh, 4),
            "surplus_kwh": round(self.surplus_kwh, 4),
            "pauses": self.pauses,
            "switch_pauses": self.switch_pauses,
            "max_pauses_10min": self.max_pauses_10min,
            "phase_switches": self.phase_switches,
            "commands": self.commands,
            "max_phase_current_a": round(self.max_phase_current_a, 3),
            "fuse_seconds_over": round(self.fuse_seconds_over, 1),
            "main_fuse_a": self.main_fuse_a,
            "plugged_hours": round(self.plugged_hours, 4),
            "days": self.days,
            "plugged_days": self.plugged_days,
        }
        if with_timing:
            block["cycle_ms_median"] = _round(self.cycle_ms_median, 4)
            block["cycle_ms_p99"] = _round(self.cycle_ms_p99, 4)
        return block


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(frozen=True, slots=True)
class RunMetrics:
    total: Metrics
    days: dict[str, Metrics]


class DayClock:
    """Which local calendar day a Unix time falls in, without a time-zone conversion per row."""

    def __init__(self, start: float, end: float, timezone: str) -> None:
        zone = ZoneInfo(timezone)
        first = datetime.fromtimestamp(start, zone).date()
        last = datetime.fromtimestamp(end, zone).date()
        self.starts: list[float] = []
        self.names: list[str] = []
        day = first
        while day <= last + timedelta(days=1):
            midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
            self.starts.append(midnight.astimezone(UTC).timestamp())
            self.names.append(day.isoformat())
            day += timedelta(days=1)

    def index(self, t: float) -> int:
        return max(0, bisect.bisect_right(self.starts, t) - 1)

    def day(self, t: float) -> tuple[str, float]:
        """The name of the day `t` falls in, and when the next one starts (inf after the last)."""
        index = self.index(t)
        return self.names[index], self.starts[index + 1] if index + 1 < len(self.starts) else math.inf


def summarize(
    rows: Iterable[Cycle],
    *,
    timezone: str,
    main_fuse_a: float,
    compute_s: Iterable[float] = (),
    span: tuple[float, float] | None = None,
) -> RunMetrics:
    """The report's blocks: one per local day and one for the whole run.

    One pass over the timeline: the whole run is the sum of its days, except for the most pauses in
    ten minutes, which may span a midnight and is counted again over all pauses. Given `span`, the
    run's (start, end), the rows are read as they come (from the engine, never held); without it their
    first and last cycle give it.
    """
    if span is None:
        rows = rows if isinstance(rows, Sequence) else list(rows)
        if not rows:
            return RunMetrics(total=Metrics(main_fuse_a=main_fuse_a, days=0), days={})
        span = (rows[0].time, rows[-1].time + rows[-1].dt_s)
    clock = DayClock(span[0], span[1], timezone)
    stretches = _read(rows, main_fuse_a=main_fuse_a, clock=clock)
    if not stretches:
        return RunMetrics(total=Metrics(main_fuse_a=main_fuse_a, days=0), days={})
    days = {name: stretch.metrics for name, stretch in stretches.items()}
    total = combine(list(days.values()), compute_s=compute_s)
    total.car_grid_kwh = max(total.car_kwh - total.car_solar_kwh, 0.0)
    total.max_pauses_10min = most_in_window(
        [t for stretch in stretches.values() for t in stretch.pause_times], PAUSE_WINDOW_S
    )
    return RunMetrics(total=total, days=days)


TICK_S = 1e-7
"""The step times are counted in tenths of a microsecond (the report shows microseconds)."""


def timing_ms(compute_s: Iterable[float]) -> tuple[float | None, float | None]:
    """(median, 99th percentile) of the control-step times, in milliseconds.

    Counted per tick rather than sorted: a year of 5-second cycles is six million times, and a sorted
    list of them 200 MB; the counts of the few thousand distinct ticks take next to nothing.
    """
    counts = Counter(round(t / TICK_S) for t in compute_s)
    n = sum(counts.values())
    if not n:
        return None, None
    ticks = sorted(counts)

    def at(rank: int) -> float:
        """The time at this rank of the ordered times."""
        seen = 0
        for tick in ticks:
            seen += counts[tick]
            if seen > rank:
                return tick * TICK_S
        return ticks[-1] * TICK_S

    half = n // 2
    median = at(half) if n % 2 else (at(half - 1) + at(half)) / 2
    return median * 1000, at(min(n - 1, int(0.99 * n))) * 1000


def combine(blocks: Sequence[Metrics], *, compute_s: Iterable[float] = ()) -> Metrics:
    """Blocks of separate runs (e.g. several traces) as one: sums, maxima, and the ratios anew."""
    m = Metrics(main_fuse_a=max((b.main_fuse_a for b in blocks), default=0.0), days=0)
    for b in blocks:
        m.car_kwh += b.car_kwh
        m.car_solar_kwh += b.car_solar_kwh
        m.car_grid_kwh += b.car_grid_kwh
        m.oracle_kwh += b.oracle_kwh
        m.exported_kwh += b.exported_kwh
        m.surplus_kwh += b.surplus_kwh
        m.pauses += b.pauses
        m.switch_pauses += b.switch_pauses
        m.max_pauses_10min = max(m.max_pauses_10min, b.max_pauses_10min)
        m.phase_switches += b.phase_switches
        m.commands += b.commands
        m.max_phase_current_a = max(m.max_phase_current_a, b.max_phase_current_a)
        m.fuse_seconds_over += b.fuse_seconds_over
        m.plugged_hours += b.plugged_hours
        m.days += b.days
        m.plugged_days += b.plugged_days
    m.solar_share = m.car_solar_kwh / m.car_kwh if m.car_kwh > 0 else None
    m.capture = m.car_solar_kwh / m.oracle_kwh if m.oracle_kwh > 0 else None
    m.cycle_ms_median, m.cycle_ms_p99 = timing_ms(compute_s)
    return m


def block(rows: Iterable[Cycle], *, main_fuse_a: float, previous: Cycle | None = None) -> Metrics:
    """Sum, count and maximise one stretch of the timeline (see the module docstring); `previous` is
    the cycle just before the stretch, against which its first cycle's pause or switch is counted."""
    stretches = _read(rows, main_fuse_a=main_fuse_a, clock=None, previous=previous)
    return stretches[""].metrics if stretches else Metrics(main_fuse_a=main_fuse_a)


@dataclass(slots=True)
class _Stretch:
    """A day (or a whole run) being read: its block, and when its pauses started."""

    metrics: Metrics
    pause_times: list[float]


def _read(
    rows: Iterable[Cycle], *, main_fuse_a: float, clock: DayClock | None, previous: Cycle | None = None
) -> dict[str, _Stretch]:
    """The blocks of the timeline's days (`clock`), or of the whole of it as one stretch named "".

    A pause or a phase switch counts in the day of the cycle that makes it, against the cycle before,
    which may lie in the day before; a switch pause counts in the day of its pause.
    """
    stretches: dict[str, _Stretch] = {}
    stretch = _Stretch(Metrics(main_fuse_a=main_fuse_a), [])
    boundary = -math.inf
    # Local sums, not attributes of the block: this loop sees every cycle of a month.
    car_wh = solar_wh = export_wh = surplus_wh = oracle_wh = plugged_s = over_s = peak_a = 0.0
    commands = 0
    open_pause: _Stretch | None = None
    """The stretch of the pause still open, that a 1→3 change may make a switch pause."""
    open_since = 0.0
    for row in rows:
        if row.time >= boundary:
            if stretches:
                _close(
                    stretch,
                    car_wh,
                    solar_wh,
                    export_wh,
                    surplus_wh,
                    oracle_wh,
                    plugged_s,
                    over_s,
                    peak_a,
                    commands,
                )
            car_wh = solar_wh = export_wh = surplus_wh = oracle_wh = plugged_s = over_s = peak_a = 0.0
            commands = 0
            if clock is None:
                name, boundary = "", math.inf
            else:
                name, boundary = clock.day(row.time)
            stretch = stretches[name] = _Stretch(Metrics(main_fuse_a=main_fuse_a), [])
        car_wh += row.car_wh
        solar_wh += row.car_solar_wh
        export_wh += row.export_wh
        surplus_wh += row.surplus_wh
        oracle_wh += row.oracle_wh
        over_s += row.fuse_s_over
        if row.max_phase_a > peak_a:
            peak_a = row.max_phase_a
        if row.connected:
            plugged_s += row.dt_s
        if row.command:
            commands += 1
        if previous is not None and row.connected and previous.connected:
            if previous.target_a >= MIN_SIGNAL_A and row.target_a <= 0.0:
                stretch.pause_times.append(row.time)
                open_pause, open_since = stretch, row.time
            if previous.phases != row.phases:
                stretch.metrics.phase_switches += 1
                up = row.phases > previous.phases
                if up and open_pause is not None and row.time - open_since <= SWITCH_PAUSE_S:
                    open_pause.metrics.switch_pauses += 1
                    open_pause = None
            if row.target_a > 0.0:  # resumed (possibly in the same cycle as the switch)
                open_pause = None
        else:
            open_pause = None
        previous = row
    if stretches:
        _close(
            stretch, car_wh, solar_wh, export_wh, surplus_wh, oracle_wh, plugged_s, over_s, peak_a, commands
        )
    return stretches


def _close(
    stretch: _Stretch,
    car_wh: float,
    solar_wh: float,
    export_wh: float,
    surplus_wh: float,
    oracle_wh: float,
    plugged_s: float,
    over_s: float,
    peak_a: float,
    commands: int,
) -> None:
    """A stretch's block from its sums, once its last cycle is read."""
    m = stretch.metrics
    m.fuse_seconds_over = over_s
    m.max_phase_current_a = peak_a
    m.commands = commands
    m.car_kwh = car_wh / 1000
    m.car_solar_kwh = solar_wh / 1000
    m.car_grid_kwh = max(car_wh - solar_wh, 0.0) / 1000
    m.solar_share = solar_wh / car_wh if car_wh > 0 else None
    m.oracle_kwh = oracle_wh / 1000
    m.capture = solar_wh / oracle_wh if oracle_wh > 0 else None
    m.exported_kwh = export_wh / 1000
    m.surplus_kwh = surplus_wh / 1000
    m.plugged_hours = plugged_s / 3600
    m.plugged_days = 1 if plugged_s > 0 else 0
    m.pauses = len(stretch.pause_times)
    m.max_pauses_10min = most_in_window(stretch.pause_times, PAUSE_WINDOW_S)


def most_in_window(times: Sequence[float], window_s: float) -> int:
    """The largest number of events that start within any `window_s` (events sorted by time)."""
    best = 0
    first = 0
    for last, t in enumerate(times):
        while t - times[first] >= window_s:
            first += 1
        best = max(best, last - first + 1)
    return best
