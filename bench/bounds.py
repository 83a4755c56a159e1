"""How high can the solar share go for a given number of stops a day? → bench/BOUNDS.md

    python bench/bounds.py ../shared/data/traces

Every time the surplus falls below the 1-phase minimum (6 A × 230 V = 1380 W) while the car charges, a
controller must either keep the minimum current, drawing the shortfall from the grid, or pause, which is
a stop. So the solar share a controller can reach depends on how many stops a day it accepts. This
script computes two ceilings from the traces alone, with the benchmark's site (bench/run.py), in the
car's plugged-in window:

- **Clairvoyant**: a controller that knows every dip in advance pauses through the most expensive ones
  (one stop each, the evening stop included) and bridges all others; it follows the oracle's power,
  switching phases freely. Its one other cost is the lag import that any controller pays which learns of
  a drop of the surplus only when it happens: the car needs its lag time to follow, ΔP × τ. The last
  column leaves even that out (a controller that foresees every drop).
- **Budget rule**: the best any causal rule of the kind "bridge a dip until it has drawn B Wh, then
  pause" can do, even with a free, instant restart the moment the sun is back and free phase switching.

Both are ceilings: a real controller also waits before it starts, and pays for phase switches.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from run import INFO, LIMITS, SETTINGS, _shown

from controller.simulation.engine import oracle_ranges, plug_windows
from controller.simulation.trace import Trace, TraceError, read_trace

HERE = Path(__file__).resolve().parent
STOPS_PER_DAY = (4, 6, 8, 10, 12, 16)
BUDGETS_WH = (10, 20, 40, 60, 100, 150)


@dataclass
class Dip:
    """One stretch below the 1-phase minimum between two stretches above it."""

    shortfall_wh: list[float]
    """Grid energy of bridging each sample of the dip at the minimum current."""
    solar_wh: list[float]
    """Solar energy the car takes in each sample while bridging."""

    @property
    def cost_wh(self) -> float:
        return sum(self.shortfall_wh)


@dataclass
class Site:
    days: int
    oracle_wh: float
    lag_wh: float
    evening_stops: int
    dips: list[Dip]

    def share(self, grid_wh: float, bridged_solar_wh: float, *, lag: bool = True) -> float:
        solar = self.oracle_wh + bridged_solar_wh
        return solar / (solar + grid_wh + (self.lag_wh if lag else 0.0))


def analyse(trace: Trace) -> Site:
    one_min = LIMITS.min_current_a * LIMITS.voltage_v
    ranges = oracle_ranges(LIMITS, SETTINGS, INFO)
    hours = trace.step_s / 3600
    oracle_wh = lag_wh = 0.0
    evenings = 0
    dips: list[Dip] = []
    windows = plug_windows(trace.start, trace.end, SETTINGS)
    for lo, hi in windows:
        a, b = bisect.bisect_left(trace.times, lo), bisect.bisect_left(trace.times, hi)
        surplus = [
            max(pv - house, 0.0) for pv, house in zip(trace.pv_w[a:b], trace.house_w[a:b], strict=True)
        ]
        oracle = [ranges.oracle_power_w(s) for s in surplus]
        oracle_wh += sum(oracle) * hours
        lag_wh += sum((a - b) * SETTINGS.car_lag_s / 3600 for a, b in itertools.pairwise(oracle) if a > b > 0)
        on = [i for i, s in enumerate(surplus) if s >= one_min]
        if not on:
            continue
        first, last = on[0], on[-1]
        evenings += last < len(surplus) - 1
        dip: Dip | None = None
        for s in surplus[first : last + 1]:
            if s < one_min:
                dip = dip or Dip([], [])
                dip.shortfall_wh.append((one_min - s) * hours)
                dip.solar_wh.append(s * hours)
            elif dip is not None:
                dips.append(dip)
                dip = None
    return Site(len(windows), oracle_wh, lag_wh, evenings, dips)


def clairvoyant_share(site: Site, stops_per_day: float, *, lag: bool = True) -> float:
    paused = max(round(stops_per_day * site.days) - site.evening_stops, 0)
    bridged = sorted(site.dips, key=lambda d: d.cost_wh, reverse=True)[paused:]
    return site.share(sum(d.cost_wh for d in bridged), sum(sum(d.solar_wh) for d in bridged), lag=lag)


def budget_rule(site: Site, budget_wh: float) -> tuple[float, float]:
    """(stops per day, solar share) of 'bridge until the dip has drawn budget_wh, then pause'."""
    grid = solar = 0.0
    stops = site.evening_stops
    for dip in site.dips:
        spent = 0.0
        for shortfall, sun in zip(dip.shortfall_wh, dip.solar_wh, strict=True):
            if spent + shortfall > budget_wh:
                part = (budget_wh - spent) / shortfall
                grid += budget_wh - spent
                solar += sun * part
                stops += 1
                break
            spent += shortfall
            grid += shortfall
            solar += sun
    return stops / site.days, site.share(grid, solar)


def render(results: Sequence[tuple[str, Site]], argv: Sequence[str]) -> str:
    doc = (__doc__ or "").split("\n\n")
    lines = [
        "# Ceilings on the solar share",
        "",
        "Generated by `python bench/bounds.py " + " ".join(argv) + "` — do not edit by hand.",
        "",
        doc[2],
        "",
        doc[3],
        "",
        f"Site as in `bench/run.py`: {LIMITS.min_current_a:g}–{LIMITS.max_current_a:g} A at "
        f"{LIMITS.voltage_v:g} V, car lag {SETTINGS.car_lag_s:g} s, plugged in "
        f"{SETTINGS.plug_in}–{SETTINGS.plug_out} {SETTINGS.timezone}.",
        "",
    ]
    for name, site in results:
        lines.append(f"## {name}")
        lines.append("")
        lines.append(
            f"{site.days} days, oracle {site.oracle_wh / 1000:.0f} kWh, "
            f"{len(site.dips) / site.days:.1f} dips below the 1-phase minimum per day while the sun is up, "
            f"evening stops {site.evening_stops / site.days:.2f} per day, "
            f"lag import of a perfect follower {site.lag_wh / 1000:.1f} kWh "
            f"({site.lag_wh / site.oracle_wh:.1%} of the oracle)."
        )
        lines.append("")
        lines.append("| stops/day allowed | clairvoyant: highest solar share | … without the lag import |")
        lines.append("|---:|---:|---:|")
        for stops in STOPS_PER_DAY:
            with_lag = clairvoyant_share(site, stops)
            without = clairvoyant_share(site, stops, lag=False)
            lines.append(f"| {stops} | {with_lag:.3f} | {without:.3f} |")
        lines.append("")
        lines.append("| budget B (Wh per dip) | budget rule: stops/day | solar share at most |")
        lines.append("|---:|---:|---:|")
        for budget in BUDGETS_WH:
            stops_day, share = budget_rule(site, budget)
            lines.append(f"| {budget} | {stops_day:.1f} | {share:.3f} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("traces", type=Path, help="folder with *.csv / *.csv.gz traces")
    parser.add_argument("--out", type=Path, default=HERE / "BOUNDS.md", help="default: bench/BOUNDS.md")
    args = parser.parse_args(argv)
    files = sorted([*args.traces.glob("*.csv"), *args.traces.glob("*.csv.gz")])
    if not files:
        print(f"bounds: no *.csv or *.csv.gz traces in {args.traces}", file=sys.stderr)
        return 2
    results: list[tuple[str, Site]] = []
    for path in files:
        try:
            results.append((path.name, analyse(read_trace(path))))
        except TraceError as exc:
            print(f"bounds: {exc}", file=sys.stderr)
            return 2
    shown = [_shown(args.traces) if a == str(args.traces) else a for a in (argv or sys.argv[1:])]
    args.out.write_text(render(results, shown), encoding="utf-8")
    print(f"bounds: wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
