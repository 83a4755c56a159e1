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
from importlib.metadata import entry_points
from typing import ClassVar, Protocol, cast

from pydantic import BaseModel, ValidationError

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


def _import(target: str, name: str) -> StrategyClass:
    module_name, _, attr = target.partition(":")
    if not attr:
        raise StrategyError(
            f"strategy.name = {name!r}: not a built-in ({', '.join(BUILTINS)}), "
            f"not an entry point in {ENTRY_POINT_GROUP!r}, and not of the form 'package.module:Class'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise StrategyError(f"strategy.name = {name!r}: cannot import {module_name!r} ({exc})") from exc
    cls = getattr(module, attr, None)
    if cls is None or not hasattr(cls, "Params") or not hasattr(cls, "decide"):
        raise StrategyError(
            f"strategy.name = {name!r}: {target!r} is not a strategy class "
            "(it needs a pydantic `Params` model and a `decide(state)` method)"
        )
    return cast(StrategyClass, cls)


def resolve(name: str) -> StrategyClass:
    if name in BUILTINS:
        return _import(BUILTINS[name], name)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return cast(StrategyClass, ep.load())
    return _import(name, name)


def available() -> dict[str, StrategyClass]:
    """Built-ins and installed plugins, for `peblar-surplus strategies`."""
    found = {name: _import(target, name) for name, target in BUILTINS.items()}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, cast(StrategyClass, ep.load()))
    return found


def load(name: str, params: Mapping[str, object]) -> Strategy:
    """A ready strategy, its parameters validated by its own model."""
    cls = resolve(name)
    try:
        validated = cls.Params.model_validate(dict(params))
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "(table)"
        raise StrategyError(
            f"strategy.{key}: {first['msg']} (strategy {name!r}; "
            f"`peblar-surplus strategies` lists its parameters)"
        ) from exc
    return cls(validated)
