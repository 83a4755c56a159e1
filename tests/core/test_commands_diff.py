"""Writes only what the charger does not already have, and re-asserts the limit periodically."""

from __future__ import annotations

from controller.core.commands import Command, Write, diff
from controller.core.state import ChargerReading


def reading(limit_ma: int = 10000, force_1p: bool = False) -> ChargerReading:
    return ChargerReading(
        time=0,
        vehicle_connected=True,
        charging=True,
        limit_ma=limit_ma,
        limit_actual_ma=limit_ma,
        limit_source="Local REST API",
        force_1_phase=force_1p,
        power_w=6900,
    )


def test_nothing_to_write_when_the_charger_already_agrees() -> None:
    write = diff(Command(10000, False), reading(), now=100, last_write_s=90, reassert_s=60)
    assert not write


def test_only_the_changed_field_is_written() -> None:
    assert diff(Command(8000, False), reading(), now=100, last_write_s=90, reassert_s=60) == Write(8000, None)
    assert diff(Command(10000, True), reading(), now=100, last_write_s=90, reassert_s=60) == Write(None, True)


def test_limit_is_reasserted_after_the_period_because_a_reboot_resets_it() -> None:
    assert diff(Command(10000, False), reading(), now=151, last_write_s=90, reassert_s=60) == Write(10000)


def test_a_charger_that_cannot_switch_gets_no_phase_field() -> None:
    assert diff(Command(0, None), reading(force_1p=True), now=1, last_write_s=0, reassert_s=60) == Write(0)


def test_unknown_charger_state_writes_everything() -> None:
    assert diff(Command(6000, True), None, now=0, last_write_s=None, reassert_s=60) == Write(6000, True)


def test_write_describes_itself_for_the_log() -> None:
    assert Write(6000, True).describe() == "limit=6000mA force1p=on"
    assert Write(None, False).describe() == "force1p=off"
