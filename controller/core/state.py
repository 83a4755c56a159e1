"""What the control core knows about the site at one instant.

Every value carries its unit in its name. Readings are frozen so that a strategy or the safety layer
can never change what the next one sees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from controller.core.records import fast_init


@fast_init
@dataclass(frozen=True, slots=True)
class PhaseReading:
    """One grid phase at the meter. Current is signed like the power (import positive)."""

    power_w: float | None = None
    current_a: float | None = None
    voltage_v: float | None = None


@fast_init
@dataclass(frozen=True, slots=True)
class MeterReading:
    """One valid reading of the grid meter, normalised to import positive / export negative."""

    time: float
    power_w: float
    phases: tuple[PhaseReading, ...] = ()
    import_kwh: float | None = None
    export_kwh: float | None = None

    def phase_current_a(self, index: int, voltage_v: float) -> float | None:
        """Signed current on a grid phase, from the current register or else from P / U."""
        if index >= len(self.phases):
            return None
        phase = self.phases[index]
        if phase.current_a is not None and math.isfinite(phase.current_a):
            return phase.current_a
        if phase.power_w is not None and math.isfinite(phase.power_w):
            volts = phase.voltage_v if phase.voltage_v else voltage_v
            return phase.power_w / volts
        return None


@fast_init
@dataclass(frozen=True, slots=True)
class ChargerReading:
    """What the charger reported in one read (`/evinterface` + `/meter`).

    `phase_currents_a` are the charger's own per-phase currents in charger phase order (L1..L3 of the
    charger's terminals); `[charger] phase_rotation` maps them onto the grid phases.
    """

    time: float
    vehicle_connected: bool
    charging: bool
    limit_ma: int
    limit_actual_ma: int
    limit_source: str
    force_1_phase: bool
    power_w: float
    phase_currents_a: tuple[float, ...] = ()
    cp_state: str = "unknown"


@dataclass(frozen=True, slots=True)
class ChargerInfo:
    """Capabilities probed once at start-up (`/system`)."""

    phase_count: int = 3
    force_1_phase_allowed: bool = False
    firmware: str = "unknown"

    def can_switch_phases(self) -> bool:
        return self.phase_count == 3 and self.force_1_phase_allowed


@fast_init
@dataclass(frozen=True, slots=True)
class DeviceHealth:
    """Whether a device is answering, kept as data so the safety layer can act on it."""

    last_ok: float | None = None
    last_error: str | None = None
    failures: int = 0

    def stale(self, now: float, after_s: float) -> bool:
        """Stale from the moment the last good read is `after_s` old (no valid data *for* that long),
        so with a 5 s interval and 20 s the fallback is written 20 s after the last good read, not 25.
        Also stale when the last good read lies in the future: after the clock stepped back, the age
        cannot be known, and an unknown age must not postpone the fallback."""
        last_ok = self.last_ok
        return last_ok is None or now - last_ok >= after_s or now < last_ok

    def succeeded(self, now: float) -> DeviceHealth:
        return DeviceHealth(last_ok=now, last_error=None, failures=0)

    def failed(self, error: str) -> DeviceHealth:
        return DeviceHealth(last_ok=self.last_ok, last_error=error, failures=self.failures + 1)


@dataclass(frozen=True, slots=True)
class SiteLimits:
    """The physical and configured limits every command must respect."""

    voltage_v: float = 230.0
    main_fuse_a: float = 25.0
    min_current_a: float = 6.0
    max_current_a: float = 16.0
    phase_rotation: tuple[int, int, int] = (0, 1, 2)
    """Grid phase index (0 = L1) that each charger phase L1, L2, L3 is wired to."""
    stale_after_s: float = 20.0
    fallback_current_a: float = 0.0
    max_pauses: int = 3
    pause_window_s: float = 600.0
    min_phase_switch_interval_s: float = 300.0
    pause_before_phase_up: bool = True
    """A 1→3 switch while charging goes pause → switch → resume; False leaves the interruption to the
    charger (as evcc does), for chargers and cars known to take a switch under way."""
    max_increase_a_per_cycle: float | None = None
    reassert_s: float = 60.0
    """Write the limit again this often even when the charger reports it, in case it rebooted."""

    def grid_phases(self, phases: int) -> tuple[int, ...]:
        """The grid phases loaded when charging on `phases` phases (1-phase: the first of them)."""
        return self.phase_rotation[:1] if phases == 1 else self.phase_rotation


@fast_init
@dataclass(frozen=True, slots=True)
class SiteState:
    """Everything a strategy and the safety layer may look at; `now` is the only clock.

    `grid` and `charger` are the last *valid* readings (possibly old); their age against
    `limits.stale_after_s` is what makes the controller blind.
    """

    now: float
    limits: SiteLimits
    info: ChargerInfo
    grid: MeterReading | None = None
    charger: ChargerReading | None = None
    meter_health: DeviceHealth = field(default_factory=DeviceHealth)
    charger_health: DeviceHealth = field(default_factory=DeviceHealth)

    def active_phases(self) -> int:
        """Phases the charger is set to use now."""
        if self.info.phase_count == 1:
            return 1
        if self.charger is not None and self.charger.force_1_phase:
            return 1
        return 3

    def car_power_w(self) -> float:
        return self.charger.power_w if self.charger is not None else 0.0
