"""`peblar-surplus simulate`: run strategies over measured traces and say how well they used the sun.

`controller/cli.py` calls `register(subparsers)`; the handler returns the exit code: 0 done, 2 when an
input (trace, strategy, plug times, config) cannot be used — with one line naming what and where.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from controller.console import reader_gone
from controller.core.state import ChargerInfo, SiteLimits
from controller.core.units import MIN_SIGNAL_A as MIN_CHARGE_A

if TYPE_CHECKING:
    from controller.config import Config
    from controller.simulation.engine import Switch
    from controller.simulation.metrics import Cycle
    from controller.simulation.plot import DayPlots
    from controller.simulation.report import TimelineWriter
    from controller.simulation.trace import Trace

EXIT_OK, EXIT_INPUT = 0, 2
SCHEDULE = "schedule"
"""The run of a config's `[strategy]` with its `[[schedule]]` rules, switched as the daemon switches."""
COARSEST_STEP_S = 900.0
"""The coarsest trace resolution the issue asks to handle (15 min); coarser ones run, with a note."""


def register(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "simulate",
        help="run strategies over measured PV/house traces and report control quality",
        description=(
            "Replays traces (CSV: timestamp, pv_w, house_w; .gz accepted) through the real control "
            "core with a modelled charger, car and grid meter, and reports solar share, capture of the "
            "solar oracle, pauses, phase switches and fuse margin."
        ),
    )
    parser.add_argument(
        "--trace", action="append", required=True, metavar="CSV", help="trace file; repeat for several"
    )
    parser.add_argument(
        "-c",
        "--config",
        help="config file for the site limits, interval, time zone and strategy parameters "
        "(default: built-in defaults — 25 A fuse, 6–16 A, 5 s, UTC, strategy pv)",
    )
    parser.add_argument(
        "--strategy",
        action="append",
        metavar="NAME",
        help="strategy to simulate; repeat for several; 'schedule': the config's strategy switched by its "
        "[[schedule]] rules, as the daemon does (default: that, or the config's strategy without rules)",
    )
    parser.add_argument("--report", metavar="JSON", help="write the metrics as JSON")
    parser.add_argument("--timeline", metavar="CSV", help="write one row per control cycle")
    parser.add_argument("--plot", metavar="DIR", help="write one PNG per day and strategy")
    parser.add_argument(
        "--plug-in",
        default="08:00",
        metavar="HH:MM",
        help="local time the car arrives each day (default 08:00); 'none' with --plug-out none: "
        "plugged in for the whole trace",
    )
    parser.add_argument(
        "--plug-out", default="18:00", metavar="HH:MM", help="local time the car leaves (default 18:00)"
    )
    parser.add_argument(
        "--timezone",
        metavar="ZONE",
        help="IANA time zone of the trace's site, for the plug-in times, the days and the plots "
        "(default: the config's [site] timezone, else UTC); the bundled trace: Etc/GMT+7",
    )
    car = parser.add_argument_group(
        "car", "the simulated car; each day's plug-in brings it back at --car-soc (defaults: the benchmark's)"
    )
    car.add_argument(
        "--car-max-current-a",
        default="16",
        metavar="A",
        help="the most current per phase the car takes, 6–80 A (default 16)",
    )
    car.add_argument(
        "--car-phases", default="3", metavar="{1,3}", help="phases the car charges on (default 3)"
    )
    car.add_argument(
        "--car-capacity-kwh",
        default="1000",
        metavar="KWH",
        help="usable battery capacity (default 1000: a battery that never fills, so the figures "
        "measure the controller, not the battery)",
    )
    car.add_argument(
        "--car-soc",
        default="0.2",
        metavar="FRACTION",
        help="state of charge at each plug-in, 0..1 (default 0.2)",
    )
    car.add_argument(
        "--car-lag-s",
        default="10",
        metavar="S",
        help="time constant with which the car follows a new current; 0: at once (default 10)",
    )
    parser.set_defaults(handler=handle)
    return parser


CAR_MAX_A = 80.0
"""The most current IEC 61851 can signal on AC; a car claiming more is a typo."""


@dataclass(frozen=True)
class Car:
    """The car model's settings from `--car-*`, checked; they go to `SimSettings.car_*`."""

    max_current_a: float
    phases: int
    capacity_kwh: float
    soc: float
    lag_s: float


def _car(args: argparse.Namespace) -> Car | str:
    """The --car-* options as numbers, or the error naming the option and what to give."""
    rules = (
        # flag, text, lowest, highest, what to give
        (
            "--car-max-current-a",
            args.car_max_current_a,
            MIN_CHARGE_A,
            CAR_MAX_A,
            f"give {MIN_CHARGE_A:g} to {CAR_MAX_A:g} A per phase (a charger offers no less than "
            f"{MIN_CHARGE_A:g} A; IEC 61851 signals at most {CAR_MAX_A:g} A)",
        ),
        ("--car-phases", args.car_phases, 1.0, 3.0, "give 1 or 3"),
        ("--car-capacity-kwh", args.car_capacity_kwh, 0.0, math.inf, "give a capacity above 0 kWh"),
        (
            "--car-soc",
            args.car_soc,
            0.0,
            1.0,
            "give the state of charge at plug-in as a fraction from 0 to 1 (0.2 for 20 %)",
        ),
        ("--car-lag-s", args.car_lag_s, 0.0, math.inf, "give 0 s (the car follows at once) or more"),
    )
    values: list[float] = []
    for flag, text, lowest, highest, what in rules:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if math.isnan(value):
            return f"{flag} {text}: not a number; {what}"
        if not (math.isfinite(value) and lowest <= value <= highest):
            return f"{flag} {text}: out of range; {what}"
        values.append(value)
    amps, phases, capacity, soc, lag = values
    if phases not in (1.0, 3.0):
        return f"--car-phases {args.car_phases}: give 1 or 3"
    if capacity <= 0:
        return f"--car-capacity-kwh {args.car_capacity_kwh}: out of range; give a capacity above 0 kWh"
    return Car(amps, int(phases), capacity, soc, lag)


@dataclass(frozen=True)
class Setup:
    limits: SiteLimits
    interval_s: float
    timezone: str
    strategy: str
    params: dict[str, Any]
    config: Config | None = None


def _setup(config: str | None) -> Setup | str:
    """The site from `-c`, or the defaults; a string is the error to show."""
    if config is None:
        return Setup(SiteLimits(), 5.0, "UTC", "pv", {})
    from controller.config import ConfigError, find, load  # noqa: PLC0415 - only when a config is given

    try:
        cfg = load(find(config), devices=False)  # find: an empty -c is refused as by run and check
    except ConfigError as exc:
        return f"configuration error: {exc}"
    return Setup(
        limits=cfg.site_limits(),
        interval_s=cfg.control.interval_s,
        timezone=cfg.site.timezone,
        strategy=cfg.strategy.name,
        params=cfg.strategy.params,
        config=cfg,
    )


def _schedule_problem(config: Config | None, path: str | None) -> str | None:
    """Why `--strategy schedule` cannot run, checked as `run` checks the rules before it starts."""
    from controller.service.preflight import strategy_problems  # noqa: PLC0415 - only for a schedule

    if config is None or not config.schedule:
        where = f"{path} has no [[schedule]] rules" if path else "no -c CONFIG given"
        return f"--strategy {SCHEDULE}: runs the [[schedule]] rules of -c CONFIG, and {where}"
    problems = strategy_problems(config)
    return f"configuration error: {path}: " + "; ".join(problems) if problems else None


def schedule_switches(config: Config, trace: Trace, zone: str) -> tuple[str, dict[str, Any], list[Switch]]:
    """The strategy the daemon would run at the trace's start, and its switches after: each firing of a
    rule that changes the strategy or its parameters (the daemon keeps the running strategy when a
    firing asks for the one it has). The rules keep time in the simulated site's zone."""
    from datetime import UTC, datetime  # noqa: PLC0415

    from controller.service.scheduler import rule_changes  # noqa: PLC0415 - apscheduler, on demand

    changes = rule_changes(
        config.schedule,
        datetime.fromtimestamp(trace.start, UTC),
        datetime.fromtimestamp(trace.end, UTC),
        ZoneInfo(zone),
    )
    first, params = config.strategy_for(changes[0][1])
    active = (first, params)
    switches: list[Switch] = []
    for when, rule in changes[1:]:
        wanted = config.strategy_for(rule)
        if wanted != active:
            switches.append((when.timestamp(), *wanted))
            active = wanted
    return first, params, switches


def _describe(first: str, switches: Sequence[Switch]) -> str:
    if not switches:
        return f"{first} throughout"
    counts = Counter(name for _, name, _params in switches)
    to = ", ".join(f"to {name} {n}×" for name, n in counts.items())
    return f"{first} at the start, then {len(switches)} switch(es): {to}"


def _zone_problem(name: str) -> str | None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"--timezone {name!r}: not an IANA time zone; give one like 'Europe/Berlin'"
    return None


def _plug(value: str) -> str | None:
    return None if value.strip().lower() in {"none", "always", ""} else value


def _plug_problem(plug_in: str | None, plug_out: str | None) -> str | None:
    from controller.simulation.engine import parse_clock  # noqa: PLC0415

    if (plug_in is None) != (plug_out is None):
        return "--plug-in and --plug-out: give both times, or 'none' for both"
    try:
        if plug_in is not None and plug_out is not None:
            arrive = parse_clock(plug_in, "--plug-in")
            leave = parse_clock(plug_out, "--plug-out")
            if arrive == leave:
                return (
                    f"--plug-in {plug_in} --plug-out {plug_out}: the same time; to keep the car plugged "
                    "in for the whole trace give 'none' for both"
                )
    except ValueError as exc:
        return str(exc)
    return None


def handle(args: argparse.Namespace) -> int:
    from controller.simulation.engine import SimSettings, simulate_trace  # noqa: PLC0415 - heavy, on demand
    from controller.simulation.report import summary_text, write_report  # noqa: PLC0415
    from controller.simulation.trace import TraceError, read_trace  # noqa: PLC0415
    from strategies import StrategyError  # noqa: PLC0415
    from strategies import load as load_strategy  # noqa: PLC0415

    setup = _setup(args.config)
    if isinstance(setup, str):
        return _fail(setup)
    if args.timezone is not None:
        problem = _zone_problem(args.timezone)
        if problem is not None:
            return _fail(problem)
        setup = replace(setup, timezone=args.timezone)
    plug_in, plug_out = _plug(args.plug_in), _plug(args.plug_out)
    problem = _plug_problem(plug_in, plug_out)
    if problem is not None:
        return _fail(problem)
    car = _car(args)
    if isinstance(car, str):
        return _fail(car)
    settings = SimSettings(
        interval_s=setup.interval_s,
        plug_in=plug_in,
        plug_out=plug_out,
        timezone=setup.timezone,
        car_max_current_a=car.max_current_a,
        car_phases=car.phases,
        car_capacity_kwh=car.capacity_kwh,
        car_soc=car.soc,
        car_lag_s=car.lag_s,
    )
    rules = setup.config.schedule if setup.config is not None else []
    names = args.strategy or [SCHEDULE if rules else setup.strategy]
    problem = _given_twice("--strategy", names) or _given_twice(
        "--trace", [str(Path(path).resolve()) for path in args.trace], shown=args.trace
    )
    if problem is not None:
        return _fail(problem)
    if SCHEDULE in names:
        problem = _schedule_problem(setup.config, args.config)
        if problem is not None:
            return _fail(problem)
    # the config's parameters go to the config's strategy only
    params_of = {name: setup.params if name == setup.strategy else {} for name in names if name != SCHEDULE}
    for name, params in params_of.items():  # all before the first run: a typo in the last costs nothing
        try:
            load_strategy(name, params)
        except StrategyError as exc:
            if args.strategy and exc.detail is not None:  # the name came from the command line
                return _fail(f"--strategy {name}: {exc.detail}")
            if args.config is not None and name == setup.strategy:  # from the config, as run says it
                return _fail(f"configuration error: {args.config}: {exc}")
            return _fail(str(exc))
    outputs = [
        (flag, Path(path).resolve())
        for flag, path in (("--report", args.report), ("--timeline", args.timeline), ("--plot", args.plot))
        if path
    ]
    for index, (flag, path) in enumerate(outputs):
        for earlier, other in outputs[:index]:
            if path == other:
                return _fail(f"{earlier} and {flag}: the same path {path}; the one would overwrite the other")
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        return _fail(
            "--plot: needs matplotlib, which a plain install leaves out: pip install 'peblar-surplus[plot]' "
            "(in a checkout: pip install -e '.[plot]')"
        )
    for flag, target, is_dir in (
        ("--report", args.report, False),
        ("--timeline", args.timeline, False),
        ("--plot", args.plot, True),
    ):
        problem = _output_problem(flag, target, is_dir=is_dir) or _overwrites_trace(flag, target, args.trace)
        if problem is not None:
            return _fail(problem)
    try:
        traces = [read_trace(path) for path in args.trace]
    except TraceError as exc:
        return _fail(str(exc))
    if rules and SCHEDULE not in names:
        print(
            f"note: the config's {len(rules)} [[schedule]] rule(s) are not simulated; every cycle "
            f"runs {', '.join(names)} throughout (--strategy {SCHEDULE} runs them)",
            file=sys.stderr,
        )
    for trace in traces:
        print(trace.describe(), file=sys.stderr)
        if trace.step_s > COARSEST_STEP_S:
            print(
                f"  note: one row every {trace.step_s:g} s, coarser than {COARSEST_STEP_S:g} s: each value "
                "is held until the next, so clouds are missing and the figures are rough",
                file=sys.stderr,
            )
        for gap in trace.gaps[:10]:
            print(f"  gap: {gap.describe()} (last values held)", file=sys.stderr)
        if len(trace.gaps) > 10:
            print(f"  … and {len(trace.gaps) - 10} more gaps", file=sys.stderr)

    total_s = sum(t.end - t.start for t in traces) * len(names)
    bar = ProgressBar(total_s, label="simulate")
    results = []
    streams = _Streams(args.timeline, args.plot, traces, names, setup.limits.main_fuse_a, setup.timezone)
    try:
        for name in names:
            for trace in traces:
                done = bar.done
                span = trace.end - trace.start

                def report(fraction: float, done: float = done, span: float = span) -> None:
                    bar.update(done + fraction * span)

                first, params, switches = (name, params_of.get(name, {}), None)
                if name == SCHEDULE and setup.config is not None:
                    first, params, switches = schedule_switches(setup.config, trace, settings.timezone)
                    print(f"  {SCHEDULE} on {trace.source}: {_describe(first, switches)}", file=sys.stderr)
                results.append(
                    simulate_trace(
                        trace,
                        first,
                        params,
                        setup.limits,
                        settings,
                        info=ChargerInfo(3, True),
                        progress=report,
                        keep_timeline=False,
                        on_cycle=streams.run(name, trace),
                        switches=switches,
                        label=name,
                    )
                )
                streams.run_done()
                bar.done = done + span
    except BaseException:  # Ctrl-C, say: an earlier timeline at that path stays as it was
        streams.abandon()
        raise
    streams.finish()
    bar.finish()

    try:
        print(summary_text(results), flush=True)
    except BrokenPipeError:  # `simulate … | head`: the files asked for are still written
        reader_gone()
    failures = list(streams.failures)
    if args.report:
        try:
            write_report(Path(args.report), results)
            print(f"report: {args.report}", file=sys.stderr)
        except OSError as exc:
            failures.insert(0, could_not_write(f"--report {args.report}", exc))
    if args.timeline and streams.timeline_written:
        print(f"timeline: {args.timeline}", file=sys.stderr)
    if args.plot and not streams.plots_failed:
        print(f"plots: {len(streams.plot_files)} PNG files in {args.plot}", file=sys.stderr)
    for failure in failures:
        _fail(failure)
    return EXIT_INPUT if failures else EXIT_OK


def could_not_write(flag: str, error: OSError) -> str:
    return f"{flag}: could not write ({error.strerror or error})"


class _Streams:
    """The timeline CSV and the day plots, written as the cycles are made.

    The simulator keeps no timeline for them: a year of 5-second cycles held for writing at the end
    was about 4 GB a strategy. An output that cannot be written (a full disk) is given up and named
    in `failures`, and the run goes on: the summary and the report are not lost with it. The timeline
    is written to `<name>.partial` and takes its name once complete, so a run that fails or is
    interrupted leaves an earlier timeline at that path as it was.
    """

    def __init__(
        self,
        timeline: str | None,
        plot_dir: str | None,
        traces: Sequence[Trace],
        names: Sequence[str],
        fuse_a: float,
        zone: str,
    ) -> None:
        from controller.simulation.report import TimelineWriter  # noqa: PLC0415 - heavy, on demand
        from controller.simulation.trace import trace_labels  # noqa: PLC0415

        self.timezone, self.main_fuse_a = zone, fuse_a
        self.labels = trace_labels([trace.source for trace in traces])
        self.failures: list[str] = []
        self.plot_files: list[Path] = []
        self.plots_failed = False
        self.timeline_written = False
        self._plot_dir = Path(plot_dir) if plot_dir else None
        self._prefixes: list[str] = []
        if self._plot_dir is not None:
            from controller.simulation.plot import plot_prefixes  # noqa: PLC0415 - matplotlib

            self._prefixes = plot_prefixes([(name, trace.source) for name in names for trace in traces])
        self._runs = 0
        self._plots: DayPlots | None = None
        self._rows: Callable[[Cycle], None] | None = None
        self._flag = f"--timeline {timeline}"
        self._handle: TextIO | None = None
        self._timeline: TimelineWriter | None = None
        self._final = self._partial = None
        if timeline:
            self._final = Path(timeline)
            # a pipe (`--timeline >(gzip > t.csv.gz)`) or a device is written to as it is
            exists = self._final.exists()
            self._partial = (
                self._final if exists and not self._final.is_file() else Path(f"{timeline}.partial")
            )
            try:
                self._handle = self._partial.open("w", encoding="utf-8", newline="")
                self._timeline = TimelineWriter(self._handle)
            except OSError as exc:
                self._timeline_failed(exc)

    def run(self, strategy: str, trace: Trace) -> Callable[[Cycle], None] | None:
        """What sees every cycle of `strategy` on `trace`, or None when neither output is written."""
        if self._timeline is not None:
            self._rows = self._timeline.rows_of(strategy, self.labels[trace.source])
        if self._plot_dir is not None:
            from controller.simulation.plot import DayPlots  # noqa: PLC0415 - matplotlib

            self._plots = DayPlots(
                self._plot_dir,
                self._prefixes[self._runs],
                strategy=strategy,
                timezone=self.timezone,
                span=(trace.start, trace.end),
                main_fuse_a=self.main_fuse_a,
            )
        if self._rows is None and self._plots is None:
            return None
        return self._each

    def _each(self, row: Cycle) -> None:
        if self._rows is not None:
            try:
                self._rows(row)
            except OSError as exc:
                self._timeline_failed(exc)
        if self._plots is not None:
            try:
                self._plots(row)
            except OSError as exc:
                self._plots_given_up(exc)

    def run_done(self) -> None:
        self._runs += 1
        if self._plots is not None:
            try:
                self.plot_files += self._plots.close()
            except OSError as exc:
                self._plots_given_up(exc)
            self._plots = None

    def finish(self) -> None:
        """The complete timeline takes its name."""
        if self._handle is None or self._final is None or self._partial is None:
            return
        try:
            self._handle.close()
            self._handle = None
            if self._partial != self._final:
                os.replace(self._partial, self._final)
            self.timeline_written = True
        except OSError as exc:
            self._timeline_failed(exc)

    def abandon(self) -> None:
        if self._handle is not None:
            self._drop_partial()

    def _timeline_failed(self, exc: OSError) -> None:
        self.failures.append(could_not_write(self._flag, exc))
        self._timeline = self._rows = None
        self._drop_partial()

    def _plots_given_up(self, exc: OSError) -> None:
        self.failures.append(could_not_write(f"--plot {self._plot_dir}", exc))
        self.plots_failed = True
        self._plot_dir = self._plots = None

    def _drop_partial(self) -> None:
        handle, self._handle = self._handle, None
        with contextlib.suppress(OSError):  # a full disk may refuse even the close; the unlink frees it
            if handle is not None:
                handle.close()
        if self._partial is not None and self._partial != self._final:
            with contextlib.suppress(OSError):
                self._partial.unlink(missing_ok=True)


def _given_twice(flag: str, values: Sequence[str], shown: Sequence[str] | None = None) -> str | None:
    """Twice the same run would count its energy twice in the totals."""
    for index, value in enumerate(values):
        if value in values[:index]:
            return f"{flag} {(shown or values)[index]}: given twice; give each once"
    return None


def _overwrites_trace(flag: str, target: str | None, traces: Sequence[str]) -> str | None:
    if not target:
        return None
    out = Path(target).resolve()
    for trace in traces:
        if Path(trace).resolve() == out:
            return f"{flag} {target}: is one of the traces; writing it would destroy the input"
    return None


def _output_problem(flag: str, target: str | None, *, is_dir: bool) -> str | None:
    """Checked before simulating, so that a typo in an output path does not cost the run.

    Missing directories are created, as `--plot` always did; what cannot be written is an error naming
    the flag.
    """
    if not target:
        return None
    path = Path(target)
    directory = path if is_dir else path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"{flag} {target}: cannot create the directory {directory} ({exc.strerror or exc})"
    if not is_dir and path.is_dir():
        return f"{flag} {target}: is a directory; give the name of a file to write"
    if not os.access(directory, os.W_OK):
        return f"{flag} {target}: {directory} is not writable"
    return None


def _fail(message: str) -> int:
    """Every message hidden like run's and check's: a token pasted into the wrong key of the config
    (the strategy's name, a parameter) must not be copied to the terminal."""
    from controller.config import redacted  # noqa: PLC0415

    print(f"peblar-surplus simulate: {redacted(message)}", file=sys.stderr)
    return EXIT_INPUT


class ProgressBar:
    """A one-line bar on stderr that appears only when the work outlasts `delay_s`.

    Short runs (and the tests) print nothing. On a terminal the bar redraws in place; into a file or
    a pipe it prints a line every 10 % instead, so logs stay readable.
    """

    def __init__(
        self,
        total: float,
        *,
        label: str,
        stream: TextIO | None = None,
        delay_s: float = 2.0,
        width: int = 30,
    ) -> None:
        self.total = max(total, 1e-9)
        self.label = label
        # sys.stderr is None when the process was started with it closed: then there is no bar
        self.stream: TextIO | None = stream if stream is not None else sys.stderr
        self.delay_s = delay_s
        self.width = width
        self.done = 0.0
        self._start = time.monotonic()
        self._shown = False
        self._last_tenth = -1
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def update(self, done: float) -> None:
        elapsed = time.monotonic() - self._start
        if elapsed < self.delay_s or self.stream is None:
            return
        fraction = min(max(done / self.total, 0.0), 1.0)
        # Extrapolated from less than a tenth, the time left is mostly the start-up's noise.
        left = f"~{elapsed / fraction - elapsed:.0f} s left" if fraction >= 0.1 else "time left not known yet"
        if self._tty:
            filled = int(fraction * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            self.stream.write(f"\r{self.label} [{bar}] {fraction:4.0%}  {elapsed:.0f} s, {left} ")
            self.stream.flush()
            self._shown = True
            return
        tenth = int(fraction * 10)
        if tenth > self._last_tenth:
            self._last_tenth = tenth
            # the percentage floored like the tenth, or 9.6 % and 10 % would both read "10%"
            percent = math.floor(fraction * 100)
            self.stream.write(f"{self.label}: {percent}% after {elapsed:.0f} s, {left}\n")
            self.stream.flush()

    def finish(self) -> None:
        if self._shown and self.stream is not None:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run `simulate` on its own (the bench and tests use this; users go through `peblar-surplus`)."""
    parser = argparse.ArgumentParser(prog="peblar-surplus")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["simulate", *(argv or [])])
    return int(args.handler(args))
