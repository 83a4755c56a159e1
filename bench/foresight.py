"""How many minutes of the sun's future does a solar share of 0.98 take? → bench/FORESIGHT.md

    python bench/foresight.py ../shared/data/traces

BOUNDS.md shows that a controller knowing the whole day could keep the share near 0.98 with as few stops
and switches as `pv` makes; `pv`, which knows only the past, reaches 0.92–0.97 (RESULTS.md). This
measures what lies between: a controller that sees the next h minutes of surplus and nothing after.

Each minute it plans the next h minutes with the programme of bench/bounds.py (the same site, minute
model and prices a of solar energy, b of a stop and c of a switch) and takes the plan's first move; the
next minute it plans again. Past the horizon the plan counts either nothing or, for a charging state,
the stop it will end in. It starts and stops without delay, so even with h = 0, when it sees only the
present minute, it starts the minute the sun is back, which a controller that cannot tell a gap in the
clouds from their end cannot afford.

Each cell is the best share among the price triples whose month keeps capture ≥ 0.95 with at most 8
stops and 8 switches a day (`pv` makes 4.3–8.4 stops and 5.0–8.3 switches; the BOUNDS.md cell where the whole
day reaches 0.98 in July), with the lag import of a follower added as in BOUNDS.md, and the better of
the two ways to count past the horizon; a controller that sees h minutes can plan over fewer, so a cell
keeps the best of the rows above it. *none*: no triple keeps those limits. The price grid is coarser
than BOUNDS.md's (each triple is a controller run over the month, at each horizon): with four times the
triples, August's 10-minute planner rose from 0.984 to 0.986 and its 20-minute one from 0.979 to 0.985.
The last row is BOUNDS.md's ceiling for the same limits, which no controller passes whatever it knows.
Two months run at a time.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from bounds import Site, analyse, best_schedules, charging_wh, share_ceiling, share_reached
from run import folder_parser, report_head, shown_argv, trace_files

from controller.simulation.trace import TraceError, read_trace

HERE = Path(__file__).resolve().parent
HORIZONS_MIN = (0, 1, 2, 5, 10, 20)
"""Minutes of foresight; the last row of the table is the whole day."""
STOPS_PER_DAY = 8.0
SWITCHES_PER_DAY = 8.0
SOLAR_PRICES = np.concatenate([[0.0], np.geomspace(0.02, 3.0, 14)])
STOP_PRICES_WH = np.concatenate([[0.0], np.geomspace(3.0, 3000.0, 14)])
SWITCH_PRICES_WH = np.concatenate([[0.0], np.geomspace(3.0, 3000.0, 9)])
"""Coarser than BOUNDS.md's, as every triple is a controller run over the month at each horizon; the
finer grid the module's docstring speaks of (24 × 24 × 14 steps) takes five times as long."""

OFF1, OFF3, ON1, ON3 = range(4)
TIE = 1e-9
"""Wh added to every change of state in the move taken, so that of equally good moves the controller
keeps its state, as the programme of bench/bounds.py does: at a switch price of 0 it would otherwise
change phase mode while paused for nothing."""


@dataclass
class Month:
    """Solar Wh, grid Wh, stops and switches over the month, one value per price triple."""

    solar_wh: np.ndarray
    grid_wh: np.ndarray
    stops: np.ndarray
    switches: np.ndarray


_Values = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""Per state (off1, off3, on1, on3): one value per day (axis 0) and price triple (axis 1)."""


def _onward(after: _Values, stop: np.ndarray, switch: np.ndarray) -> _Values:
    """From each state: the least cost of the move into the next sample and of what follows, given the
    value to go from each state there. In a phase mode a paused state reaches either state for nothing,
    a charging one pays the stop to pause; a change of mode adds the switch."""
    off1, off3, on1, on3 = after
    either1, either3 = np.minimum(off1, on1), np.minimum(off3, on3)
    keep1, keep3 = np.minimum(on1, stop + off1), np.minimum(on3, stop + off3)
    return (
        np.minimum(either1, switch + either3),
        np.minimum(either3, switch + either1),
        np.minimum(keep1, switch + keep3),
        np.minimum(keep3, switch + keep1),
    )


def plan_and_follow(
    site: Site,
    horizon: int,
    prices: tuple[np.ndarray, np.ndarray, np.ndarray],
    *,
    ends_in_stop: bool = False,
) -> Month:
    """Run the receding-horizon controller over every day of `site`, for every price triple at once.

    `prices` holds a, b and c per triple (1-D arrays of one length); `horizon` is in samples. Past the
    horizon the plan counts nothing, or with `ends_in_stop` the stop that charging will end in some
    time. All days run at once (axis 0), shorter ones padded at the start without sun.
    """
    solar_price, stop_price, switch_price = prices
    gains, draws = charging_wh(site)
    length = gains[1].shape[1]
    shape = (len(site.days), len(solar_price))
    stop, switch, a = stop_price[None, :], switch_price[None, :], solar_price[None, :]
    charging = [tuple(draws[p][:, k, None] - a * gains[p][:, k, None] for p in (1, 3)) for k in range(length)]
    """Cost of each sample charging on 1 and on 3 phases; paused costs nothing."""
    zero = np.zeros(shape)
    nothing: _Values = (zero, zero, zero, zero)
    beyond: _Values = (zero, zero, zero + stop, zero + stop) if ends_in_stop else nothing

    def plan(k: int) -> _Values:
        """Least cost of samples k to k + horizon from each state entered at k."""
        last = min(k + horizon, length - 1)
        after = beyond if last < length - 1 else nothing
        for j in range(last, k - 1, -1):
            off1, off3, on1, on3 = _onward(after, stop, switch)
            one, three = charging[j]
            after = (off1, off3, on1 + one, on3 + three)
        return after

    state = np.full(shape, -1)
    solar, grid, stops, switches = (np.zeros(shape) for _ in range(4))
    for k in range(length):
        here = plan(k)
        if k == 0:
            nxt = np.stack(here).argmin(axis=0)  # the car arrives: the first state costs no move
        else:
            on, one_phase = (state == ON1) | (state == ON3), (state == OFF1) | (state == ON1)
            moves = (
                np.where(one_phase, 0.0, switch + TIE) + np.where(on, stop + TIE, 0.0),
                np.where(one_phase, switch + TIE, 0.0) + np.where(on, stop + TIE, 0.0),
                np.where(one_phase, 0.0, switch + TIE) + np.where(on, 0.0, TIE),
                np.where(one_phase, switch + TIE, 0.0) + np.where(on, 0.0, TIE),
            )
            nxt = np.stack([m + h for m, h in zip(moves, here, strict=True)]).argmin(axis=0)
            stops += on & ((nxt == OFF1) | (nxt == OFF3))
            switches += one_phase != ((nxt == OFF1) | (nxt == ON1))
        for on_state, phases in ((ON1, 1), (ON3, 3)):
            mask = nxt == on_state
            solar += np.where(mask, gains[phases][:, k, None], 0.0)
            grid += np.where(mask, draws[phases][:, k, None], 0.0)
        state = nxt
    return Month(solar.sum(axis=0), grid.sum(axis=0), stops.sum(axis=0), switches.sum(axis=0))


def price_triples() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    grid = np.meshgrid(SOLAR_PRICES, STOP_PRICES_WH, SWITCH_PRICES_WH, indexing="ij")
    return grid[0].ravel(), grid[1].ravel(), grid[2].ravel()


def best_share(site: Site, month: Month) -> float:
    """The best share among the triples whose month keeps capture ≥ 0.95 within the counts a day, with
    the lag import of a follower added; nan when none does."""
    return share_reached(site, month, STOPS_PER_DAY, SWITCHES_PER_DAY, extra_grid_wh=site.lag_wh)


def _cell(share: float) -> str:
    return "none" if math.isnan(share) else f"{share:.3f}"


def render(rows: Sequence[tuple[str, list[float]]], names: Sequence[str], argv: Sequence[str]) -> str:
    doc = (__doc__ or "").split("\n\n")
    lines = [
        *report_head("How much foresight a solar share of 0.98 takes", "foresight.py", argv),
        *(part for paragraph in doc[2:5] for part in (paragraph.strip(), "")),
        "| foresight | " + " | ".join(f"`{name}`" for name in names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    lines += [f"| {label} | " + " | ".join(_cell(share) for share in shares) + " |" for label, shares in rows]
    return "\n".join(lines) + "\n"


def month_column(path: Path) -> list[float]:
    """For one trace: the best share with at most each horizon of foresight, then the ceiling."""
    site = analyse(read_trace(path))
    prices = price_triples()
    minutes = 60 * site.hours
    column: list[float] = []
    best = math.nan
    for h in HORIZONS_MIN:
        for ends_in_stop in (False, True):
            share = best_share(
                site, plan_and_follow(site, round(h / minutes), prices, ends_in_stop=ends_in_stop)
            )
            # a horizon where no triple keeps the limits (nan) leaves the best so far
            best = share if math.isnan(best) else max(best, share)
        column.append(best)
    ceiling = share_ceiling(
        site, best_schedules(site), STOPS_PER_DAY, SWITCHES_PER_DAY, extra_grid_wh=site.lag_wh
    )
    return [*column, ceiling]


def main(argv: Sequence[str] | None = None) -> int:
    args = folder_parser(__doc__, HERE / "FORESIGHT.md").parse_args(argv)
    files = trace_files(args.traces, "foresight")
    if not files:
        return 2
    try:
        for path in files:
            read_trace(path)
    except TraceError as exc:
        print(f"foresight: {exc}", file=sys.stderr)
        return 2
    with ProcessPoolExecutor(max_workers=2) as pool:
        columns = list(pool.map(month_column, files))
    labels = [f"{h} min" for h in HORIZONS_MIN] + ["the whole day: the ceiling of BOUNDS.md"]
    rows = [(label, [column[i] for column in columns]) for i, label in enumerate(labels)]
    args.out.write_text(
        render(rows, [p.name for p in files], shown_argv(args.traces, argv)), encoding="utf-8"
    )
    print(f"foresight: wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
