"""Wire models of the local REST API: PascalCase on the wire, Python names in code.

Tolerant by design (extra keys ignored, every field the charger may omit optional): 1-phase units omit
phase 2/3 values, fixed-cable units omit `LockState`, and voltages can be null.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

from controller.charger.peblar.const import ChargeCurrentLimitSource, CpState


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
    current_phase1: int | None = Field(None, alias="CurrentPhase1")
    current_phase2: int | None = Field(None, alias="CurrentPhase2")
    current_phase3: int | None = Field(None, alias="CurrentPhase3")
    voltage_phase1: int | None = Field(None, alias="VoltagePhase1")
    voltage_phase2: int | None = Field(None, alias="VoltagePhase2")
    voltage_phase3: int | None = Field(None, alias="VoltagePhase3")
    power_phase1: int | None = Field(None, alias="PowerPhase1")
    power_phase2: int | None = Field(None, alias="PowerPhase2")
    power_phase3: int | None = Field(None, alias="PowerPhase3")
    power_total: int | None = Field(None, alias="PowerTotal")
    energy_total: int | None = Field(None, alias="EnergyTotal")
    energy_session: int | None = Field(None, alias="EnergySession")

    def phase_currents_a(self) -> tuple[float, ...]:
        """Per-phase current in A, as many phases as the charger reports (1-phase units: one)."""
        values = (self.current_phase1, self.current_phase2, self.current_phase3)
        present = [v for v in values if v is not None]
        return tuple(v / 1000 for v in present)

    def total_power_w(self) -> float:
        if self.power_total is not None:
            return float(self.power_total)
        parts = [p for p in (self.power_phase1, self.power_phase2, self.power_phase3) if p is not None]
        return float(sum(parts))
