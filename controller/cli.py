"""The `peblar-surplus` command line: argument parsing, exit codes and output, no control logic.

Exit codes: 0 success; 1 a device did not answer (`check`, `run --once`); 2 the configuration is
wrong; 3 the charger refuses to be controlled (token, ReadOnly API).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from controller import __version__
from controller.config import Config, ConfigError, find, load
from controller.console import reader_gone

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo

EXIT_OK, EXIT_DEVICE, EXIT_CONFIG, EXIT_REFUSED = 0, 1, 2, 3

log = logging.getLogger("peblar_surplus")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="peblar-surplus",
        description="Solar-surplus and main-fuse load balancing for Peblar EV chargers.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="how much to log (default INFO: one line per control cycle)",
    )
    parser.add_argument(
        "--debug-libraries",
        action="store_true",
        help="with --log-level DEBUG, also every HTTP request and Modbus frame (httpx, pymodbus)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the controller daemon")
    run.add_argument("-c", "--config", help="config file (default: see README, 'Config lookup')")
    run.add_argument("--dry-run", action="store_true", help="read and decide, never write")
    run.add_argument("--once", action="store_true", help="run one cycle, then exit")

    check = commands.add_parser("check", help="read the meter and the charger once and print them")
    check.add_argument("-c", "--config")
    check.add_argument("--json", action="store_true", help="machine-readable output")

    commands.add_parser("strategies", help="list the available strategies and their parameters")

    demo = commands.add_parser("demo", help="run the daemon against emulators on a bundled real trace")
    demo.add_argument("--seconds", type=_demo_seconds, default=60.0, help="real duration (default 60)")
    demo.add_argument("--strategy", default="pv", help="strategy to demonstrate (default pv)")

    from controller.simulation import cli as simulation_cli  # noqa: PLC0415 - heavy imports on demand

    simulation_cli.register(commands)
    return parser


def _configure_logging(level: str, *, libraries: bool) -> None:
    """The libraries keep quiet unless asked: at DEBUG they would log every request and Modbus frame,
    thousands of lines a minute that bury the daemon's own line per cycle."""
    from controller.service.systemd import under_journald  # noqa: PLC0415

    fmt = "%(levelname)s %(message)s" if under_journald() else "%(asctime)s %(levelname)s %(message)s"
    logging.basicConfig(level=level, format=fmt, stream=sys.stderr)
    if level != "DEBUG" or not libraries:
        for noisy in ("httpx", "httpcore", "apscheduler", "asyncio"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        # pymodbus logs every failed request with a frame dump, each cycle; the meter module already
        # says once what failed and once when it recovers.
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _configure_logging(args.log_level, libraries=args.debug_libraries)
    handlers = {"run": _run, "check": _check, "strategies": _strategies, "demo": _demo}
    handler = handlers.get(args.command)
    try:
        if handler is None:
            return int(args.handler(args))
        return handler(args)
    except ConfigError as exc:
        print(f"peblar-surplus: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except BrokenPipeError:  # `peblar-surplus strategies | head`: the reader has all it wanted
        reader_gone()
        return EXIT_OK


def _usable_config(args: argparse.Namespace) -> Config:
    """The config `run` and `check` act on: parsed, and its strategies and schedule rules loadable."""
    from controller.service.preflight import preflight  # noqa: PLC0415

    path = find(args.config)
    cfg = load(path)
    preflight(cfg, str(path))
    return cfg


def _run(args: argparse.Namespace) -> int:
    from controller.clock import boot_seconds  # noqa: PLC0415
    from controller.service.daemon import RunOptions, StartupError, open_devices, run  # noqa: PLC0415

    cfg = _usable_config(args)

    async def daemon() -> int:
        # pymodbus binds its client to the running loop, so the devices are made inside it.
        options = RunOptions(dry_run=args.dry_run, once=args.once, elapsed=boot_seconds)
        return await run(cfg, open_devices(cfg), options)

    try:
        return asyncio.run(daemon())
    except StartupError as exc:
        print(f"peblar-surplus: {exc}", file=sys.stderr)
        return EXIT_REFUSED


def _check(args: argparse.Namespace) -> int:
    from controller.service.check import check  # noqa: PLC0415

    cfg = _usable_config(args)
    report = asyncio.run(check(cfg))
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        print(report.as_text())
    return EXIT_OK if report.ok else EXIT_DEVICE


def _strategies(_: argparse.Namespace) -> int:
    from strategies import available  # noqa: PLC0415

    for name, cls in available().items():
        if isinstance(cls, Exception):
            print(f"{name}: NOT USABLE — {cls}")
            continue
        print(f"{name}: {getattr(cls, 'summary', '(no summary)')}")
        for key, spec in cls.Params.model_fields.items():
            text = f" — {spec.description}" if spec.description else ""
            print(f"    {key} = {_default(spec)}{text}")
    return EXIT_OK


def _default(spec: FieldInfo) -> str:
    """A parameter's default as the config would write it; a plugin's broken default says so."""
    if spec.is_required():
        return "(required, no default)"
    try:
        default: Any = spec.get_default(call_default_factory=True)
    except (Exception, SystemExit) as exc:  # a plugin's default_factory with a bug: the listing goes on
        return f"(its default cannot be made: {type(exc).__name__}: {exc})"
    if default is None:
        return "(none: leave the key out)"
    try:
        return _toml(default)
    except ValueError:
        return f"{default!r} (a Python value with no TOML spelling)"


def _toml(value: object) -> str:
    """`value` spelled as TOML, so that a line of the listing can be pasted into the config: `true`,
    not Python's `True`, which TOML refuses. ValueError where TOML has no spelling for it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        # A JSON string is a TOML basic string, but for DEL, which JSON leaves as it is and TOML refuses.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return "{" + ", ".join(f"{json.dumps(key)} = {_toml(item)}" for key, item in value.items()) + "}"
    raise ValueError(f"no TOML spelling for {type(value).__name__}")


def _demo_seconds(text: str) -> float:
    """5 s to an hour: below that the emulated day runs too fast for the charger's request budget."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 5 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r}: give between 5 and 3600 seconds")
    return value


def _demo(args: argparse.Namespace) -> int:
    from controller.demo import run_demo  # noqa: PLC0415
    from controller.service.daemon import StartupError  # noqa: PLC0415
    from strategies import StrategyError  # noqa: PLC0415
    from strategies import load as load_strategy  # noqa: PLC0415

    try:
        load_strategy(args.strategy, {})
    except StrategyError as exc:
        print(f"peblar-surplus demo: --strategy: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        return asyncio.run(run_demo(seconds=args.seconds, strategy=args.strategy))
    except StartupError as exc:
        print(f"peblar-surplus demo: {exc}", file=sys.stderr)
        return EXIT_REFUSED
