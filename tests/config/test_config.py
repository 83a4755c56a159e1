"""A wrong config must stop the program with one line that names the key — never a traceback."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from importlib.machinery import ModuleSpec
from pathlib import Path

import pytest

import strategies
from controller.cli import EXIT_CONFIG, main
from controller.config import ConfigError, ControlConfig, find, load, parse
from strategies import StrategyError
from strategies.pv import PvParams

REPO = Path(__file__).resolve().parents[2]

TOKEN_64 = "3f9a" * 16

MINIMAL = """
[meter]
preset = "sdm630"
host = "127.0.0.1"

[charger]
url = "http://127.0.0.1:8080"
token = "t0ken-for-tests"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_repository_example_config_is_valid() -> None:
    cfg = load(REPO / "config.toml")
    assert cfg.strategy.name == "pv"
    assert cfg.strategy.params["reserve_w"] == 0
    assert cfg.site_limits().main_fuse_a == 25


def test_the_example_config_shows_the_pv_defaults() -> None:
    """The example is also the default config: a value there that differs from the strategy's own
    default would silently run a daemon with other settings than the README and bench/RESULTS.md."""
    cfg = load(REPO / "config.toml")
    assert cfg.strategy.name == "pv"
    defaults = PvParams()
    for key, value in cfg.strategy.params.items():
        assert value == getattr(defaults, key), key
    assert cfg.control.model_dump() == ControlConfig(dry_run=cfg.control.dry_run).model_dump()


def test_minimal_config_takes_documented_defaults(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, MINIMAL))
    assert cfg.control.interval_s == 5
    assert cfg.control.fallback_current_a == 0
    assert cfg.control.exit_state == "pause"
    assert cfg.site_limits().phase_rotation == (0, 1, 2)


@pytest.mark.parametrize(
    ("extra", "key", "hint"),
    [
        ("[control]\ninterval = 5\n", "control.interval", "unknown key"),
        ("[control]\ninterval_s = 'fast'\n", "control.interval_s", "number"),
        ("[site]\nmain_fuse_a = 2\n", "site.main_fuse_a", "greater than or equal to 6"),
        ("[site]\ntimezone = 'Mars/Olympus'\n", "site.timezone", "IANA"),
        ("[control]\nfallback_current_a = 3\n", "control.fallback_current_a", "neither 0"),
        ("[control]\nstale_after_s = 2\n", "control.stale_after_s", "shorter than"),
        ("[control]\nfallback_current_a = inf\n", "control.fallback_current_a", "finite number"),
        ("[site]\nmain_fuse_a = 10\n", "charger.max_current_a: 16 A", "above site.main_fuse_a (10 A)"),
        # TOML has types: a boolean or a string where a number belongs is a mistake, not 1 or 25
        ("[control]\ninterval_s = true\n", "control.interval_s", "valid number"),
        (
            "[site]\nmain_fuse_a = '25'\n",
            "site.main_fuse_a",
            "valid number (got '25'); write it without quotes: 25",
        ),
        ("[control]\ndry_run = 'yes'\n", "control.dry_run", "valid boolean (got 'yes')"),
        ("[control]\ndry_run = 'true'\n", "control.dry_run", "write it without quotes: true"),
        ("[[schedule]]\ncron = '0 7 * * *'\n", "schedule[1].strategy", "add it to that [[schedule]] entry"),
        (
            "[schedule]\ncron = '0 7 * * *'\nstrategy = 'pv'\n",
            "schedule",
            "[[schedule]], with double brackets",
        ),
    ],
)
def test_bad_values_name_the_key_and_the_fix(tmp_path: Path, extra: str, key: str, hint: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, MINIMAL + extra))
    message = str(err.value)
    assert key in message
    assert hint in message
    assert "\n" not in message


def test_a_table_written_as_a_value_says_how_to_write_the_table(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"site: must be a table, written \[site\] on a line of its own"):
        load(write(tmp_path, "site = 5\n" + MINIMAL))


def test_a_boolean_for_a_strategy_s_number_is_refused() -> None:
    with pytest.raises(StrategyError, match="enable_delay_s: Input should be a valid number"):
        strategies.load("pv", {"enable_delay_s": True})


def test_min_above_max_is_an_impossible_combination() -> None:
    raw = {
        "meter": {"preset": "sdm630", "host": "h"},
        "charger": {"url": "http://c", "token": "x", "min_current_a": 10, "max_current_a": 8},
    }
    with pytest.raises(ConfigError, match=r"charger\.min_current_a"):
        parse(raw)


def test_missing_required_table_is_named() -> None:
    with pytest.raises(ConfigError, match=r"\[charger\]: required table is missing"):
        parse({"meter": {"preset": "sdm630", "host": "h"}})


def test_every_problem_is_named_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, MINIMAL + "[control]\ninterval_s = 'fast'\nmain_fuse = 25\n"))
    message = str(err.value)
    assert "control.interval_s" in message
    assert "and 1 more: control.main_fuse: unknown key" in message
    assert "\n" not in message


def test_phase_rotation_must_be_a_permutation() -> None:
    raw = {
        "meter": {"preset": "sdm630", "host": "h"},
        "charger": {"url": "http://c", "token": "x", "phase_rotation": "L1L1L2"},
    }
    with pytest.raises(ConfigError, match=r"charger\.phase_rotation"):
        parse(raw)
    raw["charger"]["phase_rotation"] = "l2l3l1"  # type: ignore[index]
    assert parse(raw).site_limits().phase_rotation == (1, 2, 0)


def test_token_sources_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "peblar-token").write_text("from-credential\n", encoding="utf-8")
    raw = {
        "meter": {"preset": "sdm630", "host": "h"},
        "charger": {"url": "http://c", "token_file": "peblar-token"},
    }
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "creds"))
    monkeypatch.delenv("PEBLAR_SURPLUS_TOKEN", raising=False)
    assert parse(raw).charger.resolved_token() == "from-credential"
    monkeypatch.setenv("PEBLAR_SURPLUS_TOKEN", "from-env")
    assert parse(raw).charger.resolved_token() == "from-env"


def test_outside_systemd_a_relative_token_file_lies_next_to_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`check` and a dry run by hand, before the unit is installed, read the same config as the unit."""
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "peblar-token").write_text("next-to-the-config\n", encoding="utf-8")
    path = etc / "config.toml"
    path.write_text(
        '[meter]\npreset = "sdm630"\nhost = "h"\n[charger]\nurl = "http://c"\ntoken_file = "peblar-token"\n',
        encoding="utf-8",
    )
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.delenv("PEBLAR_SURPLUS_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)
    assert load(path).charger.resolved_token() == "next-to-the-config"
    (etc / "peblar-token").unlink()
    with pytest.raises(ConfigError, match=r"cannot read .*etc/peblar-token \(No such file"):
        load(path).charger.resolved_token()


def test_a_missing_token_file_gives_its_full_path_and_the_ways_to_fix_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`check` in the checkout, the config found as ./config.toml: the first thing most users run."""
    (tmp_path / "config.toml").write_text(
        '[meter]\npreset = "sdm630"\nhost = "h"\n[charger]\nurl = "http://c"\ntoken_file = "peblar-token"\n',
        encoding="utf-8",
    )
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.delenv("PEBLAR_SURPLUS_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as err:
        load(Path("config.toml")).charger.resolved_token()
    assert f"cannot read {tmp_path / 'peblar-token'} (No such file" in str(err.value)
    assert "into it, or set charger.token or $PEBLAR_SURPLUS_TOKEN instead" in str(err.value)


def test_missing_token_says_where_to_find_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PEBLAR_SURPLUS_TOKEN", raising=False)
    cfg = parse({"meter": {"preset": "sdm630", "host": "h"}, "charger": {"url": "http://c"}})
    with pytest.raises(ConfigError, match="Settings > Advanced"):
        cfg.charger.resolved_token()


def test_token_is_not_in_the_repr_of_the_config() -> None:
    cfg = parse(
        {"meter": {"preset": "sdm630", "host": "h"}, "charger": {"url": "http://c", "token": "s3cr3t"}}
    )
    assert "s3cr3t" not in repr(cfg)
    assert "s3cr3t" not in str(cfg.model_dump())


@pytest.mark.parametrize("command", ["run", "check"])
def test_cli_exits_2_with_one_line_and_no_traceback(tmp_path: Path, command: str) -> None:
    path = write(tmp_path, MINIMAL + "[control]\ninterval_s = -1\n")
    proc = subprocess.run(
        [sys.executable, "-m", "controller", command, "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "control.interval_s" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("http://127.0.0.1:99999", "not a valid URL"),
        ("http://[::1", "not a valid URL"),
        ("http://", "names no host"),
        ("http://192.168.1.50/api/wlac/v1", "the API path is added"),
        ("http://user:pw@192.168.1.50", "not into the URL"),
        ("http://192.168.1 .50", "has a space in it"),
    ],
)
def test_a_charger_url_that_cannot_work_is_named(url: str, hint: str) -> None:
    with pytest.raises(ConfigError, match=r"charger\.url") as err:
        parse({"meter": {"preset": "sdm630", "host": "h"}, "charger": {"url": url, "token": "x"}})
    assert hint in str(err.value)
    assert ":pw@" not in str(err.value)  # a password in the URL is not echoed


def test_a_space_pasted_after_the_charger_url_is_dropped() -> None:
    cfg = parse(
        {"meter": {"preset": "sdm630", "host": "h"}, "charger": {"url": "http://192.168.1.50 ", "token": "x"}}
    )
    assert cfg.charger.url == "http://192.168.1.50"


def test_an_empty_config_name_is_an_error_not_a_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`-c "$CFG"` with CFG unset must not pick ./config.toml unawares."""
    monkeypatch.chdir(tmp_path)
    write(tmp_path, MINIMAL)
    with pytest.raises(ConfigError, match="-c: an empty file name"):
        find("")


@pytest.mark.parametrize(("key", "value"), [("serial_port", TOKEN_64), ("baudrate", 0)])
def test_serial_settings_that_cannot_be_a_device_are_refused(key: str, value: object) -> None:
    meter = {"preset": "sdm630", "transport": "serial", "serial_port": "/dev/ttyUSB0", key: value}
    with pytest.raises(ConfigError, match=rf"meter\.{key}") as err:
        parse({"meter": meter, "charger": {"url": "http://c", "token": "x"}})
    assert "3f9a3f9a" not in str(err.value)


@pytest.mark.parametrize("token", ["SECRET\nTOKEN", "SECRÉT", "SECRET TOKEN"])
def test_a_token_no_http_header_can_carry_is_refused_without_showing_it(token: str) -> None:
    cfg = parse({"meter": {"preset": "sdm630", "host": "h"}, "charger": {"url": "http://c", "token": token}})
    with pytest.raises(ConfigError, match="charger.token: contains") as err:
        cfg.charger.resolved_token()
    assert "SECR" not in str(err.value)


@pytest.mark.parametrize(
    "charger",
    [
        {"url": TOKEN_64, "token": "x"},
        {"url": f"http://192.168.1.50/?token={TOKEN_64}", "token": "x"},
        {"url": "http://c", "token_file": TOKEN_64},
        {"url": f"http://192.168.1.50/{TOKEN_64}", "token": "x"},
        {"url": f"http://{TOKEN_64}", "token": "x"},
    ],
)
def test_a_token_pasted_into_the_wrong_key_is_not_shown(
    charger: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PEBLAR_SURPLUS_TOKEN", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(ConfigError, match=r"charger\.(url|token_file)") as err:
        parse({"meter": {"preset": "sdm630", "host": "h"}, "charger": charger}).charger.resolved_token()
    assert TOKEN_64 not in str(err.value)
    assert "3f9a3f9a" not in str(err.value)


@pytest.mark.parametrize("token", [TOKEN_64, TOKEN_64[:45]])  # 45: short enough for a DNS label
def test_a_token_pasted_into_the_meter_host_is_refused_without_showing_it(token: str) -> None:
    with pytest.raises(ConfigError, match=r"meter\.host: .*not a host name") as err:
        parse({"meter": {"preset": "sdm630", "host": token}, "charger": {"url": "http://c", "token": "x"}})
    assert "3f9a3f9a" not in str(err.value)


def test_a_token_pasted_as_the_charger_host_is_refused_without_showing_it() -> None:
    charger = {"url": f"http://{TOKEN_64[:45]}", "token": "x"}
    with pytest.raises(ConfigError, match=r"charger\.url: .*looks like an API token") as err:
        parse({"meter": {"preset": "sdm630", "host": "h"}, "charger": charger})
    assert "3f9a3f9a" not in str(err.value)


def test_redaction_leaves_a_disk_uuid_in_a_path_readable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PEBLAR_SURPLUS_TOKEN", raising=False)
    path = "/media/0b5d1e2a-7c3f-4e9b-a1d2-2f6c8e4a7b10/peblar-token"
    cfg = parse(
        {"meter": {"preset": "sdm630", "host": "h"}, "charger": {"url": "http://c", "token_file": path}}
    )
    with pytest.raises(ConfigError) as err:
        cfg.charger.resolved_token()
    assert path in str(err.value)


def test_a_config_saved_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    """Windows Notepad's UTF-8 starts with a BOM, which was 'not valid TOML (at line 1, column 1)'."""
    path = tmp_path / "config.toml"
    path.write_text(
        '[meter]\nhost = "h"\npreset = "sdm630"\n[charger]\nurl = "http://c"\n', encoding="utf-8-sig"
    )
    assert load(path).meter.host == "h"


def test_an_empty_config_variable_is_an_error_not_another_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`PEBLAR_SURPLUS_CONFIG=` (a variable set from one unset) ran with ./config.toml unawares."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.toml").write_text("")
    monkeypatch.setenv("PEBLAR_SURPLUS_CONFIG", "")
    with pytest.raises(ConfigError, match=r"^\$PEBLAR_SURPLUS_CONFIG: set but empty; unset it"):
        find(None)


def test_a_config_that_is_not_utf8_text_is_named(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'[meter]\nhost = "\xff\xfe"\n')
    with pytest.raises(ConfigError, match="not a text file in UTF-8"):
        load(path)


@pytest.mark.parametrize(
    ("host", "ok"), [("fe80::1", True), ("[fe80::1]", True), ("meter.lan", True), ("h:502", False)]
)
def test_meter_host_takes_ipv6_but_not_a_port(host: str, ok: bool) -> None:
    raw = {"meter": {"preset": "sdm630", "host": host}, "charger": {"url": "http://c", "token": "x"}}
    if ok:
        assert parse(raw).meter.host == host.strip("[]")
    else:
        with pytest.raises(ConfigError, match="meter.port"):
            parse(raw)


def test_a_missing_meter_host_is_named_once() -> None:
    with pytest.raises(ConfigError) as err:
        parse({"meter": {"preset": "sdm630"}, "charger": {"url": "http://c", "token": "x"}})
    assert str(err.value) == "config: meter.host: required; the IP address of the meter, inverter or gateway"


def _without_pyserial(monkeypatch: pytest.MonkeyPatch) -> None:
    """pymodbus imports `serial` only when a serial client is made: hide it from the look-up the
    config makes, without uninstalling it."""
    real = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> ModuleSpec | None:
        return None if name == "serial" else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


SERIAL = '[meter]\npreset = "sdm630"\ntransport = "serial"\nserial_port = "/dev/ttyUSB0"\n'


@pytest.mark.parametrize("command", [["run", "--once"], ["check"]])
def test_the_serial_transport_without_pyserial_exits_2_before_any_device(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    """Exit 1 with pymodbus's RuntimeError made systemd restart the daemon for ever; 2 stops it."""
    _without_pyserial(monkeypatch)
    path = write(tmp_path, SERIAL + '[charger]\nurl = "http://127.0.0.1:1"\ntoken = "t0ken-for-tests"\n')
    assert main([*command, "-c", str(path)]) == EXIT_CONFIG
    out, err = capsys.readouterr()
    assert out == ""
    assert "meter.transport: 'serial' needs pyserial" in err
    assert "peblar-surplus[serial]" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_simulate_takes_a_serial_config_on_a_machine_without_pyserial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`simulate` reads the config for the site and the strategy, never opens the meter: a production
    config copied to a laptop must run there."""
    _without_pyserial(monkeypatch)
    path = write(tmp_path, SERIAL + '[charger]\nurl = "http://127.0.0.1:1"\ntoken = "t0ken-for-tests"\n')
    trace = tmp_path / "trace.csv"
    trace.write_text("timestamp,pv_w,house_w\n0,5000,500\n60,5000,500\n", encoding="utf-8")
    whole_trace = ["--plug-in", "none", "--plug-out", "none"]
    assert main(["simulate", "-c", str(path), "--trace", str(trace), *whole_trace]) == 0
    assert "pyserial" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("host", "bare"),
    [
        ("http://192.168.1.60", "'192.168.1.60'"),
        ("tcp://192.168.1.60:502", "'192.168.1.60' and port = 502"),
        ("modbus://[fe80::1]:1502/", "'fe80::1' and port = 1502"),
        ("HTTP://meter.lan", "'meter.lan'"),
    ],
)
def test_a_meter_host_given_as_a_url_is_told_to_drop_the_scheme(host: str, bare: str) -> None:
    raw = {"meter": {"preset": "sdm630", "host": host}, "charger": {"url": "http://c", "token": "x"}}
    with pytest.raises(ConfigError) as err:
        parse(raw)
    message = str(err.value)
    assert message.startswith(f"config: meter.host: {host!r}")
    assert "bare host name or IP address without a scheme" in message
    assert f"host = {bare}" in message


def test_a_meter_url_with_a_token_in_it_is_not_shown() -> None:
    with pytest.raises(ConfigError, match=r"meter\.host") as err:
        parse(
            {
                "meter": {"preset": "sdm630", "host": f"http://{TOKEN_64}/"},
                "charger": {"url": "http://c", "token": "x"},
            }
        )
    assert "3f9a3f9a" not in str(err.value)


@pytest.mark.parametrize("url", ["tcp://192.168.1.50", "ws://192.168.1.50", "modbus://192.168.1.50:502"])
def test_a_charger_url_with_another_scheme_is_told_to_use_http(url: str) -> None:
    with pytest.raises(ConfigError, match=r"charger\.url") as err:
        parse({"meter": {"preset": "sdm630", "host": "h"}, "charger": {"url": url, "token": "x"}})
    message = str(err.value)
    assert "not a URL" not in message
    assert f"{url.partition(':')[0]}://" in message
    assert "http://" in message


def test_a_charger_url_with_a_capital_scheme_is_taken() -> None:
    raw = {
        "meter": {"preset": "sdm630", "host": "h"},
        "charger": {"url": "HTTP://192.168.1.50/", "token": "x"},
    }
    assert parse(raw).charger.url == "http://192.168.1.50"
