"""What the control loop needs from any charger, and the errors it can raise.

The error classes are split by what the caller does next: try again next cycle (`ChargerUnreachable`,
`ChargerRateLimited`, `ChargerServerError`, `ChargerMalformedAnswer`, and `ChargerBadRequest`: a 404
from a charger still booting, or a request it refused once), or stop and tell the user
(`ChargerAuthError`, `ChargerWriteRefused`: a wrong token or a ReadOnly API stays so until the user
acts).
"""

from __future__ import annotations

from typing import Protocol

from controller.core.commands import Write
from controller.core.state import ChargerInfo, ChargerReading


class ChargerError(Exception):
    """Root of every charger failure; the message is written for the user."""

    status: int | None = None

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ChargerUnreachable(ChargerError):
    """Cannot connect, connection dropped, or no answer in time."""


class ChargerTimeout(ChargerUnreachable):
    """The charger accepted the connection but did not answer in time."""


class ChargerAuthError(ChargerError):
    """401: the API token is wrong or missing."""


class ChargerWriteRefused(ChargerError):
    """403, or the API is in ReadOnly mode."""


class ChargerBadRequest(ChargerError):
    """400: the charger rejected what we sent (a bug on our side, or an unsupported firmware)."""


class ChargerRateLimited(ChargerError):
    """429: the charger's shared request budget is used up."""


class ChargerServerError(ChargerError):
    """5xx from the charger."""


class ChargerMalformedAnswer(ChargerError):
    """The answer was not JSON, or not of the documented shape."""


class Charger(Protocol):
    """A charger the control loop can read and command."""

    async def probe(self, needs_write: bool = True) -> ChargerInfo:
        """Read the capabilities once at start-up; raise if the charger cannot be controlled."""
        ...

    async def read(self, now: float) -> ChargerReading:
        """One read of the EV interface and the charger's meter, stamped with the loop's `now`."""
        ...

    async def write(self, write: Write) -> None:
        """Send the fields of `write` (never called with an empty write)."""
        ...

    async def aclose(self) -> None: ...
