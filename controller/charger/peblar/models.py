"""Wire models of the local REST API: PascalCase on the wire, Python names in code.

Tolerant by design (extra keys ignored, every field the charger may omit optional): 1-phase units omit
phase 2/3 values, fixed-cable units omit `LockState`, and voltages can be null.
"""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from controller.charger.peblar.const import ChargeCurrentLimitSource, CpState

MAX_PHASE_CURRENT_MA = 80_000
"""2.5 × the 32 A per phase of the largest Peblar: no charger's relays and cable carry more, so a
higher reading is garbage (an int32 sentinel, a firmware fault) and must not reach the fuse check,
where a huge car current makes the house look like it draws nothing."""

MAX_VOLTAGE_V = 300
"""Above the 253 V (230 V + 10 %) grid maximum with room to spare; the meter side rejects beyond 300 V."""

MAX_PHASE_POWER_W = MAX_PHASE_CURRENT_MA * MAX_VOLTAGE_V // 1000
"""24 kW on one phase, the current bound at the voltage bound (a Peblar: 32 A × 253 V ≈ 8.1 kW)."""

MAX_TOTAL_POWER_W = 3 * MAX_PHASE_POWER_W
"""72 kW on three phases (a 22 kW Peblar: 3 × 32 A × 253 V ≈ 24.3 kW)."""

NOISE_MA = 500
"""A charger's meter may read a little below zero with no car drawing; more negative is garbage."""

NOISE_PHASE_W = NOISE_MA * MAX_VOLTAGE_V // 1000
"""The current noise at the voltage bound: 150 W below zero on one phase."""

NOISE_TOTAL_W = 3 * NOISE_PHASE_W
"""The same noise on all three phases at once."""


def _within(low: int, high: int, unit: str) -> AfterValidator:
    """Reject a reading outside what a charger can physically draw, naming the value and the range."""

    def check(value: int | None) -> int | None:
        if value is not None and not low <= value <= high:
            digits = str(value)
            raise PydanticCustomError(
                "implausible_reading",
                "{value} {unit} is outside {low}..{high} {unit}, what a charger can draw; the reading is "
                "not used; restart the charger if this repeats",
                {
                    "value": digits if len(digits) <= 16 else f"{digits[:12]}…",
                    "unit": unit,
                    "low": low,
                    "high": high,
                },
            )
        return value

    return AfterValidator(check)


PhaseCurrentMa = Annotated[int | None, _within(-NOISE_MA, MAX_PHASE_CURRENT_MA, "mA")]
PhasePowerW = Annotated[int | None, _within(-NOISE_PHASE_W, MAX_PHASE_POWER_W, "W")]
TotalPowerW = Annotated[int | None, _within(-NOISE_TOTAL_W, MAX_TOTAL_POWER_W, "W")]


class _Wire(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return cls.model_validate(data)

    @classmethod
    def from_json(cls, text: str | bytes) -> Self:
        return cls.model_validate_json(text)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)


class HealthResponse(_Wire):
    api_version: str | None = Field(None, alias="ApiVersion")
    access_mode: str | None = Field(None, alias="AccessMode")


class SystemResponse(_Wire):
    product_pn: str | None = Field(None, alias="ProductPn")
    product_sn: str | None = Field(None, alias="ProductSn")
    firmware_version: str | None = Field(None, alias="FirmwareVersion")
    wlan_signal_strength: int | None = Field(None, alias="WlanSignalStrength")
    cellular_signal_strength: int | None = Field(None, alias="CellularSignalStrength")
    uptime: int | None = Field(None, alias="Uptime")
    phase_count: int | None = Field(None, alias="PhaseCount")
    force1_phase_allowed: bool | None = Field(None, alias="Force1PhaseAllowed")
    active_error_codes: list[int] = Field(default_factory=list, alias="ActiveErrorCodes")
    active_warning_codes: list[int] = Field(default_factory=list, alias="ActiveWarningCodes")


class EVInterfaceResponse(_Wire):
    """Same field names as Peblar's published `EVInterfaceResponse`, so code written for it reads alike."""

    cp_state: CpState = Field(CpState.UNKNOWN, alias="CpState")
    lock_state: bool | None = Field(None, alias="LockState")
    charge_current_limit: int = Field(alias="ChargeCurrentLimit")
    charge_current_limit_source: ChargeCurrentLimitSource = Field(
        ChargeCurrentLimitSource.UNKNOWN, alias="ChargeCurrentLimitSource"
    )
    charge_current_limit_actual: int = Field(alias="ChargeCurrentLimitActual")
    force1_phase: bool = Field(False, alias="Force1Phase")


class MeterResponse(_Wire):
    """The charger's own meter. Currents and powers are bounded because the fuse check subtracts them
    from the grid meter's: one absurd value would otherwise make the fuse headroom look huge."""

    current_phase1: PhaseCurrentMa = Field(None, alias="CurrentPhase1")
    current_phase2: PhaseCurrentMa = Field(None, alias="CurrentPhase2")
    current_phase3: PhaseCurrentMa = Field(None, alias="CurrentPhase3")
    voltage_phase1: int | None = Field(None, alias="VoltagePhase1")
    voltage_phase2: int | None = Field(None, alias="VoltagePhase2")
    voltage_phase3: int | None = Field(None, alias="VoltagePhase3")
    power_phase1: PhasePowerW = Field(None, alias="PowerPhase1")
    power_phase2: PhasePowerW = Field(None, alias="PowerPhase2")
    power_phase3: PhasePowerW = Field(None, alias="PowerPhase3")
    power_total: TotalPowerW = Field(None, alias="PowerTotal")
    energy_total: int | None = Field(None, alias="EnergyTotal")
    energy_session: int | None = Field(None, alias="EnergySession")

    def phase_currents_a(self) -> tuple[float, ...]:
        """Per-phase current in A: one for a charger that reports L1 alone (1-phase units), else
        three, a phase left out reading 0 A.

        Each current keeps its place: dropped, L2's current would count as L1's, and the fuse check
        would take it off the wrong grid phase. At 0 A the whole meter current of that phase counts
        as other load, the safe side.
        """
        values = (self.current_phase1, self.current_phase2, self.current_phase3)
        if values[1] is None and values[2] is None:
            return () if values[0] is None else (values[0] / 1000,)
        return tuple((v or 0) / 1000 for v in values)

    def total_power_w(self) -> float:
        if self.power_total is not None:
            return float(self.power_total)
        parts = [p for p in (self.power_phase1, self.power_phase2, self.power_phase3) if p is not None]
        return float(sum(parts))
