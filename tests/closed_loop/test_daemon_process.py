"""The installed command itself, as systemd runs it, against the emulators on loopback."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

from controller.clock import SystemClock
from controller.simulation.meter_emulator import MeterEmulator
from controller.simulation.peblar_emulator import PeblarEmulator

TOKEN = "c0ffee" * 10 + "beef"


def config(path: Path, meter_port: int, url: str, extra: str = "") -> Path:
    path.write_text(
        f"""
[site]
main_fuse_a = 25

[meter]
preset = "sdm630"
host = "127.0.0.1"
port = {meter_port}
timeout_s = 0.5

[charger]
url = "{url}"
max_requests_per_s = 50

[control]
interval_s = 1
stale_after_s = 5

[strategy]
name = "fast"
{extra}
""",
        encoding="utf-8",
    )
    return path


def env() -> dict[str, str]:
    return {**os.environ, "PEBLAR_SURPLUS_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"}


async def test_sigterm_writes_the_exit_state_and_exits(tmp_path: Path) -> None:
    async with PeblarEmulator(SystemClock(), token=TOKEN) as charger, MeterEmulator("sdm630") as meter:
        meter.set_values(phase_power_w=(500.0, 500.0, 500.0))
        cfg = config(tmp_path / "config.toml", meter.port, charger.url)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "controller",
            "run",
            "-c",
            str(cfg),
            env=env(),
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stderr is not None
        lines = []
        while True:
            line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
            lines.append(line)
            assert line, "".join(lines)
            if "grid=" in line:
                break
        assert charger.model.rest_limit_ma == 16000
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rest = await asyncio.wait_for(proc.stderr.read(), 10)
        code = await proc.wait()
        elapsed = time.monotonic() - sent
    output = "".join(lines) + rest.decode()
    assert code == 0, output
    assert elapsed < 5.0
    assert charger.write_log[-1][1] == {"ChargeCurrentLimit": 0}
    assert "exit: wrote pause state" in output
    assert TOKEN not in output


async def test_schedule_rule_chooses_the_strategy_at_start(tmp_path: Path) -> None:
    schedule = """
[[schedule]]
cron = "0 0 1 1 *"
strategy = "fast"

[[schedule]]
cron = "* * * * *"
strategy = "off"
"""
    async with PeblarEmulator(SystemClock(), token=TOKEN) as charger, MeterEmulator("sdm630") as meter:
        meter.set_values(phase_power_w=(500.0, 500.0, 500.0))
        cfg = config(tmp_path / "config.toml", meter.port, charger.url, schedule)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "controller",
            "run",
            "--once",
            "-c",
            str(cfg),
            env=env(),
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    output = err.decode()
    assert proc.returncode == 0, output
    assert "strategy off (from schedule '* * * * *')" in output
    assert [body for _, body in charger.write_log] == [{"ChargeCurrentLimit": 0}]


async def test_dry_run_process_never_writes(tmp_path: Path) -> None:
    async with PeblarEmulator(SystemClock(), token=TOKEN) as charger, MeterEmulator("sdm630") as meter:
        meter.set_values(phase_power_w=(500.0, 500.0, 500.0))
        cfg = config(tmp_path / "config.toml", meter.port, charger.url)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "controller",
            "run",
            "--dry-run",
            "--once",
            "-c",
            str(cfg),
            env=env(),
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert "would write limit=16000mA" in err.decode()
    assert charger.writes == 0
