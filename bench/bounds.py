"""How high can the solar share go at a given capture, number of stops and of phase switches a day?
→ bench/BOUNDS.md

    python bench/bounds.py ../shared/data/traces

Every time the surplus falls below the 1-phase minimum (6 A × 230 V = 1380 W) while the car charges, a
controller must either keep the minimum current, drawing the shortfall from the grid, or pause, which is
a stop. On 3 phases the same holds below the 3-phase minimum (4140 W), unless it switches to 1 phase.
Pausing or switching more often, or starting later, saves grid energy but costs stops, switches or sun,
so the solar share a controller can reach depends on the capture it keeps and on the stops and switches
it accepts.

This script answers that from the traces alone, with the benchmark's site (bench/run.py), in the car's
plugged-in window, for a controller that knows the whole day in advance and starts, stops and switches
without delay. Each minute it is paused or charging, on 1 or 3 phases; charging, it follows the surplus
within what that phase mode delivers, so below the mode's minimum it bridges from the grid. A stop is a
pause after charging, a switch any change of the phase mode; a 1→3 switch under way costs no stop here,
the cheapest any charger allows. For prices a ≥ 0 of solar energy, b ≥ 0 of a stop and c ≥ 0 of a
switch, a dynamic programme over each day finds the schedule with the least grid − a·solar + b·stops +
c·switches. Two numbers follow: the best share among those schedules with capture ≥ 0.95 and few
enough stops and switches a day on average over the month (*reached*: a controller that knew the month
could do it), and, by weak duality, the share no controller can pass (*ceiling*: any controller with
solar ≥ C, stops ≤ S and switches ≤ W draws at least that least value + a·C − b·S − c·W from the
grid).

The lag import is not in the programme. A controller that learns of a drop of the surplus only when it
happens and follows the surplus imports ΔP × τ on each drop while the car's current settles (τ, the
car's lag); the second table adds that amount, measured on the oracle's path, as an estimate for such
a controller. Keeping a margin below the surplus avoids it, at the cost of capture.
"""

from __future__ import annotations

import bisect
import itertools
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from run import INFO, LIMITS, SETTINGS, folder_parser, report_head, shown_argv, trace_files

from controller.simulation.engine import oracle_ranges, plug_windows
from controller.simulation.trace import Trace, TraceError, read_trace

HERE = Path(__file__).resolve().parent
RANGES = oracle_ranges(LIMITS, SETTINGS, INFO)
STOPS_PER_DAY = (1, 2, 4, 8, 12)
SWITCHES_PER_DAY = (math.inf, 8, 6, 4)
CAPTURE = 0.95
SOLAR_PRICES = np.concatenate([np.linspace(0.0, 2.0, 41), np.linspace(2.5, 20.0, 8)])
STOP_PRICES_WH = np.concatenate([[0.0], np.geomspace(1.0, 20_000.0, 24)])
SWITCH_PRICES_WH = np.concatenate([[0.0], np.geomspace(1.0, 20_000.0, 20)])
"""Coarse enough that a month takes about a minute on one core: each price adds schedules to choose
from (*reached*) and terms to the dual (*ceiling*), so a finer grid only narrows the gap between them."""


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


def _charging_w(surplus: float, phases: int) -> tuple[float, float]:
    """(solar W, grid W) of charging on `phases` phases in a sample with this surplus: it follows the
    surplus inside what the charger can deliver, so below the minimum it bridges from the grid."""
    volts = LIMITS.voltage_v
    low = phases * LIMITS.min_current_a * volts
    high = phases * min(LIMITS.max_current_a, SETTINGS.car_max_current_a) * volts
    power = min(max(surplus, low), high)
    solar = min(power, surplus)
    return solar, power - solar


def charging_wh(site: Site) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Solar Wh and grid Wh of charging on 1 and on 3 phases (the keys) in each sample, as arrays with
    the days along axis 0, side by side: shorter ones padded at the start with samples without sun,
    where staying paused costs nothing."""
    length = max(len(day) for day in site.days)
    padded = [[0.0] * (length - len(day)) + day for day in site.days]
    wh = {p: np.array([[_charging_w(x, p) for x in day] for day in padded]) * site.hours for p in (1, 3)}
    return {p: w[..., 0] for p, w in wh.items()}, {p: w[..., 1] for p, w in wh.items()}


@dataclass
class Schedules:
    """For every price triple: the least Lagrangian, and the month of the schedule that reaches it."""

    lagrangian: np.ndarray
    solar_wh: np.ndarray
    grid_wh: np.ndarray
    stops: np.ndarray
    switches: np.ndarray
    most_solar_wh: float
    solar_prices: np.ndarray
    stop_prices_wh: np.ndarray
    switch_prices_wh: np.ndarray
    """The price axes of the arrays above; each starts at 0."""


_Path = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""The best schedule so far ending in one state: value, solar Wh, grid Wh, stops, switches."""


def _better(first: _Path, second: _Path, price: np.ndarray | float, stop: int, switch: int) -> _Path:
    """The better of `first` and `second` after a move that adds `price` and a stop and/or a switch."""
    second_value = second[0] + price
    keep = first[0] <= second_value
    return (
        np.where(keep, first[0], second_value),
        np.where(keep, first[1], second[1]),
        np.where(keep, first[2], second[2]),
        np.where(keep, first[3], second[3] + stop) if stop else np.where(keep, first[3], second[3]),
        np.where(keep, first[4], second[4] + switch) if switch else np.where(keep, first[4], second[4]),
    )


def best_schedules(
    site: Site,
    solar_prices: np.ndarray = SOLAR_PRICES,
    stop_prices_wh: np.ndarray = STOP_PRICES_WH,
    switch_prices_wh: np.ndarray = SWITCH_PRICES_WH,
) -> Schedules:
    """min over controllers of grid − a·solar + b·stops + c·switches (Wh) per price triple, each day.

    Each sample the controller is paused or charging, on 1 or 3 phases. A pause after charging is a stop
    and each change of the phase mode a switch, whether charging or not; a 1→3 switch under way costs no
    stop here (the cheapest a charger allows). Along with the least value the programme carries the
    solar, grid, stops and switches of the schedule that reaches it: that schedule is one a controller
    knowing the day in advance could follow, so its share is achievable. All days run at once (axis 0),
    shorter ones padded at the start with samples without sun, where staying paused costs nothing.
    """
    if min(solar_prices[0], stop_prices_wh[0], switch_prices_wh[0]) != 0.0:
        raise ValueError("each price axis starts at 0, where its count is not limited")
    a = solar_prices[None, :, None, None]
    b = stop_prices_wh[None, None, :, None]
    c = switch_prices_wh[None, None, None, :]
    sun, grid = charging_wh(site)
    length = sun[1].shape[1]
    shape = (len(site.days), len(solar_prices), len(stop_prices_wh), len(switch_prices_wh))
    zero = np.zeros(shape)
    off1: _Path = (zero, zero, zero, zero, zero)
    off3, on1 = off1, off1
    # no schedule ends charging before the first sample
    on3 = on1 = (np.full(shape, np.inf), zero, zero, zero, zero)
    most_solar = float(np.maximum(sun[1], sun[3]).sum())
    for k in range(length):
        stay1, stay3 = _better(off1, on1, b, 1, 0), _better(off3, on3, b, 1, 0)
        ready1, ready3 = _better(off1, on1, 0.0, 0, 0), _better(off3, on3, 0.0, 0, 0)
        off1, off3 = _better(stay1, stay3, c, 0, 1), _better(stay3, stay1, c, 0, 1)
        charged = []
        for phases, path in ((1, _better(ready1, ready3, c, 0, 1)), (3, _better(ready3, ready1, c, 0, 1))):
            sun_wh = sun[phases][:, k, None, None, None]
            grid_wh = grid[phases][:, k, None, None, None]
            charged.append(
                (path[0] + grid_wh - a * sun_wh, path[1] + sun_wh, path[2] + grid_wh, path[3], path[4])
            )
        on1, on3 = charged
    ends = [off1, off3, on1, on3]
    final = ends[0]
    for other in ends[1:]:
        final = _better(final, other, 0.0, 0, 0)
    totals = [x.sum(axis=0) for x in final]
    return Schedules(*totals, most_solar, solar_prices, stop_prices_wh, switch_prices_wh)


def share_ceiling(
    site: Site, best: Schedules, stops: float, switches: float = math.inf, *, extra_grid_wh: float = 0.0
) -> float:
    """The highest solar share of any controller with capture ≥ CAPTURE, at most `stops` and at most
    `switches` a day (weak duality: for every price triple, grid ≥ least value + a·solar − b·stops −
    c·switches; an unlimited count takes only the triples whose price for it is 0)."""
    need = CAPTURE * site.oracle_wh
    if need > best.most_solar_wh:
        return float("nan")
    days = len(site.days)
    value = best.lagrangian - best.stop_prices_wh[None, :, None] * stops * days
    if math.isinf(switches):
        value = value[:, :, :1]
    else:
        value = value - best.switch_prices_wh[None, None, :] * switches * days
    levels = np.linspace(need, best.most_solar_wh, 41)
    ceiling = 0.0
    for low, high in itertools.pairwise(levels):
        # any solar in [low, high] draws at least the bound at low (it grows with the solar)
        grid = max(float((value + best.solar_prices[:, None, None] * low).max()), 0.0)
        ceiling = max(ceiling, high / (high + grid + extra_grid_wh))
    return ceiling


class Counts(Protocol):
    """A month of some controller for each price triple: what `share_reached` chooses among."""

    solar_wh: np.ndarray
    grid_wh: np.ndarray
    stops: np.ndarray
    switches: np.ndarray


def share_reached(
    site: Site, best: Counts, stops: float, switches: float = math.inf, *, extra_grid_wh: float = 0.0
) -> float:
    """The best share among the months in `best` (the programme's own schedules, or a controller's)
    with capture ≥ CAPTURE, at most `stops` and at most `switches` a day; nan when none."""
    days = len(site.days)
    ok = (
        (best.solar_wh >= CAPTURE * site.oracle_wh)
        & (best.stops <= stops * days + 1e-9)
        & (best.switches <= switches * days + 1e-9)
    )
    if not ok.any():
        return float("nan")
    solar = best.solar_wh[ok]
    return float((solar / (solar + best.grid_wh[ok] + extra_grid_wh)).max())


def _switch_heading(switches: float) -> str:
    return "switches unlimited" if math.isinf(switches) else f"≤ {switches:g} switches/day"


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
            f"At capture ≥ {CAPTURE:.2f}, with stops and switches counted a day on average over the "
            "month, each cell: the best share of a schedule the programme found (achievable by a "
            "controller that knows the month) / the ceiling no controller can pass."
        )
        lines.append("")
        for title, lag in (("", 0.0), ("With a follower's lag import added:", site.lag_wh)):
            if title:
                lines += [title, ""]
            lines.append(
                "| stops/day allowed | " + " | ".join(_switch_heading(w) for w in SWITCHES_PER_DAY) + " |"
            )
            lines.append("|---:|" + "---:|" * len(SWITCHES_PER_DAY))
            for stops in STOPS_PER_DAY:
                cells = [
                    f"{share_reached(site, best, stops, w, extra_grid_wh=lag):.3f} / "
                    f"{share_ceiling(site, best, stops, w, extra_grid_wh=lag):.3f}"
                    for w in SWITCHES_PER_DAY
                ]
                lines.append(f"| {stops} | " + " | ".join(cells) + " |")
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
