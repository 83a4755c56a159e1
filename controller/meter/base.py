"""What the control loop needs from a grid meter, and the errors it can raise."""

from __future__ import annotations

from typing import Protocol

from controller.core.state import MeterReading


class MeterError(Exception):
    """Root of every meter failure; messages name host, port, unit id and register."""


class MeterUnreachable(MeterError):
    """Cannot connect, or the connection dropped."""


class MeterTimeout(MeterError):
    """The meter (or its gateway) did not answer in time."""


class MeterExceptionReply(MeterError):
    """The meter answered with a Modbus exception (wrong register, wrong unit id, busy)."""


class InvalidReading(MeterError):
    """The meter answered, but with values that must not be acted upon (NaN, marker, implausible)."""


class MeterConfigError(MeterError):
    """The register map or preset cannot work (e.g. no SunSpec meter model found)."""


class Meter(Protocol):
    """A grid meter: one normalised reading per call, import positive."""

    async def read(self, now: float) -> MeterReading:
        """One complete reading stamped with the loop's `now`; raises a `MeterError` subclass."""
        ...

    def describe(self) -> str:
        """Where the meter is and what it provides, for start-up logs and `check`."""
        ...

    async def aclose(self) -> None: ...
