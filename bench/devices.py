"""Time of one control read of each device against its emulator on loopback, and its request count.

python bench/devices.py [--reads 200]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import statistics
import time

from controller.charger.peblar.client import PeblarClient
from controller.clock import SystemClock
from controller.meter.modbus import ModbusMeter
from controller.meter.settings import MeterSettings
from controller.simulation.meter_emulator import MeterEmulator
from controller.simulation.peblar_emulator import PeblarEmulator


async def charger_read(reads: int) -> tuple[float, float]:
    token = secrets.token_hex(32)
    async with (
        PeblarEmulator(SystemClock(), token=token, rate_per_s=1e6, burst=10**6) as emulator,
        PeblarClient(emulator.url, token, max_requests_per_s=1e6) as client,
    ):
        await client.read(0)
        before = client.requests
        times = []
        for _ in range(reads):
            start = time.perf_counter()
            await client.read(0)
            times.append((time.perf_counter() - start) * 1000)
        return statistics.median(times), (client.requests - before) / reads


async def meter_read(preset: str, reads: int) -> tuple[float, float]:
    async with MeterEmulator(preset) as emulator:
        emulator.set_values(phase_power_w=(1000.0, -500.0, 300.0))
        meter = ModbusMeter(MeterSettings(preset=preset, host="127.0.0.1", port=emulator.port))  # type: ignore[arg-type]
        await meter.read(0)  # connects, and for SunSpec walks the model chain once
        before = meter.requests
        times = []
        for _ in range(reads):
            start = time.perf_counter()
            await meter.read(0)
            times.append((time.perf_counter() - start) * 1000)
        await meter.aclose()
        return statistics.median(times), (meter.requests - before) / reads


async def main(reads: int) -> None:
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    ms, requests = await charger_read(reads)
    print(f"charger: one control read (/evinterface + /meter): median {ms:.2f} ms, {requests:.0f} requests")
    for preset in ("sdm630", "sunspec"):
        ms, requests = await meter_read(preset, reads)
        print(f"meter {preset}: one complete read: median {ms:.2f} ms, {requests:.0f} Modbus request(s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--reads", type=int, default=200)
    asyncio.run(main(parser.parse_args().reads))
