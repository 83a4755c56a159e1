"""The grid meter over Modbus (TCP, RTU over TCP, or a serial port): the only pymodbus importer.

One long-lived connection, because several inverters (SolarEdge, Huawei) accept a single client.
Every failure becomes a typed `MeterError` whose message names host, port, unit id and register, and
every implausible value an `InvalidReading` with its reason: never a silent 0.
"""

from __future__ import annotations

import asyncio
import logging
import math

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerType

from controller.core.state import MeterReading, PhaseReading
from controller.meter.base import (
    InvalidReading,
    MeterConfigError,
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
DEFAULT_MAX_POWER_W = 3 * 230 * 100.0


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
        """Connect, backing off from 1 s to 60 s after failures so a dead meter costs a cycle nothing."""
        if self._client.connected:
            return
        if now < self._retry_at:
            raise MeterUnreachable(
                f"meter {self.where}: cannot connect; next attempt in {self._retry_at - now:.0f} s"
            )
        if not await self._client.connect():
            self._backoff_s = min(max(2 * self._backoff_s, 1.0), 60.0)
            self._retry_at = now + self._backoff_s
            raise MeterUnreachable(f"meter {self.where}: cannot connect")
        self._backoff_s = 0.0
        if self.connect_delay_s:
            await asyncio.sleep(self.connect_delay_s)

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
        if response.isError():
            code = getattr(response, "exception_code", "?")
            raise MeterExceptionReply(f"{what}: exception reply {code} (wrong register map or unit id?)")
        return list(response.registers)

    async def read(self, now: float) -> MeterReading:
        async with self._lock:
            await self._connect(now)
            if self.regmap is None:
                await self._discover()
            regmap = self.regmap
            if regmap is None:
                raise MeterConfigError(f"meter {self.where}: no register map")
            blocks = {}
            for start, count in plan(regmap):
                blocks[start] = await self._read_block(regmap.function, start, count)
        return self._reading(now, regmap, decode(regmap, blocks))

    async def _discover(self) -> None:
        export_positive = self.preset.export_positive if self.preset is not None else False
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
            if current is not None:
                current = abs(current) if regmap.current_unsigned else current * sign
                if regmap.current_unsigned and power is not None and power < 0:
                    current = -current
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
        low, high = VOLTAGE_RANGE
        for n, phase in enumerate(phases, start=1):
            if phase.voltage_v is not None and not low <= phase.voltage_v <= high:
                raise InvalidReading(
                    f"meter {self.where}: L{n} voltage {phase.voltage_v:.1f} V outside "
                    f"{low:.0f}-{high:.0f} V (wrong preset or word order?)"
                )
            if phase.power_w is not None and abs(phase.power_w) > self.max_power_w:
                raise InvalidReading(f"meter {self.where}: implausible L{n} power {phase.power_w:.0f} W")
        return total


def _pick(value: float | None, default: float) -> float:
    return default if value is None else value
