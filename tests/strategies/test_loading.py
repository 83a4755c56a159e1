"""Finding strategies by name: built-ins, `package.module:Class`, and installed plugins' entry points.

The plugin here is a real module and a real distribution (a `.dist-info` folder with `entry_points.txt`)
on `sys.path`, found by `importlib` and `importlib.metadata` the way an installed package is.
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

import strategies
from controller.cli import _toml, main
from controller.core.state import ChargerInfo, MeterReading, SiteLimits, SiteState
from strategies import StrategyError
from strategies.pv import Pv

PLUGIN = """
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator
from controller.core.decision import Decision


class Params(BaseModel):
    current_a: float = 7.0


class Steady:
    Params = Params
    summary = "always the same current"

    def __init__(self, params):
        self.params = params

    def decide(self, state):
        return Decision(self.params.current_a, 3, "steady")


class NotAStrategy:
    pass


class Fragile(Steady):
    def __init__(self, params):
        raise RuntimeError("needs a licence key")


class Quitting(Steady):
    def __init__(self, params):
        import sys

        sys.exit(5)


class CheckedParams(BaseModel):
    level: float

    @model_validator(mode="after")
    def _bug(self):
        if self.level > 5:
            raise RuntimeError("validator bug")
        return self


class Checked(Steady):
    Params = CheckedParams


class BadDefaultParams(BaseModel):
    start: float = Field(default_factory=lambda: 1 / 0)


class BadDefault(Steady):
    Params = BadDefaultParams


def _quit():
    import sys

    sys.exit(3)


class QuittingDefaultParams(BaseModel):
    start: float = Field(default_factory=_quit)


class QuittingDefault(Steady):
    Params = QuittingDefaultParams


class AliasedParams(BaseModel):
    current_a: float = Field(7.0, validation_alias=AliasChoices("current_a", "amps"))


class Aliased(Steady):
    Params = AliasedParams


class RenamingParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current_a: float = 7.0

    @model_validator(mode="before")
    @classmethod
    def _old_name(cls, data):
        if isinstance(data, dict) and "amps" in data:
            data = {**data, "current_a": data["amps"]}
            del data["amps"]
        return data


class Renaming(Steady):
    Params = RenamingParams
"""


@pytest.fixture
def plugin_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A module `steady_plugin` and an installed distribution whose entry points name it."""
    (tmp_path / "steady_plugin.py").write_text(PLUGIN)
    info = tmp_path / "steady_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: steady-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[{strategies.ENTRY_POINT_GROUP}]\n"
        "steady = steady_plugin:Steady\n"
        "broken = steady_plugin_missing:Steady\n"
        "bogus = steady_plugin:NotAStrategy\n"
        "pv = steady_plugin:Steady\n"
        "baddefault = steady_plugin:BadDefault\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("steady_plugin", None)


def _state() -> SiteState:
    return SiteState(0.0, SiteLimits(), ChargerInfo(3, True), MeterReading(0.0, 0.0))


def test_a_module_class_name_loads_with_its_own_parameters(plugin_path: Path) -> None:
    strategy = strategies.load("steady_plugin:Steady", {"current_a": 9})
    assert strategy.decide(_state()).current_a == 9


def test_an_installed_plugin_is_found_by_its_entry_point_name(plugin_path: Path) -> None:
    assert strategies.load("steady", {}).decide(_state()).current_a == 7
    listed = strategies.available()
    assert "pv" in listed
    assert listed["steady"] is strategies.resolve("steady")


def test_a_broken_plugin_is_named_and_does_not_hide_the_others(plugin_path: Path) -> None:
    with pytest.raises(StrategyError, match=r"'broken': the entry point 'steady_plugin_missing:Steady'"):
        strategies.load("broken", {})
    with pytest.raises(StrategyError, match="not a strategy class"):
        strategies.load("bogus", {})
    listed = strategies.available()
    assert isinstance(listed["broken"], StrategyError)
    assert not isinstance(listed["steady"], StrategyError)


def test_every_bad_parameter_is_named() -> None:
    with pytest.raises(StrategyError) as err:
        strategies.load("pv", {"dip_import_wh": -3, "enable_delay": 5})
    message = str(err.value)
    assert "strategy.dip_import_wh: Input should be greater than or equal to 0" in message
    assert "strategy.enable_delay: not a parameter of 'pv' (did you mean enable_delay_s?" in message


def test_parameters_left_behind_by_another_strategy_are_named_as_theirs() -> None:
    """The example config's pv parameters, after `name = "fast"`: one line, not one per key."""
    with pytest.raises(StrategyError) as err:
        strategies.load("fast", {"enable_delay_s": 30, "dip_import_wh": 120})
    message = str(err.value)
    assert message.startswith(
        "strategy.enable_delay_s, strategy.dip_import_wh: not parameters of 'fast' (they are for minpv / pv: "
        "remove; 'fast' takes: phases)"
    )


def test_another_strategys_parameter_gets_no_did_you_mean_that_would_rename_it() -> None:
    """The example config's pv parameters under `name = "evcc-default"`: following "did you mean
    phase_switch_duration_s" would have made pv's 240 s phase-switch delay evcc's switch duration."""
    with pytest.raises(StrategyError) as err:
        strategies.load("evcc-default", {"phase_switch_delay_s": 240, "enable_dely_s": 30})
    message = str(err.value)
    assert "did you mean phase_switch_duration_s" not in message
    hints = "enable_dely_s: did you mean enable_delay_s?; phase_switch_delay_s is for minpv / pv: remove"
    assert hints in message


def test_a_class_missing_from_its_module_is_named() -> None:
    with pytest.raises(
        StrategyError, match="strategy.name = 'strategies.pv:Nope': module 'strategies.pv' has no 'Nope'"
    ):
        strategies.load("strategies.pv:Nope", {})


def test_an_unknown_name_says_where_it_looked() -> None:
    with pytest.raises(StrategyError, match="not a built-in .* not an entry point .* 'package.module:Class'"):
        strategies.load("nope", {})


def test_an_infinite_delay_is_refused_rather_than_never_charging() -> None:
    with pytest.raises(StrategyError, match="strategy.enable_delay_s: Input should be a finite number"):
        strategies.load("pv", {"enable_delay_s": float("inf")})


def test_a_plugin_whose_constructor_raises_is_a_strategy_error(plugin_path: Path) -> None:
    """Exit 2 naming it, rather than a traceback and exit 1, which systemd would restart every 10 s."""
    with pytest.raises(
        StrategyError, match=r"'steady_plugin:Fragile': it could not be created \(RuntimeError: needs"
    ):
        strategies.load("steady_plugin:Fragile", {})


def test_a_plugin_that_calls_sys_exit_is_a_strategy_error_not_a_silent_exit(
    plugin_path: Path, tmp_path: Path
) -> None:
    """`sys.exit` on import or in the constructor ended the daemon, `check` and `strategies` with its
    status and no word: SystemExit is no Exception."""
    (tmp_path / "quitting_plugin.py").write_text("import sys\nsys.exit(7)\n")
    with pytest.raises(StrategyError, match=r"cannot import 'quitting_plugin' \(SystemExit: 7\)"):
        strategies.load("quitting_plugin:Steady", {})
    with pytest.raises(
        StrategyError, match=r"'steady_plugin:Quitting': it could not be created \(SystemExit: 5\)"
    ):
        strategies.load("steady_plugin:Quitting", {})


@pytest.mark.parametrize("phases", [True, 1.0, "3"])
def test_fast_takes_1_or_3_as_whole_numbers_only(phases: object) -> None:
    """`phases = true` ran `fast` on 1 phase: a Literal compares by equality, and True == 1."""
    with pytest.raises(StrategyError, match=r"strategy\.phases: .* is not a whole number; write 1 or 3"):
        strategies.load("fast", {"phases": phases})
    assert strategies.load("fast", {"phases": 1}).params.phases == 1  # type: ignore[attr-defined]


def test_a_typo_in_a_plugins_parameters_is_named_even_if_its_model_would_ignore_it(plugin_path: Path) -> None:
    """`Steady.Params` does not forbid extra keys; `curent_a` must not run the plugin on its default."""
    typo = r"strategy.curent_a: not a parameter of 'steady' \(did you mean current_a"
    with pytest.raises(StrategyError, match=typo):
        strategies.load("steady", {"curent_a": 6})


def test_a_bug_in_a_plugins_parameter_model_is_a_strategy_error(plugin_path: Path) -> None:
    """A RuntimeError from its validator or its default once escaped as a traceback with exit 1,
    which systemd restarts for ever."""
    with pytest.raises(StrategyError, match=r"could not be checked \(RuntimeError: validator bug\)"):
        strategies.load("steady_plugin:Checked", {"level": 9})
    with pytest.raises(StrategyError, match=r"could not be checked \(ZeroDivisionError"):
        strategies.load("baddefault", {})


def test_a_plugin_named_like_a_built_in_is_listed_as_shadowed_with_the_name_that_reaches_it(
    plugin_path: Path,
) -> None:
    listed = strategies.available()
    assert isinstance(strategies.load("pv", {}), Pv)  # the built-in keeps its name
    shadowed = listed["pv (steady_plugin:Steady)"]
    assert isinstance(shadowed, StrategyError)
    assert "taken by a built-in" in str(shadowed)
    assert "name = 'steady_plugin:Steady'" in str(shadowed)


def test_the_strategies_listing_survives_a_broken_default_and_shows_required_parameters(
    plugin_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(strategies.BUILTINS, "checked", "steady_plugin:Checked")
    assert main(["strategies"]) == 0
    out = capsys.readouterr().out
    assert "    level = (required, no default)" in out
    assert "    start = (its default cannot be made: ZeroDivisionError: division by zero)" in out


def test_the_strategies_listing_survives_a_default_that_calls_sys_exit(
    plugin_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """It ended the listing there, with status 0 and the rest of the strategies unlisted."""
    monkeypatch.setitem(strategies.BUILTINS, "quitting", "steady_plugin:QuittingDefault")
    assert main(["strategies"]) == 0
    out = capsys.readouterr().out
    assert "    start = (its default cannot be made: SystemExit: 3)" in out
    assert "evcc-default" in out
    assert "steady: always the same current" in out  # listed after the broken one


def test_every_default_the_listing_shows_can_be_pasted_into_the_config(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`milliamps = False` was Python; pasted into config.toml it was not valid TOML."""
    assert main(["strategies"]) == 0
    listed: dict[str, dict[str, object]] = {}
    for line in capsys.readouterr().out.splitlines():
        if not line.startswith("    "):
            block = listed.setdefault(line.split(":")[0], {})
            continue
        assignment = line.strip().split(" — ")[0]
        block.update(tomllib.loads(assignment))
    for name, target in strategies.BUILTINS.items():
        defaults = {key: spec.default for key, spec in strategies.resolve(name).Params.model_fields.items()}
        assert listed[name] == defaults, target


def test_a_plugins_own_names_for_its_parameters_are_taken(plugin_path: Path) -> None:
    """An alias, and a model that forbids unknown keys but renames an old one itself."""
    assert strategies.load("steady_plugin:Aliased", {"amps": 9}).decide(_state()).current_a == 9
    assert strategies.load("steady_plugin:Renaming", {"amps": 8}).decide(_state()).current_a == 8
    with pytest.raises(StrategyError, match=r"strategy.amp: not a parameter"):
        strategies.load("steady_plugin:Renaming", {"amp": 8})


@pytest.mark.parametrize(
    "value", ["plain", 'a "quote" and a \\ backslash', "tab\tnew\nline", "del\x7f", "ümlaut"]
)
def test_a_string_default_is_shown_as_the_toml_that_reads_back_as_it(value: str) -> None:
    assert tomllib.loads(f"key = {_toml(value)}") == {"key": value}
