"""Instructions per simulated day, under callgrind: the speed figure that does not depend on the load.

    python bench/instructions.py ../shared/data/traces    # needs valgrind; 4–5 minutes

Wall-clock time on a shared machine swings by 1.5× within an hour; the number of instructions the
CPU executes for the same work does not (to a few in ten thousand). The day, the site and the
strategy are those of the speed check in `bench/run.py`. A day is counted as the difference between a
process that simulates it twice and one that simulates it once, so that what every run pays once
(imports, reading the trace, building the strategy's parameter model) does not count.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

import run as bench

from controller.simulation.trace import read_trace

COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def count(valgrind: str, trace: Path, days: int) -> int:
    """Instructions of a process that simulates the speed check's day `days` times."""
    done = subprocess.run(
        [
            valgrind,
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--simulate",
            str(days),
            str(trace),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    found = COLLECTED.search(done.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no instruction count:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("traces", type=Path, help="the trace folder (its first trace is used)")
    parser.add_argument("--simulate", type=int, metavar="N", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.simulate is not None:  # the measured child: the trace is the folder argument here
        bench._speed_check([read_trace(args.traces)], ["pv"], repeats=args.simulate)
        return 0
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("instructions: valgrind is not installed (Debian: apt install valgrind)", file=sys.stderr)
        return 2
    files = bench.trace_files(args.traces, "instructions")
    if not files:
        return 2
    once, twice = count(valgrind, files[0], 1), count(valgrind, files[0], 2)
    print(f"{files[0].name}, pv, one simulated day at 5 s: {(twice - once) / 1e9:.3f} G instructions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
