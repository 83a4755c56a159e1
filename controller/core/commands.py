"""Commands for the charger, and which of their fields actually need writing."""

from __future__ import annotations

from dataclasses import dataclass

from controller.core.records import core_record, fast_init
from controller.core.state import ChargerReading


@core_record
class Command:
    """What the charger should have after this cycle.

    `limit_ma` 0 pauses charging. `force_1_phase` None leaves the phase mode alone (a charger that
    cannot switch phases).
    """

    limit_ma: int
    force_1_phase: bool | None = None


@fast_init
@dataclass(frozen=True, slots=True)
class Write:
    """The fields of one PATCH /evinterface; a None field is not sent."""

    limit_ma: int | None = None
    force_1_phase: bool | None = None

    def __bool__(self) -> bool:
        return self.limit_ma is not None or self.force_1_phase is not None

    def describe(self) -> str:
        parts = []
        if self.limit_ma is not None:
            parts.append(f"limit={self.limit_ma}mA")
        if self.force_1_phase is not None:
            parts.append(f"force1p={'on' if self.force_1_phase else 'off'}")
        return " ".join(parts)


NOTHING = Write()
"""The write of a cycle that changes nothing (most of them): one shared, frozen instance. `diff`
returns it whenever there is nothing to write, so `write is NOTHING` tells an idle cycle."""


def diff(
    command: Command,
    reading: ChargerReading | None,
    *,
    now: float,
    last_write_s: float | None,
    reassert_s: float,
) -> Write:
    """Only the fields the charger does not already have, plus a periodic re-assert.

    The charger keeps no watchdog and resets its limit to the hardware maximum on a reboot, so the
    limit is written again every `reassert_s` even when the read-back agrees.
    """
    if reading is None:
        return Write(limit_ma=command.limit_ma, force_1_phase=command.force_1_phase)
    reassert = reassert_due(now, last_write_s, reassert_s)
    limit = command.limit_ma if reassert or command.limit_ma != reading.limit_ma else None
    force = command.force_1_phase
    if force is not None and force == reading.force_1_phase:
        force = None
    if limit is None and force is None:
        return NOTHING
    return Write(limit_ma=limit, force_1_phase=force)


def reassert_due(now: float, last_write_s: float | None, reassert_s: float) -> bool:
    """`diff`'s periodic re-assert, also for a write sent without a fresh reading (`Controller._cut`)."""
    return last_write_s is None or now - last_write_s >= reassert_s
