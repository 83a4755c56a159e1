"""Every preset read over real Modbus TCP from the emulator, decoded to the right physical values."""

from __future__ import annotations

import contextlib
import logging
import math

import pytest

from controller.meter.base import InvalidReading, MeterExceptionReply, MeterTimeout, MeterUnreachable
from controller.meter.modbus import ModbusMeter
from controller.meter.presets import NAMES
from controller.meter.registers import RegisterMap, decode, plan, to_words
from controller.meter.settings import MeterSettings
from controller.simulation.meter_emulator import MeterEmulator

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

# Distinct per-phase values, and a phase that exports, so a swapped register or sign shows.
PHASE_W = (2300.0, -1150.0, 690.0)
VOLTS = (231.0, 229.5, 233.2)


def settings(preset: str, port: int, **extra: object) -> MeterSettings:
    return MeterSettings.model_validate(
        {"preset": preset, "host": "127.0.0.1", "port": port, "timeout_s": 0.3, **extra}
    )


@pytest.mark.parametrize("preset", NAMES)
async def test_every_preset_decodes_power_sign_and_phases(preset: str) -> None:
    async with MeterEmulator(preset) as emu:
        emu.set_values(phase_power_w=PHASE_W, voltage_v=VOLTS, import_kwh=1234.5, export_kwh=678.9)
        meter = ModbusMeter(settings(preset, emu.port, connect_delay_s=0, request_delay_s=0))
        try:
            reading = await meter.read(now=100.0)
        finally:
            await meter.aclose()
    phases = 1 if preset == "sdm120" else 3
    expected_total = sum(PHASE_W[:phases]) if preset != "sdm120" else PHASE_W[0]
    assert reading.power_w == pytest.approx(expected_total, abs=10)
    assert len(reading.phases) == phases
    for n, phase in enumerate(reading.phases):
        assert phase.power_w == pytest.approx(PHASE_W[n], abs=10)
        if phase.voltage_v is not None:
            assert phase.voltage_v == pytest.approx(VOLTS[n], abs=0.15)
        if phase.current_a is not None:
            assert phase.current_a == pytest.approx(PHASE_W[n] / VOLTS[n], abs=0.02)
            assert math.copysign(1, phase.current_a) == math.copysign(1, PHASE_W[n])


async def test_invert_flips_the_sign_for_a_meter_wired_backwards() -> None:
    async with MeterEmulator("sdm630") as emu:
        emu.set_values(phase_power_w=PHASE_W)
        meter = ModbusMeter(settings("sdm630", emu.port, invert=True))
        reading = await meter.read(0)
        await meter.aclose()
    assert reading.power_w == pytest.approx(-sum(PHASE_W), abs=1)
    assert reading.phases[1].current_a is not None
    assert reading.phases[1].current_a > 0


async def test_sunspec_meter_index_picks_the_second_meter_in_the_chain() -> None:
    async with MeterEmulator("sunspec") as emu:
        emu.set_values(phase_power_w=PHASE_W, voltage_v=VOLTS)
        first = ModbusMeter(settings("sunspec", emu.port))
        second = ModbusMeter(settings("sunspec", emu.port, meter_index=1))
        assert (await first.read(0)).power_w == pytest.approx(sum(PHASE_W), abs=10)
        assert (await second.read(0)).power_w == pytest.approx(sum(PHASE_W), abs=1)
        assert "model 203" in first.describe()
        assert "model 213" in second.describe()
        third = ModbusMeter(settings("sunspec", emu.port, meter_index=2))
        with pytest.raises(Exception, match="has 2 meter"):
            await third.read(0)
        for m in (first, second, third):
            await m.aclose()


async def test_eastron_reads_in_one_even_request() -> None:
    async with MeterEmulator("sdm630") as emu:
        emu.set_values(phase_power_w=PHASE_W)
        meter = ModbusMeter(settings("sdm630", emu.port))
        await meter.read(0)
        await meter.aclose()
    assert meter.requests == 1
    assert meter.regmap is not None
    assert all(count % 2 == 0 and count <= 80 for _, count in plan(meter.regmap))


async def test_exception_reply_names_host_port_unit_and_register() -> None:
    async with MeterEmulator("sdm630") as emu:
        emu.set_values(phase_power_w=PHASE_W)
        emu.fault = "exception"
        meter = ModbusMeter(settings("sdm630", emu.port))
        with pytest.raises(MeterExceptionReply, match=rf"127\.0\.0\.1:{emu.port} unit 1, FC4 register 0"):
            await meter.read(0)
        await meter.aclose()


async def test_wrong_unit_id_is_an_exception_reply() -> None:
    async with MeterEmulator("sdm630") as emu:
        emu.set_values(phase_power_w=PHASE_W)
        meter = ModbusMeter(settings("sdm630", emu.port, unit_id=7))
        with pytest.raises(MeterExceptionReply, match="unit 7"):
            await meter.read(0)
        await meter.aclose()


async def test_no_reply_is_a_timeout() -> None:
    async with MeterEmulator("sdm630") as emu:
        emu.set_values(phase_power_w=PHASE_W)
        emu.fault, emu.silent_s = "silent", 0.6
        meter = ModbusMeter(settings("sdm630", emu.port))
        with pytest.raises(MeterTimeout, match="no answer within 0.3 s"):
            await meter.read(0)
        await meter.aclose()


@pytest.mark.parametrize(
    ("phase_w", "volts", "reason"),
    [
        ((float("nan"), 0.0, 0.0), VOLTS, "no valid total power"),
        (PHASE_W, (231.0, 12.0, 230.0), "L2 voltage 12.0 V outside 150-300 V"),
        ((90000.0, 0.0, 0.0), VOLTS, "implausible"),
    ],
)
async def test_strange_values_are_rejected_with_the_reason(
    phase_w: tuple[float, float, float], volts: tuple[float, float, float], reason: str
) -> None:
    async with MeterEmulator("sdm630") as emu:
        emu.set_values(phase_power_w=phase_w, voltage_v=volts)
        meter = ModbusMeter(settings("sdm630", emu.port))
        with pytest.raises(InvalidReading, match=reason):
            await meter.read(0)
        await meter.aclose()


async def test_not_implemented_marker_is_missing_not_zero() -> None:
    async with MeterEmulator("huawei-sun2000") as emu:
        emu.set_values(phase_power_w=(float("nan"), float("nan"), float("nan")))
        meter = ModbusMeter(settings("huawei-sun2000", emu.port, connect_delay_s=0))
        with pytest.raises(InvalidReading, match="no valid total power"):
            await meter.read(0)
        await meter.aclose()


async def test_reader_recovers_when_the_server_comes_back() -> None:
    emu = MeterEmulator("sdm630")
    await emu.start()
    emu.set_values(phase_power_w=PHASE_W)
    meter = ModbusMeter(settings("sdm630", emu.port))
    assert (await meter.read(0)).power_w == pytest.approx(sum(PHASE_W), abs=1)
    await emu.stop()
    with pytest.raises((MeterUnreachable, MeterTimeout)):
        await meter.read(5)
    with pytest.raises(MeterUnreachable, match="cannot connect"):
        await meter.read(10)
    await emu.start()
    # Backing off: the first retry waits a second, without blocking the cycle that asks.
    with pytest.raises(MeterUnreachable, match="next attempt in 1 s"):
        await meter.read(10.2)
    assert (await meter.read(15)).power_w == pytest.approx(sum(PHASE_W), abs=1)
    await meter.aclose()
    await emu.stop()


@pytest.mark.parametrize(
    ("where", "hint"),
    [
        ({"host": "meter.invalid"}, "cannot connect; the name 'meter.invalid' does not resolve"),
        ({"host": "127.0.0.1", "port": 1}, "cannot connect; check that the meter is on and that"),
        (
            {"transport": "serial", "serial_port": "/dev/ttyNOPE", "host": None},
            "cannot connect; no device /dev/ttyNOPE: check [meter] serial_port",
        ),
    ],
)
async def test_a_meter_that_cannot_be_reached_says_what_to_check(where: dict[str, object], hint: str) -> None:
    """pymodbus keeps the reason to its own log: a typo in the name read like a meter that is off."""
    meter = ModbusMeter(MeterSettings.model_validate({"preset": "sdm630", "timeout_s": 0.3, **where}))
    with pytest.raises(MeterUnreachable) as err:
        await meter.read(0)
    assert hint in str(err.value)
    await meter.aclose()


async def _back_after(failing_reads: range | tuple[int, ...]) -> tuple[MeterEmulator, ModbusMeter]:
    """A meter read at 0 s, then off for `failing_reads` (each a read that fails), then back."""
    emu = MeterEmulator("sdm630")
    await emu.start()
    emu.set_values(phase_power_w=PHASE_W)
    meter = ModbusMeter(settings("sdm630", emu.port))
    await meter.read(0)
    await emu.stop()
    for t in failing_reads:
        with pytest.raises((MeterUnreachable, MeterTimeout)):
            await meter.read(t)
    await emu.start()
    return emu, meter


async def test_a_meter_back_after_minutes_is_read_again_within_ten_seconds() -> None:
    """The back-off is how long the controller stays blind after the meter returns."""
    emu, meter = await _back_after(range(5, 125, 5))
    answered = []
    for t in range(125, 135, 5):
        with contextlib.suppress(MeterUnreachable):
            answered.append((await meter.read(t)).time)
    assert answered and answered[0] <= 130
    await meter.aclose()
    await emu.stop()


async def test_a_clock_step_back_does_not_stretch_the_reconnect_back_off() -> None:
    """NTP steps the clock back an hour while the meter is off: the next attempt is due within the
    back-off from now, not when the clock gets back to the old retry time."""
    emu, meter = await _back_after((5, 10, 15, 20))
    assert (await meter.read(20 - 3600 + 5)).power_w == pytest.approx(sum(PHASE_W), abs=1)
    await meter.aclose()
    await emu.stop()


def test_custom_map_decodes_little_word_order_and_scale() -> None:
    regmap = RegisterMap.model_validate(
        {
            "function": 3,
            "word_order": "little",
            "power": {"address": 10, "type": "int32", "scale": 0.1},
            "voltage_l1": {"address": 12, "type": "uint16", "scale": 0.1},
        }
    )
    blocks = {10: [*to_words(-12345, "int32", "little"), 2305]}
    assert plan(regmap) == [(10, 3)]
    assert decode(regmap, blocks) == {"power": pytest.approx(-1234.5), "voltage_l1": pytest.approx(230.5)}


def test_custom_preset_requires_a_register_table() -> None:
    with pytest.raises(ValueError, match=r"meter\.registers"):
        MeterSettings.model_validate({"preset": "custom", "host": "h"})


@pytest.mark.parametrize("registers", [{"current_l1": {"address": 6}}, {"power_l1": {"address": 12}}])
def test_a_custom_map_without_a_total_power_is_refused_at_start(registers: dict[str, object]) -> None:
    """Accepted, it failed every read for want of a total: blind for good, at the fallback."""
    with pytest.raises(ValueError, match=r"meter\.registers: give `power` \(the total\) or all three"):
        MeterSettings.model_validate({"preset": "custom", "host": "h", "registers": registers})


async def test_rtu_over_tcp_through_a_transparent_gateway() -> None:
    async with MeterEmulator("sdm630", rtu=True) as emu:
        emu.set_values(phase_power_w=PHASE_W, voltage_v=VOLTS)
        meter = ModbusMeter(settings("sdm630", emu.port, transport="rtu-over-tcp"))
        reading = await meter.read(0)
        await meter.aclose()
    assert reading.power_w == pytest.approx(sum(PHASE_W), abs=1)
    assert reading.phases[2].voltage_v == pytest.approx(VOLTS[2], abs=0.01)


async def test_serial_transport_with_rtu_framing() -> None:
    """The serial code path (pyserial + RTU framing), with pyserial's socket:// URL standing in for
    /dev/ttyUSB0, since a test machine has no RS485 adapter."""
    async with MeterEmulator("sdm630", rtu=True) as emu:
        emu.set_values(phase_power_w=PHASE_W, voltage_v=VOLTS)
        meter = ModbusMeter(
            MeterSettings(
                preset="sdm630",
                transport="serial",
                serial_port=f"socket://127.0.0.1:{emu.port}",
                timeout_s=0.5,
            )
        )
        reading = await meter.read(0)
        await meter.aclose()
    assert reading.power_w == pytest.approx(sum(PHASE_W), abs=1)
    assert "socket://127.0.0.1" in meter.describe()
