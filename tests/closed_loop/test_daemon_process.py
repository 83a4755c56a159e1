"""The installed command itself, as systemd runs it, against the emulators on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
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
max_requests_per_s = 5

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


async def command(*args: str) -> tuple[int, str, str]:
    """`python -m controller ARGS` to its end (at most 30 s): exit code, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "controller",
        *args,
        env=env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:  # timed out: leave no process behind
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@contextlib.asynccontextmanager
async def daemon(cfg: Path, **extra_env: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """`peblar-surplus run -c CFG` as a process, killed at the end if a failing test left it running."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "controller",
        "run",
        "-c",
        str(cfg),
        env={**env(), **extra_env},
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def read_until(proc: asyncio.subprocess.Process, text: str) -> str:
    """The daemon's log up to and including the first line containing `text` (at most 30 s)."""
    assert proc.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + 30
    while not lines or text not in lines[-1]:
        assert time.monotonic() < deadline, f"no {text!r} in:\n" + "".join(lines)
        line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
        assert line, "".join(lines)
        lines.append(line)
    return "".join(lines)


async def stop_daemon(proc: asyncio.subprocess.Process) -> tuple[int, str]:
    assert proc.stderr is not None
    proc.send_signal(signal.SIGTERM)
    # a liveness bound, not a speed figure (bench/daemon.py measures that): systemd gives up after
    # the unit's TimeoutStopSec=10, and a daemon still running then is killed without its exit state
    rest = await asyncio.wait_for(proc.stderr.read(), 10)
    return await proc.wait(), rest.decode()


async def test_sigterm_writes_the_exit_state_and_exits(tmp_path: Path) -> None:
    async with PeblarEmulator(SystemClock(), token=TOKEN) as charger, MeterEmulator("sdm630") as meter:
        meter.set_values(phase_power_w=(500.0, 500.0, 500.0))
        async with daemon(config(tmp_path / "config.toml", meter.port, charger.url)) as proc:
            output = await read_until(proc, "grid=")
            assert charger.model.rest_limit_ma == 16000
            code, rest = await stop_daemon(proc)
    output += rest
    assert code == 0, output
    assert charger.write_log[-1][1] == {"ChargeCurrentLimit": 0}
    assert "exit: wrote pause state" in output
    assert TOKEN not in output


async def test_sigterm_while_the_charger_does_not_answer_the_probe_still_ends_cleanly(tmp_path: Path) -> None:
    """A charger that accepts the connection and never answers holds the start-up probe for
    seconds: SIGTERM then must still try the exit state and end with 0 within the unit's
    TimeoutStopSec, not die with 143 (or a KeyboardInterrupt traceback for Ctrl-C)."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the daemon hangs up

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, MeterEmulator("sdm630") as meter:
        cfg = config(tmp_path / "config.toml", meter.port, f"http://127.0.0.1:{port}")
        async with daemon(cfg) as proc:
            output = await read_until(proc, "meter: ")
            code, rest = await stop_daemon(proc)
    output += rest
    assert code == 0, output
    assert "stopping during start-up" in output
    assert "exit: could not write pause state" in output
    assert "Traceback" not in output


async def test_run_once_keeps_the_default_signal_handling(tmp_path: Path) -> None:
    """`run --once` is a script's single cycle: SIGTERM ends it as any command, not as a clean 0
    that would read as a healthy cycle."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, MeterEmulator("sdm630") as meter:
        cfg = config(tmp_path / "config.toml", meter.port, f"http://127.0.0.1:{port}")
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
        try:
            await read_until(proc, "meter: ")
            code, _ = await stop_daemon(proc)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert code != 0


async def test_systemd_hears_ready_watchdog_and_stopping(tmp_path: Path) -> None:
    """What `Type=notify` and `WatchdogSec=` in the unit file rely on, over a real notify socket."""
    # An abstract socket, as systemd itself uses: no path-length limit, nothing left behind.
    name = f"peblar-surplus-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind("\0" + name)
        systemd.setblocking(False)
        loop = asyncio.get_running_loop()
        heard: list[str] = []

        async def hear(message: str) -> None:
            while message not in heard:
                heard.append((await asyncio.wait_for(loop.sock_recv(systemd, 4096), 30)).decode())

        def drain() -> int:
            with contextlib.suppress(BlockingIOError):
                while True:
                    heard.append(systemd.recv(4096).decode())
            return heard.count("WATCHDOG=1")

        async with PeblarEmulator(SystemClock(), token=TOKEN) as charger, MeterEmulator("sdm630") as meter:
            meter.set_values(phase_power_w=(500.0, 500.0, 500.0))
            cfg = config(tmp_path / "config.toml", meter.port, charger.url)
            async with daemon(cfg, NOTIFY_SOCKET="@" + name) as proc:
                await hear("READY=1")
                await hear("WATCHDOG=1")
                charger.faults.status_count = 10**6  # the charger answers 500 from now on
                await read_until(proc, "charger read failed)")
                pings = drain()
                await read_until(proc, "charger read failed)")
                await read_until(proc, "charger read failed)")  # the ping follows its cycle's line
                pings_while_failing = drain() - pings
                code, _ = await stop_daemon(proc)
                await hear("STOPPING=1")
    assert code == 0
    assert heard.index("READY=1") < heard.index("WATCHDOG=1")
    # The loop is alive and falls back on its own; restarting it would not bring the charger back.
    assert pings_while_failing >= 1


async def test_a_charger_that_answers_500_while_booting_is_waited_for_not_given_up(tmp_path: Path) -> None:
    """Exit code 3 means 'a restart will not help' (RestartPreventExitStatus=3): never for a 5xx."""
    async with PeblarEmulator(SystemClock(), token=TOKEN) as charger, MeterEmulator("sdm630") as meter:
        meter.set_values(phase_power_w=(500.0, 500.0, 500.0))
        charger.faults.status_count = 6
        async with daemon(config(tmp_path / "config.toml", meter.port, charger.url)) as proc:
            output = await read_until(proc, "charger not ready at start-up")
            output += await read_until(proc, "wrote limit=16000mA")
            code, rest = await stop_daemon(proc)
    assert code == 0, output + rest
    assert "charger error 500" in output


async def test_a_charger_that_comes_up_refusing_the_token_ends_the_daemon_with_3(tmp_path: Path) -> None:
    async with PeblarEmulator(SystemClock(), token=TOKEN) as charger, MeterEmulator("sdm630") as meter:
        meter.set_values(phase_power_w=(500.0, 500.0, 500.0))
        charger.faults.status_count = 10**6
        async with daemon(config(tmp_path / "config.toml", meter.port, charger.url)) as proc:
            output = await read_until(proc, "charger not ready at start-up")
            charger.token = "another" * 8  # the charger's token was changed in its web UI
            charger.faults.status_count = 0
            output += await read_until(proc, "charger refuses control")
            assert proc.stderr is not None
            rest = (await asyncio.wait_for(proc.stderr.read(), 10)).decode()
            code = await proc.wait()
    assert code == 3, output + rest
    assert "Traceback" not in output + rest
    assert (output + rest).count("charger refuses control") == 1


async def test_a_slow_charger_gives_one_line_per_slow_cycle(tmp_path: Path) -> None:
    async with PeblarEmulator(SystemClock(), token=TOKEN) as charger, MeterEmulator("sdm630") as meter:
        meter.set_values(phase_power_w=(500.0, 500.0, 500.0))
        charger.faults.delay_s = 0.7  # every request; a cycle makes at least two, the interval is 1 s
        async with daemon(config(tmp_path / "config.toml", meter.port, charger.url)) as proc:
            output = await read_until(proc, "grid=")
            between = await read_until(proc, "grid=")  # the whole of one slow cycle and its aftermath
            output += between + await read_until(proc, "grid=")
            code, rest = await stop_daemon(proc)
    assert code == 0, output + rest
    assert between.count("longer than interval_s 1 s") == 1, between
    assert "maximum number of running instances" not in output + rest


async def test_the_demo_runs_and_sums_up_without_scheduler_noise() -> None:
    code, out, err = await command("demo", "--seconds", "5")
    assert code == 0, err
    # what the demo shows goes to stdout (`demo > out.txt` keeps it); the daemon's log to stderr
    assert "demo summary:" in out
    assert "went into the car" in out
    assert re.search(r"pauses \d+ \(\d+ of them for a 1→3 switch\)", out)
    assert re.search(r"^\d\d:\d\d  pv \d+\.\d kW, house .* car \d+\.\d kW \(set: ", out, re.MULTILINE)
    assert re.search(r"^\d\d:\d\d  start at \d+\.\d A", out, re.MULTILINE)
    assert "INFO exit: wrote pause state" in err
    assert "INFO grid=" not in err  # the per-cycle lines are DEBUG in the demo
    assert "longer than interval_s" not in err
    assert "maximum number of running instances" not in err


def test_the_demo_ends_cleanly_when_the_reader_of_its_output_leaves() -> None:
    """`peblar-surplus demo | head`: every cycle with a line to print failed "unexpectedly" until the
    demo's minute was over."""
    command = [sys.executable, "-m", "controller", "demo", "--seconds", "30"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith(b"demo: pv on the bundled trace")
        proc.stdout.close()  # as `head -1` does
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert b"failed unexpectedly" not in err
    assert b"INFO exit: wrote pause state" in err  # it stopped as on SIGTERM, the charger left paused


async def test_debug_shows_the_daemon_not_every_request_of_the_libraries(tmp_path: Path) -> None:
    """`--log-level DEBUG` is for following the controller; httpx and pymodbus would add dozens of
    lines a cycle (every request, every Modbus frame) unless `--debug-libraries` asks for them."""
    async with PeblarEmulator(SystemClock(), token=TOKEN) as charger, MeterEmulator("sdm630") as meter:
        meter.set_values(phase_power_w=(500.0, 500.0, 500.0))
        cfg = str(config(tmp_path / "config.toml", meter.port, charger.url))
        code, _, ours = await command("--log-level", "DEBUG", "run", "--dry-run", "--once", "-c", cfg)
        assert code == 0, ours
        code, _, everything = await command(
            "--log-level", "DEBUG", "--debug-libraries", "run", "--dry-run", "--once", "-c", cfg
        )
        assert code == 0, everything
    library_lines = ("HTTP Request: GET", "send_request_headers", "Processing: ")
    assert "would write limit=16000mA" in ours
    assert not any(line in ours for line in library_lines), ours
    assert all(line in everything for line in library_lines[:2])


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
        code, _, output = await command("run", "--once", "-c", str(cfg))
    assert code == 0, output
    assert "strategy off (from schedule '* * * * *')" in output
    assert [body for _, body in charger.write_log] == [{"ChargeCurrentLimit": 0}]


async def test_dry_run_process_never_writes(tmp_path: Path) -> None:
    async with PeblarEmulator(SystemClock(), token=TOKEN) as charger, MeterEmulator("sdm630") as meter:
        meter.set_values(phase_power_w=(500.0, 500.0, 500.0))
        cfg = config(tmp_path / "config.toml", meter.port, charger.url)
        code, _, err = await command("run", "--dry-run", "--once", "-c", str(cfg))
    assert code == 0, err
    assert "would write limit=16000mA" in err
    assert charger.writes == 0


async def test_check_json_has_the_documented_fields_and_exit_codes(tmp_path: Path) -> None:
    async with PeblarEmulator(SystemClock(), token=TOKEN) as charger, MeterEmulator("em24-e1") as meter:
        meter.set_values(phase_power_w=(1200.0, -300.0, 450.0), voltage_v=(231.0, 229.0, 232.0))
        cfg = (
            config(tmp_path / "config.toml", meter.port, charger.url).read_text().replace("sdm630", "em24-e1")
        )
        (tmp_path / "config.toml").write_text(cfg, encoding="utf-8")
        args = ("check", "-c", str(tmp_path / "config.toml"), "--json")
        code, out, _ = await command(*args)
        assert code == 0
        report = json.loads(out)
        assert report["meter"]["power_w"] == 1350.0
        assert [p["power_w"] for p in report["meter"]["phases"]] == [1200.0, -300.0, 450.0]
        assert report["meter"]["phases"][1]["current_a"] < 0
        assert report["meter"]["phases"][2]["voltage_v"] == 232.0
        for key in ("cp_state", "current_limit_ma", "current_limit_actual_ma", "current_limit_source"):
            assert key in report["charger"]
        assert report["charger"]["force_1_phase"] is False
        assert isinstance(report["charger"]["power_w"], float)
        assert TOKEN not in out
        await meter.stop()
        code, out, _ = await command(*args)
    assert code == 1
    failed = json.loads(out)
    assert failed["ok"] is False
    assert "cannot connect" in failed["meter"]["error"]


async def test_check_fails_on_a_read_only_api_unless_the_config_only_reads(tmp_path: Path) -> None:
    async with (
        PeblarEmulator(SystemClock(), token=TOKEN, access_mode="ReadOnly") as charger,
        MeterEmulator("sdm630") as meter,
    ):
        meter.set_values(phase_power_w=(500.0, 500.0, 500.0))
        for dry_run, code in (("false", 1), ("true", 0)):
            cfg = config(tmp_path / "config.toml", meter.port, charger.url)
            cfg.write_text(cfg.read_text().replace("[control]\n", f"[control]\ndry_run = {dry_run}\n"))
            code_seen, out, _ = await command("check", "-c", str(cfg))
            assert code_seen == code, out
            if code:
                assert "ReadOnly" in out


def test_a_reader_that_stops_early_gets_no_traceback() -> None:
    """`peblar-surplus strategies | head -1`: the pipe closes before the listing is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "controller", "strategies"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=30,
            check=False,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 0
    assert b"Traceback" not in done.stderr
    assert b"BrokenPipeError" not in done.stderr
