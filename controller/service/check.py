"""`peblar-surplus check`: one read of each device, printed for a human or as JSON for scripts.

Both devices are read even when one fails, so a user sees every problem in one go.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from controller.charger.base import Charger, ChargerError
from controller.config import Config
from controller.core.state import ChargerInfo, ChargerReading, MeterReading
from controller.meter.base import Meter, MeterError


@dataclass
class CheckReport:
    meter_description: str
    meter: MeterReading | None
    meter_error: str | None
    charger: ChargerReading | None
    charger_info: ChargerInfo | None
    charger_error: str | None

    @property
    def ok(self) -> bool:
        return self.meter is not None and self.charger is not None

    def as_json(self) -> dict[str, Any]:
        meter: dict[str, Any] = {"description": self.meter_description, "ok": self.meter is not None}
        if self.meter is not None:
            meter |= {
                "power_w": self.meter.power_w,
                "phases": [
                    {"power_w": p.power_w, "current_a": p.current_a, "voltage_v": p.voltage_v}
                    for p in self.meter.phases
                ],
                "import_kwh": self.meter.import_kwh,
                "export_kwh": self.meter.export_kwh,
            }
        if self.meter_error is not None:
            meter["error"] = self.meter_error
        charger: dict[str, Any] = {"ok": self.charger is not None}
        if self.charger_info is not None:
            charger |= {
                "firmware": self.charger_info.firmware,
                "phase_count": self.charger_info.phase_count,
                "force_1_phase_allowed": self.charger_info.force_1_phase_allowed,
            }
        if self.charger is not None:
            c = self.charger
            charger |= {
                "cp_state": c.cp_state,
                "current_limit_ma": c.limit_ma,
                "current_limit_actual_ma": c.limit_actual_ma,
                "current_limit_source": c.limit_source,
                "force_1_phase": c.force_1_phase,
                "power_w": c.power_w,
                "phase_currents_a": list(c.phase_currents_a),
            }
        if self.charger_error is not None:
            charger["error"] = self.charger_error
        return {"ok": self.ok, "meter": meter, "charger": charger}

    def as_text(self) -> str:
        lines = [f"meter:   {self.meter_description}"]
        if self.meter is not None:
            lines.append(f"  grid power {self.meter.power_w:+.0f} W (import +, export −)")
            for index, p in enumerate(self.meter.phases, start=1):
                values = (_num(p.power_w, "W"), _num(p.current_a, "A", 2), _num(p.voltage_v, "V"))
                lines.append(f"  L{index}: " + "  ".join(values))
        else:
            lines.append(f"  FAILED: {self.meter_error}")
        lines.append("charger:")
        if self.charger_info is not None:
            i = self.charger_info
            lines.append(
                f"  firmware {i.firmware}, {i.phase_count} phases, "
                f"1p/3p switching {'allowed' if i.force_1_phase_allowed else 'not allowed'}"
            )
        if self.charger is not None:
            c = self.charger
            lines.append(f"  {c.cp_state}, drawing {c.power_w:.0f} W")
            lines.append(
                f"  limit {c.limit_ma} mA, actual {c.limit_actual_ma} mA set by {c.limit_source!r}, "
                f"force 1 phase {'on' if c.force_1_phase else 'off'}"
            )
        else:
            lines.append(f"  FAILED: {self.charger_error}")
        lines.append("OK" if self.ok else "NOT OK")
        return "\n".join(lines)


def _num(value: float | None, unit: str, digits: int = 0) -> str:
    return "—" if value is None else f"{value:.{digits}f} {unit}"


async def read_once(meter: Meter, charger: Charger, *, needs_write: bool = False) -> CheckReport:
    """One read of each; `needs_write`: a charger that would refuse our writes (ReadOnly) fails it."""
    now = time.time()

    async def meter_read() -> tuple[MeterReading | None, str | None]:
        try:
            return await meter.read(now), None
        except MeterError as exc:
            return None, str(exc)

    async def charger_read() -> tuple[ChargerInfo | None, ChargerReading | None, str | None]:
        try:
            info = await charger.probe(needs_write=needs_write)
            return info, await charger.read(now), None
        except ChargerError as exc:
            return None, None, str(exc)

    (grid, meter_error), (info, reading, charger_error) = await asyncio.gather(meter_read(), charger_read())
    return CheckReport(meter.describe(), grid, meter_error, reading, info, charger_error)


async def check(cfg: Config) -> CheckReport:
    from controller.service.daemon import open_devices  # noqa: PLC0415

    devices = open_devices(cfg)
    try:
        # `run` would refuse a ReadOnly API unless it only reads: say so now, not at start-up
        return await read_once(devices.meter, devices.charger, needs_write=not cfg.control.dry_run)
    finally:
        await devices.meter.aclose()
        await devices.charger.aclose()
