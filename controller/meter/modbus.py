"""The grid meter over Modbus (TCP, RTU over TCP, or a serial port): the only pymodbus importer.

One long-lived connection, because several inverters (SolarEdge, Huawei) accept a single client.
Every failure becomes a typed `MeterError` whose message names host, port, unit id and register, and
every implausible value an `InvalidReading` with its reason: never a silent 0.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerType

from controller.core.state import MeterReading, PhaseReading
from controller.errortext import unexpected
from controller.meter.base import (
    InvalidReading,
    MeterConfigError,
    MeterError,
    MeterExceptionReply,
    MeterTimeout,
    MeterUnreachable,
)
from controller.meter.presets import Preset, load_preset
from controller.meter.registers import RegisterMap, decode, plan
from controller.meter.settings import MeterSettings
from controller.meter.sunspec import discover

log = logging.getLogger("peblar_surplus.meter")

VOLTAGE_RANGE = (150.0, 300.0)
NOMINAL_VOLTAGE_V = 230.0
DEFAULT_MAX_POWER_W = 3 * NOMINAL_VOLTAGE_V * 100.0


MAX_RECONNECT_WAIT_S = 10.0
"""The longest wait between connection attempts: two cycles at the default interval."""


class ModbusMeter:
    def __init__(self, settings: MeterSettings) -> None:
        self.settings = settings
        preset = None if settings.preset == "custom" else load_preset(settings.preset)
        self.preset = preset
        self.port = settings.port or (preset.port if preset else 502)
        self.unit_id = settings.unit_id if settings.unit_id is not None else (preset.unit_id if preset else 1)
        self.connect_delay_s = _pick(settings.connect_delay_s, preset.connect_delay_s if preset else 0.0)
        self.request_delay_s = _pick(settings.request_delay_s, preset.request_delay_s if preset else 0.0)
        self.max_power_w = settings.max_power_w or DEFAULT_MAX_POWER_W
        self.regmap: RegisterMap | None = settings.registers if preset is None else preset.regmap
        self.map_description = "custom register map" if preset is None else preset.description
        self.requests = 0
        self._client = self._make_client(preset)
        self._lock = asyncio.Lock()
        self._retry_at = 0.0
        self._backoff_s = 0.0

    def _make_client(self, preset: Preset | None) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        s = self.settings
        common = {"timeout": s.timeout_s, "retries": 0, "reconnect_delay": 0}
        if s.transport == "serial":
            baudrate = s.baudrate or (preset.baudrate if preset else 9600)
            return AsyncModbusSerialClient(
                s.serial_port or "",
                baudrate=baudrate,
                parity=s.parity,
                stopbits=s.stopbits,
                bytesize=s.bytesize,
                **common,  # type: ignore[arg-type]
            )
        framer = FramerType.RTU if s.transport == "rtu-over-tcp" else FramerType.SOCKET
        return AsyncModbusTcpClient(s.host or "", port=self.port, framer=framer, **common)  # type: ignore[arg-type]

    @property
    def where(self) -> str:
        if self.settings.transport == "serial":
            return f"{self.settings.serial_port} unit {self.unit_id}"
        return f"{self.settings.host}:{self.port} unit {self.unit_id}"

    @property
    def provides_phase_currents(self) -> bool:
        regmap = self.regmap
        return regmap is not None and regmap.current_l1 is not None

    def describe(self) -> str:
        text = f"{self.settings.preset} at {self.where} ({self.map_description})"
        if self.regmap is not None and not self.provides_phase_currents:
            text += "; no per-phase currents: the fuse check derives them from power or assumes the worst"
        return text

    async def aclose(self) -> None:
        self._client.close()

    async def _connect(self, now: float) -> None:
        """Connect, backing off from 1 s to `MAX_RECONNECT_WAIT_S` after failures.

        An attempt at a meter that is off costs its cycle up to `timeout_s`; the back-off spares most
        cycles that, but it is also how long the controller stays blind after the meter is back, so it
        stays short (at 60 s a meter back after two minutes went unread for 25 s more)."""
        if self._client.connected:
            return
        if now < self._retry_at - self._backoff_s:
            # The clock stepped back: waiting for the old retry time could keep us blind for as long
            # as the step.
            self._retry_at = now
        if now < self._retry_at:
            raise MeterUnreachable(
                f"meter {self.where}: not connected (the last attempt failed); "
                f"next attempt in {self._retry_at - now:.0f} s"
            )
        if not await self._client.connect():
            self._backoff_s = min(max(2 * self._backoff_s, 1.0), MAX_RECONNECT_WAIT_S)
            self._retry_at = now + self._backoff_s
            raise MeterUnreachable(f"meter {self.where}: cannot connect; {await self._why_not_connected()}")
        self._backoff_s = 0.0
        if self.connect_delay_s:
            await asyncio.sleep(self.connect_delay_s)

    async def _why_not_connected(self) -> str:
        """What to check, told apart where that is cheap: pymodbus keeps the reason to its own log,
        and a name that does not resolve or a device path that does not exist reads like a meter
        that is off."""
        s = self.settings
        if s.transport == "serial":
            return _serial_hint(s.serial_port or "")
        try:
            await asyncio.wait_for(asyncio.get_running_loop().getaddrinfo(s.host, self.port), 1.0)
        except socket.gaierror:
            return f"the name {s.host!r} does not resolve: check [meter] host"
        except (TimeoutError, OSError):
            pass
        return (
            "check that the meter is on and that [meter] host and port are right; many inverters "
            "accept one Modbus TCP client at a time (close any other)"
        )

    async def _read_block(self, function: int, address: int, count: int) -> list[int]:
        if self.request_delay_s and self.requests:
            await asyncio.sleep(self.request_delay_s)
        self.requests += 1
        what = f"meter {self.where}, FC{function} register {address} (+{count})"
        call = self._client.read_input_registers if function == 4 else self._client.read_holding_registers
        try:
            response = await call(address, count=count, device_id=self.unit_id)
        except ConnectionException:
            raise MeterUnreachable(f"{what}: connection lost") from None
        except ModbusIOException:
            self._client.close()
            raise MeterTimeout(f"{what}: no answer within {self.settings.timeout_s:g} s") from None
        except ModbusException as exc:
            raise MeterUnreachable(f"{what}: {exc}") from None
        except Exception as exc:
            raise MeterError(f"{what}: {unexpected(exc)}") from exc
        if response.isError():
            code = getattr(response, "exception_code", "?")
            raise MeterExceptionReply(f"{what}: exception reply {code} (wrong register map or unit id?)")
        registers = list(response.registers)
        if len(registers) != count:
            raise InvalidReading(
                f"{what}: answered {len(registers)} registers instead of {count}; a truncated answer "
                "cannot be decoded (a gateway with a small buffer, or the wrong preset or unit id?)"
            )
        return registers

    async def read(self, now: float) -> MeterReading:
        """Raises only `MeterError`s: the daemon falls back safely on those, but anything else would
        abort the whole control cycle, fuse check included."""
        async with self._lock:
            with _meter_errors_only(f"meter {self.where}: connecting"):
                await self._connect(now)
            if self.regmap is None:
                await self._discover()
            regmap = self.regmap
            if regmap is None:
                raise MeterConfigError(f"meter {self.where}: no register map")
            blocks = {}
            for start, count in plan(regmap):
                blocks[start] = await self._read_block(regmap.function, start, count)
        with _meter_errors_only(f"meter {self.where}: decoding the answer ({self.map_description})"):
            return self._reading(now, regmap, decode(regmap, blocks))

    async def _discover(self) -> None:
        export_positive = self.preset.export_positive if self.preset is not None else False
        with _meter_errors_only(f"meter {self.where}: SunSpec discovery"):
            regmap, text = await discover(
                lambda address, count: self._read_block(3, address, count),
                self.settings.meter_index,
                export_positive,
            )
        self.regmap = regmap
        self.map_description = text
        log.info("meter %s: %s", self.where, text)

    def _reading(self, now: float, regmap: RegisterMap, values: dict[str, float | None]) -> MeterReading:
        sign = -1.0 if regmap.export_positive != self.settings.invert else 1.0
        phases = []
        for n in (1, 2, 3):
            power = values.get(f"power_l{n}")
            current = values.get(f"current_l{n}")
            voltage = values.get(f"voltage_l{n}")
            if power is None and current is None and voltage is None:
                continue
            if power is not None:
                power *= sign
            if current is not None and power is not None:
                # The direction is the phase power's. Whether a meter signs its currents, and which
                # way, is often undocumented (SolarEdge): a magnitude negated as if it were signed
                # would read an importing phase as exporting, which the fuse check counts as room.
                current = -abs(current) if power < 0 else abs(current)
            elif current is not None:
                # No phase power to give the direction: a current is taken as signed only as the meter
                # sends it. One that would have to be negated (an export-positive meter, `invert`) may
                # be a magnitude, so it counts as import, the side the fuse check is safe on.
                current = current if sign > 0 and not regmap.current_unsigned else abs(current)
            phases.append(PhaseReading(power_w=power, current_a=current, voltage_v=voltage))
        total = values.get("power")
        if total is not None:
            total *= sign
        elif phases and all(p.power_w is not None for p in phases):
            total = sum(p.power_w or 0.0 for p in phases)
        return MeterReading(
            time=now,
            power_w=self._validate(total, phases, values),
            phases=tuple(phases),
            import_kwh=values.get("import_kwh"),
            export_kwh=values.get("export_kwh"),
        )

    def _validate(
        self, total: float | None, phases: list[PhaseReading], values: dict[str, float | None]
    ) -> float:
        if total is None:
            missing = [k for k, v in values.items() if v is None and k.startswith("power")]
            raise InvalidReading(f"meter {self.where}: no valid total power (not implemented/NaN: {missing})")
        if not math.isfinite(total) or abs(total) > self.max_power_w:
            raise InvalidReading(f"meter {self.where}: implausible power {total:.0f} W")
        _check_phase_gaps(values, self.where)
        low, high = VOLTAGE_RANGE
        for n, phase in enumerate(phases, start=1):
            if phase.voltage_v is not None and not low <= phase.voltage_v <= high:
                raise InvalidReading(
                    f"meter {self.where}: L{n} voltage {phase.voltage_v:.1f} V outside "
                    f"{low:.0f}-{high:.0f} V (wrong preset or word order?)"
                )
            if phase.power_w is not None and abs(phase.power_w) > self.max_power_w:
                raise InvalidReading(f"meter {self.where}: implausible L{n} power {phase.power_w:.0f} W")
            if phase.current_a is not None:
                self._check_current(n, phase.current_a)
        return total

    def _check_current(self, n: int, current: float) -> None:
        """The fuse check trusts the meter's phase currents, so one garbled value (-2000 A, 1e6 A)
        would make an overloaded phase look idle and keep the car charging on it.

        No phase carries more than the site's whole plausible power at nominal voltage, so the bound
        follows `max_power_w` like the power checks. Only the magnitude is bounded: meters that sign
        current with power legitimately report negative currents while exporting.
        """
        limit = self.max_power_w / NOMINAL_VOLTAGE_V
        if not math.isfinite(current) or abs(current) > limit:
            raise InvalidReading(
                f"meter {self.where}: implausible L{n} current {current:.0f} A (more than {limit:.0f} A, "
                f"i.e. meter.max_power_w {self.max_power_w:.0f} W at {NOMINAL_VOLTAGE_V:.0f} V; "
                "wrong preset, scale or word order?)"
            )


def _serial_hint(path: str) -> str:
    """A look at a device node, which never waits on the device itself."""
    if not os.path.exists(path):
        return f"no device {path}: check [meter] serial_port (ls /dev/serial/by-id/)"
    if not os.access(path, os.R_OK | os.W_OK):
        return (
            f"this user may not open {path}: add it to group dialout (in the systemd unit: "
            "SupplementaryGroups=dialout, and the device's class in DeviceAllow)"
        )
    return "check the adapter's wiring (A/B), baudrate, parity and the meter's unit_id"


def _check_phase_gaps(values: dict[str, float | None], where: str) -> None:
    """One phase without a value (NaN, a marker) while the others have one is a bad answer, not a
    meter without per-phase values: the fuse check would take that phase's load from the net total,
    where export on the other phases can hide it. A meter that gives no phase a value is left to the
    total-only rule; one that gives some of them a value must give them all."""
    for quantity in ("current", "power"):
        mapped = {n: values[f"{quantity}_l{n}"] for n in (1, 2, 3) if f"{quantity}_l{n}" in values}
        missing = [n for n, value in mapped.items() if value is None]
        if missing and len(missing) < len(mapped):
            phases = ", ".join(f"L{n}" for n in missing)
            raise InvalidReading(
                f"meter {where}: no valid {quantity} on {phases} (NaN or not-implemented marker) while "
                "the other phases have one; the reading is not used"
            )


def _pick(value: float | None, default: float) -> float:
    return default if value is None else value


@contextmanager
def _meter_errors_only(doing: str) -> Iterator[None]:
    """Turns a pymodbus surprise or a decoding bug into a `MeterError`, so the daemon treats it as
    a failed meter read (and falls back safely) instead of aborting the cycle."""
    try:
        yield
    except MeterError:
        raise
    except Exception as exc:
        raise MeterError(f"{doing}: {unexpected(exc)}") from exc
