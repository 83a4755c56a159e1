"""`simulate` writes its timeline and plots as it goes: a long trace costs time, not memory.

A year of a 5-second control cycle is six million cycles; held in memory until the end to write the
CSV and the PNGs, they took about 4 GB a strategy, more than the Raspberry Pi the daemon runs on.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from controller.core.state import SiteLimits
from controller.simulation.cli import main
from controller.simulation.engine import SimSettings, simulate_trace
from controller.simulation.plot import _caption
from controller.simulation.trace import read_trace

T0 = 1_464_739_200  # 2016-06-01T00:00:00Z


def _cloudy(path: Path, days: int) -> Path:
    """Days of a 5-minute trace: a bell of sun from 06:00 to 18:00 UTC, halved every other quarter hour."""
    lines = ["timestamp,pv_w,house_w"]
    for i in range(days * 288):
        hour = (i % 288) / 12
        pv = max(0.0, 9000 * (1 - ((hour - 12) / 6) ** 2)) * (0.3 if (i // 3) % 2 else 1.0)
        lines.append(f"{T0 + 300 * i},{pv:.1f},400")
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return path


def _child(command: list[str], tmp_path: Path) -> tuple[int, int, str, str]:
    """(exit status, the child's own peak resident memory in kB, its stdout, its stderr)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    out = tmp_path / "stdout.txt"
    with (
        out.open("wb") as stdout,
        subprocess.Popen(command, stdout=stdout, stderr=subprocess.PIPE, env=env) as proc,
    ):
        assert proc.stderr is not None
        err = proc.stderr.read().decode()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss, out.read_text(), err


FULL_DISK = (
    "import resource, runpy, signal, sys\n"
    # a file past the limit fails its write with EFBIG, as on a full disk, instead of a signal
    "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
    "resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))\n"
    "sys.argv = ['peblar-surplus', *sys.argv[1:]]\n"
    "runpy.run_module('controller', run_name='__main__')\n"
)
"""`python -m controller` where no file may grow past 200 kB."""


def test_a_month_needs_no_more_memory_than_two_days(tmp_path: Path) -> None:
    """With the timeline written: 30 days of evcc-default's 30-second cycles took the simulator that
    kept them 20 MB more than 2 days did (peak resident memory); it now takes under 1 MB more."""
    rss = {}
    for days in (2, 30):
        trace = _cloudy(tmp_path / f"{days}.csv.gz", days)
        timeline = tmp_path / f"{days}.csv"
        command = [sys.executable, "-m", "controller", "simulate", "--trace", str(trace)]
        status, rss[days], _, err = _child(
            [*command, "--strategy", "evcc-default", "--timeline", str(timeline)], tmp_path
        )
        assert status == 0, err
        with timeline.open(newline="") as handle:
            assert sum(1 for _ in csv.reader(handle)) == 1 + days * 2880  # header and every cycle
    assert rss[30] - rss[2] < 5_000, rss


def test_a_full_disk_while_writing_the_timeline_loses_neither_the_summary_nor_the_report(
    tmp_path: Path,
) -> None:
    """The timeline is given up, with the flag named and exit 2; what the run measured is still printed
    and written, and no half-written CSV is left behind."""
    trace = _cloudy(tmp_path / "days.csv.gz", 2)
    timeline, report = tmp_path / "t.csv", tmp_path / "r.json"
    status, _, out, err = _child(
        [
            *(sys.executable, "-c", FULL_DISK, "simulate", "--trace", str(trace)),
            *("--timeline", str(timeline), "--report", str(report)),
        ],
        tmp_path,
    )
    assert status == 2, err
    assert f"peblar-surplus simulate: --timeline {timeline}: could not write (File too large)" in err
    assert out.splitlines()[1].startswith("pv ")  # the summary's row
    assert json.loads(report.read_text())["strategies"]["pv"]["total"]["car_kwh"] > 10
    assert not timeline.exists()
    assert not Path(f"{timeline}.partial").exists()


def test_an_interrupted_run_leaves_the_timeline_of_the_last_run_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while the first day's plot is drawn: rows of the new run are written by then, but the
    earlier timeline at that path is what stays there, whole."""
    trace = _cloudy(tmp_path / "days.csv.gz", 2)
    timeline = tmp_path / "t.csv"
    timeline.write_text("strategy,time\nearlier,run\n", encoding="utf-8")

    def interrupted(figure: Figure, path: Path, **kwargs: object) -> None:
        assert Path(f"{timeline}.partial").stat().st_size > 100_000  # the first day's rows
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", interrupted)
    with pytest.raises(KeyboardInterrupt):
        main(["--trace", str(trace), "--timeline", str(timeline), "--plot", str(tmp_path / "plots")])
    assert timeline.read_text(encoding="utf-8") == "strategy,time\nearlier,run\n"
    assert not Path(f"{timeline}.partial").exists()


def test_a_plot_interrupted_while_it_is_saved_leaves_the_last_run_s_picture_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C halfway through writing a day's PNG: the picture an earlier run drew for that day stays
    at its name, and no half-written file is left beside it."""
    trace = _cloudy(tmp_path / "days.csv.gz", 1)
    plots = tmp_path / "plots"
    assert main(["--trace", str(trace), "--plot", str(plots)]) == 0
    (picture,) = plots.iterdir()
    earlier = picture.read_bytes()
    assert earlier.startswith(b"\x89PNG")

    def half_written(figure: Figure, path: Path, **kwargs: object) -> None:
        Path(path).write_bytes(earlier[: len(earlier) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", half_written)
    with pytest.raises(KeyboardInterrupt):
        main(["--trace", str(trace), "--plot", str(plots)])
    assert picture.read_bytes() == earlier
    assert list(plots.iterdir()) == [picture]


def test_the_timeline_goes_into_a_pipe_as_it_is_made(tmp_path: Path) -> None:
    """`--timeline >(gzip > t.csv.gz)` names a pipe: written to directly, not beside it."""
    trace = _cloudy(tmp_path / "days.csv.gz", 1)
    fifo = tmp_path / "rows"
    os.mkfifo(fifo)
    command = [sys.executable, "-m", "controller", "simulate", "--trace", str(trace), "--timeline", str(fifo)]
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as proc:
        with fifo.open(encoding="utf-8") as rows:
            lines = sum(1 for _ in rows)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert lines == 1 + 17280


def test_each_plot_is_captioned_with_its_own_day_of_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plots are drawn a day at a time while the run goes on; each title still carries that
    day's figures (energy, share, pauses, switches), not a running total or the day before's."""
    trace = _cloudy(tmp_path / "days.csv.gz", 3)
    titles: dict[str, str] = {}

    def keep_title(figure: Figure, path: Path, **kwargs: object) -> None:
        Path(path).touch()  # the file the plot is drawn into, renamed to its name once drawn
        titles[Path(path).name.removesuffix(".partial")] = figure.get_suptitle()

    monkeypatch.setattr(Figure, "savefig", keep_title)
    assert main(["--trace", str(trace), "--plot", str(tmp_path / "plots")]) == 0
    result = simulate_trace(read_trace(str(trace)), "pv", {}, SiteLimits(), SimSettings())
    days = result.metrics.days
    assert sorted(titles) == [f"pv_{day}.png" for day in sorted(days)]
    assert sum(m.pauses for m in days.values()) > 3  # the clouds make pauses to count
    for day, metrics in days.items():
        assert titles[f"pv_{day}.png"] == f"pv — {day}\n{_caption(metrics)}"
