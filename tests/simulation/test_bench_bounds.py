"""The share programme of bench/bounds.py on a hand-made day whose best schedules are known."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from controller.simulation.trace import Trace

ROOT = Path(__file__).resolve().parents[2]
DAY = 1_464_739_200  # 2016-06-01 00:00 UTC; plugged 08:00–18:00 Copenhagen = 06:00–16:00 UTC


def minute_trace(pv: Callable[[int], float], minutes: range = range(1440)) -> Trace:
    """PV `pv(minute)` W from DAY on, one sample a minute, no house load."""
    return Trace(
        times=[DAY + 60.0 * m for m in minutes],
        pv_w=[pv(m) for m in minutes],
        house_w=[0.0] * len(minutes),
        step_s=60.0,
    )


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


def test_the_best_schedules_and_the_ceiling_on_a_day_priced_by_hand(monkeypatch: pytest.MonkeyPatch) -> None:
    bounds = _bounds(monkeypatch)
    trace = minute_trace(_pv)
    site = bounds.analyse(trace)
    assert len(site.days) == 1
    assert site.oracle_wh == pytest.approx(578 * 3000 / 60)
    # prices fine enough near 0 to find every schedule the asserts name
    best = bounds.best_schedules(site, np.linspace(0.0, 0.3, 31), np.linspace(0.0, 60.0, 61), np.array([0.0]))
    # One stop a day (the evening one): both dips bridged, 83.3 Wh from the grid.
    one_stop = (578 * 3000 + 10 * 1080 + 2 * 380) / 60
    assert bounds.share_reached(site, best, 1) == pytest.approx(one_stop / (one_stop + 250 / 3))
    # Two stops: pause through the long dip, bridge the short one (33.3 Wh).
    two_stops = (578 * 3000 + 2 * 380) / 60
    assert bounds.share_reached(site, best, 2) == pytest.approx(two_stops / (two_stops + 100 / 3))
    # Three stops: pause through both dips, nothing from the grid.
    assert bounds.share_reached(site, best, 3) == pytest.approx(1.0)
    # The ceiling is never below what a schedule reaches.
    for stops in (1, 2, 3):
        assert bounds.share_ceiling(site, best, stops) >= bounds.share_reached(site, best, stops) - 1e-12


def test_a_switch_budget_makes_the_3_phase_minimum_bridge_a_dip(monkeypatch: pytest.MonkeyPatch) -> None:
    """6 kW of sun with a 20-minute dip to 2 kW, which 1 phase carries and 3 phases must bridge."""
    bounds = _bounds(monkeypatch)

    def pv(minute: int) -> float:
        if 10 * 60 <= minute < 10 * 60 + 20:
            return 2000.0
        return 6000.0 if 6 * 60 <= minute < 15 * 60 + 50 else 0.0

    trace = minute_trace(pv)
    site = bounds.analyse(trace)
    best = bounds.best_schedules(
        site, np.linspace(0.0, 0.3, 31), np.linspace(0.0, 800.0, 81), np.linspace(0.0, 800.0, 81)
    )
    # Two switches (3→1 for the dip, back to 3): all of it solar.
    assert bounds.share_reached(site, best, 1, 2) == pytest.approx(1.0)
    # No switch and one stop: the dip is bridged at 4140 W, 713 Wh from the grid.
    solar = (570 * 6000 + 20 * 2000) / 60
    bridged = solar / (solar + 20 * 2140 / 60)
    assert bounds.share_reached(site, best, 1, 0) == pytest.approx(bridged)
    assert bridged <= bounds.share_ceiling(site, best, 1, 0) < 0.995
    # No switch but a second stop: pause through the dip instead.
    assert bounds.share_reached(site, best, 2, 0) == pytest.approx(1.0)


def test_days_of_different_lengths_are_priced_as_if_run_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """The programme runs all days at once, padding the shorter ones; that must change nothing."""
    bounds = _bounds(monkeypatch)

    def pv(minute: int) -> float:
        return 1000.0 + 3000.0 * ((minute // 7) % 3 == 0) + 500.0 * ((minute // 11) % 2)

    start = 10 * 60  # the first day's trace starts at 10:00 UTC, four hours into its window
    trace = minute_trace(pv, range(start, 2 * 1440))
    site = bounds.analyse(trace)
    assert [len(day) for day in site.days] == [360, 600]
    prices = (np.array([0.0, 0.5, 2.0]), np.array([0.0, 30.0, 300.0]), np.array([0.0, 10.0, 100.0]))
    both = bounds.best_schedules(site, *prices)
    alone = [bounds.best_schedules(bounds.Site([day], site.hours, 0.0, 0.0), *prices) for day in site.days]
    for field in ("lagrangian", "solar_wh", "grid_wh", "stops", "switches"):
        assert np.allclose(getattr(both, field), sum(getattr(one, field) for one in alone)), field
