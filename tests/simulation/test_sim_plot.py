"""The plots' time axis is the local clock, also on the days the clocks change.

The figures are read back (patches, ticks, labels) instead of compared as images: what a reader
takes from the picture is where the shading and the curves sit against the tick labels.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from matplotlib.figure import Figure

from controller.core.state import SiteLimits
from controller.simulation.engine import SimSettings, simulate_trace
from controller.simulation.plot import DayPlots
from controller.simulation.trace import parse_text

ZONE = "Europe/Amsterdam"


def _figures(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Figures `DayPlots` saves, kept instead of written."""
    saved: list[Any] = []

    def keep(self: Figure, path: object, **kwargs: object) -> None:
        Path(str(path)).touch()  # the file the plot is drawn into, renamed to its name once drawn
        saved.append((Path(str(path)).name.removesuffix(".partial"), self))

    monkeypatch.setattr(Figure, "savefig", keep)
    return saved


def _span_x(patch: Any) -> tuple[float, float]:
    """x extent in data units of an `axvspan` (a Polygon before matplotlib 3.9, a Rectangle since)."""
    xs = patch.get_patch_transform().transform(patch.get_path().vertices)[:, 0]
    return float(min(xs)), float(max(xs))


def _tick_label_at(axis: Any, x: float) -> str:
    ticks = {
        round(float(t), 6): label.get_text()
        for t, label in zip(axis.get_xticks(), axis.get_xticklabels(), strict=True)
    }
    return ticks[round(x, 6)]


@pytest.mark.parametrize(
    ("day", "change"),
    [
        ("2016-10-30", "03:00 CEST → 02:00 CET"),
        ("2016-03-27", "02:00 CET → 03:00 CEST"),
        ("2016-06-15", None),
    ],
)
def test_the_time_axis_shows_the_local_clock_on_a_daylight_saving_day(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, day: str, change: str | None
) -> None:
    """Plugged in 08:00–18:00 local, PV from 07:00 to 17:00 local time on that day. Hours counted
    from the first row's clock put everything after the change an hour off: shading from 9 to 19 h
    after the autumn change."""
    noon = datetime.fromisoformat(f"{day}T12:00:00+00:00").timestamp()
    offset = datetime.fromtimestamp(noon, ZoneInfo(ZONE)).utcoffset()
    assert offset is not None
    local_utc_h = offset.total_seconds() / 3600  # the zone's offset after that day's change
    start = noon - 36 * 3600
    rows = ["timestamp,pv_w,house_w"]
    for i in range(72 * 60):
        t = start + 60 * i
        hour = datetime.fromtimestamp(t, UTC).hour + local_utc_h  # local hour after the change
        rows.append(f"{t:.0f},{6000 if 7 <= hour % 24 < 17 else 0},500")
    trace = parse_text("\n".join(rows) + "\n", source="dst.csv")
    settings = SimSettings(timezone=ZONE, car_lag_s=0.0)
    saved = _figures(monkeypatch)
    plots = DayPlots(
        tmp_path, "pv", strategy="pv", timezone=ZONE, span=(trace.start, trace.end), main_fuse_a=25
    )
    simulate_trace(trace, "pv", {}, SiteLimits(), settings, keep_timeline=False, on_cycle=plots)
    plots.close()
    figure = dict(saved)[f"pv_{day}.png"]
    top, bottom = figure.axes[0], figure.axes[1]

    (shade,) = top.patches  # the plugged-in stretch
    x0, x1 = _span_x(shade)
    assert (_tick_label_at(bottom, x0), _tick_label_at(bottom, x1)) == ("8", "18")
    pv = top.collections[0].get_paths()[0].vertices
    lit = [x for x, y in pv if y > 0]
    assert (_tick_label_at(bottom, min(lit)), _tick_label_at(bottom, max(lit))) == ("7", "17")
    label = bottom.get_xlabel()
    assert label.startswith(f"local time ({ZONE}), h")
    assert (change in label) if change else ("clocks change" not in label)
