"""The benchmark script on a tiny folder: it runs, names what it skips, and writes the tables."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

import strategies

ROOT = Path(__file__).resolve().parents[2]


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def _instructions() -> ModuleType:
    sys.path.insert(0, str(ROOT / "bench"))  # it imports run.py as the script does, from its folder
    try:
        spec = importlib.util.spec_from_file_location(
            "bench_instructions", ROOT / "bench" / "instructions.py"
        )
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return module


def _one_day_folder(tmp_path: Path, *, pv_w: float) -> Path:
    """A folder with one day of 1-minute trace: `pv_w` of sun from 06:40 to 16:40 UTC, a 300 W house."""
    folder = tmp_path / "traces"
    folder.mkdir()
    rows = "".join(f"{1_464_739_200 + 60 * i},{pv_w if 400 < i < 1000 else 0},300\n" for i in range(1440))
    (folder / "one-day.csv").write_text("timestamp,pv_w,house_w\n" + rows)
    return folder


def _bench_on_one_day(tmp_path: Path, pv_w: float, *names: str) -> str:
    """RESULTS.md of the bench run with these strategies on one day of `pv_w` sun."""
    folder = _one_day_folder(tmp_path, pv_w=pv_w)
    out = tmp_path / "RESULTS.md"
    assert _bench().main([str(folder), "--out", str(out), *(f"--strategy={n}" for n in names)]) == 0
    return out.read_text()


def test_bench_writes_results_and_reports_a_missing_strategy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(strategies.BUILTINS, "missing", "strategies.not_there:Nope")
    text = _bench_on_one_day(tmp_path, 3000, "off", "missing")
    assert "## one-day.csv" in text
    assert "| off |" in text
    assert "`missing`: strategy.name = 'missing': cannot import 'strategies.not_there'" in text
    assert "Speed target" in text
    assert "(best of 9; median " in text
    assert " s of CPU time (the least of the 9)" in text
    assert "skipping strategy 'missing'" in capsys.readouterr().err


def test_bench_without_traces_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _bench().main([str(tmp_path)]) == 2
    assert "no *.csv or *.csv.gz traces" in capsys.readouterr().err


def test_bench_holds_pv_against_both_evcc_rows(tmp_path: Path) -> None:
    text = _bench_on_one_day(tmp_path, 6000, "pv", "evcc-default")
    assert "| evcc-default, evcc's switching |" in text
    assert "Reference check — `evcc-default, evcc's switching`" in text
    assert "| fewer pauses/day than evcc-default (same safety layer) |" in text
    assert "| fewer stops/day than `evcc-default, evcc's switching` |" in text
    assert "| evcc-default, evcc's switching, mA |" in text
    assert "| ≤ ½ of the switches/day of `evcc-default, evcc's switching, mA` |" in text


def test_bench_lists_each_time_a_strategy_was_over_the_fuse(tmp_path: Path) -> None:
    """A 27.6 A step on each phase (house 8 kW on top of a 16 A car) at 10:00 and 11:00 UTC, gone after a
    minute: `fast` cuts the car in the cycle that sees it, so each step is one short episode."""
    folder = tmp_path / "traces"
    folder.mkdir()
    house = [8000 if i in range(600, 601) or i in range(660, 661) else 300 for i in range(1440)]
    rows = "".join(f"{1_464_739_200 + 60 * i},0,{w}\n" for i, w in enumerate(house))
    (folder / "steps.csv").write_text("timestamp,pv_w,house_w\n" + rows)
    out = tmp_path / "RESULTS.md"
    assert _bench().main([str(folder), "--out", str(out), "--strategy=fast", "--strategy=off"]) == 0
    line = next(x for x in out.read_text().splitlines() if x.startswith("Over the fuse: "))
    assert line.startswith("Over the fuse: `fast` 2 times, the longest ")
    assert "at most 27.6 A on the 25 A fuse" in line
    assert "`off`" not in line


def test_frontier_tabulates_every_setting_it_tries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _one_day_folder(tmp_path, pv_w=3000)
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    frontier = importlib.import_module("frontier")
    out = tmp_path / "FRONTIER.md"
    assert frontier.main([str(folder), "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    table = [line for line in lines if line.startswith("| ") and not line.startswith("| pv setting")]
    assert len(table) == len(frontier.SETTINGS_TRIED)
    assert table[0].startswith("| defaults |")


def test_the_instruction_count_simulates_the_speed_checks_day_and_needs_valgrind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    instructions = _instructions()
    trace = _one_day_folder(tmp_path, pv_w=3000) / "one-day.csv"
    assert instructions.main(["--simulate", "1", str(trace)]) == 0  # the child valgrind measures
    monkeypatch.setattr(instructions.shutil, "which", lambda _name: None)
    assert instructions.main([str(trace.parent)]) == 2
    assert "valgrind is not installed" in capsys.readouterr().err
