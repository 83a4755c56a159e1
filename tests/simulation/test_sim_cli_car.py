"""`simulate --car-*`: the car model's settings from the command line, checked, run and reported."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

import pytest

from controller.simulation.cli import main, register
from controller.simulation.engine import SimSettings

T0 = 1_464_739_200  # 2016-06-01T00:00:00Z
CAR_FIELDS = ("car_max_current_a", "car_phases", "car_capacity_kwh", "car_soc", "car_lag_s")


@pytest.fixture
def surplus(tmp_path: Path) -> Path:
    """A day with a constant 5 kW surplus (5.5 kW PV over a 500 W house), one row a minute."""
    path = tmp_path / "surplus.csv"
    path.write_text("timestamp,pv_w,house_w\n" + "".join(f"{T0 + 60 * i},5500,500\n" for i in range(1440)))
    return path


def _run(
    surplus: Path, tmp_path: Path, *car: str, strategy: str = "pv"
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    report, timeline = tmp_path / "r.json", tmp_path / "t.csv"
    args = [
        "--trace",
        str(surplus),
        "--strategy",
        strategy,
        "--report",
        str(report),
        "--timeline",
        str(timeline),
    ]
    assert main([*args, *car]) == 0
    with timeline.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return json.loads(report.read_text()), rows


def test_the_defaults_are_the_simulators_and_the_report_records_them(surplus: Path, tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    defaults = vars(parser.parse_args(["simulate", "--trace", "x"]))
    expected = SimSettings()
    for name in CAR_FIELDS:
        assert float(defaults[name]) == getattr(expected, name), name
    report, _ = _run(surplus, tmp_path, strategy="off")
    recorded = report["settings"]
    assert {name: recorded[name] for name in CAR_FIELDS} == {
        name: getattr(expected, name) for name in CAR_FIELDS
    }


def test_a_small_battery_fills_with_exactly_its_room(surplus: Path, tmp_path: Path) -> None:
    """The car gets its room and no more: the oracle's too, and capture is at most 1."""
    report, rows = _run(
        surplus, tmp_path, "--car-capacity-kwh", "0.02", "--car-soc", "0.25", "--car-lag-s", "0"
    )
    total = report["strategies"]["pv"]["total"]
    assert total["car_kwh"] == pytest.approx(0.015, abs=1e-9)
    assert total["oracle_kwh"] == pytest.approx(0.015, abs=1e-12)
    assert total["capture"] <= 1 + 1e-9
    assert sum(float(row["car_wh"]) for row in rows) == pytest.approx(15.0, abs=1e-6)
    assert {name: report["settings"][name] for name in CAR_FIELDS} == {
        "car_max_current_a": 16.0,
        "car_phases": 3,
        "car_capacity_kwh": 0.02,
        "car_soc": 0.25,
        "car_lag_s": 0.0,
    }


def test_a_one_phase_car_with_its_own_maximum_takes_no_more(surplus: Path, tmp_path: Path) -> None:
    """10 A on one phase is 2.3 kW: the rest of the 5 kW surplus is exported, and the oracle knows the
    car cannot take it either."""
    report, rows = _run(surplus, tmp_path, "--car-phases", "1", "--car-max-current-a", "10")
    total = report["strategies"]["pv"]["total"]
    assert total["oracle_kwh"] == pytest.approx(10 * 230 * 10 / 1000)  # 10 h plugged in at 2.3 kW
    assert total["car_kwh"] == pytest.approx(23.0, rel=2e-3)
    # the export on L2 and L3; on L1 the car's 10 A more than covers it
    assert total["max_phase_current_a"] == pytest.approx(5000 / 3 / 230, abs=0.01)
    assert max(float(row["car_w"]) for row in rows) == pytest.approx(2300, abs=1)
    assert (report["settings"]["car_phases"], report["settings"]["car_max_current_a"]) == (1, 10.0)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--car-soc", "1.5"],
            "--car-soc 1.5: out of range; give the state of charge at plug-in as a fraction",
        ),
        (
            ["--car-soc", "20"],
            "--car-soc 20: out of range; give the state of charge at plug-in as a fraction",
        ),
        (["--car-soc", "-0.1"], "--car-soc -0.1: out of range"),
        (["--car-soc", "half"], "--car-soc half: not a number; give the state of charge"),
        (["--car-max-current-a", "5"], "--car-max-current-a 5: out of range; give 6 to 80 A per phase"),
        (["--car-max-current-a", "100"], "--car-max-current-a 100: out of range; give 6 to 80 A"),
        (["--car-phases", "2"], "--car-phases 2: give 1 or 3"),
        (["--car-phases", "three"], "--car-phases three: not a number; give 1 or 3"),
        (["--car-capacity-kwh", "0"], "--car-capacity-kwh 0: out of range; give a capacity above 0 kWh"),
        (["--car-capacity-kwh", "inf"], "--car-capacity-kwh inf: out of range"),
        (["--car-lag-s", "-1"], "--car-lag-s -1: out of range; give 0 s (the car follows at once) or more"),
        (["--car-lag-s", "nan"], "--car-lag-s nan: not a number"),
    ],
)
def test_a_car_setting_out_of_range_exits_2_before_the_trace_is_read(
    surplus: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    assert main(["--trace", str(surplus), "--strategy", "off", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"peblar-surplus simulate: {expected}")
    assert err.count("\n") == 1  # one line
    assert " rows, " not in err


def test_a_stray_quote_in_a_real_size_trace_exits_2_naming_the_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = ["timestamp,pv_w,house_w", *(f"{T0 + 60 * i},0.0,158.0" for i in range(8000))]
    lines[2] = f'{T0 + 60},"0.0,158.0'
    path = tmp_path / "quote.csv"
    path.write_text("\n".join(lines) + "\n")
    assert main(["--trace", str(path), "--strategy", "off"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"peblar-surplus simulate: {path}: row 3: ")
    assert "remove the stray quote" in err
    assert "Traceback" not in err
