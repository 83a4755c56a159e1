"""`fast`: as much as the fuse and the charger allow; the safety layer cuts it to what is safe."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from controller.core.decision import Decision
from controller.core.state import SiteState


class Fast:
    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)
        phases: Literal[1, 3] = Field(
            3,
            description="phase mode to charge in (1 or 3): a Peblar switches between 1 and 3 phases",
        )

    summary: ClassVar[str] = "charge at the maximum current the fuse and the charger allow"

    def __init__(self, params: Fast.Params) -> None:
        self.params = params

    def decide(self, state: SiteState) -> Decision:
        return Decision(state.limits.max_current_a, self.params.phases, "fast: maximum current")
