"""One control step: state → strategy → safety layer → the fields to write.

This is the whole decision path. The daemon, the demo, the simulator and the tests all call `step`;
only what happens to the returned `Write` (sent, logged, or applied to a model) differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from controller.core import safety
from controller.core.balance import surplus_w
from controller.core.commands import Command, Write, diff
from controller.core.decision import Decision
from controller.core.records import fast_init
from controller.core.state import SiteState


class Decider(Protocol):
    """The part of a strategy the core needs (see `strategies.Strategy`)."""

    def decide(self, state: SiteState) -> Decision: ...


@fast_init
@dataclass(frozen=True, slots=True)
class ControlMemory:
    safety: safety.SafetyMemory = field(default_factory=safety.SafetyMemory)
    last_write_s: float | None = None


@fast_init
@dataclass(frozen=True, slots=True)
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


STRATEGY_FAILED = "STRATEGY FAILED"
"""How the reason of a cycle starts whose strategy raised or answered nonsense."""


def decide(strategy: Decider, state: SiteState) -> Decision:
    """The strategy's decision; if it raises or returns anything but a Decision, the fallback current.

    A plugin's bug must not switch the protection off: its cycle still goes through the safety layer,
    with the same safe current the controller uses when it is blind.
    """
    try:
        decision = strategy.decide(state)
    except Exception as exc:  # any bug in any plugin
        problem = f"{type(exc).__name__}: {exc}"
    else:
        if (
            isinstance(decision, Decision)
            and isinstance(decision.current_a, (float, int))  # a tuple: faster than int | float
            and isinstance(decision.phases, int)
            and isinstance(decision.reason, str)  # the log line of every cycle formats it
        ):
            return decision
        problem = f"returned {decision!r}, not a Decision(current_a, phases, reason)"
    fallback = state.limits.fallback_current_a
    reason = f"{STRATEGY_FAILED} ({problem}): fallback {fallback:g} A"
    return Decision(fallback, state.active_phases(), reason)


def step(state: SiteState, strategy: Decider, memory: ControlMemory) -> tuple[Outcome, ControlMemory]:
    decision = decide(strategy, state)
    command, safety_memory, notes = safety.apply(decision, state, memory.safety)
    write = diff(
        command,
        state.charger,
        now=state.now,
        last_write_s=memory.last_write_s,
        reassert_s=state.limits.reassert_s,
    )
    last_write = state.now if write else memory.last_write_s
    # Positionally, in field order: the simulator builds one of these per cycle, half a million a month.
    outcome = Outcome(decision, command, write, tuple(notes) if notes else (), surplus_w(state))
    if safety_memory is memory.safety and last_write == memory.last_write_s:
        return outcome, memory
    return outcome, ControlMemory(safety_memory, last_write)
