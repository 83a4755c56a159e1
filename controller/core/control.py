"""One control step: state → strategy → safety layer → the fields to write.

This is the whole decision path. The simulator and the tests call `step`; the daemon and the demo call
its two halves, `decide` (on a thread of its own) and `decided`; only what happens to the returned
`Write` (sent, logged, or applied to a model) differs.
"""

from __future__ import annotations

import logging
import math
import numbers
from dataclasses import field
from typing import Protocol

from controller.core import safety
from controller.core.balance import surplus_w
from controller.core.commands import NOTHING, Command, Write, diff
from controller.core.decision import Decision
from controller.core.records import core_record
from controller.core.state import SiteState


class Decider(Protocol):
    """The part of a strategy the core needs (see `strategies.Strategy`)."""

    def decide(self, state: SiteState) -> Decision: ...


@core_record
class ControlMemory:
    safety: safety.SafetyMemory = field(default_factory=safety.SafetyMemory)
    last_write_s: float | None = None


@core_record
class Outcome:
    """Everything one cycle decided, with the values that explain it."""

    decision: Decision
    command: Command
    write: Write
    notes: tuple[str, ...]
    surplus_w: float | None

    def reason(self) -> str:
        if not self.notes:
            return self.decision.reason
        return "; ".join((self.decision.reason, *self.notes))


log = logging.getLogger("peblar_surplus")

STRATEGY_FAILED = "STRATEGY FAILED"
"""How the reason of a cycle starts whose strategy raised or answered nonsense."""


def decide(strategy: Decider, state: SiteState) -> Decision:
    """The strategy's decision; if it raises or returns anything but a Decision, the fallback current.

    A plugin's bug must not switch the protection off: its cycle still goes through the safety layer,
    with the same safe current the controller uses when it is blind. That holds for a bug in the bug
    too (an exception whose message cannot be formatted) and for `sys.exit` called in a plugin, which
    would otherwise escape the cycle before any fuse check. The cycle's log line names the exception;
    its traceback, which a plugin's author needs to find the line, comes at DEBUG.
    """
    try:
        decision = strategy.decide(state)
        if (
            isinstance(decision, Decision)
            and isinstance(decision.current_a, (float, int))  # a tuple: faster than int | float
            # Neither NaN nor an int too large for a float (10**400): both go to _normalised, where
            # the one is refused and the other fails its float() inside this try.
            and -1e9 < decision.current_a < 1e9
            and isinstance(decision.phases, int)
            and isinstance(decision.reason, str)  # the log line of every cycle formats it
        ):
            return decision
        return _normalised(decision, state)
    except (Exception, SystemExit) as exc:  # any bug in any plugin
        log.debug("strategy %s raised in decide:", type(strategy).__name__, exc_info=True)
        return fallback(state, _described(exc))


def fallback(state: SiteState, problem: str) -> Decision:
    """The decision for a cycle whose strategy failed: the blind fallback current, with the problem."""
    current = state.limits.fallback_current_a
    return Decision(current, state.active_phases(), f"{STRATEGY_FAILED} ({problem}): fallback {current:g} A")


def _normalised(decision: object, state: SiteState) -> Decision:
    """A Decision holding numbers of other types (numpy's, from a model) as float and int; anything
    else, or a current that is not a number (NaN), is a failed strategy."""
    if (
        isinstance(decision, Decision)
        and isinstance(decision.current_a, numbers.Real)
        and isinstance(decision.phases, numbers.Integral)
        and isinstance(decision.reason, str)
    ):
        current = float(decision.current_a)
        if not math.isnan(current):
            return Decision(current, int(decision.phases), decision.reason)
        return fallback(state, "returned a current of NaN")
    return fallback(state, f"returned {_shown(decision)}, not a Decision(current_a, phases, reason)")


def _described(exc: BaseException) -> str:
    try:
        return f"{type(exc).__name__}: {exc}"
    except Exception:  # its __str__ is broken too
        return f"{type(exc).__name__} (its message cannot be shown)"


def _shown(value: object) -> str:
    try:
        return repr(value)
    except Exception:  # its __repr__ is broken too
        return f"a {type(value).__name__} that cannot be shown"


def step(state: SiteState, strategy: Decider, memory: ControlMemory) -> tuple[Outcome, ControlMemory]:
    return decided(decide(strategy, state), state, memory)


def decided(decision: Decision, state: SiteState, memory: ControlMemory) -> tuple[Outcome, ControlMemory]:
    """The rest of `step` for a decision already made: the daemon runs `decide` in a thread of its own,
    so that a strategy that hangs cannot hold the loop, and the fuse check with it."""
    try:
        command, safety_memory, notes = safety.apply(decision, state, memory.safety)
    except Exception as exc:  # a decision the checks above let through and the layer cannot take
        log.debug("safety layer raised on %s:", _shown(decision), exc_info=True)
        decision = fallback(state, f"the safety layer could not take its decision: {_described(exc)}")
        command, safety_memory, notes = safety.apply(decision, state, memory.safety)
    write = diff(
        command,
        state.charger,
        now=state.now,
        last_write_s=memory.last_write_s,
        reassert_s=state.limits.reassert_s,
    )
    last_write = state.now if write is not NOTHING else memory.last_write_s
    # Positionally, in field order: the simulator builds one of these per cycle, half a million a month.
    outcome = Outcome(decision, command, write, tuple(notes) if notes else (), surplus_w(state))
    if safety_memory is memory.safety and last_write == memory.last_write_s:
        return outcome, memory
    return outcome, ControlMemory(safety_memory, last_write)
