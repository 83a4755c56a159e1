"""What `pv` trades between capture, solar share and stops, setting by setting → bench/FRONTIER.md

    python bench/frontier.py ../shared/data/traces

The defaults are one point on a trade-off: a larger dip budget bridges more dips from the grid (more
capture, fewer stops, lower share), a smaller one pauses sooner (the reverse). This runs `pv` with a
few settings along that curve on the benchmark's site (bench/run.py) and tabulates where each lands,
so a user who values grid import over unused sun can pick a point, and so the defaults' place on the
curve is measured rather than asserted. Two simulations run at a time.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from run import INFO, LIMITS, SETTINGS, _per_day, _stops, folder_parser, report_head, shown_argv, trace_files

from controller.simulation.engine import simulate_trace
from controller.simulation.trace import Trace, TraceError, read_trace

HERE = Path(__file__).resolve().parent
SETTINGS_TRIED: tuple[Mapping[str, float], ...] = (
    {},
    {"enable_delay_s": 60},
    {"dip_import_wh": 60, "enable_delay_s": 60},
    {"dip_import_wh": 30, "enable_delay_s": 60},
    {"dip_import_wh": 15, "enable_delay_s": 120},
    {"dip_import_wh": 200, "disable_delay_s": 900},
)


def _label(params: Mapping[str, float]) -> str:
    return ", ".join(f"`{k} = {v:g}`" for k, v in params.items()) or "defaults"


def _one(job: tuple[str, Trace, Mapping[str, float]]) -> tuple[str, str, str]:
    name, trace, params = job
    result = simulate_trace(trace, "pv", dict(params), LIMITS, SETTINGS, info=INFO)
    m = result.metrics.total
    pauses, _ = _per_day(result, "pauses")
    switches, _ = _per_day(result, "phase_switches")
    row = (
        f"| {_label(params)} | {m.capture or 0:.3f} | {m.solar_share or 0:.3f} | {pauses:.1f} | "
        f"{_stops(result, LIMITS):.1f} | {switches:.1f} | {m.max_pauses_10min} |"
    )
    return name, _label(params), row


def main(argv: Sequence[str] | None = None) -> int:
    args = folder_parser(__doc__, HERE / "FRONTIER.md").parse_args(argv)
    files = trace_files(args.traces, "frontier")
    if not files:
        return 2
    traces: list[tuple[str, Trace]] = []
    for path in files:
        try:
            traces.append((path.name, read_trace(path)))
        except TraceError as exc:
            print(f"frontier: {exc}", file=sys.stderr)
            return 2
    jobs = [(name, trace, params) for name, trace in traces for params in SETTINGS_TRIED]
    with ProcessPoolExecutor(max_workers=2) as pool:
        rows = list(pool.map(_one, jobs))
    doc = (__doc__ or "").split("\n\n")
    lines = [
        *report_head("pv along its trade-off curve", "frontier.py", shown_argv(args.traces, argv)),
        doc[2].strip(),
        "",
    ]
    for path in files:
        lines += [
            f"## {path.name}",
            "",
            "| pv setting | capture | solar share | pauses/day | stops/day | switches/day "
            "| max pauses/10 min |",
            "|---|---:|---:|---:|---:|---:|---:|",
            *(row for name, _, row in rows if name == path.name),
            "",
        ]
    args.out.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    print(f"frontier: wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
