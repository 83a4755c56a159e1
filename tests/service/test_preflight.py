"""Start-up refuses a config whose strategy or schedule cannot work: exit 2 before any device is asked."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from controller.cli import EXIT_CONFIG, main
from controller.config import parse
from controller.service.preflight import preflight

BASE = """
[meter]
preset = "sdm630"
host = "127.0.0.1"
port = 1

[charger]
url = "http://127.0.0.1:1"
token = "t0ken-for-tests"
"""


@pytest.mark.parametrize("command", [["run", "--once"], ["check"]])  # --once: never a hang
@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("[strategy]\nname = 'pv'\ndip_import_wh = -3\n", "strategy.dip_import_wh"),
        ("[[schedule]]\ncron = '99 99 * * *'\nstrategy = 'fast'\n", "schedule[1].cron: '99 99 * * *'"),
        (
            "[[schedule]]\ncron = '0 22 * * *'\nstrategy = 'nosuch'\n",
            "schedule[1] (cron '0 22 * * *'): strategy = 'nosuch': not a built-in",
        ),
        (
            "[[schedule]]\ncron = '0 22 * * *'\nstrategy = 'pv'\nparams = { enable_delay = 5 }\n",
            "strategy.enable_delay: not a parameter of 'pv'",
        ),
    ],
)
def test_a_strategy_or_rule_that_cannot_work_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str], extra: str, expected: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(BASE + extra, encoding="utf-8")
    assert main([*command, "-c", str(path)]) == EXIT_CONFIG
    out, err = capsys.readouterr()
    assert f"configuration error: {path}: " in err
    assert expected in err
    assert "Traceback" not in err
    assert out == ""  # `check` printed no device: none was asked
    assert "cannot connect" not in err


@pytest.mark.parametrize("where", ["[strategy]\nname", "[[schedule]]\ncron = '0 22 * * *'\nstrategy"])
def test_a_token_pasted_as_a_strategy_name_is_not_echoed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    token = "Zk3" * 15
    path = tmp_path / "config.toml"
    path.write_text(f"{BASE}{where} = '{token}'\n", encoding="utf-8")
    assert main(["check", "-c", str(path)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "looks like an API token" in err
    assert token[:40] not in err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--seconds", "0"], "between 5 and 3600"),
        (["--seconds", "nan"], "between 5 and 3600"),
        (["--strategy", "nosuch"], "strategy.name = 'nosuch'"),
    ],
)
def test_the_demo_refuses_what_it_cannot_run_before_starting(
    capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    try:
        code = main(["demo", *args])
    except SystemExit as exc:  # argparse exits by itself, with 2
        code = int(exc.code or 0)
    assert code == EXIT_CONFIG
    err = capsys.readouterr().err
    assert expected in err
    assert "Traceback" not in err


def test_a_rule_for_another_strategy_is_not_given_the_strategy_tables_parameters() -> None:
    """`[strategy]` tunes pv; a night rule for `fast` must not fail on pv's `reserve_w`."""
    cfg = parse(
        {
            **tomllib.loads(BASE),
            "strategy": {"name": "pv", "reserve_w": 300},
            "schedule": [{"cron": "0 22 * * *", "strategy": "fast"}, {"cron": "0 6 * * *", "strategy": "pv"}],
        }
    )
    preflight(cfg, "config.toml")
    assert cfg.strategy_for(cfg.schedule[0]) == ("fast", {})
    assert cfg.strategy_for(cfg.schedule[1]) == ("pv", {"reserve_w": 300})


ONCE = """
from pydantic import BaseModel
from controller.core.decision import Decision

made = []


class Once:
    class Params(BaseModel):
        pass

    summary = "refuses a second instance"

    def __init__(self, params):
        if made:
            raise RuntimeError("already running")
        made.append(self)

    def decide(self, state):
        return Decision(0, 3, "once")
"""


def test_a_strategy_that_fails_only_at_start_up_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Preflight made it once; the daemon's own instance fails. Exit 3 said "the charger refuses"."""
    (tmp_path / "once_plugin.py").write_text(ONCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "config.toml"
    path.write_text(BASE + "[strategy]\nname = 'once_plugin:Once'\n", encoding="utf-8")
    assert main(["run", "--once", "-c", str(path)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "configuration error: strategy.name = 'once_plugin:Once': it could not be created" in err
    assert "already running" in err
