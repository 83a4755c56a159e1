"""One picture per day and strategy: did the car follow the sun, and what did it cost the contactor?

Top panel: PV (filled yellow), house, car, and grid power (import above zero, export below), in kW
over the local time of day, with the plug-in window shaded and every pause marked by a red tick.
Bottom panel: the charger's phase mode (1 or 3) and the commanded current, with phase switches
visible as steps. The title carries the day's key metrics, so a folder of PNGs reads like a table.

matplotlib is used through its object API on the Agg canvas, never through pyplot: no display, no
global figure registry to leak memory over hundreds of days, safe on a headless box and in tests.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from controller.core.units import MIN_SIGNAL_A
from controller.simulation.metrics import Cycle, DayClock, Metrics, block
from controller.simulation.trace import trace_labels

COLOURS = {
    "pv": "#f2b705",
    "house": "#555555",
    "car": "#1f77b4",
    "grid": "#d62728",
    "plugged": "#e8f4e8",
    "pause": "#d62728",
    "phases": "#2ca02c",
    "target": "#1f77b4",
}


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


LABEL_CHARS = 60
"""Of a trace's path in a file name, at most this much (the end, which tells traces apart)."""


def plot_prefixes(runs: Sequence[tuple[str, str]]) -> list[str]:
    """For runs given as (strategy, trace path): `<strategy>`, or `<strategy>_<trace>` when the strategy
    ran on several traces (they may share dates); a number is added where two would still be the same
    file name."""
    names = [strategy for strategy, _ in runs]
    labels = trace_labels([trace for _, trace in runs])
    prefixes: list[str] = []
    for strategy, trace in runs:
        prefix = _safe(strategy)
        if names.count(strategy) > 1:
            label = labels[trace].removesuffix(".gz").removesuffix(".csv")
            prefix += "_" + _safe(label)[-LABEL_CHARS:].lstrip("._-")
        unique, n = prefix, 1
        while unique in prefixes:
            n += 1
            unique = f"{prefix}_{n}"
        prefixes.append(unique)
    return prefixes


class DayPlots:
    """One run's `<prefix>_<date>.png` files, each drawn once the day's last cycle is in.

    Fed the cycles as the simulation makes them, it holds one day of them, not the run's: a year of
    plots needs no more memory than a day's. The caption's figures are the day's block of the report,
    counted from the same cycles (`metrics.block`, against the last cycle of the day before).
    """

    def __init__(
        self,
        directory: Path,
        prefix: str,
        *,
        strategy: str,
        timezone: str,
        span: tuple[float, float],
        main_fuse_a: float,
    ) -> None:
        self.directory, self.prefix, self.strategy, self.timezone = directory, prefix, strategy, timezone
        self.main_fuse_a = main_fuse_a
        self.clock = DayClock(span[0], span[1], timezone)
        self.files: list[Path] = []
        self._rows: list[Cycle] = []
        self._day = ""
        self._next_day = -math.inf
        self._previous: Cycle | None = None

    def __call__(self, row: Cycle) -> None:
        if row.time >= self._next_day:
            self._draw()
            self._day, self._next_day = self.clock.day(row.time)
        self._rows.append(row)

    def close(self) -> list[Path]:
        """Draws the last day; returns the files written."""
        self._draw()
        return self.files

    def _draw(self) -> None:
        rows, self._rows = self._rows, []
        if not rows:
            return
        path = self.directory / f"{self.prefix}_{self._day}.png"
        plot_day(
            rows,
            path,
            title=f"{self.strategy} — {self._day}",
            metrics=block(rows, main_fuse_a=self.main_fuse_a, previous=self._previous),
            timezone=self.timezone,
        )
        self._previous = rows[-1]
        self.files.append(path)


class LocalHours:
    """The x axis of a day: hours elapsed since its local midnight, ticks labelled with the local clock.

    Elapsed time keeps the curves continuous and every hour one hour wide; the labels come from the
    clock, so on a daylight-saving day (23 or 25 hours) everything after the change still sits under
    the local time it happened at (counting hours from the first row's clock time put it an hour off).
    """

    def __init__(self, t: float, zone: ZoneInfo) -> None:
        day = datetime.fromtimestamp(t, zone).date()
        self.zone = zone
        self.midnight = datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()

    def x(self, t: float) -> float:
        return (t - self.midnight) / 3600

    def time(self, x: float) -> float:
        return self.midnight + x * 3600

    def label(self, x: float) -> str:
        local = datetime.fromtimestamp(round(self.time(x)), self.zone)
        return str(local.hour) if local.minute == 0 else f"{local.hour}:{local.minute:02d}"

    def change(self, lo: float, hi: float) -> str | None:
        """'03:00 CEST → 02:00 CET' when the clocks change between x = lo and hi, else None: the
        ticks of such a day repeat or skip an hour, and the axis says why."""
        a, b = self.time(lo), self.time(hi)
        if self._offset(a) == self._offset(b):
            return None
        while b - a > 1:  # the first second with the new offset; transitions fall on whole seconds
            mid = math.floor((a + b) / 2)
            if mid <= a:
                break
            a, b = (mid, b) if self._offset(mid) == self._offset(a) else (a, mid)
        last = datetime.fromtimestamp(b - 1, self.zone)  # the clock's last second before the change
        after = datetime.fromtimestamp(b, self.zone)
        return f"{last + timedelta(seconds=1):%H:%M} {last.tzname()} → {after:%H:%M} {after.tzname()}"

    def _offset(self, t: float) -> timedelta | None:
        return datetime.fromtimestamp(t, self.zone).utcoffset()


def plot_day(
    rows: Sequence[Cycle], path: Path, *, title: str, metrics: Metrics | None, timezone: str
) -> None:
    clock = LocalHours(rows[0].time, ZoneInfo(timezone))
    x = [clock.x(r.time) for r in rows]
    pv = [r.pv_w / 1000 for r in rows]
    house = [r.house_w / 1000 for r in rows]
    car = [r.car_w / 1000 for r in rows]
    grid = [r.grid_w / 1000 for r in rows]

    lit = [xi for xi, p, r in zip(x, pv, rows, strict=True) if p > 0.05 or r.connected]
    lo = max(min(lit, default=x[0]) - 0.5, x[0])
    hi = min(max(lit, default=x[-1]) + 0.5, x[-1] + rows[-1].dt_s / 3600)

    fig = Figure(figsize=(13, 7), layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    _shade_plugged(top, x, rows)
    _shade_plugged(bottom, x, rows)
    top.fill_between(x, pv, step="post", color=COLOURS["pv"], alpha=0.45, linewidth=0, label="PV")
    top.step(x, house, where="post", color=COLOURS["house"], linewidth=0.9, label="house")
    top.step(x, grid, where="post", color=COLOURS["grid"], linewidth=0.7, alpha=0.6, label="grid (+import)")
    top.step(x, car, where="post", color=COLOURS["car"], linewidth=1.6, zorder=5, label="car")
    top.axhline(0, color="black", linewidth=0.6)
    pauses = [
        xi
        for xi, prev, row in zip(x[1:], rows, rows[1:], strict=False)
        if row.connected and prev.connected and prev.target_a >= MIN_SIGNAL_A and row.target_a <= 0
    ]
    if pauses:
        ymin, ymax = top.get_ylim()
        top.vlines(pauses, ymin, ymax, colors=COLOURS["pause"], linewidth=0.8, linestyles="dotted")
        top.plot(
            pauses,
            [ymax] * len(pauses),
            "v",
            color=COLOURS["pause"],
            markersize=7,
            label=f"pause ({len(pauses)})",
            clip_on=False,
        )
        top.set_ylim(ymin, ymax)
    top.set_ylabel("power (kW)")
    handles = top.get_legend_handles_labels()[0]
    handles.append(Patch(color=COLOURS["plugged"], label="car plugged in"))
    top.legend(handles=handles, loc="upper left", ncols=7, fontsize=9, frameon=True, framealpha=0.8)
    top.grid(alpha=0.3)

    phases = [r.phases for r in rows]
    target = [r.target_a for r in rows]
    bottom.step(x, phases, where="post", color=COLOURS["phases"], linewidth=1.6, label="phases")
    bottom.set_ylim(0, 3.6)
    bottom.set_yticks([1, 3])
    bottom.set_ylabel("phases")
    current_axis = bottom.twinx()
    current_axis.step(
        x, target, where="post", color=COLOURS["target"], linewidth=0.8, alpha=0.7, label="commanded A"
    )
    current_axis.set_ylabel("limit (A)")
    current_axis.set_ylim(0, max(max(target, default=16.0), 16.0) * 1.1)
    handles = bottom.get_legend_handles_labels()[0] + current_axis.get_legend_handles_labels()[0]
    bottom.legend(handles=handles, loc="upper left", ncols=2, fontsize=9, frameon=False)
    bottom.grid(alpha=0.3)
    bottom.set_xlim(lo, hi)
    change = clock.change(x[0], x[-1] + rows[-1].dt_s / 3600)  # the whole day: even outside the view
    note = f"; clocks change {change}" if change else ""
    bottom.set_xlabel(f"local time ({timezone}), h{note}")
    ticks = range(math.ceil(lo), math.floor(hi) + 1)
    bottom.set_xticks(ticks, [clock.label(tick) for tick in ticks])

    fig.suptitle(title + ("\n" + _caption(metrics) if metrics is not None else ""), fontsize=11)
    # Drawn beside its name and renamed when whole, as the timeline is: Ctrl-C during the few hundred
    # milliseconds of a save leaves the day's earlier picture, not half a PNG under its name.
    partial = path.with_name(f"{path.name}.partial")
    try:
        fig.savefig(partial, dpi=90, format="png")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _shade_plugged(axis: Axes, x: Sequence[float], rows: Sequence[Cycle]) -> None:
    start: float | None = None
    for xi, row in zip(x, rows, strict=True):
        if row.connected and start is None:
            start = xi
        elif not row.connected and start is not None:
            axis.axvspan(start, xi, color=COLOURS["plugged"], zorder=0)
            start = None
    if start is not None:
        axis.axvspan(start, x[-1] + rows[-1].dt_s / 3600, color=COLOURS["plugged"], zorder=0)


def _caption(m: Metrics) -> str:
    share = "—" if m.solar_share is None else f"{m.solar_share:.1%}"
    capture = "—" if m.capture is None else f"{m.capture:.1%}"
    return (
        f"car {m.car_kwh:.1f} kWh, solar share {share}, capture {capture} of {m.oracle_kwh:.1f} kWh, "
        f"exported {m.exported_kwh:.1f} kWh, {m.pauses} pause{'' if m.pauses == 1 else 's'} "
        f"(max {m.max_pauses_10min}/10 min), {m.phase_switches} phase "
        f"switch{'' if m.phase_switches == 1 else 'es'}, max phase {m.max_phase_current_a:.1f} A"
    )
