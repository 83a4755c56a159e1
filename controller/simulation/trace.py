"""Measured site traces: PV output and household load over time, read from CSV (optionally gzip).

A trace is the only input the simulator takes from the real world, so reading it is strict: a row that
cannot be read stops the run with the file, the row number and the column, instead of being skipped and
silently changing every metric. Gaps are not errors (real loggers drop minutes) but they are reported,
because the simulator holds the last value across them.

Format: a header, then one row per sample.

- `timestamp`: ISO 8601 (`2016-06-01T00:00:00Z`, any UTC offset; no offset means UTC) or Unix seconds.
- `pv_w`: PV AC output in W. Small negative values (inverter standby at night) are read as 0; a value
  below −`STANDBY_W` is a flipped sign or a grid-power column, and an error.
- `house_w`: household consumption without the car, in W; the same rule for negative values.
- optional `house_l1_w`, `house_l2_w`, `house_l3_w` and/or `pv_l1_w`, `pv_l2_w`, `pv_l3_w`: the split
  over the grid phases. Without them, house and PV are split evenly over three phases. When the
  per-phase house columns are present `house_w` may be left out (it is their sum); when a total and
  its phases are both present they must agree. A column the reader uses may appear only once.

Each value is the mean over the interval that starts at its timestamp and ends at the next one; the
last row lasts one typical step. Between timestamps the value is held (zero-order hold): 1-minute data
carries no information about what happened inside the minute.
"""

from __future__ import annotations

import bisect
import csv
import gzip
import io
import itertools
import math
import re
import statistics
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

REQUIRED = ("timestamp", "pv_w")
PHASE_HOUSE = ("house_l1_w", "house_l2_w", "house_l3_w")
PHASE_PV = ("pv_l1_w", "pv_l2_w", "pv_l3_w")
GAP_FACTOR = 1.5
"""A step longer than this many typical steps is a gap."""
MAX_POWER_W = 10e6
"""A value beyond this is a unit mistake (mW, say), not a household or its PV."""
LAST_UNIX_S = 32_503_680_000.0
"""3000-01-01: Unix seconds beyond it are milliseconds, or not a time at all."""
STANDBY_W = 100.0
"""A PV inverter at night or a noisy house meter reads a few watts below zero; more than this below is
not standby but a column with the wrong sign (or grid power, which is negative while exporting)."""
SPLIT_TOLERANCE_W = 1.0
"""How far `house_w` may differ from the sum of the per-phase columns (rounding in the source)."""


class TraceError(ValueError):
    """The trace cannot be used; the message names the file, the row and the column."""


@dataclass(frozen=True, slots=True)
class Gap:
    """Missing data between two consecutive rows; the earlier row's values are held across it."""

    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def describe(self) -> str:
        # a gap in a 1-second trace can be a few seconds: "0 min" would hide it
        length = f"{self.seconds:.0f} s" if self.seconds < 120 else f"{self.seconds / 60:.0f} min"
        return f"{_iso(self.start)} → {_iso(self.end)} ({length})"


@dataclass(frozen=True)
class Trace:
    """A trace in memory: parallel lists for a lean simulation loop, times in Unix seconds (UTC).

    `house_split` / `pv_split` hold, per row, the fraction of the total on each grid phase; None means
    an even split.
    """

    times: list[float]
    pv_w: list[float]
    house_w: list[float]
    step_s: float
    source: str = "trace"
    gaps: tuple[Gap, ...] = ()
    house_split: list[tuple[float, float, float]] | None = None
    pv_split: list[tuple[float, float, float]] | None = None

    def __post_init__(self) -> None:
        n = len(self.times)
        if n == 0:
            raise TraceError(f"{self.source}: no data rows")
        for name, values in (("pv_w", self.pv_w), ("house_w", self.house_w)):
            if len(values) != n:
                raise TraceError(f"{self.source}: {name} has {len(values)} values for {n} timestamps")

    @property
    def start(self) -> float:
        return self.times[0]

    @property
    def end(self) -> float:
        """Where the last sample stops holding: one typical step after the last timestamp."""
        return self.times[-1] + self.step_s

    def __len__(self) -> int:
        return len(self.times)

    def index_at(self, t: float) -> int:
        """The row whose interval holds `t` (the first row before the start, the last after the end)."""
        return max(0, bisect.bisect_right(self.times, t) - 1)

    def at(self, t: float) -> tuple[float, float]:
        """(pv_w, house_w) held at time `t`."""
        i = self.index_at(t)
        return self.pv_w[i], self.house_w[i]

    def house_phases_w(self, i: int) -> tuple[float, float, float]:
        return _split(self.house_w[i], None if self.house_split is None else self.house_split[i])

    def pv_phases_w(self, i: int) -> tuple[float, float, float]:
        return _split(self.pv_w[i], None if self.pv_split is None else self.pv_split[i])

    def segments(self, start: float, end: float) -> Iterator[tuple[float, float, int]]:
        """(from, to, row) for each held value inside [start, end), in order."""
        if end <= start:
            return
        i = self.index_at(start)
        t = start
        n = len(self.times)
        while t < end:
            nxt = self.times[i + 1] if i + 1 < n else math.inf
            stop = min(nxt, end)
            if stop > t:
                yield t, stop, i
            t = stop
            i += 1
            if i >= n:
                if t < end:
                    yield t, end, n - 1
                return

    def describe(self) -> str:
        gaps = f", {len(self.gaps)} gap(s)" if self.gaps else ""
        return (
            f"{self.source}: {len(self)} rows, {_iso(self.start)} → {_iso(self.end)}, "
            f"step {self.step_s:g} s{gaps}"
        )


def trace_labels(paths: Sequence[str]) -> dict[str, str]:
    """A name for each trace in the outputs: its file name, unless another trace has the same one
    (`2016/june.csv` and `2017/june.csv`), then the path as given, so their days stay apart. A path may
    come more than once (one run per strategy)."""
    distinct = list(dict.fromkeys(paths))
    names = [Path(path).name for path in distinct]
    pairs = zip(distinct, names, strict=True)
    return {path: name if names.count(name) == 1 else path for path, name in pairs}


def _split(total: float, fractions: tuple[float, float, float] | None) -> tuple[float, float, float]:
    if fractions is None:
        third = total / 3.0
        return third, third, third
    return total * fractions[0], total * fractions[1], total * fractions[2]


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


NOT_UTF8 = re.compile("[\udc80-\udcff]")
"""A byte that is not UTF-8, as `surrogateescape` decodes it: found in the row that holds it, where a
strict decoder fails somewhere in the 8 KB block around it and names no row."""


def _open_text(path: Path, errors: str = "strict") -> io.TextIOBase:
    with path.open("rb") as probe:
        magic = probe.read(2)
    # utf-8-sig: a byte-order mark (Excel, PowerShell's Export-Csv) is not part of the first field,
    # which the CSV reader would otherwise take for unquoted text when the header is quoted.
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", errors=errors, newline="")
    return io.TextIOWrapper(path.open("rb"), encoding="utf-8-sig", errors=errors, newline="")


def read_trace(path: str | Path) -> Trace:
    """Read a trace file (plain or gzip CSV) or raise `TraceError` naming the row and the column."""
    path = Path(path)
    try:
        try:
            with _open_text(path) as handle:
                return parse_rows(csv.reader(handle), source=str(path))
        except UnicodeDecodeError as exc:
            # read again, the bytes that are not UTF-8 kept, to name the row that holds the first;
            # only then: looking for them in every field cost a sixth of the reading
            with _open_text(path, errors="surrogateescape") as handle:
                parse_rows(csv.reader(handle), source=str(path), undecodable=True)
            raise TraceError(f"{path}: not a UTF-8 text file ({exc.reason})") from exc
    except gzip.BadGzipFile as exc:  # an OSError: junk after the data, a CRC that does not match
        raise TraceError(f"{path}: the gzip file is damaged ({exc}); copy it again") from exc
    except OSError as exc:
        raise TraceError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except (EOFError, zlib.error) as exc:
        raise TraceError(f"{path}: the gzip file is truncated or damaged ({exc}); copy it again") from exc


def parse_text(text: str, source: str = "trace") -> Trace:
    """A trace from CSV text; for tests and for traces built in memory."""
    return parse_rows(csv.reader(io.StringIO(text)), source=source)


def parse_rows(rows: Iterable[list[str]], source: str = "trace", *, undecodable: bool = False) -> Trace:
    """The parser behind `read_trace`. Row numbers in errors count the header as row 1, as an editor does.
    `undecodable`: the rows may hold bytes that are not UTF-8 (`NOT_UTF8`), each an error naming its row."""
    records = _records(rows, source, undecodable=undecodable)
    first = next(records, None)
    if first is None:
        raise TraceError(f"{source}: empty file, expected a header 'timestamp,pv_w,house_w'")
    header = [name.strip().lstrip("\ufeff").lower() for name in first[2]]
    columns = {name: i for i, name in enumerate(header)}
    for name in (*REQUIRED, "house_w", *PHASE_HOUSE, *PHASE_PV):
        if header.count(name) > 1:  # which of the two is meant cannot be known
            raise TraceError(
                f"{source}: row 1 (header): column {name!r} appears {header.count(name)} times; keep one"
            )
    has_phase_house = all(name in columns for name in PHASE_HOUSE)
    has_phase_pv = all(name in columns for name in PHASE_PV)
    missing = [name for name in REQUIRED if name not in columns]
    if "house_w" not in columns and not has_phase_house:
        missing.append("house_w")
    for group in (PHASE_HOUSE, PHASE_PV):
        present = [name for name in group if name in columns]
        if present and len(present) < 3:
            missing.extend(name for name in group if name not in columns)
    if missing:
        separator = (
            "; the columns seem to be separated by ';': use ','"
            if len(header) == 1 and ";" in header[0]
            else ""
        )
        raise TraceError(
            f"{source}: row 1 (header): missing column(s) {', '.join(missing)}; "
            f"found {', '.join(header) or 'nothing'}{separator}"
        )

    ts_col = columns["timestamp"]
    pv_col = columns["pv_w"]
    house_col = columns.get("house_w")
    times: list[float] = []
    pv: list[float] = []
    house: list[float] = []
    house_split: list[tuple[float, float, float]] = []
    pv_split: list[tuple[float, float, float]] = []
    house_phase_cols = [columns[name] for name in PHASE_HOUSE] if has_phase_house else []
    pv_phase_cols = [columns[name] for name in PHASE_PV] if has_phase_pv else []
    width = len(header)

    for row_number, last_line, row in records:
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if last_line > row_number:  # a quoted field ran over a line break: a stray quote?
            used = [ts_col, pv_col, house_col, *house_phase_cols, *pv_phase_cols]
            _single_line(row, used, header, source, row_number, last_line)
        if len(row) < width:
            raise TraceError(
                f"{source}: row {row_number}: {len(row)} field(s) for {width} columns "
                f"(column {header[len(row)]!r} is missing)"
            )
        if len(row) > width and any(field.strip() for field in row[width:]):
            # Which field is extra cannot be known, so neither can the columns of the others: a
            # decimal comma (5,5 for 5.5) would put every value after it in the next column.
            raise TraceError(
                f"{source}: row {row_number}: {len(row)} fields for {width} columns; a decimal comma "
                "(5,5 for 5.5) splits a number in two: write decimals with a point"
            )
        t = _timestamp(row[ts_col], source, row_number)
        if times and t <= times[-1]:
            word = "repeats" if t == times[-1] else "goes backwards from"
            raise TraceError(
                f"{source}: row {row_number}, column 'timestamp': time {word} the previous row "
                f"({row[ts_col].strip()!r} after {_iso(times[-1])})"
            )
        pv_total = _consumption_or_output(
            _number(row, pv_col, "pv_w", source, row_number), "pv_w", source, row_number
        )
        if has_phase_house:
            raw = [
                _number(row, col, name, source, row_number)
                for col, name in zip(house_phase_cols, PHASE_HOUSE, strict=True)
            ]
            parts = [
                _consumption_or_output(value, name, source, row_number)
                for value, name in zip(raw, PHASE_HOUSE, strict=True)
            ]
            if house_col is not None:
                total = _number(row, house_col, "house_w", source, row_number)
                _check_sum(total, raw, "house", source, row_number)
            else:
                total = sum(raw)
            house_split.append(_fractions(parts, sum(parts)))
            summed = "house_w" if house_col is not None else "house_l1_w+house_l2_w+house_l3_w"
            total = _consumption_or_output(total, summed, source, row_number)
            if house_col is None:  # the sum is sane: the phases as read, standby noise as 0 W
                total = sum(parts)
        else:
            total = _consumption_or_output(
                _number(row, columns["house_w"], "house_w", source, row_number),
                "house_w",
                source,
                row_number,
            )
        if has_phase_pv:
            raw = [
                _number(row, col, name, source, row_number)
                for col, name in zip(pv_phase_cols, PHASE_PV, strict=True)
            ]
            _check_sum(_number(row, pv_col, "pv_w", source, row_number), raw, "pv", source, row_number)
            parts = [
                _consumption_or_output(value, name, source, row_number)
                for value, name in zip(raw, PHASE_PV, strict=True)
            ]
            pv_split.append(_fractions(parts, sum(parts)))
        times.append(t)
        pv.append(pv_total)
        house.append(total)

    if not times:
        raise TraceError(f"{source}: no data rows after the header")
    step = _typical_step(times)
    gaps = tuple(Gap(a, b) for a, b in itertools.pairwise(times) if b - a > GAP_FACTOR * step)
    return Trace(
        times=times,
        pv_w=pv,
        house_w=house,
        step_s=step,
        source=source,
        gaps=gaps,
        house_split=house_split if has_phase_house else None,
        pv_split=pv_split if has_phase_pv else None,
    )


def _check_sum(total: float, phases: list[float], what: str, source: str, row_number: int) -> None:
    """A total that is not the sum of its phases: one of the columns is wrong, and which is unknown."""
    phase_sum = sum(phases)
    if abs(total - phase_sum) > max(SPLIT_TOLERANCE_W, 0.01 * abs(total)):
        raise TraceError(
            f"{source}: row {row_number}, column '{what}_w': {total:g} W is not the sum of "
            f"{what}_l1_w..{what}_l3_w ({phase_sum:g} W)"
        )


@runtime_checkable
class _Reader(Protocol):
    """What the parser needs of a csv reader: rows, and the physical lines read so far."""

    @property
    def line_num(self) -> int: ...

    def __iter__(self) -> Iterator[list[str]]: ...

    def __next__(self) -> list[str]: ...


class _Lines:
    """Rows given as a sequence, one line each, numbered as a csv reader numbers its lines."""

    def __init__(self, rows: Iterable[list[str]]) -> None:
        self._rows = iter(rows)
        self.line_num = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> list[str]:
        row = next(self._rows)
        self.line_num += 1
        return row


def _records(
    rows: Iterable[list[str]], source: str, *, undecodable: bool = False
) -> Iterator[tuple[int, int, list[str]]]:
    """(row number, last line, fields) of each record, numbered from the reader's lines, so that they
    stay an editor's after a quoted field over a line break; csv's own errors become TraceErrors
    naming the record after the last one read."""
    reader = rows if isinstance(rows, _Reader) else _Lines(rows)
    read = 0  # lines read so far
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise TraceError(_csv_problem(source, read + 1, exc)) from None
        for column, field in enumerate(row if undecodable else (), start=1):
            if (bad := NOT_UTF8.search(field)) is not None:
                raise TraceError(
                    f"{source}: not a UTF-8 text file: row {read + 1}, column {column} holds the byte "
                    f"0x{ord(bad.group()) - 0xDC00:02x}; save the file as UTF-8 (or plain ASCII) text"
                )
        yield read + 1, reader.line_num, row
        read = reader.line_num


def _csv_problem(source: str, row_number: int, exc: csv.Error) -> str:
    """csv's own errors, which are bare (a traceback and exit 1 in the CLI) and name no row. A stray
    `"` makes the rest of the file one field: csv stops at its field size limit, or in a smaller file
    reads on to the end (which `_single_line` catches)."""
    text = str(exc)
    if "field limit" in text:
        return (
            f"{source}: row {row_number}: a field that starts in this row is longer than "
            f"{csv.field_size_limit()} characters: a '\"' without its closing quote makes the rest of "
            "the file one field; remove the stray quote"
        )
    return f"{source}: row {row_number}: not readable as CSV ({text}); fix or remove the row"


def _single_line(
    row: list[str],
    columns: Sequence[int | None],
    header: list[str],
    source: str,
    row_number: int,
    last_line: int,
) -> None:
    """A value of a column the trace uses holds a line break: a quote that opened a field and did not
    close it on its line. (Columns the trace does not use may hold quoted text over several lines.)"""
    for col in columns:
        if col is not None and col < len(row) and ("\n" in row[col] or "\r" in row[col]):
            raise TraceError(
                f"{source}: row {row_number}, column {header[col]!r}: a quoted value runs on to line "
                f"{last_line}; a '\"' without its closing quote? remove the stray quote"
            )


def _fractions(parts: list[float], total: float) -> tuple[float, float, float]:
    if abs(total) < 1e-9:
        return (1 / 3, 1 / 3, 1 / 3)
    return (parts[0] / total, parts[1] / total, parts[2] / total)


def _typical_step(times: list[float]) -> float:
    """The median step, so that a few gaps do not change what counts as normal; 60 s for one row."""
    if len(times) < 2:
        return 60.0
    steps = [b - a for a, b in itertools.pairwise(times)]
    return float(statistics.median(steps))


def _number(row: list[str], col: int, name: str, source: str, row_number: int) -> float:
    text = row[col].strip()
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        shown = repr(text) if text else "an empty field"
        raise TraceError(f"{source}: row {row_number}, column {name!r}: {shown} is not a number of watts")
    if abs(value) > MAX_POWER_W:
        raise TraceError(
            f"{source}: row {row_number}, column {name!r}: {text} W is not a household's or a PV "
            f"system's power (more than {MAX_POWER_W / 1e6:g} MW); is the column in mW?"
        )
    return value


def _consumption_or_output(value: float, name: str, source: str, row_number: int) -> float:
    """PV output and house consumption are never negative; standby noise reads as 0."""
    if value < -STANDBY_W:
        what = "PV output" if name.startswith("pv") else "house consumption"
        raise TraceError(
            f"{source}: row {row_number}, column {name!r}: {value:g} W, but {what} cannot be negative "
            f"(beyond {STANDBY_W:g} W of standby); is the sign flipped, or is this the grid power?"
            + (
                " (A house column computed as grid + pv − car: clip it at 0, and recompute house_w "
                "from the clipped phases or leave it out.)"
                if name.startswith("house")
                else ""
            )
        )
    return max(value, 0.0)


def _timestamp(text: str, source: str, row_number: int) -> float:
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if 0 <= value < LAST_UNIX_S:
            return value
        millis = LAST_UNIX_S <= value < LAST_UNIX_S * 1000
        raise TraceError(
            f"{source}: row {row_number}, column 'timestamp': {text} is not Unix seconds between 1970 and "
            f"2999{'; it looks like milliseconds: divide by 1000' if millis else ''}"
        )
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        shown = repr(text) if text else "an empty field"
        raise TraceError(
            f"{source}: row {row_number}, column 'timestamp': {shown} is neither ISO 8601 "
            "(e.g. 2016-06-01T12:00:00Z) nor Unix seconds"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()
