"""The simulator's outputs: the JSON report, the per-cycle timeline CSV, and a short text summary.

Field and column names here are a public contract (issue 5, the README, scripts that read the files):
add fields, never rename them.

- JSON: `{"strategies": {NAME: {"total": {...}, "days": {DATE: {...}}}}, "traces": [...], "settings": {...}}`.
  With several traces a strategy's `total` covers all of them and its `days` all their days (a date that
  occurs in two traces is keyed `DATE trace-name` the second time; traces of the same file name are
  named by their paths here and in the timeline).
- Timeline CSV: one row per control cycle, starting with
  `strategy,time,pv_w,house_w,car_w,grid_w,target_a,phases,command` (`time` in ISO 8601 UTC,
  `command` empty when nothing was written), then the plug state, the interval integrals and the reason,
  then, at the end so that scripts reading by position keep working, the surplus, the seconds over
  the fuse and the length of the cycle.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from controller.simulation.engine import SimResult
from controller.simulation.metrics import Cycle, Metrics, combine
from controller.simulation.trace import trace_labels

TIMELINE_COLUMNS = (
    "strategy",
    "time",
    "pv_w",
    "house_w",
    "car_w",
    "grid_w",
    "target_a",
    "phases",
    "command",
    "connected",
    "car_wh",
    "car_solar_wh",
    "export_wh",
    "oracle_wh",
    "max_phase_a",
    "trace",
    "reason",
    "surplus_wh",
    "fuse_s_over",
    "dt_s",
)


def _by_strategy(results: Iterable[SimResult]) -> dict[str, list[SimResult]]:
    grouped: dict[str, list[SimResult]] = {}
    for result in results:
        grouped.setdefault(result.strategy, []).append(result)
    return grouped


def strategy_total(results: Sequence[SimResult]) -> Metrics:
    """One strategy's total over several traces, with the cycle timing taken over all their cycles."""
    compute = (c for r in results for c in r.compute_s)
    return combine([r.metrics.total for r in results], compute_s=compute)


def report_json(results: Sequence[SimResult]) -> dict[str, Any]:
    strategies: dict[str, Any] = {}
    labels = trace_labels([run.trace for run in results])
    for name, runs in _by_strategy(results).items():
        days: dict[str, Any] = {}
        for run in runs:
            for day, block in run.metrics.days.items():
                key = day if day not in days else f"{day} {labels[run.trace]}"
                days[key] = block.as_json(with_timing=False)
        strategies[name] = {
            "total": strategy_total(runs).as_json(with_timing=True),
            "days": days,
            "interval_s": runs[0].interval_s,
            "speed_s_per_day": round(_speed(runs), 4),
        }
    traces: list[dict[str, Any]] = []
    seen: set[str] = set()
    for run in results:
        if run.trace in seen:
            continue
        seen.add(run.trace)
        traces.append(
            {
                "path": run.trace,
                "hours": round(run.simulated_s / 3600, 3),
                "gaps": [gap.describe() for gap in run.gaps],
            }
        )
    settings = dataclasses.asdict(results[0].settings) if results else {}
    return {"strategies": strategies, "traces": traces, "settings": settings}


def _speed(runs: Sequence[SimResult]) -> float:
    simulated = sum(r.simulated_s for r in runs)
    return sum(r.wall_s for r in runs) / (simulated / 86400) if simulated else 0.0


def write_report(path: Path, results: Sequence[SimResult]) -> None:
    path.write_text(json.dumps(report_json(results), indent=2) + "\n", encoding="utf-8")


class TimelineWriter:
    """The timeline CSV, a row as each cycle is made: the simulator need not keep the cycles for it."""

    def __init__(self, handle: TextIO) -> None:
        self._writer = csv.writer(handle, lineterminator="\n")
        self._writer.writerow(TIMELINE_COLUMNS)

    def rows_of(self, strategy: str, trace: str) -> Callable[[Cycle], None]:
        """What writes the rows of one run: `strategy` on the trace named `trace` (`trace_labels`)."""
        writerow = self._writer.writerow

        def write(row: Cycle) -> None:
            writerow(
                (
                    strategy,
                    _iso(row.time),
                    f"{row.pv_w:.1f}",
                    f"{row.house_w:.1f}",
                    f"{row.car_w:.1f}",
                    f"{row.grid_w:.1f}",
                    f"{row.target_a:.3f}",
                    row.phases,
                    row.command,
                    int(row.connected),
                    f"{row.car_wh:.4f}",
                    f"{row.car_solar_wh:.4f}",
                    f"{row.export_wh:.4f}",
                    f"{row.oracle_wh:.4f}",
                    f"{row.max_phase_a:.2f}",
                    trace,
                    row.reason,
                    f"{row.surplus_wh:.4f}",
                    f"{row.fuse_s_over:.3f}",
                    f"{row.dt_s:g}",
                )
            )

        return write


def _iso(t: float) -> str:
    text = datetime.fromtimestamp(t, UTC).isoformat()
    return text.replace("+00:00", "Z")


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


SUMMARY_HEADER = (
    "strategy",
    "car kWh",
    "solar kWh",
    "grid kWh",
    "solar share",
    "oracle kWh",
    "capture",
    "exported kWh",
    "pauses/day",
    "max pauses/10 min",
    "switches/day",
    "commands/day",
    "max phase A",
    "s over fuse",
    "cycle ms p50/p99",
)


def summary_cells(name: str, m: Metrics) -> list[str]:
    """One table row: totals, with the counts also per day because the targets are per day."""
    days = max(m.plugged_days, 1)
    return [
        name,
        f"{m.car_kwh:.1f}",
        f"{m.car_solar_kwh:.1f}",
        f"{m.car_grid_kwh:.2f}",
        _fmt(m.solar_share, ".3f"),
        f"{m.oracle_kwh:.1f}",
        _fmt(m.capture, ".3f"),
        f"{m.exported_kwh:.1f}",
        f"{m.pauses / days:.1f}",
        str(m.max_pauses_10min),
        f"{m.phase_switches / days:.1f}",
        f"{m.commands / days:.0f}",
        f"{m.max_phase_current_a:.1f}",
        f"{m.fuse_seconds_over:.0f}",
        f"{_fmt(m.cycle_ms_median, '.3f')}/{_fmt(m.cycle_ms_p99, '.3f')}",
    ]


def summary_text(results: Sequence[SimResult]) -> str:
    """A plain table for the terminal: one line per strategy, totals over all traces."""
    rows = [list(SUMMARY_HEADER)]
    for name, runs in _by_strategy(results).items():
        rows.append(summary_cells(name, strategy_total(runs)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    return "\n".join(lines)


def markdown_table(blocks: Iterable[tuple[str, Metrics]]) -> str:
    rows = [summary_cells(name, m) for name, m in blocks]
    head = "| " + " | ".join(SUMMARY_HEADER) + " |"
    rule = "|" + "|".join("---" if i == 0 else "---:" for i in range(len(SUMMARY_HEADER))) + "|"
    return "\n".join([head, rule, *("| " + " | ".join(r) + " |" for r in rows)])
