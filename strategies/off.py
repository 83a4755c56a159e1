"""`off`: keep the charger paused, e.g. while the car must not charge at all."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from controller.core.decision import Decision
from controller.core.state import SiteState


class Off:
    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)

    summary: ClassVar[str] = "pause charging"

    def __init__(self, params: Off.Params) -> None:
        self.params = params

    def decide(self, state: SiteState) -> Decision:
        return Decision.pause("off", state.active_phases())
