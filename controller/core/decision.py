"""What every strategy returns: a wish, before the safety layer has had its say."""

from __future__ import annotations

from dataclasses import dataclass

from controller.core.records import fast_init


@fast_init
@dataclass(frozen=True, slots=True)
class Decision:
    """A target current per phase (0 = pause), a phase mode, and the reason in words for the log."""

    current_a: float
    phases: int
    reason: str

    @classmethod
    def pause(cls, reason: str, phases: int) -> Decision:
        return cls(0.0, phases, reason)

    @property
    def paused(self) -> bool:
        return self.current_a <= 0.0
