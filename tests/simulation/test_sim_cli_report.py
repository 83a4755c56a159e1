"""`simulate` end to end on a small file: the JSON and CSV contracts, the plots, and clear input errors."""

from __future__ import annotations

import csv
import gzip
import importlib.util
import io
import json
import os
import subprocess
import sys
from importlib.machinery import ModuleSpec
from pathlib import Path

import pytest

from controller.simulation.cli import ProgressBar, main
from controller.simulation.report import TIMELINE_COLUMNS

T0 = 1_464_739_200  # 2016-06-01T00:00:00Z
CONTRACT = {
    "car_kwh",
    "car_solar_kwh",
    "car_grid_kwh",
    "solar_share",
    "oracle_kwh",
    "capture",
    "exported_kwh",
    "pauses",
    "max_pauses_10min",
    "phase_switches",
    "commands",
    "max_phase_current_a",
    "fuse_seconds_over",
}


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    """Two days, 15-minute resolution: a sunny bell from 06:00 to 18:00 UTC over a 500 W house."""
    lines = ["timestamp,pv_w,house_w"]
    for i in range(2 * 96):
        hour = (i % 96) / 4
        pv = max(0.0, 7000 * (1 - ((hour - 12) / 6) ** 2))
        lines.append(f"{T0 + 900 * i},{pv:.1f},500")
    path = tmp_path / "two-days.csv.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return path


def test_report_timeline_and_plots(trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report, timeline, plots = tmp_path / "r.json", tmp_path / "t.csv", tmp_path / "plots"
    code = main(
        [
            "--trace",
            str(trace),
            "--strategy",
            "fast",
            "--strategy",
            "off",
            "--report",
            str(report),
            "--timeline",
            str(timeline),
            "--plot",
            str(plots),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("strategy")
    assert {line.split()[0] for line in out.splitlines()[1:]} == {"fast", "off"}

    data = json.loads(report.read_text())
    assert set(data["strategies"]) == {"fast", "off"}
    for block in data["strategies"].values():
        assert set(block["total"]) >= CONTRACT
        assert set(block["days"]) == {"2016-06-01", "2016-06-02"}
        for day in block["days"].values():
            assert set(day) >= CONTRACT
    off = data["strategies"]["off"]["total"]
    assert off["car_kwh"] == 0
    assert off["capture"] == 0
    assert off["solar_share"] is None
    assert off["exported_kwh"] > 0

    with timeline.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == TIMELINE_COLUMNS
    assert rows[0]["time"] == "2016-06-01T00:00:00Z"
    assert rows[0]["command"].startswith("limit=")
    assert rows[1]["command"] == ""
    assert len(rows) == 2 * 2 * 86400 // 5

    pngs = sorted(p.name for p in plots.iterdir())
    assert pngs == [f"{s}_2016-06-0{d}.png" for s in ("fast", "off") for d in (1, 2)]
    assert (plots / pngs[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_metric_of_the_report_adds_up_from_the_timeline(tmp_path: Path) -> None:
    """A user checking a figure, or computing one of their own, sums the timeline's columns: each total
    of the report is that sum. An hour of 19 kW in the house at night (27.5 A a phase) passes the 25 A
    fuse."""
    lines = ["timestamp,pv_w,house_w"]
    for i in range(96):
        pv = max(0.0, 7000 * (1 - ((i / 4 - 12) / 6) ** 2))
        lines.append(f"{T0 + 900 * i},{pv:.1f},{19000 if 8 <= i < 12 else 500}")
    trace = tmp_path / "day.csv"
    trace.write_text("\n".join(lines) + "\n")
    report, timeline = tmp_path / "r.json", tmp_path / "t.csv"
    args = ["--trace", str(trace), "--strategy", "pv", "--plug-in", "none", "--plug-out", "none"]
    assert main([*args, "--report", str(report), "--timeline", str(timeline)]) == 0
    total = json.loads(report.read_text())["strategies"]["pv"]["total"]
    with timeline.open(newline="") as handle:
        rows = list(csv.DictReader(handle))

    def column(name: str) -> float:
        return sum(float(row[name]) for row in rows)

    for metric, name in (
        ("car_kwh", "car_wh"),
        ("car_solar_kwh", "car_solar_wh"),
        ("exported_kwh", "export_wh"),
        ("oracle_kwh", "oracle_wh"),
        ("surplus_kwh", "surplus_wh"),
    ):
        assert column(name) / 1000 == pytest.approx(total[metric], abs=1e-3), metric
    assert total["fuse_seconds_over"] == pytest.approx(3600, abs=30)
    assert column("fuse_s_over") == pytest.approx(total["fuse_seconds_over"], abs=0.5)
    assert column("dt_s") == 86400
    assert max(float(row["max_phase_a"]) for row in rows) == pytest.approx(
        total["max_phase_current_a"], abs=0.01
    )


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ("timestamp,pv_w,house_w\n0,1,1\n60,x,1\n", "row 3, column 'pv_w'"),
        ("timestamp,pv_w\n0,1\n", "missing column(s) house_w"),
        ("timestamp,pv_w,house_w\n60,1,1\n0,1,1\n", "row 3, column 'timestamp': time goes backwards"),
        ("timestamp,pv_w,house_w\n1654077600000,1,1\n", "looks like milliseconds: divide by 1000"),
        ("timestamp,pv_w,house_w\n1e20,1,1\n", "is not Unix seconds between 1970 and 2999"),
        ("timestamp,pv_w,house_w\n0,1e300,1\n", "row 2, column 'pv_w': 1e300 W is not a household's"),
    ],
)
def test_bad_trace_exits_2_naming_row_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rows: str, expected: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(rows)
    assert main(["--trace", str(path), "--strategy", "off"]) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert "Traceback" not in err


def test_unknown_strategy_and_bad_plug_times_exit_2(trace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--trace", str(trace), "--strategy", "nope"]) == 2
    assert "--strategy nope: not a built-in" in capsys.readouterr().err
    assert main(["--trace", str(trace), "--strategy", "off", "--plug-in", "25:00"]) == 2
    assert "--plug-in: '25:00' is not a time of day" in capsys.readouterr().err
    assert main(["--trace", str(trace), "--strategy", "off", "--plug-out", "none"]) == 2
    assert "give both" in capsys.readouterr().err
    assert main(["--trace", str(trace), "--strategy", "off", "--plug-in", "08:00", "--plug-out", "8:00"]) == 2
    assert "the same time" in capsys.readouterr().err


def test_every_strategy_is_checked_before_the_first_run(
    trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "r.json"
    args = ["--trace", str(trace), "--strategy", "off", "--strategy", "nope", "--report", str(report)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--strategy nope: not a built-in" in err
    assert " rows, " not in err  # nothing was read, let alone simulated


def test_a_config_whose_strategy_is_wrong_is_a_configuration_error_with_a_token_hidden(
    trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The API token pasted as the strategy's name: run and check hide it, simulate printed it."""
    token = "3f9a" * 16
    config = tmp_path / "config.toml"
    config.write_text(f'[strategy]\nname = "{token}"\n', encoding="utf-8")
    assert main(["--trace", str(trace), "-c", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"peblar-surplus simulate: configuration error: {config}: strategy.name = ")
    assert "not a built-in" in err
    assert token not in err


def test_an_empty_config_name_is_refused_as_run_refuses_it(
    trace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`-c "$CFG"` with the variable unset: 'cannot read . (Is a directory)' before."""
    assert main(["--trace", str(trace), "-c", ""]) == 2
    assert "configuration error: -c: an empty file name" in capsys.readouterr().err


def test_an_output_may_not_overwrite_a_trace(trace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = trace.read_bytes()
    assert main(["--trace", str(trace), "--strategy", "off", "--timeline", str(trace)]) == 2
    assert "is one of the traces" in capsys.readouterr().err
    assert trace.read_bytes() == before


def test_output_paths_are_checked_before_the_run(
    trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--trace", str(trace), "--strategy", "off"]
    # a folder that does not exist yet is created, as for --plot
    report = tmp_path / "new" / "deeper" / "r.json"
    assert main([*args, "--report", str(report)]) == 0
    assert json.loads(report.read_text())["strategies"]["off"]["total"]["car_kwh"] == 0
    capsys.readouterr()
    # a directory where a file belongs, or a file where a folder belongs: exit 2 before simulating
    assert main([*args, "--timeline", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"--timeline {tmp_path}: is a directory" in err
    assert " rows, " not in err  # the trace was not even read
    assert main([*args, "--report", str(report / "r.json")]) == 2
    err = capsys.readouterr().err
    assert f"--report {report / 'r.json'}: cannot create the directory {report}" in err
    assert "Traceback" not in err


def test_a_damaged_gzip_trace_is_named(
    trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = trace.read_bytes()
    cut, broken = tmp_path / "cut.csv.gz", tmp_path / "broken.csv.gz"
    cut.write_bytes(data[: len(data) // 2])
    broken.write_bytes(data[:20] + bytes(b ^ 0x55 for b in data[20:60]) + data[60:])
    for path in (cut, broken):
        assert main(["--trace", str(path), "--strategy", "off"]) == 2
        err = capsys.readouterr().err
        assert f"{path}: " in err
        assert "Traceback" not in err


def test_whole_trace_plugged(trace: Path, tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    args = ["--trace", str(trace), "--strategy", "off", "--plug-in", "none", "--plug-out", "none"]
    assert main([*args, "--report", str(report)]) == 0
    total = json.loads(report.read_text())["strategies"]["off"]["total"]
    assert total["plugged_hours"] == 48


def test_the_trace_sites_time_zone_moves_the_plug_in_window_and_the_days(trace: Path, tmp_path: Path) -> None:
    """The sun of this trace peaks at 12:00 UTC: plugged 08:00–18:00 in UTC+9 (Tokyo), the car is
    there from 23:00 to 09:00 UTC, when the sun has barely risen, and the days are Tokyo's days."""

    def run(*extra: str) -> dict[str, dict[str, float]]:
        report = tmp_path / "r.json"
        assert main(["--trace", str(trace), "--strategy", "pv", "--report", str(report), *extra]) == 0
        return json.loads(report.read_text())["strategies"]["pv"]  # type: ignore[no-any-return]

    utc, tokyo = run(), run("--timezone", "Asia/Tokyo")
    assert utc["total"]["car_kwh"] > 3 * tokyo["total"]["car_kwh"]
    assert list(utc["days"]) == ["2016-06-01", "2016-06-02"]
    days = list(tokyo["days"])
    assert (days[0], days[-1]) == ("2016-06-01", "2016-06-03")


def test_two_traces_of_the_same_name_keep_their_days_apart(trace: Path, tmp_path: Path) -> None:
    """Last year's and this year's `june.csv` from two folders: every day of both is in the report, the
    timeline and the plots, none overwrites the other's."""
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / trace.name).write_bytes(trace.read_bytes())
    first, second = str(tmp_path / "a" / trace.name), str(tmp_path / "b" / trace.name)
    report, timeline, plots = tmp_path / "r.json", tmp_path / "t.csv", tmp_path / "plots"
    args = ["--trace", first, "--trace", second, "--strategy", "off", "--report", str(report)]
    assert main([*args, "--timeline", str(timeline), "--plot", str(plots)]) == 0
    off = json.loads(report.read_text())["strategies"]["off"]
    assert sorted(off["days"]) == ["2016-06-01", "2016-06-01 " + second, "2016-06-02", "2016-06-02 " + second]
    assert off["total"]["plugged_hours"] == 2 * 20
    with timeline.open(newline="") as handle:
        assert {row["trace"] for row in csv.DictReader(handle)} == {first, second}
    assert len(list(plots.iterdir())) == 4


def test_several_traces_and_strategies_get_short_names_and_a_plot_each(trace: Path, tmp_path: Path) -> None:
    """Traces of different names go by their file names whatever the number of strategies; plots of
    traces whose names differ only after a dot (`june.csv`, `june.csv.gz`) do not overwrite each other."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = tmp_path / "a" / "june.csv.gz", tmp_path / "b" / "june.csv"
    first.write_bytes(trace.read_bytes())
    second.write_bytes(gzip.decompress(trace.read_bytes()))
    report, timeline, plots = tmp_path / "r.json", tmp_path / "t.csv", tmp_path / "plots"
    args = ["--trace", str(first), "--trace", str(second), "--strategy", "off", "--strategy", "fast"]
    assert main([*args, "--report", str(report), "--timeline", str(timeline), "--plot", str(plots)]) == 0
    days = json.loads(report.read_text())["strategies"]["fast"]["days"]
    assert sorted(days) == ["2016-06-01", "2016-06-01 june.csv", "2016-06-02", "2016-06-02 june.csv"]
    with timeline.open(newline="") as handle:
        assert {row["trace"] for row in csv.DictReader(handle)} == {"june.csv.gz", "june.csv"}
    assert sorted(p.name for p in plots.iterdir()) == sorted(
        f"{s}_june{n}_2016-06-0{d}.png" for s in ("off", "fast") for n in ("", "_2") for d in (1, 2)
    )


@pytest.mark.parametrize("flag", ["--trace", "--strategy"])
def test_a_run_given_twice_exits_2(
    flag: str, trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same trace or strategy twice would count its energy twice in the totals."""
    again = str(trace) if flag == "--trace" else "off"
    args = ["--trace", str(trace), "--strategy", "off", flag, again, "--report", str(tmp_path / "r.json")]
    assert main(args) == 2
    assert f"{flag} {again}: given twice" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_an_unknown_time_zone_exits_2(trace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--trace", str(trace), "--timezone", "Mars/Olympus"]) == 2
    assert "--timezone 'Mars/Olympus': not an IANA time zone" in capsys.readouterr().err


def test_gaps_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "gappy.csv"
    path.write_text("timestamp,pv_w,house_w\n0,1,1\n60,1,1\n120,1,1\n3720,1,1\n")
    assert main(["--trace", str(path), "--strategy", "off"]) == 0
    assert "gap: 1970-01-01T00:02:00Z → 1970-01-01T01:02:00Z (60 min)" in capsys.readouterr().err


def test_two_outputs_of_the_same_path_exit_2(
    trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The timeline was written over the report."""
    out = tmp_path / "out"
    assert main(["--trace", str(trace), "--report", str(out), "--timeline", str(out)]) == 2
    assert f"--report and --timeline: the same path {out}" in capsys.readouterr().err
    assert not out.exists()


def test_what_the_simulation_leaves_out_is_said(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The config's schedule rules when a strategy is named instead, and a trace coarser than 15 minutes."""
    config = tmp_path / "config.toml"
    config.write_text(
        '[meter]\npreset = "sdm630"\nhost = "h"\n[charger]\nurl = "http://c"\ntoken = "t"\n'
        '[strategy]\nname = "off"\n[[schedule]]\ncron = "30 8 * * *"\nstrategy = "fast"\n',
        encoding="utf-8",
    )
    hourly = tmp_path / "hourly.csv"
    hourly.write_text("timestamp,pv_w,house_w\n" + "".join(f"{3600 * i},1000,200\n" for i in range(24)))
    assert main(["--trace", str(hourly), "-c", str(config), "--strategy", "off"]) == 0
    err = capsys.readouterr().err
    assert "note: the config's 1 [[schedule]] rule(s) are not simulated; every cycle runs off" in err
    assert "note: one row every 3600 s, coarser than 900 s" in err


def test_the_files_are_written_when_the_reader_of_the_summary_has_gone(trace: Path, tmp_path: Path) -> None:
    """`simulate … --report r.json | true` exited 0 without writing r.json."""
    report = tmp_path / "r.json"
    command = [sys.executable, "-m", "controller", "simulate", "--trace", str(trace), "--report", str(report)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as proc:
        assert proc.stdout is not None
        proc.stdout.close()  # the reader leaves before the summary is printed
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "pv" in json.loads(report.read_text())["strategies"]


def test_plots_without_matplotlib_say_which_extra_to_install_before_the_run(
    trace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A plain install (the daemon's, on a Raspberry Pi) leaves matplotlib out."""
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> ModuleSpec | None:
        return None if name == "matplotlib" else real_find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert main(["--trace", str(trace), "--plot", str(tmp_path / "plots")]) == 2
    err = capsys.readouterr().err
    assert (
        "--plot: needs matplotlib, which a plain install leaves out: pip install 'peblar-surplus[plot]'"
        in err
    )
    assert " rows, " not in err  # before the trace was read


def test_progress_bar_stays_quiet_for_short_runs_and_reports_long_ones() -> None:
    quiet = io.StringIO()
    bar = ProgressBar(100, label="x", stream=quiet, delay_s=3600)
    bar.update(50)
    bar.finish()
    assert quiet.getvalue() == ""
    log = io.StringIO()
    bar = ProgressBar(100, label="x", stream=log, delay_s=0)
    for done in range(0, 101, 5):
        bar.update(done)
    bar.finish()
    lines = log.getvalue().splitlines()
    assert lines[0].startswith("x: 0%")
    assert lines[-1].startswith("x: 100%")
    assert len(lines) == 11


def test_progress_lines_never_repeat_a_percentage() -> None:
    log = io.StringIO()
    bar = ProgressBar(1000, label="x", stream=log, delay_s=0)
    bar.update(96)  # the first tenth is not reached yet, but 9.6 % rounds to 10 %
    bar.update(100)
    assert [line.split(" after")[0] for line in log.getvalue().splitlines()] == ["x: 9%", "x: 10%"]


def test_progress_bar_is_silent_when_the_process_has_no_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    """Started with stderr closed (`2>&-`), Python sets sys.stderr to None."""
    monkeypatch.setattr(sys, "stderr", None)
    bar = ProgressBar(100, label="x", delay_s=0)
    bar.update(50)
    bar.finish()


def test_a_config_for_trying_a_site_needs_no_meter_or_charger_address(tmp_path: Path) -> None:
    """`simulate` talks to no device: "what would a 32 A cable behind a 35 A fuse give?" is asked with
    those two keys, without making up a meter and a charger URL (it was refused for the missing [meter])."""
    config = tmp_path / "site.toml"
    config.write_text("[site]\nmain_fuse_a = 35\n[charger]\nmax_current_a = 32\n", encoding="utf-8")
    sunny = tmp_path / "sunny.csv"
    sunny.write_text("timestamp,pv_w,house_w\n" + "".join(f"{T0 + 600 * i},13000,300\n" for i in range(7)))
    report, timeline = tmp_path / "r.json", tmp_path / "t.csv"
    args = ["--trace", str(sunny), "-c", str(config), "--plug-in", "none", "--plug-out", "none"]
    args += ["--car-max-current-a", "32"]
    assert main([*args, "--report", str(report), "--timeline", str(timeline)]) == 0
    assert json.loads(report.read_text())["strategies"]["pv"]["total"]["main_fuse_a"] == 35
    with timeline.open(newline="") as handle:
        assert max(float(row["target_a"]) for row in csv.DictReader(handle)) > 17  # 12.7 kW on 3 phases
