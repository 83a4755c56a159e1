"""Reading traces: good files in every accepted form, and bad rows that name row and column."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

from controller.simulation.trace import TraceError, parse_rows, parse_text, read_trace


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


def test_a_gap_of_seconds_in_a_1_second_trace_says_how_many() -> None:
    trace = parse_text("timestamp,pv_w,house_w\n0,1,1\n1,1,1\n2,1,1\n6,1,1\n7,1,1\n")
    assert [g.describe() for g in trace.gaps] == ["1970-01-01T00:00:02Z → 1970-01-01T00:00:06Z (4 s)"]


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
        (
            "timestamp,pv_w,house_w,pv_l1_w,pv_l2_w,pv_l3_w\n0,5500,500,1000,1000,1000\n",
            "row 2, column 'pv_w': 5500 W is not the sum of pv_l1_w..pv_l3_w (3000 W)",
        ),
        ("timestamp,pv_w,pv_w,house_w\n0,1,5500,500\n", "row 1 (header): column 'pv_w' appears 2 times"),
        ("timestamp,pv_w,house_w\n0,1,1\n60,5000,5,500\n", "row 3: 4 fields for 3 columns; a decimal comma"),
        ("timestamp;pv_w;house_w\n0;1;1\n", "the columns seem to be separated by ';': use ','"),
    ],
)
def test_bad_input_names_row_and_column(text: str, expected: str) -> None:
    with pytest.raises(TraceError) as info:
        parse_text(text, source="bad.csv")
    assert str(info.value).startswith("bad.csv: ")
    assert expected in str(info.value)


def test_an_empty_field_after_the_last_column_is_no_error() -> None:
    """A trailing comma on each row (some exporters write one) leaves every value in its column."""
    trace = parse_text("timestamp,pv_w,house_w\n0,1000,200,\n60,1100,300,\n")
    assert (trace.pv_w, trace.house_w) == ([1000, 1100], [200, 300])


def test_a_byte_order_mark_before_a_quoted_header_is_read_past(tmp_path: Path) -> None:
    """PowerShell's Export-Csv and Excel write a BOM and quote the header."""
    path = tmp_path / "export.csv"
    path.write_bytes('\ufeff"timestamp","pv_w","house_w"\r\n"0","1000","200"\r\n'.encode())
    assert read_trace(path).pv_w == [1000]


def test_unreadable_file_is_a_trace_error(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="cannot read"):
        read_trace(tmp_path / "missing.csv")
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(TraceError, match="not a UTF-8"):
        read_trace(binary)


def test_a_byte_that_is_not_utf8_is_named_with_its_row(tmp_path: Path) -> None:
    """A Latin-1 'ä' after 600 good rows: the decoder failed in the 8 KB block around it and the
    message named no row, where every other bad row is named."""
    rows = "".join(f"{60 * i},100,200,\n" for i in range(600))
    path = tmp_path / "t.csv"
    path.write_bytes(b"timestamp,pv_w,house_w,note\n" + rows.encode() + b"36000,1,2,k\xe4se\n")
    with pytest.raises(TraceError) as err:
        read_trace(path)
    assert str(err.value) == (
        f"{path}: not a UTF-8 text file: row 602, column 4 holds the byte 0xe4; "
        "save the file as UTF-8 (or plain ASCII) text"
    )


def test_a_damaged_gzip_file_says_to_copy_it_again(tmp_path: Path) -> None:
    good = gzip.compress(b"timestamp,pv_w,house_w\n0,1000,200\n")
    path = tmp_path / "t.csv.gz"
    path.write_bytes(good + b"garbage")  # junk after the data ('Not a gzipped file' before)
    with pytest.raises(TraceError, match=r"the gzip file is damaged .*; copy it again"):
        read_trace(path)


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


def _minutes(n: int, start: int = 0) -> list[str]:
    return [f"{60 * i},0.0,158.0" for i in range(start, start + n)]


@pytest.mark.parametrize("gz", [False, True])
def test_a_stray_quote_in_a_real_size_trace_is_a_trace_error_naming_its_row(tmp_path: Path, gz: bool) -> None:
    """The rest of the file becomes one field, past csv's field size limit: that raised a bare
    `_csv.Error` (a traceback, exit 1) instead of an error naming the row."""
    rows = ["timestamp,pv_w,house_w", *_minutes(8000)]
    rows[2] = '60,"0.0,158.0'  # row 3
    text = "\n".join(rows) + "\n"
    path = tmp_path / ("quote.csv.gz" if gz else "quote.csv")
    path.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    with pytest.raises(TraceError, match=r"quote\.csv(\.gz)?: row 3: .*without its closing quote"):
        read_trace(path)
    with pytest.raises(TraceError, match=r"^q: row 3: a field that starts in this row is longer"):
        parse_text(text, source="q")


def test_a_stray_quote_in_the_header_of_a_real_size_trace_names_row_1() -> None:
    text = "\n".join(['timestamp,"pv_w,house_w', *_minutes(8000)]) + "\n"
    with pytest.raises(TraceError, match=r"^q: row 1: .*remove the stray quote"):
        parse_text(text, source="q")


def test_a_stray_quote_in_a_used_column_of_a_small_trace_says_where_it_runs_to() -> None:
    rows = ["timestamp,pv_w,house_w", *_minutes(5)]
    rows[2] = '60,"0.0,158.0'
    with pytest.raises(TraceError) as info:
        parse_text("\n".join(rows) + "\n", source="q")
    assert str(info.value) == (
        "q: row 3, column 'pv_w': a quoted value runs on to line 6; a '\"' without its closing quote? "
        "remove the stray quote"
    )


def test_rows_are_the_file_lines_after_a_quoted_note_over_two_lines() -> None:
    """A column the trace does not use may hold quoted text over line breaks; the rows after it are
    still numbered as an editor shows them (counting records said 4 for line 5)."""
    good = 'timestamp,pv_w,house_w,note\n0,1,2,"first\nsecond"\n60,3,4,\n'
    trace = parse_text(good)
    assert (trace.times, trace.pv_w, trace.house_w) == ([0.0, 60.0], [1.0, 3.0], [2.0, 4.0])
    with pytest.raises(TraceError, match=r"^q: row 5, column 'pv_w': 'x' is not a number"):
        parse_text(good + "120,x,1,\n", source="q")


def test_rows_given_as_a_list_are_numbered_one_line_each() -> None:
    rows = [["timestamp", "pv_w", "house_w"], ["0", "1", "2"], ["60", "1", "x"]]
    with pytest.raises(TraceError, match=r"^q: row 3, column 'house_w': 'x' is not a number"):
        parse_rows(rows, source="q")
    assert parse_rows(rows[:2]).pv_w == [1.0]
