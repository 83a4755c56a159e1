"""Benchmark: every built-in strategy on every trace in a folder → bench/RESULTS.md.

    python bench/run.py ../shared/data/traces            # all traces, all built-in strategies
    python bench/run.py TRACES --days 3 --out /tmp/r.md  # a quick look

The traces are not part of the repository (their licences differ), so the folder is an argument.
The site is fixed here, not read from a config file, so that the numbers mean the same on every
machine: 25 A main fuse, 6–16 A, 230 V, a charger that can switch phases, a 3-phase car with a
battery that never fills, plugged in 08:00–18:00 Danish time (the traces' site), control every 5 s
unless the strategy brings its own interval. A strategy that cannot be loaded is reported, not fatal.

`evcc-default` runs twice: once on this site with this project's safety layer, like every strategy
(pause → switch → resume for 1→3, 300 s between switches), and once with evcc's own switching rules
(the charger interrupts itself on a switch, 60 s between switches) — the row to hold against evcc.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import strategies
from controller.core.state import ChargerInfo, SiteLimits
from controller.simulation.cli import ProgressBar
from controller.simulation.engine import SimResult, SimSettings, simulate_trace
from controller.simulation.report import markdown_table
from controller.simulation.trace import Trace, TraceError, read_trace

HERE = Path(__file__).resolve().parent
LIMITS = SiteLimits(voltage_v=230.0, main_fuse_a=25.0, min_current_a=6.0, max_current_a=16.0)
INFO = ChargerInfo(phase_count=3, force_1_phase_allowed=True)
EVCC_OWN = "evcc-default, evcc's switching"
"""evcc writes the phase register and lets the charger interrupt (no pause of its own), and waits its
phaseSwitchDuration of 60 s between switches (anchors.md); the rest of the safety layer stays."""
EVCC_OWN_LIMITS = replace(LIMITS, min_phase_switch_interval_s=60.0, pause_before_phase_up=False)
EVCC_MA = "evcc-default, evcc's switching, mA"
"""As evcc drives a Peblar: its Peblar driver takes currents in mA, which evcc then writes unrounded
(anchors.md); the issue's yardstick, and the other two rows, use whole amps."""
REFERENCE = {
    "capture": (0.93, 0.94),
    "solar share": (0.92, 0.97),
    "pauses/day": (6, 10),
    "switches/day": (13, 20),
}
"""The issue's independent model of evcc-default on these traces (plugged 08:00–18:00, never full)."""
SETTINGS = SimSettings(
    interval_s=5.0,
    plug_in="08:00",
    plug_out="18:00",
    timezone="Europe/Copenhagen",
    car_max_current_a=16.0,
    car_phases=3,
    car_capacity_kwh=1000.0,
    car_soc=0.2,
    car_lag_s=10.0,
    meter_update_s=1.0,
)


@dataclass(frozen=True)
class Run:
    label: str
    strategy: str
    limits: SiteLimits
    params: tuple[tuple[str, object], ...] = ()


@dataclass
class Outcome:
    trace: str
    strategy: str
    result: SimResult | None
    problem: str | None = None
    limits: SiteLimits = LIMITS


def _trim(trace: Trace, days: int | None) -> Trace:
    if days is None:
        return trace
    stop = trace.start + days * 86400
    n = sum(1 for t in trace.times if t < stop)
    return Trace(
        times=trace.times[:n],
        pv_w=trace.pv_w[:n],
        house_w=trace.house_w[:n],
        step_s=trace.step_s,
        source=trace.source,
        gaps=tuple(g for g in trace.gaps if g.start < stop),
        house_split=trace.house_split[:n] if trace.house_split else None,
        pv_split=trace.pv_split[:n] if trace.pv_split else None,
    )


def _per_day(result: SimResult, field: str) -> tuple[float, int]:
    """(mean, max) of a daily count over the days the car was plugged in."""
    values = [getattr(m, field) for m in result.metrics.days.values() if m.plugged_hours > 0]
    if not values:
        return 0.0, 0
    return statistics.mean(values), max(values)


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def _switch_pauses(result: SimResult, limits: SiteLimits) -> float:
    """Pauses per day of the safety layer's pause → switch → resume.

    Without that rule there are none: a stop followed at once by a 1→3 switch while idle looks the
    same to the metric but is a real stop.
    """
    return _per_day(result, "switch_pauses")[0] if limits.pause_before_phase_up else 0.0


def _stops(result: SimResult, limits: SiteLimits) -> float:
    """Pauses per day that are not the pause of a 1→3 switch: stops for lack of sun."""
    return _per_day(result, "pauses")[0] - _switch_pauses(result, limits)


@dataclass(frozen=True)
class OverFuse:
    episodes: int
    longest_s: float
    peak_a: float


def _over_fuse(result: SimResult) -> OverFuse | None:
    """Episodes above the fuse: runs of consecutive cycles with time over it.

    A month's seconds over the fuse alone cannot tell one long overload from many short ones; a user
    deciding whether their fuse would trip needs both the duration and the height of each.
    """
    episodes, longest, run, peak = 0, 0.0, 0.0, 0.0
    for cycle in result.timeline:
        if cycle.fuse_s_over > 0.0:
            if run == 0.0:
                episodes += 1
            run += cycle.fuse_s_over
            longest = max(longest, run)
            peak = max(peak, cycle.max_phase_a)
        else:
            run = 0.0
    return OverFuse(episodes, longest, peak) if episodes else None


def _targets(
    pv_run: SimResult, evcc: SimResult | None, evcc_variants: Sequence[tuple[str, SimResult]]
) -> list[tuple[str, str, bool]]:
    """The issue's targets for `pv` on one trace: (target, measured, met)."""
    pv = pv_run.metrics.total
    pauses_mean, _ = _per_day(pv_run, "pauses")
    switches_mean, _ = _per_day(pv_run, "phase_switches")
    rows = [
        ("capture ≥ 0.95", f"{pv.capture or 0:.3f}", (pv.capture or 0) >= 0.95),
        ("solar share ≥ 0.98", f"{pv.solar_share or 0:.3f}", (pv.solar_share or 0) >= 0.98),
        ("never > 3 pauses in 10 min", str(pv.max_pauses_10min), pv.max_pauses_10min <= 3),
        ("0 s over the fuse", f"{pv.fuse_seconds_over:.0f}", pv.fuse_seconds_over == 0),
    ]
    if evcc is not None:
        evcc_pauses, _ = _per_day(evcc, "pauses")
        evcc_switches, _ = _per_day(evcc, "phase_switches")
        rows += [
            (
                "fewer pauses/day than evcc-default (same safety layer)",
                f"{pauses_mean:.2f} vs {evcc_pauses:.2f}",
                pauses_mean < evcc_pauses,
            ),
            (
                "≤ ½ of evcc-default's switches/day (same safety layer)",
                f"{switches_mean:.2f} vs {evcc_switches:.2f}",
                switches_mean <= evcc_switches / 2,
            ),
        ]
    for label, variant in evcc_variants:
        own_switches, _ = _per_day(variant, "phase_switches")
        rows += [
            (
                f"fewer stops/day than `{label}`",
                f"{_stops(pv_run, LIMITS):.2f} vs {_stops(variant, EVCC_OWN_LIMITS):.2f}",
                _stops(pv_run, LIMITS) < _stops(variant, EVCC_OWN_LIMITS),
            ),
            (
                f"≤ ½ of the switches/day of `{label}`",
                f"{switches_mean:.2f} vs {own_switches:.2f}",
                switches_mean <= own_switches / 2,
            ),
        ]
    return rows


def _reference_check(result: SimResult) -> list[str]:
    """evcc-default with evcc's switching against the issue's independent model, one line per metric."""
    m = result.metrics.total
    measured = {
        "capture": m.capture or 0.0,
        "solar share": m.solar_share or 0.0,
        "pauses/day": _per_day(result, "pauses")[0],
        "switches/day": _per_day(result, "phase_switches")[0],
    }
    cells = []
    for name, (lo, hi) in REFERENCE.items():
        digits = 2 if hi < 1 else 0  # compared at the precision the reference is given in
        value = round(measured[name], digits)
        inside = "inside" if lo <= value <= hi else "outside"
        cells.append(f"{name} {measured[name]:.3f} ({inside} {lo:g}–{hi:g})")
    against = f"Reference check — `{EVCC_OWN}` against the issue's independent model"
    return [f"{against}: {'; '.join(cells)}."]


@dataclass(frozen=True)
class SpeedCheck:
    strategy: str
    day: str
    seconds: float
    """The best run."""
    median_s: float
    cpu_s: float
    """The least CPU time of a run: what the run costs on one core, whatever else the machine does."""
    runs: int
    cycles: int


def _speed_check(traces: Sequence[Trace], candidates: Sequence[str], repeats: int = 9) -> SpeedCheck | None:
    """The speed target on its own: one simulated day at 5 s, best of several runs on one core.

    The month-long runs measure the same thing but share the machine with whatever else runs; the
    best of several short runs is the figure least disturbed by that, and it is taken before them,
    on the process as it starts, not beside their gigabytes of timelines. The day is the one with the
    most PV variability in the first trace, where the strategy has most to do.
    """
    if not traces or not candidates:
        return None
    trace = traces[0]
    per_row = [abs(b - a) for a, b in itertools.pairwise(trace.pv_w)]
    rows_per_day = max(1, round(86400 / trace.step_s))
    days = max(1, len(trace.times) // rows_per_day)
    busiest = max(range(days), key=lambda d: sum(per_row[d * rows_per_day : (d + 1) * rows_per_day]))
    lo, hi = busiest * rows_per_day, (busiest + 1) * rows_per_day
    day = Trace(
        times=trace.times[lo:hi], pv_w=trace.pv_w[lo:hi], house_w=trace.house_w[lo:hi], step_s=trace.step_s
    )
    name = "pv" if "pv" in candidates else candidates[0]
    settings = replace(SETTINGS, timezone="UTC")  # one UTC day of the trace, plugged 08:00–18:00
    walls: list[float] = []
    cpus: list[float] = []
    cycles = 0
    for _ in range(repeats):
        cpu_start = time.process_time()
        result = simulate_trace(day, name, {}, LIMITS, settings, info=INFO)
        cpus.append(time.process_time() - cpu_start)
        walls.append(result.wall_s)
        cycles = len(result.timeline)
    when = datetime.fromtimestamp(day.start, UTC).date().isoformat()
    return SpeedCheck(name, when, min(walls), statistics.median(walls), min(cpus), repeats, cycles)


def render(
    outcomes: Sequence[Outcome],
    *,
    folder: str,
    argv: Sequence[str],
    started: datetime,
    speed: SpeedCheck | None = None,
) -> str:
    lines = [
        *report_head("Benchmark results", "run.py", argv),
        f"- Date: {started:%Y-%m-%d %H:%M} UTC",
        f"- Machine: {_machine()} (each simulation on one core)",
        f"- Traces: `{folder}` (its README: DTU Lyngby irradiance, 9 kWp model, UCI household load, 1 min)",
        "- Site: 230 V, main fuse 25 A, charger 6–16 A with 1p/3p switching, car 3-phase 16 A, lag 10 s, "
        "battery 1000 kWh (never full), plugged in 08:00–18:00 Europe/Copenhagen every day; meter "
        "refreshed every 1 s; control every 5 s unless the strategy sets its own interval.",
        "- Metrics: defined in the README, section *Metrics* (and in `controller/simulation/metrics.py`). "
        "Counts per day are means over the days the car was plugged in; `max pauses/10 min` is the "
        "worst window of the month.",
        "",
    ]
    missing = sorted({(o.strategy, o.problem) for o in outcomes if o.result is None and o.problem}, key=str)
    if missing:
        lines.append("Strategies not run:")
        lines.extend(f"- `{name}`: {problem}" for name, problem in missing)
        lines.append("")
    at_5s = [
        o.result.speed_s_per_day() for o in outcomes if o.result is not None and o.result.interval_s == 5
    ]
    if speed is not None:
        lines.append(
            f"**Speed target** (one simulated day at a 5 s interval < 0.5 s on one core): `{speed.strategy}` "
            f"on {speed.day} (the most variable day of the first trace), {speed.cycles} control cycles: "
            f"**{speed.seconds:.3f} s** wall clock (best of {speed.runs}; median {speed.median_s:.3f} s); "
            f"{speed.cpu_s:.3f} s of CPU time (the least of the {speed.runs}), the figure other processes "
            "on the machine disturb least."
        )
        lines.append("")
    if at_5s:
        lines.append(
            "**Compute speed:** one simulated day (24 h) at a 5 s control interval takes "
            f"{statistics.median(at_5s):.3f} s median, {max(at_5s):.3f} s worst, on one core "
            "(wall clock per strategy and trace: strategy, safety layer, site physics and metrics; "
            "the per-trace tables give each strategy's figure)."
        )
        lines.append("")

    traces = list(dict.fromkeys(o.trace for o in outcomes))
    for trace in traces:
        runs = [o for o in outcomes if o.trace == trace and o.result is not None]
        lines.append(f"## {Path(trace).name}")
        lines.append("")
        if not runs:
            lines.append("No strategy could be run on this trace.")
            lines.append("")
            continue
        blocks = [(o.strategy, o.result.metrics.total) for o in runs if o.result is not None]
        lines.append(markdown_table(blocks))
        lines.append("")
        lines.append(
            "| strategy | interval s | pauses/day mean / max | of them before a 1→3 switch, per day "
            "| stops/day (the others) | switches/day mean / max | commands/day | s per sim. day |"
        )
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        for o in runs:
            assert o.result is not None
            pm, px = _per_day(o.result, "pauses")
            sm, sx = _per_day(o.result, "phase_switches")
            wm = _switch_pauses(o.result, o.limits)
            cm, _ = _per_day(o.result, "commands")
            lines.append(
                f"| {o.strategy} | {o.result.interval_s:g} | {pm:.1f} / {px} | {wm:.1f} | {pm - wm:.1f} | "
                f"{sm:.1f} / {sx} | {cm:.0f} | {o.result.speed_s_per_day():.3f} |"
            )
        lines.append("")
        over = [(o.strategy, e) for o in runs if o.result is not None and (e := _over_fuse(o.result))]
        if over:
            lines.append(
                "Over the fuse: "
                + "; ".join(
                    f"`{name}` {e.episodes} time{'s' if e.episodes > 1 else ''}, "
                    f"the longest {e.longest_s:.0f} s, at most {e.peak_a:.1f} A"
                    for name, e in over
                )
                + f" on the {LIMITS.main_fuse_a:g} A fuse. The house load rose or the PV fell while the car "
                "took all the fuse left: the cut comes in the cycle that sees it, and the car comes down "
                "to the new limit with its lag (README, *Metrics*)."
            )
            lines.append("")
        by_label = {o.strategy: o.result for o in runs}
        evcc_own = by_label.get(EVCC_OWN)
        if evcc_own is not None:
            lines.extend(_reference_check(evcc_own))
            lines.append("")
        pv_run = by_label.get("pv")
        if pv_run is not None:
            lines.append("Targets for `pv`:")
            lines.append("")
            lines.append("| target | measured | met |")
            lines.append("|---|---:|:---:|")
            variants = [(label, r) for label in (EVCC_OWN, EVCC_MA) if (r := by_label.get(label)) is not None]
            for target, measured, met in _targets(pv_run, by_label.get("evcc-default"), variants):
                lines.append(f"| {target} | {measured} | {'yes' if met else '**no**'} |")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def folder_parser(doc: str | None, default_out: Path) -> argparse.ArgumentParser:
    """The command line the bench scripts share: a folder of traces, and the file to write."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    parser.add_argument("traces", type=Path, help="folder with *.csv / *.csv.gz traces")
    parser.add_argument("--out", type=Path, default=default_out, help=f"default: bench/{default_out.name}")
    return parser


def trace_files(folder: Path, tool: str) -> list[Path]:
    """The traces in a folder; none (and a line saying so) when it has none."""
    files = sorted([*folder.glob("*.csv"), *folder.glob("*.csv.gz")])
    if not files:
        print(f"{tool}: no *.csv or *.csv.gz traces in {folder}", file=sys.stderr)
    return files


def shown_argv(folder: Path, argv: Sequence[str] | None) -> list[str]:
    """The command line as a report names it: the trace folder relative to the repository."""
    return [_shown(folder) if a == str(folder) else a for a in (argv or sys.argv[1:])]


def report_head(title: str, script: str, argv: Sequence[str]) -> list[str]:
    """The first lines of a generated report: its title and the command that regenerates it."""
    return [
        f"# {title}",
        "",
        f"Generated by `python bench/{script} {' '.join(argv)}` — do not edit by hand.",
        "",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = folder_parser(__doc__, HERE / "RESULTS.md")
    parser.add_argument("--strategy", action="append", help="only these strategies (repeatable)")
    parser.add_argument("--days", type=int, help="only the first N days of each trace (quick runs)")
    args = parser.parse_args(argv)
    argv_text = shown_argv(args.traces, argv)

    files = trace_files(args.traces, "bench")
    if not files:
        return 2
    names = args.strategy or list(strategies.BUILTINS)
    usable: list[str] = []
    problems: dict[str, str] = {}
    for name in names:
        try:
            strategies.load(name, {})
        except strategies.StrategyError as exc:
            problems[name] = str(exc)
            print(f"bench: skipping strategy {name!r}: {exc}", file=sys.stderr)
        else:
            usable.append(name)
    runs = [Run(name, name, LIMITS) for name in names]
    if "evcc-default" in usable:
        at = names.index("evcc-default") + 1
        runs[at:at] = [
            Run(EVCC_OWN, "evcc-default", EVCC_OWN_LIMITS),
            Run(EVCC_MA, "evcc-default", EVCC_OWN_LIMITS, (("milliamps", True),)),
        ]

    started = datetime.now(UTC)
    traces: list[Trace] = []
    for path in files:
        try:
            traces.append(_trim(read_trace(path), args.days))
        except TraceError as exc:
            print(f"bench: {exc}", file=sys.stderr)
            return 2
    speed = _speed_check(traces, [n for n in usable if n in {"pv", "minpv", "fast", "off"}])
    runnable = sum(run.strategy not in problems for run in runs)
    total = sum(t.end - t.start for t in traces) * max(runnable, 1)
    bar = ProgressBar(total, label="bench")
    outcomes: list[Outcome] = []
    for trace in traces:
        for run in runs:
            if run.strategy in problems:
                outcomes.append(Outcome(trace.source, run.label, None, problems[run.strategy]))
                continue
            done = bar.done
            span = trace.end - trace.start

            def progress(fraction: float, done: float = done, span: float = span) -> None:
                bar.update(done + fraction * span)

            wall = time.perf_counter()
            result = simulate_trace(
                trace, run.strategy, dict(run.params), run.limits, SETTINGS, info=INFO, progress=progress
            )
            bar.done = done + span
            outcomes.append(Outcome(trace.source, run.label, result, limits=run.limits))
            m = result.metrics.total
            bar.finish()
            print(
                f"bench: {Path(trace.source).name} {run.label}: capture {m.capture or 0:.3f}, "
                f"share {m.solar_share or 0:.3f}, pauses {m.pauses}, switches {m.phase_switches} "
                f"({time.perf_counter() - wall:.1f} s)",
                file=sys.stderr,
            )
    bar.finish()
    args.out.write_text(
        render(outcomes, folder=_shown(args.traces), argv=argv_text, started=started, speed=speed),
        encoding="utf-8",
    )
    print(f"bench: wrote {args.out}", file=sys.stderr)
    return 0


def _shown(folder: Path) -> str:
    """The folder relative to the repository, so RESULTS.md carries no machine-specific paths."""
    try:
        return os.path.relpath(folder.resolve(), HERE.parent)
    except ValueError:  # another drive on Windows
        return str(folder)


if __name__ == "__main__":
    sys.exit(main())
