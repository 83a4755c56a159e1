"""Reading traces: good files in every accepted form, and bad rows that name row and column."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

from controller.simulation.trace import TraceError, parse_text, read_trace


def test_iso_and_unix_timestamps_read_the_same() -> None:
    iso = parse_text("timestamp,pv_w,house_w\n2016-06-01T12:00:00Z,100,50\n2016-06-01T12:01:00Z,200,60\n")
    unix = parse_text("timestamp,pv_w,house_w\n1464782400,100,50\n1464782460,200,60\n")
    assert iso.times == unix.times == [1464782400.0, 1464782460.0]
    assert iso.pv_w == [100.0, 200.0]
    assert iso.house_w == [50.0, 60.0]
    assert iso.step_s == 60.0
    assert iso.end == 1464782520.0


def test_offsets_are_converted_to_utc_and_naive_times_are_utc() -> None:
    trace = parse_text("timestamp,pv_w,house_w\n2016-06-01T14:00:00+02:00,1,1\n2016-06-01T12:01:00,1,1\n")
    assert trace.times == [1464782400.0, 1464782460.0]


def test_gzip_files_are_read(tmp_path: Path) -> None:
    path = tmp_path / "t.csv.gz"
    path.write_bytes(gzip.compress(b"timestamp,pv_w,house_w\n0,1000,200\n60,1100,300\n"))
    trace = read_trace(path)
    assert trace.at(30) == (1000.0, 200.0)
    assert trace.at(61) == (1100.0, 300.0)


def test_columns_may_come_in_any_order_with_extra_columns() -> None:
    trace = parse_text("note,house_w,timestamp,pv_w\nx,200,0,1000\ny,300,60,1100\n")
    assert trace.pv_w == [1000.0, 1100.0]
    assert trace.house_w == [200.0, 300.0]


def test_negative_pv_is_standby_and_reads_as_zero() -> None:
    trace = parse_text("timestamp,pv_w,house_w\n0,-3.5,200\n")
    assert trace.pv_w == [0.0]


def test_gaps_are_reported_not_rejected() -> None:
    trace = parse_text("timestamp,pv_w,house_w\n0,1,1\n60,1,1\n120,1,1\n720,1,1\n780,1,1\n")
    assert trace.step_s == 60.0
    assert [(g.start, g.end) for g in trace.gaps] == [(120.0, 720.0)]
    assert "10 min" in trace.gaps[0].describe()


def test_zero_order_hold_segments() -> None:
    trace = parse_text("timestamp,pv_w,house_w\n0,1,1\n60,2,2\n120,3,3\n")
    assert list(trace.segments(30, 150)) == [(30, 60, 0), (60, 120, 1), (120, 150, 2)]
    # after the last row the last value holds
    assert list(trace.segments(170, 200)) == [(170, 200, 2)]


def test_per_phase_house_columns_replace_the_even_split() -> None:
    trace = parse_text("timestamp,pv_w,house_l1_w,house_l2_w,house_l3_w\n0,300,600,200,200\n")
    assert trace.house_w == [1000.0]
    assert trace.house_phases_w(0) == pytest.approx((600.0, 200.0, 200.0))
    assert trace.pv_phases_w(0) == pytest.approx((100.0, 100.0, 100.0))


def test_standby_noise_on_a_house_phase_reads_as_zero_in_the_total_too() -> None:
    trace = parse_text("timestamp,pv_w,house_l1_w,house_l2_w,house_l3_w\n0,0,-50,1000,1000\n")
    assert trace.house_w == [2000.0]
    assert trace.house_phases_w(0) == pytest.approx((0.0, 1000.0, 1000.0))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("timestamp,pv_w\n0,1\n", "row 1 (header): missing column(s) house_w"),
        ("time,pv_w,house_w\n0,1,1\n", "missing column(s) timestamp"),
        ("timestamp,pv_w,house_w\n0,1,1\n60,abc,1\n", "row 3, column 'pv_w': 'abc' is not a number"),
        ("timestamp,pv_w,house_w\n0,1,1\n60,1,\n", "row 3, column 'house_w': an empty field is not a number"),
        ("timestamp,pv_w,house_w\n0,1,nan\n", "row 2, column 'house_w': 'nan' is not a number"),
        ("timestamp,pv_w,house_w\n0,1,1\nnoon,1,1\n", "row 3, column 'timestamp': 'noon' is neither"),
        ("timestamp,pv_w,house_w\n120,1,1\n60,1,1\n", "row 3, column 'timestamp': time goes backwards"),
        ("timestamp,pv_w,house_w\n60,1,1\n60,1,1\n", "row 3, column 'timestamp': time repeats"),
        ("timestamp,pv_w,house_w\n0,1\n", "row 2: 2 field(s) for 3 columns (column 'house_w' is missing)"),
        ("timestamp,pv_w,house_w\n", "no data rows"),
        ("", "empty file"),
        ("timestamp,pv_w,house_w,house_l1_w\n0,1,1,1\n", "missing column(s) house_l2_w, house_l3_w"),
        (
            "timestamp,pv_w,house_w,house_l1_w,house_l2_w,house_l3_w\n0,1,900,100,100,100\n",
            "row 2, column 'house_w': 900 W is not the sum",
        ),
    ],
)
def test_bad_input_names_row_and_column(text: str, expected: str) -> None:
    with pytest.raises(TraceError) as info:
        parse_text(text, source="bad.csv")
    assert str(info.value).startswith("bad.csv: ")
    assert expected in str(info.value)


def test_unreadable_file_is_a_trace_error(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="cannot read"):
        read_trace(tmp_path / "missing.csv")
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(TraceError, match="not a UTF-8"):
        read_trace(binary)


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("timestamp,pv_w,house_w\n0,1000,200\n60,-3200,250\n", "pv_w"),
        ("timestamp,pv_w,house_w\n0,1000,200\n60,1000,-1500\n", "house_w"),
        ("timestamp,pv_w,house_l1_w,house_l2_w,house_l3_w\n0,1,-900,1000,1000\n", "house_l1_w"),
        ("timestamp,pv_w,house_l1_w,house_l2_w,house_l3_w\n0,1,-90,-90,-90\n", "house_l1_w+house_l2_w"),
    ],
)
def test_a_flipped_sign_is_an_error_naming_row_and_column(text: str, column: str) -> None:
    with pytest.raises(TraceError, match=rf"row \d, column '{re.escape(column)}.*sign flipped"):
        parse_text(text)


def test_standby_noise_below_zero_reads_as_zero_for_the_house_too() -> None:
    assert parse_text("timestamp,pv_w,house_w\n0,0,-20\n").house_w == [0.0]
