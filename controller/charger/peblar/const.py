"""The API's enumerations, open: a string that new firmware invents maps to UNKNOWN, never a crash.

Home Assistant's Peblar integration broke twice on closed enums ("State Invalid", "Internal power
limit"); an informational field must never stop the control loop.
"""

from __future__ import annotations

import logging
from enum import StrEnum

log = logging.getLogger("peblar_surplus.charger")

_reported: set[tuple[str, str]] = set()


def _report_unknown(enum_name: str, value: object) -> None:
    key = (enum_name, str(value))
    if key not in _reported:
        _reported.add(key)
        log.warning("charger sent an unknown %s %r; treating it as unknown", enum_name, value)


class CpState(StrEnum):
    """IEC 61851 control-pilot state, spelled as the API spells it (old and new firmware)."""

    A = "State A"
    B = "State B"
    C = "State C"
    D = "State D"
    E = "State E"
    F = "State F"
    INVALID = "Invalid"
    STATE_INVALID = "State Invalid"
    UNKNOWN_OLD = "Unknown"
    UNKNOWN = "unknown state"

    @classmethod
    def _missing_(cls, value: object) -> CpState:
        _report_unknown("CpState", value)
        return cls.UNKNOWN

    @property
    def vehicle_connected(self) -> bool:
        return self in (CpState.B, CpState.C, CpState.D)

    @property
    def charging(self) -> bool:
        return self in (CpState.C, CpState.D)


class ChargeCurrentLimitSource(StrEnum):
    """Which limiter wins inside the charger; several are the charger's own smart features."""

    CHARGING_CABLE = "Charging cable"
    HIGH_TEMPERATURE = "High temperature"
    INSTALLATION_LIMIT = "Installation limit"
    DYNAMIC_LOAD_BALANCING = "Dynamic load balancing"
    GROUP_LOAD_BALANCING = "Group load balancing"
    OVERCURRENT_PROTECTION = "Overcurrent protection"
    HARDWARE_LIMITATION = "Hardware limitation"
    POWER_FACTOR = "Power factor"
    OCPP_SMART_CHARGING = "OCPP smart charging"
    PHASE_IMBALANCE = "Phase imbalance"
    LOCAL_SCHEDULED_CHARGING = "Local scheduled charging"
    SOLAR_CHARGING = "Solar charging"
    CURRENT_LIMITER = "Current limiter"
    LOCAL_REST_API = "Local REST API"
    LOCAL_MODBUS_API = "Local Modbus API"
    EXTERNAL_POWER_LIMIT = "External power limit"
    HOUSEHOLD_POWER_LIMIT = "Household power limit"
    INTERNAL_POWER_LIMIT = "Internal power limit"
    RESERVED = "Reserved"
    UNKNOWN = "unknown"

    @classmethod
    def _missing_(cls, value: object) -> ChargeCurrentLimitSource:
        _report_unknown("ChargeCurrentLimitSource", value)
        return cls.UNKNOWN


SMART_FEATURES = frozenset(
    {
        ChargeCurrentLimitSource.SOLAR_CHARGING,
        ChargeCurrentLimitSource.LOCAL_SCHEDULED_CHARGING,
        ChargeCurrentLimitSource.OCPP_SMART_CHARGING,
        ChargeCurrentLimitSource.LOCAL_MODBUS_API,
    }
)
"""Limiters that mean another controller is in charge: the user should set smart charging to Default."""
