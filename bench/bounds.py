"""How high can the solar share go at a given capture and number of stops a day? → bench/BOUNDS.md

    python bench/bounds.py ../shared/data/traces

Every time the surplus falls below the 1-phase minimum (6 A × 230 V = 1380 W) while the car charges, a
controller must either keep the minimum current, drawing the shortfall from the grid, or pause, which is
a stop. Pausing more often, or starting later, saves grid energy but leaves sun unused, so the solar
share a controller can reach depends on both the capture it keeps and the stops it accepts.

This script answers that from the traces alone, with the benchmark's site (bench/run.py), in the car's
plugged-in window, for a controller that knows the whole day in advance, starts and stops without delay
and switches phases freely. Each minute it is paused or charging; charging, it takes the oracle's power
(or, between the 1-phase maximum and the 3-phase minimum, the 3-phase minimum), or bridges at the
1-phase minimum. For prices a ≥ 0 of solar energy and b ≥ 0 of a stop, a dynamic programme over each
day finds the schedule with the least grid − a·solar + b·stops. Two numbers follow: the best share among
those schedules with capture ≥ 0.95 and few enough stops (*reached*: a controller that knew the day could
do it), and, by weak duality, the share no controller can pass (*ceiling*: any controller with solar ≥ C
and stops ≤ S draws at least that least value + a·C − b·S from the grid).

The lag import is not in the programme. A controller that learns of a drop of the surplus only when it
happens and follows the surplus imports ΔP × τ on each drop while the car's current settles (τ, the
car's lag); the last two columns add that amount, measured on the oracle's path, as an estimate for
such a controller. Keeping a margin below the surplus avoids it, at the cost of capture.
"""

from __future__ import annotations

import bisect
import itertools
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from run import INFO, LIMITS, SETTINGS, folder_parser, report_head, shown_argv, trace_files

from controller.simulation.engine import oracle_ranges, plug_windows
from controller.simulation.trace import Trace, TraceError, read_trace

HERE = Path(__file__).resolve().parent
RANGES = oracle_ranges(LIMITS, SETTINGS, INFO)
STOPS_PER_DAY = (1, 2, 3, 4, 6, 8)
CAPTURE = 0.95
SOLAR_PRICES = np.concatenate([np.linspace(0.0, 2.0, 41), np.linspace(2.5, 20.0, 36)])
STOP_PRICES_WH = np.concatenate([[0.0], np.geomspace(1.0, 20_000.0, 60)])


@dataclass
class Site:
    """The surplus of each plugged-in window, and what the bound needs to know about it."""

    days: list[list[float]]
    """Surplus in W per sample, one list per plugged-in window (a day)."""
    hours: float
    """Length of a sample in hours."""
    oracle_wh: float
    lag_wh: float


def analyse(trace: Trace) -> Site:
    days: list[list[float]] = []
    oracle_wh = lag_wh = 0.0
    hours = trace.step_s / 3600
    for lo, hi in plug_windows(trace.start, trace.end, SETTINGS):
        a, b = bisect.bisect_left(trace.times, lo), bisect.bisect_left(trace.times, hi)
        rows = zip(trace.pv_w[a:b], trace.house_w[a:b], strict=True)
        surplus = [max(pv - house, 0.0) for pv, house in rows]
        oracle = [RANGES.oracle_power_w(s) for s in surplus]
        oracle_wh += sum(oracle) * hours
        lag_wh += sum((x - y) * SETTINGS.car_lag_s / 3600 for x, y in itertools.pairwise(oracle) if x > y > 0)
        days.append(surplus)
    return Site(days, hours, oracle_wh, lag_wh)


def _charging_options(surplus: float) -> list[tuple[float, float]]:
    """(solar W, grid W) of each way to charge in a sample with this surplus."""
    volts = LIMITS.voltage_v
    one_min = LIMITS.min_current_a * volts
    one_max = LIMITS.max_current_a * volts
    three_min = 3 * one_min
    if surplus < one_min:
        return [(surplus, one_min - surplus)]
    options = [(RANGES.oracle_power_w(surplus), 0.0)]
    if one_max < surplus < three_min:
        options.append((surplus, three_min - surplus))
    return options


@dataclass
class Schedules:
    """For every price pair: the least Lagrangian, and the month of the schedule that reaches it."""

    lagrangian: np.ndarray
    solar_wh: np.ndarray
    grid_wh: np.ndarray
    stops: np.ndarray
    most_solar_wh: float


def best_schedules(site: Site) -> Schedules:
    """min over controllers of grid − a·solar + b·stops (Wh) per price pair, day by day.

    Each minute the controller is paused or charging; a pause after charging is a stop. Along with the
    least value the programme carries the solar, grid and stops of the schedule that reaches it: that
    schedule is one a controller knowing the day in advance could follow, so its share is achievable.
    """
    a = SOLAR_PRICES[:, None]
    b = STOP_PRICES_WH[None, :]
    shape = (len(SOLAR_PRICES), len(STOP_PRICES_WH))
    total = [np.zeros(shape) for _ in range(4)]
    most_solar = 0.0
    for surplus in site.days:
        # value, solar, grid, stops of the best schedule so far that ends charging / paused
        on = [np.full(shape, np.inf), np.zeros(shape), np.zeros(shape), np.zeros(shape)]
        off = [np.zeros(shape), np.zeros(shape), np.zeros(shape), np.zeros(shape)]
        for s in surplus:
            options = _charging_options(s)
            most_solar += max(sun for sun, _ in options) * site.hours
            costs = [(grid - a * sun) * site.hours for sun, grid in options]
            pick = np.argmin(np.broadcast_arrays(*costs), axis=0) if len(costs) > 1 else np.zeros(shape, int)
            sun = np.choose(pick, [np.full(shape, o[0] * site.hours) for o in options])
            grid = np.choose(pick, [np.full(shape, o[1] * site.hours) for o in options])
            cost = np.choose(pick, np.broadcast_arrays(*costs))
            from_on = on[0] <= off[0]
            new_on = [np.where(from_on, x, y) for x, y in zip(on, off, strict=True)]
            new_on[0] = new_on[0] + cost
            new_on[1] = new_on[1] + sun
            new_on[2] = new_on[2] + grid
            stay_off = off[0] <= on[0] + b
            new_off = [
                np.where(stay_off, off[0], on[0] + b),
                np.where(stay_off, off[1], on[1]),
                np.where(stay_off, off[2], on[2]),
                np.where(stay_off, off[3], on[3] + 1),
            ]
            on, off = new_on, new_off
        end_on = on[0] <= off[0]
        for k in range(4):
            total[k] += np.where(end_on, on[k], off[k])
    return Schedules(*total, most_solar_wh=most_solar)


def share_ceiling(site: Site, best: Schedules, stops: float, *, extra_grid_wh: float = 0.0) -> float:
    """The highest solar share of any controller with capture ≥ CAPTURE and at most `stops` a day."""
    ceiling = 0.0
    need = CAPTURE * site.oracle_wh
    if need > best.most_solar_wh:
        return float("nan")
    stop_budget = STOP_PRICES_WH[None, :] * stops * len(site.days)
    for solar in np.linspace(need, best.most_solar_wh, 40):
        grid = max(float((best.lagrangian + SOLAR_PRICES[:, None] * solar - stop_budget).max()), 0.0)
        ceiling = max(ceiling, solar / (solar + grid + extra_grid_wh))
    return ceiling


def share_reached(site: Site, best: Schedules, stops: float, *, extra_grid_wh: float = 0.0) -> float:
    """The best share among the programme's own schedules with capture ≥ CAPTURE and ≤ `stops` a day."""
    ok = (best.solar_wh >= CAPTURE * site.oracle_wh) & (best.stops <= stops * len(site.days))
    if not ok.any():
        return float("nan")
    solar = best.solar_wh[ok]
    return float((solar / (solar + best.grid_wh[ok] + extra_grid_wh)).max())


def render(results: Sequence[tuple[str, Site, Schedules]], argv: Sequence[str]) -> str:
    doc = (__doc__ or "").split("\n\n")
    lines = [
        *report_head("How high the solar share can go", "bounds.py", argv),
        *itertools.chain.from_iterable((paragraph, "") for paragraph in doc[2:5]),
        f"Site as in `bench/run.py`: {LIMITS.min_current_a:g}–{LIMITS.max_current_a:g} A at "
        f"{LIMITS.voltage_v:g} V, 1p/3p, car lag {SETTINGS.car_lag_s:g} s, plugged in "
        f"{SETTINGS.plug_in}–{SETTINGS.plug_out} {SETTINGS.timezone}.",
        "",
    ]
    for name, site, best in results:
        lines.append(f"## {name}")
        lines.append("")
        lines.append(
            f"{len(site.days)} days, oracle {site.oracle_wh / 1000:.0f} kWh; lag import of a follower "
            f"{site.lag_wh / 1000:.1f} kWh ({site.lag_wh / site.oracle_wh:.1%} of the oracle)."
        )
        lines.append("")
        lines.append(
            f"At capture ≥ {CAPTURE:.2f}: the best share of a schedule the programme found (achievable by a "
            "controller that knows the day), the ceiling no controller can pass, and both again with a "
            "follower's lag import added."
        )
        lines.append("")
        lines.append(
            "| stops/day allowed | share reached | ceiling | reached, with lag | ceiling, with lag |"
        )
        lines.append("|---:|---:|---:|---:|---:|")
        for stops in STOPS_PER_DAY:
            lag = site.lag_wh
            cells = (
                share_reached(site, best, stops),
                share_ceiling(site, best, stops),
                share_reached(site, best, stops, extra_grid_wh=lag),
                share_ceiling(site, best, stops, extra_grid_wh=lag),
            )
            lines.append(f"| {stops} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = folder_parser(__doc__, HERE / "BOUNDS.md").parse_args(argv)
    files = trace_files(args.traces, "bounds")
    if not files:
        return 2
    results: list[tuple[str, Site, Schedules]] = []
    for path in files:
        try:
            site = analyse(read_trace(path))
        except TraceError as exc:
            print(f"bounds: {exc}", file=sys.stderr)
            return 2
        results.append((path.name, site, best_schedules(site)))
    args.out.write_text(render(results, shown_argv(args.traces, argv)), encoding="utf-8")
    print(f"bounds: wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
