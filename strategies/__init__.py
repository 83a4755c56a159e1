"""Pluggable charging strategies and how they are found by name.

A strategy is a class with a pydantic `Params` model (its `[strategy]` keys), a one-line `summary`, and
`decide(state) -> Decision`. It may keep timers on itself, but it must take time only from
`state.now` and do no I/O: the daemon, the simulator and the tests drive the same object. The safety
layer checks every decision afterwards, so a strategy need not (and cannot) break a limit.

Names resolve in this order: a built-in (`pv`, `minpv`, `fast`, `off`, `evcc-default`), an entry point
in the group `peblar_surplus.strategies`, or `package.module:Class`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from difflib import get_close_matches
from importlib.metadata import EntryPoint, entry_points
from typing import ClassVar, Protocol, cast

from pydantic import AliasChoices, AliasPath, BaseModel, ValidationError

from controller.core.decision import Decision
from controller.core.state import SiteState

ENTRY_POINT_GROUP = "peblar_surplus.strategies"

BUILTINS: dict[str, str] = {
    "pv": "strategies.pv:Pv",
    "minpv": "strategies.minpv:MinPv",
    "fast": "strategies.fast:Fast",
    "off": "strategies.off:Off",
    "evcc-default": "strategies.evcc_default:EvccDefault",
}


class Strategy(Protocol):
    Params: ClassVar[type[BaseModel]]
    summary: ClassVar[str]

    def decide(self, state: SiteState) -> Decision: ...


class StrategyClass(Protocol):
    Params: ClassVar[type[BaseModel]]
    summary: ClassVar[str]

    def __call__(self, params: BaseModel) -> Strategy: ...


class StrategyError(Exception):
    """A strategy cannot be found or its parameters are wrong; the message names the key."""

    def __init__(self, message: str, *, name: str | None = None, detail: str | None = None) -> None:
        super().__init__(message)
        self.name = name
        """The strategy name the error is about, when it is about the name (not found, not loadable)."""
        self.detail = detail
        """That error without the key it names, for a caller whose key is another (`--strategy`)."""

    @classmethod
    def about_name(cls, name: str, detail: str) -> StrategyError:
        return cls(f"strategy.name = {name!r}: {detail}", name=name, detail=detail)


def _import(target: str, name: str) -> StrategyClass:
    module_name, _, attr = target.partition(":")
    if not attr:
        raise StrategyError.about_name(
            name,
            f"not a built-in ({', '.join(BUILTINS)}), "
            f"not an entry point in {ENTRY_POINT_GROUP!r}, and not of the form 'package.module:Class'",
        )
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # ImportError, or whatever the module raised (a sys.exit too)
        raise StrategyError.about_name(
            name, f"cannot import {module_name!r} ({type(exc).__name__}: {exc})"
        ) from exc
    if not hasattr(module, attr):
        raise StrategyError.about_name(name, f"module {module_name!r} has no {attr!r}")
    return _checked(getattr(module, attr), target, name)


def _checked(cls: object, target: str, name: str) -> StrategyClass:
    params = getattr(cls, "Params", None)
    has_params = isinstance(params, type) and issubclass(params, BaseModel)
    if not (has_params and callable(getattr(cls, "decide", None))):
        raise StrategyError.about_name(
            name,
            f"{target!r} is not a strategy class "
            "(it needs a pydantic `Params` model and a `decide(state)` method)",
        )
    return cast(StrategyClass, cls)


def _load_entry_point(name: str) -> StrategyClass | None:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return _load(ep)
    return None


def _load(ep: EntryPoint) -> StrategyClass:
    try:
        loaded = ep.load()
    except (Exception, SystemExit) as exc:  # a broken plugin gets an error naming it, not a traceback
        raise StrategyError.about_name(
            ep.name,
            f"the entry point {ep.value!r} of the installed plugin "
            f"cannot be loaded ({type(exc).__name__}: {exc})",
        ) from exc
    return _checked(loaded, ep.value, ep.name)


def resolve(name: str) -> StrategyClass:
    if name in BUILTINS:
        return _import(BUILTINS[name], name)
    plugin = _load_entry_point(name)
    if plugin is not None:
        return plugin
    return _import(name, name)


def available() -> dict[str, StrategyClass | StrategyError]:
    """Built-ins and installed plugins, for `peblar-surplus strategies`; a broken plugin is listed
    with what is wrong with it rather than hiding the others, and so is one whose name is taken."""
    found: dict[str, StrategyClass | StrategyError] = {
        name: _import(target, name) for name, target in BUILTINS.items()
    }
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in found:
            label = f"{ep.name} ({ep.value})"
            taken = "a built-in" if ep.name in BUILTINS else "another installed plugin"
            found[label] = StrategyError(
                f"the name {ep.name!r} is taken by {taken}, which `name = {ep.name!r}` runs; "
                f"use `name = {ep.value!r}` for this one"
            )
            continue
        try:
            found[ep.name] = _load(ep)
        except StrategyError as exc:
            found[ep.name] = exc
    return found


def load(name: str, params: Mapping[str, object]) -> Strategy:
    """A ready strategy, its parameters validated by its own model."""
    cls = resolve(name)
    # A model that forbids extra keys (the built-ins do) or allows them judges them itself. One that
    # would ignore them, pydantic's default, gets them named here: a typo must not pass silently.
    # The model validates the rest, so one message names every mistake.
    unknown: list[str] = []
    if cls.Params.model_config.get("extra") not in ("forbid", "allow"):
        keys = _keys(cls.Params)
        unknown = [key for key in params if key not in keys]
    validated: BaseModel | None = None
    problems: list[str] = []
    try:
        validated = cls.Params.model_validate({k: v for k, v in params.items() if k not in unknown})
    except ValidationError as exc:
        for error in exc.errors():
            if error["type"] == "extra_forbidden" and len(error["loc"]) == 1:
                unknown.append(str(error["loc"][0]))
            else:
                where = ".".join(str(part) for part in error["loc"]) or "(table)"
                problems.append(f"strategy.{where}: {str(error['msg']).removeprefix('Value error, ')}")
    except (Exception, SystemExit) as exc:  # a bug in a plugin's validator or default: exit 2 naming it
        problems.append(
            f"strategy.name = {name!r}: its parameters could not be checked ({type(exc).__name__}: {exc})"
        )
    if unknown:
        problems.insert(0, _not_its_parameters(name, cls, unknown))
    if problems or validated is None:
        raise StrategyError(
            f"{'; '.join(problems)} (strategy {name!r}; `peblar-surplus strategies` lists its parameters)"
        )
    try:
        return cls(validated)
    except (
        Exception,
        SystemExit,
    ) as exc:  # a plugin's bug: exit 2 naming it, not a silent exit or a traceback
        raise StrategyError.about_name(
            name, f"it could not be created ({type(exc).__name__}: {exc})"
        ) from exc


def _keys(model: type[BaseModel]) -> set[str]:
    """The keys a `Params` model takes: its field names and every name its aliases accept."""
    keys: set[str] = set()
    for key, spec in model.model_fields.items():
        keys.add(key)
        for alias in (spec.alias, spec.validation_alias):
            choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
            for choice in choices:
                first = choice.path[0] if isinstance(choice, AliasPath) else choice
                if isinstance(first, str):
                    keys.add(first)
    return keys


def _not_its_parameters(name: str, cls: StrategyClass, unknown: list[str]) -> str:
    """One line for all unknown keys, saying whose they are: switching `name = "pv"` to "fast" in
    the example config leaves pv's parameters behind, which is not seven separate mistakes.

    A key another built-in takes gets no "did you mean": the nearest name of this strategy is another
    setting, and following the hint would give the old value a new meaning."""
    own = list(cls.Params.model_fields)
    keys = ", ".join(f"strategy.{key}" for key in unknown)
    what = "not a parameter" if len(unknown) == 1 else "not parameters"
    others = {
        other: set(_import(target, other).Params.model_fields)
        for other, target in BUILTINS.items()
        if other != name
    }
    theirs = [key for key in unknown if any(key in fields for fields in others.values())]
    hints = []
    for key in unknown:
        if key not in theirs and (match := get_close_matches(key, own, n=1)):
            hints.append(
                f"did you mean {match[0]}?" if len(unknown) == 1 else f"{key}: did you mean {match[0]}?"
            )
    if theirs:
        owners = sorted(other for other, fields in others.items() if set(theirs) <= fields)
        whose = f"for {' / '.join(owners)}" if owners else "other strategies' parameters"
        if theirs == unknown:
            hints.append(f"{'it is' if len(theirs) == 1 else 'they are'} {whose}: remove")
        else:
            hints.append(f"{', '.join(theirs)} {'is' if len(theirs) == 1 else 'are'} {whose}: remove")
    hints.append(f"{name!r} takes: {', '.join(own) or 'no parameters'}")
    return f"{keys}: {what} of {name!r} ({'; '.join(hints)})"
