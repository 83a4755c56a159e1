"""The share ceilings of bench/bounds.py on a hand-made day whose dips can be priced by hand."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest

from controller.simulation.trace import Trace

ROOT = Path(__file__).resolve().parents[2]
DAY = 1_464_739_200  # 2016-06-01 00:00 UTC; plugged 08:00–18:00 Copenhagen = 06:00–16:00 UTC


def _bounds(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    return importlib.import_module("bounds")


def _pv(minute: int) -> float:
    if 8 * 60 <= minute < 8 * 60 + 10:
        return 1080.0  # a 10-minute dip 300 W short of the 1-phase minimum: 50 Wh to bridge
    if 12 * 60 <= minute < 12 * 60 + 2:
        return 380.0  # a 2-minute dip 1000 W short: 33.3 Wh to bridge
    if 6 * 60 <= minute < 15 * 60 + 50:
        return 3000.0
    return 0.0  # the sun is gone ten minutes before the car leaves: one evening stop


def test_dips_are_priced_and_the_ceilings_follow(monkeypatch: pytest.MonkeyPatch) -> None:
    bounds = _bounds(monkeypatch)
    minutes = range(1440)
    trace = Trace(
        times=[DAY + 60.0 * m for m in minutes],
        pv_w=[_pv(m) for m in minutes],
        house_w=[0.0] * 1440,
        step_s=60.0,
    )
    site = bounds.analyse(trace)
    assert site.days == 1
    assert site.evening_stops == 1
    assert sorted(round(d.cost_wh, 1) for d in site.dips) == [33.3, 50.0]
    assert site.oracle_wh == pytest.approx(578 * 3000 / 60)
    assert site.lag_wh == 0  # every drop goes to zero: a pause, which the model takes at once
    # Two stops allowed: the evening one and the 50 Wh dip; the 33.3 Wh dip is bridged.
    solar = 578 * 3000 / 60 + 2 * 380 / 60
    assert bounds.clairvoyant_share(site, 2) == pytest.approx(solar / (solar + 1000 / 30))
    # Budget 40 Wh: the long dip costs 40 Wh and a stop, the short one is bridged whole.
    stops, share = bounds.budget_rule(site, 40)
    assert stops == 2
    long_dip_solar = 8 * 1080 / 60  # 40 Wh of shortfall is 8 of its 10 minutes
    solar = 578 * 3000 / 60 + 2 * 380 / 60 + long_dip_solar
    assert share == pytest.approx(solar / (solar + 40 + 1000 / 30))
