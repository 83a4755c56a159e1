"""An empty token is a configuration error naming its source, not a 401 from the charger.

The charger answers an empty `Authorization` header as a wrong token, which sends the user to copy a
token that was never the problem; and the daemon exits 3 for a refusal where 2 says "fix the config".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.charger.base import ChargerAuthError
from controller.cli import EXIT_CONFIG, main
from controller.clock import ManualClock
from controller.config import ConfigError, parse
from controller.service.daemon import open_devices
from controller.simulation.peblar_emulator import PeblarEmulator

METER = {"preset": "sdm630", "host": "h"}
GOOD = "3f9a" * 16


@pytest.fixture(autouse=True)
def _no_token_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PEBLAR_SURPLUS_TOKEN", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)


@pytest.mark.parametrize("token", ["", "   ", "\n", "\t \n"])
def test_an_empty_token_key_is_named(token: str) -> None:
    cfg = parse({"meter": METER, "charger": {"url": "http://c", "token": token}})
    with pytest.raises(ConfigError) as err:
        cfg.charger.resolved_token()
    assert str(err.value).startswith("charger.token: empty;")
    assert "\n" not in str(err.value)


def test_an_empty_token_key_is_not_passed_over_for_the_token_file(tmp_path: Path) -> None:
    """`token` wins over `token_file`; an empty one would have been sent."""
    (tmp_path / "peblar-token").write_text(GOOD, encoding="utf-8")
    raw = {"url": "http://c", "token": "", "token_file": str(tmp_path / "peblar-token")}
    cfg = parse({"meter": METER, "charger": raw})
    with pytest.raises(ConfigError, match=r"^charger\.token: empty; .*remove the key"):
        cfg.charger.resolved_token()


@pytest.mark.parametrize("contents", ["", "\n", "  \n\n", "\r\n"])
def test_an_empty_token_file_is_named(tmp_path: Path, contents: str) -> None:
    path = tmp_path / "peblar-token"
    path.write_text(contents, encoding="utf-8")
    cfg = parse({"meter": METER, "charger": {"url": "http://c", "token_file": str(path)}})
    with pytest.raises(ConfigError) as err:
        cfg.charger.resolved_token()
    message = str(err.value)
    assert message.startswith(f"charger.token_file: {path} is empty;")
    assert "\n" not in message


@pytest.mark.parametrize("value", ["", " ", "\n"])
def test_an_empty_token_variable_does_not_hide_a_good_token_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    (tmp_path / "peblar-token").write_text(GOOD + "\n", encoding="utf-8")
    cfg = parse(
        {"meter": METER, "charger": {"url": "http://c", "token_file": str(tmp_path / "peblar-token")}}
    )
    assert cfg.charger.resolved_token() == GOOD
    monkeypatch.setenv("PEBLAR_SURPLUS_TOKEN", value)
    with pytest.raises(ConfigError) as err:
        cfg.charger.resolved_token()
    message = str(err.value)
    assert message.startswith("$PEBLAR_SURPLUS_TOKEN: set but empty;")
    assert "unset it" in message
    assert GOOD not in message
    assert "3f9a3f9a" not in message


def test_a_good_token_variable_still_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = parse({"meter": METER, "charger": {"url": "http://c", "token": "from-config"}})
    monkeypatch.setenv("PEBLAR_SURPLUS_TOKEN", " from-env\n")
    assert cfg.charger.resolved_token() == "from-env"


@pytest.mark.parametrize("command", [["run", "--once"], ["check"]])
def test_an_empty_token_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    path = tmp_path / "config.toml"
    (tmp_path / "peblar-token").write_text("\n", encoding="utf-8")
    path.write_text(
        '[meter]\npreset = "sdm630"\nhost = "127.0.0.1"\nport = 1\n'
        '[charger]\nurl = "http://127.0.0.1:1"\ntoken_file = "peblar-token"\n',
        encoding="utf-8",
    )
    code = main([*command, "-c", str(path)])
    err = capsys.readouterr().err
    assert code == EXIT_CONFIG, err
    assert "charger.token_file:" in err
    assert "is empty" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("source", ["env", "key", "file"])
async def test_a_rejected_token_names_where_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    """A stale $PEBLAR_SURPLUS_TOKEN wins over the config; "check the API token" sent the user to
    copy again a token file that was never read."""
    path = tmp_path / "peblar-token"
    path.write_text("0bad" * 16, encoding="utf-8")
    async with PeblarEmulator(ManualClock(0), token=GOOD) as charger:
        raw: dict[str, object] = {"url": charger.url}
        if source == "env":
            monkeypatch.setenv("PEBLAR_SURPLUS_TOKEN", "0bad" * 16)
            raw["token_file"] = str(path)
        elif source == "key":
            raw["token"] = "0bad" * 16
        else:
            raw["token_file"] = str(path)
        devices = open_devices(parse({"meter": METER, "charger": raw}))
        with pytest.raises(ChargerAuthError) as err:
            await devices.charger.probe()
        await devices.charger.aclose()
    named = {"env": "$PEBLAR_SURPLUS_TOKEN", "key": "charger.token", "file": f"charger.token_file ({path})"}
    assert f"rejected the API token from {named[source]} (401)" in str(err.value)
    assert "0bad" not in str(err.value)


def test_a_token_file_in_utf16_is_named_with_the_fix(tmp_path: Path) -> None:
    """PowerShell's `>` writes UTF-16: a traceback and exit 1 before; a BOM stayed in the token."""
    path = tmp_path / "peblar-token"
    path.write_text(GOOD, encoding="utf-16")
    cfg = parse({"meter": METER, "charger": {"url": "http://c", "token_file": str(path)}})
    with pytest.raises(ConfigError) as err:
        cfg.charger.resolved_token()
    message = str(err.value)
    assert message.startswith(f"charger.token_file: {path} is not plain text")
    assert "ASCII or UTF-8" in message
    path.write_text(GOOD + "\n", encoding="utf-8-sig")  # Notepad's UTF-8, with a byte-order mark
    assert cfg.charger.resolved_token() == GOOD
