"""The receding-horizon planner of bench/foresight.py on a hand-made day whose moves are known."""

from __future__ import annotations

import importlib
import math
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from tests.simulation.test_bench_bounds import _pv, minute_trace

ROOT = Path(__file__).resolve().parents[2]
# the day of test_bench_bounds: sun 06:00–15:50 UTC with a 10-minute dip at 08:00 and a 2-minute one at 12:00
LONG_DIP_WH = 50.0  # 10 minutes 300 W short of the 1-phase minimum
SHORT_DIP_WH = 100 / 3  # 2 minutes 1000 W short
EVENING_WH = 1380 * 10 / 60  # the last 10 minutes without sun, at the 1-phase minimum


@pytest.fixture
def foresight(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    return importlib.import_module("foresight")


def test_what_the_planner_does_with_more_or_less_foresight(foresight: ModuleType) -> None:
    """A stop is priced at 40 Wh: worth it for the 10-minute dip (50 Wh) and the sunless end of the day,
    not for the 2-minute dip (33 Wh). Seeing 10 minutes ahead is enough to see each dip end."""
    site = foresight.analyse(minute_trace(_pv))
    prices = (np.array([0.01]), np.array([40.0]), np.array([0.0]))
    sun_wh = (578 * 3000 + 10 * 1080 + 2 * 380) / 60

    for horizon in (10, len(site.days[0])):
        month = foresight.plan_and_follow(site, horizon, prices)
        assert month.grid_wh[0] == pytest.approx(SHORT_DIP_WH)
        assert month.stops[0] == 2
        assert month.solar_wh[0] == pytest.approx(sun_wh - 10 * 1080 / 60)

    # Seeing only the present minute, every minute of a dip looks cheaper than a stop.
    blind = foresight.plan_and_follow(site, 0, prices)
    assert blind.grid_wh[0] == pytest.approx(LONG_DIP_WH + SHORT_DIP_WH + EVENING_WH)
    assert blind.stops[0] == 0
    assert blind.switches[0] == 0
    # ... or, counting the stop that charging ends in, no minute's sun (0.5 Wh at this price) pays for it.
    wary = foresight.plan_and_follow(site, 0, prices, ends_in_stop=True)
    assert wary.solar_wh[0] == 0
    assert math.isnan(foresight.best_share(site, wary))
    assert foresight.best_share(site, blind) == pytest.approx(
        sun_wh / (sun_wh + blind.grid_wh[0] + site.lag_wh)
    )
