"""Values the charger cannot do: refused at start-up with the reason, instead of done differently."""

from __future__ import annotations

import pytest

from controller.config import ConfigError, parse
from strategies import StrategyError, load

METER = {"preset": "sdm630", "host": "h"}


@pytest.mark.parametrize("phases", [1, 3])
def test_fast_charges_on_1_or_3_phases(phases: int) -> None:
    strategy = load("fast", {"phases": phases})
    assert strategy.params.phases == phases  # type: ignore[attr-defined]


@pytest.mark.parametrize("phases", [2, 0, 4])
def test_fast_refuses_a_phase_count_the_charger_cannot_switch_to(phases: int) -> None:
    """A Peblar switches between 1 and 3 phases (Force1Phase); `phases = 2` was taken and ran on 3."""
    with pytest.raises(StrategyError) as err:
        load("fast", {"phases": phases})
    message = str(err.value)
    assert message.startswith("strategy.phases: ")
    assert "1 or 3" in message


@pytest.mark.parametrize("rate", [5, 4.5, 2, 0.2])
def test_a_request_rate_within_the_chargers_budget_is_taken(rate: float) -> None:
    cfg = parse(
        {"meter": METER, "charger": {"url": "http://192.168.1.50", "token": "x", "max_requests_per_s": rate}}
    )
    assert cfg.charger.max_requests_per_s == rate


@pytest.mark.parametrize("rate", [5.5, 10, 50])
def test_a_request_rate_above_the_chargers_budget_is_refused_saying_why(rate: float) -> None:
    with pytest.raises(ConfigError) as err:
        parse(
            {
                "meter": METER,
                "charger": {"url": "http://192.168.1.50", "token": "x", "max_requests_per_s": rate},
            }
        )
    message = str(err.value)
    assert message.startswith(f"config: charger.max_requests_per_s: {rate:g} is above 5")
    assert "shared by all its clients" in message
    assert "429" in message
    assert "\n" not in message
