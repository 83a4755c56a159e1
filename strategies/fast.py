"""`fast`: as much as the fuse and the charger allow; the safety layer cuts it to what is safe."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from controller.core.decision import Decision
from controller.core.state import SiteState


class Fast:
    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)
        phases: Literal[1, 3] = Field(
            3,
            description="phase mode to charge in (1 or 3): a Peblar switches between 1 and 3 phases",
        )

        @field_validator("phases", mode="before")
        @classmethod
        def _a_whole_number(cls, value: object) -> object:
            """A Literal compares by equality, so `true` and `1.0` passed for 1; strict means a number."""
            if isinstance(value, bool) or not isinstance(value, int):
                shown = str(value).lower() if isinstance(value, bool) else repr(value)  # as TOML writes it
                raise ValueError(f"{shown} is not a whole number; write 1 or 3")  # noqa: TRY004 - pydantic takes ValueError
            return value

    summary: ClassVar[str] = "charge at the maximum current the fuse and the charger allow"

    def __init__(self, params: Fast.Params) -> None:
        self.params = params

    def decide(self, state: SiteState) -> Decision:
        return Decision(state.limits.max_current_a, self.params.phases, "fast: maximum current")
