"""Conversions between amps, milliamps and watts.

Voltage is always an argument: a site at 220 V or 240 V must not silently be computed at 230 V.
"""

from __future__ import annotations

import math

MIN_SIGNAL_A = 6.0
"""IEC 61851-1: the lowest current a charger can signal to the car; below it the charger pauses."""


def ma(current_a: float) -> int:
    """Milliamps for the charger API, rounded down so a limit is never exceeded by rounding."""
    milliamps = math.floor(current_a * 1000 + 1e-6)
    return milliamps if milliamps > 0 else 0


def amps(current_ma: int) -> float:
    return current_ma / 1000.0


def power_w(current_a: float, phases: int, voltage_v: float) -> float:
    return current_a * phases * voltage_v


def current_a(power: float, phases: int, voltage_v: float) -> float:
    return power / (phases * voltage_v)
