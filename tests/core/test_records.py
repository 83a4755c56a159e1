"""The fast constructor of the core's frozen records: same signature, still frozen."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest

from controller.core.commands import NOTHING, Command
from controller.core.records import fast_init
from controller.core.safety import SafetyMemory
from controller.core.state import ChargerInfo, DeviceHealth, SiteLimits, SiteState


def test_a_strategy_cannot_change_the_state_it_is_handed() -> None:
    state = SiteState(100.0, SiteLimits(), ChargerInfo())
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.now = 200.0  # type: ignore[misc]


def test_the_write_every_idle_cycle_shares_cannot_be_changed() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        NOTHING.limit_ma = 0  # type: ignore[misc]
    assert not NOTHING


def test_the_cores_own_records_hash_like_frozen_ones() -> None:
    """mypy takes a core_record for frozen, hence hashable: so must Python."""
    assert len({Command(6000, False), Command(6000, False), Command(0, True)}) == 2
    assert hash(SafetyMemory()) == hash(SafetyMemory())


def test_positional_keyword_and_default_arguments_build_equal_records() -> None:
    limits, info = SiteLimits(), ChargerInfo()
    by_keyword = SiteState(now=5.0, limits=limits, info=info)
    assert SiteState(5.0, limits, info) == by_keyword
    assert by_keyword.meter_health == DeviceHealth()
    assert by_keyword.grid is None


def test_each_record_gets_its_own_default_from_a_factory() -> None:
    @fast_init
    @dataclass(frozen=True, slots=True)
    class Bag:
        items: list[int] = field(default_factory=list)

    first, second = Bag(), Bag()
    first.items.append(1)
    assert second.items == []
    assert Bag([3]).items == [3]


def test_missing_and_unknown_arguments_fail_like_a_dataclass() -> None:
    with pytest.raises(TypeError):
        SiteState(1.0)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        DeviceHealth(last_okay=1.0)  # type: ignore[call-arg]


def test_classes_it_cannot_build_faithfully_are_refused() -> None:
    @dataclass(frozen=True, slots=True)
    class Checked:
        value: int

        def __post_init__(self) -> None:
            raise AssertionError

    @dataclass(slots=True)
    class Mutable:
        value: int

    for cls in (Checked, Mutable):
        with pytest.raises(TypeError, match="fast_init"):
            fast_init(cls)
