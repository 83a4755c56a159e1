"""Daemon speed and footprint on this machine: CPU per control cycle, resident memory, start-up time
and request rate, each against the emulators on loopback (the emulators run in another process so
their work is not counted as ours).

    python bench/daemon.py [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import platform
import secrets
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TOKEN = secrets.token_hex(32)


def serve_emulators(ports: Any, stop: Any, requests: Any) -> None:
    from controller.clock import SystemClock
    from controller.simulation.meter_emulator import MeterEmulator
    from controller.simulation.peblar_emulator import PeblarEmulator

    async def main() -> None:
        charger = PeblarEmulator(SystemClock(), token=TOKEN, rate_per_s=1000, burst=1000)
        meter = MeterEmulator("sdm630")
        await charger.start()
        await meter.start()
        meter.set_values(phase_power_w=(-1500.0, -1400.0, -1300.0))
        ports.put((meter.port, charger.url))
        while not stop.is_set():
            await asyncio.sleep(0.1)
            requests.value = charger.requests
        await meter.stop()
        await charger.stop()

    asyncio.run(main())


def config(meter_port: int, url: str, interval_s: float) -> Path:
    path = Path(tempfile.mkdtemp()) / "config.toml"
    path.write_text(
        f"""
[meter]
preset = "sdm630"
host = "127.0.0.1"
port = {meter_port}
[charger]
url = "{url}"
[control]
interval_s = {interval_s}
[strategy]
name = "pv"
""",
        encoding="utf-8",
    )
    return path


async def cycle_cpu(meter_port: int, url: str, cycles: int) -> tuple[float, float, float]:
    """CPU ms per cycle (median, p99) of the real Controller, and the pure core step alone (ms)."""
    from controller.charger.peblar.client import PeblarClient
    from controller.clock import SystemClock
    from controller.config import load
    from controller.core import control
    from controller.meter.modbus import ModbusMeter
    from controller.service.cycle import Controller
    from strategies import load as load_strategy

    cfg = load(config(meter_port, url, 5))
    client = PeblarClient(url, TOKEN, max_requests_per_s=10_000)
    controller = Controller(
        meter=ModbusMeter(cfg.meter),
        charger=client,
        strategy=load_strategy("pv", cfg.strategy.params),
        strategy_name="pv",
        limits=cfg.site_limits(),
        info=await client.probe(),
        clock=SystemClock(),
    )
    logging.getLogger("peblar_surplus").setLevel(logging.WARNING)
    samples = []
    for _ in range(cycles):
        start = time.process_time()
        result = await controller.cycle()
        samples.append((time.process_time() - start) * 1000)
    state = result.state
    strategy = load_strategy("pv", cfg.strategy.params)
    memory = control.ControlMemory()
    start = time.perf_counter()
    for _ in range(cycles):
        _, memory = control.step(state, strategy, memory)
    core_ms = (time.perf_counter() - start) * 1000 / cycles
    await controller.meter.aclose()
    await client.aclose()
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1], core_ms


def daemon_footprint(meter_port: int, url: str, seconds: float, requests: Any) -> dict[str, float]:
    import subprocess

    cfg = config(meter_port, url, 5)
    env = {**os.environ, "PEBLAR_SURPLUS_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller", "run", "-c", str(cfg)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "grid=" in line:
            break
    first_cycle_s = time.monotonic() - started
    time.sleep(0.3)
    count_before = requests.value
    t0 = time.monotonic()
    time.sleep(seconds)
    count_after = requests.value
    rate = (count_after - count_before) / (time.monotonic() - t0)
    rss_kb = 0.0
    for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kb = float(line.split()[1])
    proc.send_signal(signal.SIGTERM)
    t1 = time.monotonic()
    proc.wait(timeout=10)
    return {
        "first_cycle_s": first_cycle_s,
        "requests_per_s": rate,
        "rss_mb": rss_kb / 1024,
        "stop_s": time.monotonic() - t1,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the daemon runs at 5 s")
    parser.add_argument("--cycles", type=int, default=500)
    args = parser.parse_args()
    ports: Any = multiprocessing.Queue()
    stop = multiprocessing.Event()
    requests = multiprocessing.Value("i", 0)
    server = multiprocessing.Process(target=serve_emulators, args=(ports, stop, requests), daemon=True)
    server.start()
    meter_port, url = ports.get(timeout=10)
    median, p99, core = asyncio.run(cycle_cpu(meter_port, url, args.cycles))
    footprint = daemon_footprint(meter_port, url, args.seconds, requests)
    stop.set()
    server.join(timeout=5)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"control cycle CPU (read meter + charger, decide, log), {args.cycles} cycles: "
        f"median {median:.2f} ms, p99 {p99:.2f} ms"
    )
    print(f"pure core step (strategy + safety + diff): {core * 1000:.1f} µs")
    print(f"start to first cycle: {footprint['first_cycle_s']:.2f} s")
    print(f"daemon resident memory after {args.seconds:.0f} s: {footprint['rss_mb']:.1f} MB")
    print(f"requests to the charger at interval 5 s: {footprint['requests_per_s']:.2f} per s")
    print(f"SIGTERM to exit: {footprint['stop_s']:.2f} s")


if __name__ == "__main__":
    main()
