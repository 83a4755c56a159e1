"""Odd answers from a real pymodbus server: each must end as a `MeterError`, never as a crash.

The daemon falls back safely on a `MeterError` but aborts the cycle on anything else, and an absurd
value that slips through would mislead the fuse check, so both are tested through the real client.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from controller.meter.base import InvalidReading, MeterConfigError, MeterError
from controller.meter.modbus import ModbusMeter
from controller.meter.registers import plan, to_words
from controller.meter.settings import MeterSettings
from controller.meter.sunspec import MARKER, Model, meter_map
from controller.simulation.meter_emulator import SUNSPEC_BASE, MeterEmulator, sunspec_chain

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

TracePdu = Callable[[bool, ModbusPDU], ModbusPDU]


def settings(preset: str, port: int, **extra: object) -> MeterSettings:
    return MeterSettings.model_validate(
        {"preset": preset, "host": "127.0.0.1", "port": port, "timeout_s": 0.3, **extra}
    )


@asynccontextmanager
async def serve(image: dict[int, int], trace_pdu: TracePdu | None = None) -> AsyncIterator[int]:
    """A pymodbus server on a free loopback port serving `image` as one register block (unit 1);
    `trace_pdu` may rewrite each PDU before it is sent, to play a misbehaving device or gateway."""
    low, high = min(image), max(image) + 1
    values = [image.get(address, 0) for address in range(low, high)]
    device = SimDevice(id=1, simdata=[SimData(address=low, values=values, datatype=DataType.REGISTERS)])
    server = ModbusTcpServer(device, address=("127.0.0.1", 0), trace_pdu=trace_pdu)
    await server.serve_forever(background=True)
    try:
        yield server.transport.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]


def two_registers_short(sending: bool, pdu: ModbusPDU) -> ModbusPDU:
    """Like a gateway that truncates long answers (with a consistent byte count)."""
    if sending and pdu.registers:
        pdu.registers = list(pdu.registers)[:-2]
    return pdu


async def read_error(meter: ModbusMeter) -> MeterError:
    with pytest.raises(MeterError) as caught:
        await meter.read(0)
    await meter.aclose()
    return caught.value


async def test_short_answer_is_an_invalid_reading_naming_the_block_and_counts() -> None:
    emu = MeterEmulator("sdm630")
    emu.set_values(phase_power_w=(500.0, 500.0, 500.0))
    (start, count), *_ = plan(emu.regmap)
    async with serve(emu.image, two_registers_short) as port:
        error = await read_error(ModbusMeter(settings("sdm630", port)))
    assert isinstance(error, InvalidReading)
    assert f"FC4 register {start} (+{count}): answered {count - 2} registers instead of {count}" in str(error)


async def test_sunspec_chain_running_past_register_65535_stops_with_a_config_error() -> None:
    image, _ = sunspec_chain()
    after_common = SUNSPEC_BASE + 2 + 2 + 66
    image[after_common], image[after_common + 1] = 64999, 30000  # next header would be at 70072
    async with serve(image) as port:
        error = await read_error(ModbusMeter(settings("sunspec", port)))
    assert isinstance(error, MeterConfigError)
    assert f"model 64999 at {after_common} has length 30000, which runs past register 65535" in str(error)


async def test_unforeseen_failure_in_sunspec_discovery_is_a_meter_error_saying_what_and_why() -> None:
    """A float meter model squeezed below the top of the address space: the chain itself is fine,
    but the map built from it would address registers past 65535, which pydantic rejects."""
    meter_at = 65470
    image = {SUNSPEC_BASE: MARKER[0], SUNSPEC_BASE + 1: MARKER[1]}
    headers = [(SUNSPEC_BASE + 2, 1, 66), (SUNSPEC_BASE + 70, 64998, meter_at - SUNSPEC_BASE - 72)]
    headers += [(meter_at, 213, 20), (meter_at + 22, 0xFFFF, 0)]
    for address, model_id, length in headers:
        image[address], image[address + 1] = model_id, length
    async with serve(image) as port:
        error = await read_error(ModbusMeter(settings("sunspec", port)))
    assert "SunSpec discovery: unexpected ValidationError:" in str(error)
    assert "\n" not in str(error)


async def test_unforeseen_failure_while_connecting_is_a_meter_error() -> None:
    meter = ModbusMeter(MeterSettings(preset="sdm630", transport="serial", serial_port="bogus://meter"))
    error = await read_error(meter)
    assert "meter bogus://meter unit 1: connecting: unexpected ValueError:" in str(error)


@pytest.mark.parametrize(
    ("preset", "current_a", "max_power_w", "reason"),
    [
        ("em24-e1", (-2000.0, 16.0, 16.0), None, "L1 current 2000 A (more than 300 A"),
        ("sdm630", (1e6, 16.0, 16.0), None, "L1 current 1000000 A (more than 300 A"),
        ("sdm630", (16.0, 120.0, 16.0), 23000.0, "L2 current 120 A (more than 100 A"),
    ],
)
async def test_absurd_phase_current_is_rejected_before_it_reaches_the_fuse_check(
    preset: str, current_a: tuple[float, float, float], max_power_w: float | None, reason: str
) -> None:
    async with MeterEmulator(preset) as emu:
        emu.set_values(phase_power_w=(3680.0, 3680.0, 3680.0), current_a=current_a)
        meter = ModbusMeter(settings(preset, emu.port, max_power_w=max_power_w))
        error = await read_error(meter)
    assert isinstance(error, InvalidReading)
    assert reason in str(error)


async def test_large_exporting_current_within_the_bound_is_kept_with_its_sign() -> None:
    async with MeterEmulator("em24-e1") as emu:
        emu.set_values(phase_power_w=(-9000.0, 500.0, 500.0), current_a=(-95.0, 2.2, 2.2))
        meter = ModbusMeter(settings("em24-e1", emu.port, max_power_w=23000.0))
        reading = await meter.read(0)
        await meter.aclose()
    assert reading.phases[0].current_a == pytest.approx(-95.0)


async def test_one_phase_reading_nan_while_the_others_read_is_rejected() -> None:
    """L1 carries 10 A of house while export shows on L2/L3: without L1's value the fuse check would
    take L1's load from the net total, which the export makes negative."""
    async with MeterEmulator("sdm630") as emu:
        emu.set_values(phase_power_w=(2300.0, -2300.0, -2300.0))
        regmap = emu.meters[0]
        specs = regmap.specs()
        emu._encode(regmap, specs["power_l1"], math.nan)
        emu._encode(regmap, specs["current_l1"], math.nan)
        meter = ModbusMeter(settings("sdm630", emu.port))
        error = await read_error(meter)
    assert isinstance(error, InvalidReading)
    assert "no valid current on L1 (NaN or not-implemented marker)" in str(error)


async def test_a_meter_model_shorter_than_its_registers_is_a_corrupt_map() -> None:
    """Model 203 declares 20 registers: its powers and energies would be read from whatever follows."""
    image = {SUNSPEC_BASE: MARKER[0], SUNSPEC_BASE + 1: MARKER[1]}
    meter_at = SUNSPEC_BASE + 70
    for address, model_id, length in [
        (SUNSPEC_BASE + 2, 1, 66),
        (meter_at, 203, 20),
        (meter_at + 22, 0xFFFF, 0),
    ]:
        image[address], image[address + 1] = model_id, length
    for address in range(meter_at + 2, meter_at + 120):
        image.setdefault(address, 0)
    async with serve(image) as port:
        error = await read_error(ModbusMeter(settings("sunspec", port)))
    assert isinstance(error, MeterConfigError)
    assert f"model 203 at {meter_at} has length 20, shorter than the 53 registers" in str(error)


@pytest.mark.parametrize("model_id", [201, 211])
async def test_a_single_phase_sunspec_meter_is_read_without_its_absent_phases(model_id: int) -> None:
    """Models 201/211 leave phases B and C unimplemented: that is the model, not a lost value."""
    image, [(_, address)] = sunspec_chain((model_id,))
    three_phase = meter_map(Model(model_id + 2, address, 124, 0), export_positive=False)
    values = {"current_l1": 10.0, "voltage_l1": 230.0, "power": 2300.0, "power_l1": 2300.0}
    for name, spec in three_phase.specs().items():
        if spec.scale_factor_address is not None:
            image[spec.scale_factor_address] = 0
        if name in values:
            words = to_words(values[name], spec.type, three_phase.word_order)
        elif name.endswith(("_l2", "_l3")):
            words = (
                to_words(math.nan, "float32", three_phase.word_order) if spec.type == "float32" else [0x8000]
            )
        else:
            continue
        for offset, word in enumerate(words):
            image[spec.address + offset] = word
    async with serve(image) as port:
        meter = ModbusMeter(settings("sunspec", port))
        reading = await meter.read(0)
        await meter.aclose()
    assert reading.power_w == pytest.approx(2300.0)
    assert [phase.current_a for phase in reading.phases] == [pytest.approx(10.0)]
