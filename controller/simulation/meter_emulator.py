"""A grid meter on loopback: a pymodbus server that serves any preset's layout from physical values.

Tests and the demo set watts, amps and volts; the emulator encodes them the way the real device does
(function code, word order, scale, sign), so the reader is tested against the device's format rather
than against itself. SunSpec presets get a chain with a common block, an inverter model and two meter
models (int+SF 203 and float 213), like an inverter with a meter behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Sequence
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from controller.meter.presets import load_preset
from controller.meter.registers import NOT_IMPLEMENTED, RegisterMap, RegisterSpec, to_words
from controller.meter.sunspec import Model, meter_map

SUNSPEC_BASE = 40000


def sunspec_chain(meter_models: Sequence[int] = (203, 213)) -> tuple[dict[int, int], list[tuple[int, int]]]:
    """Words of a SunSpec map (marker, common, inverter 103, then per meter a common + the model).

    Returns the image and each meter model's (id, address of its ID register).
    """
    image: dict[int, int] = {SUNSPEC_BASE: 0x5375, SUNSPEC_BASE + 1: 0x6E53}
    address = SUNSPEC_BASE + 2
    meters = []
    blocks = [(1, 66), (103, 50)]
    for model in meter_models:
        blocks += [(1, 65), (model, 105 if model < 210 else 124)]
    for model_id, length in blocks:
        image[address] = model_id
        image[address + 1] = length
        for offset in range(length):
            image[address + 2 + offset] = 0
        if model_id not in (1, 103):
            meters.append((model_id, address))
        address += 2 + length
    image[address] = 0xFFFF
    image[address + 1] = 0
    return image, meters


class MeterEmulator:
    def __init__(
        self, preset: str = "sdm630", *, unit_id: int | None = None, meter_index: int = 0, rtu: bool = False
    ) -> None:
        self.preset = load_preset(preset)
        self.unit_id = self.preset.unit_id if unit_id is None else unit_id
        self.image: dict[int, int] = {}
        if self.preset.sunspec:
            self.image, meters = sunspec_chain()
            self.meters = [
                meter_map(Model(mid, addr, 0, 0), self.preset.export_positive) for mid, addr in meters
            ]
            self.regmap = self.meters[meter_index]
            for spec_map in self.meters:
                self._init_scale_factors(spec_map)
        else:
            assert self.preset.regmap is not None  # noqa: S101 - non-SunSpec presets carry a map
            self.regmap = self.preset.regmap
            self.meters = [self.regmap]
            for spec in self.regmap.specs().values():
                for offset in range(spec.size):
                    self.image[spec.address + offset] = 0
        self.low = min(self.image)
        self.high = max(self.image) + 1
        self.rtu = rtu
        """Speak RTU framing over TCP, like a transparent RS485 gateway."""
        self.fault: str | None = None
        """None, "exception" (an exception reply) or "silent" (no answer)."""
        self.silent_s = 2.0
        self.reads = 0
        self.port = 0
        self._server: ModbusTcpServer | None = None

    def _init_scale_factors(self, regmap: RegisterMap) -> None:
        for name, spec in regmap.specs().items():
            if spec.scale_factor_address is not None:
                kind = name.split("_")[0]
                self.image[spec.scale_factor_address] = _SUNSPEC_SF.get(kind, 0) & 0xFFFF

    async def start(self) -> int:
        device = SimDevice(
            id=self.unit_id,
            simdata=[
                SimData(address=self.low, values=[0] * (self.high - self.low), datatype=DataType.REGISTERS)
            ],
            action=self._action,
        )
        framer = FramerType.RTU if self.rtu else FramerType.SOCKET
        self._server = ModbusTcpServer(device, address=("127.0.0.1", self.port), framer=framer)
        await self._server.serve_forever(background=True)
        self.port = self._server.transport.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.shutdown()  # type: ignore[no-untyped-call]
            self._server = None

    async def __aenter__(self) -> MeterEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _action(
        self, function_code: int, start: int, address: int, count: int, registers: list[int], *rest: Any
    ) -> Any:
        self.reads += 1
        if self.fault == "exception":
            return ExcCodes.DEVICE_BUSY
        if self.fault == "silent":
            await asyncio.sleep(self.silent_s)
        for offset in range(self.high - self.low):
            registers[offset] = self.image.get(self.low + offset, 0)
        return None

    def set_values(
        self,
        *,
        phase_power_w: Sequence[float],
        voltage_v: Sequence[float] = (230.0, 230.0, 230.0),
        current_a: Sequence[float] | None = None,
        import_kwh: float = 0.0,
        export_kwh: float = 0.0,
    ) -> None:
        """Physical values, import positive; encoded for every meter in the map (SunSpec: both)."""
        currents = (
            list(current_a)
            if current_a is not None
            else [p / v if v else 0.0 for p, v in zip(phase_power_w, voltage_v, strict=False)]
        )
        total = sum(phase_power_w)
        for regmap in self.meters:
            sign = -1.0 if regmap.export_positive else 1.0
            values: dict[str, float] = {
                "power": total * sign,
                "import_kwh": import_kwh,
                "export_kwh": export_kwh,
            }
            for n in range(3):
                if n < len(phase_power_w):
                    values[f"power_l{n + 1}"] = phase_power_w[n] * sign
                    amps = currents[n]
                    values[f"current_l{n + 1}"] = abs(amps) if regmap.current_unsigned else amps * sign
                    values[f"voltage_l{n + 1}"] = voltage_v[n]
            for name, spec in regmap.specs().items():
                if name in values:
                    self._encode(regmap, spec, values[name])

    def _encode(self, regmap: RegisterMap, spec: RegisterSpec, value: float) -> None:
        if math.isnan(value) and spec.type != "float32":
            words = _marker_words(spec.type)
        else:
            scale = spec.scale
            if spec.scale_factor_address is not None:
                sf = self.image[spec.scale_factor_address]
                scale *= 10.0 ** (sf - 0x10000 if sf >= 0x8000 else sf)
            raw = value / scale if not math.isnan(value) else value
            words = to_words(raw, spec.type, regmap.word_order)
        for offset, word in enumerate(words):
            self.image[spec.address + offset] = word


_SUNSPEC_SF = {"current": -2, "voltage": -1, "power": 1}
"""Distinct scale factors per quantity, so a reader that ignores or mixes them up fails."""


def _marker_words(dtype: str) -> list[int]:
    marker = NOT_IMPLEMENTED[dtype]
    size = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "int64": 4, "uint64": 4}[dtype]
    return [(marker >> (16 * (size - 1 - i))) & 0xFFFF for i in range(size)]
