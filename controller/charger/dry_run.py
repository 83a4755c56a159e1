"""Dry-run: every read goes to the real charger, every write stops here and is only logged."""

from __future__ import annotations

import logging

from controller.charger.base import Charger
from controller.core.commands import Write
from controller.core.state import ChargerInfo, ChargerReading

log = logging.getLogger("peblar_surplus.dry_run")


class DryRunCharger:
    """Wraps any charger so that no PATCH or PUT can ever leave the process."""

    def __init__(self, inner: Charger) -> None:
        self._inner = inner

    async def probe(self, needs_write: bool = False) -> ChargerInfo:
        return await self._inner.probe(needs_write=False)

    async def read(self, now: float) -> ChargerReading:
        return await self._inner.read(now)

    async def write(self, write: Write) -> None:
        log.debug("dry-run: suppressed %s", write.describe())

    async def aclose(self) -> None:
        await self._inner.aclose()
