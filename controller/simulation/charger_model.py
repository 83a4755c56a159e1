"""Physics of a Peblar charger with a car attached, advanced by time and free of I/O.

The REST emulator and the demo drive it, so the daemon is tested against the same behaviour the
simulator models: the charger offers the lowest of its limits, pauses below 6 A, interrupts the current
for a few seconds on a phase change, and the car follows the offer with a first-order lag.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_CHARGE_MA = 6000


@dataclass
class CarModel:
    max_current_a: float = 16.0
    phases: int = 3
    capacity_kwh: float = 60.0
    soc: float = 0.5
    lag_s: float = 10.0
    """First-order time constant with which the car follows the offered current."""
    plugged: bool = True

    @property
    def full(self) -> bool:
        return self.soc >= 1.0


class ChargerModel:
    def __init__(
        self,
        car: CarModel,
        *,
        hw_max_ma: int = 16000,
        phase_count: int = 3,
        force_1p_allowed: bool = True,
        installation_limit_ma: int | None = None,
        switch_interrupt_s: float = 5.0,
        voltage_v: float = 230.0,
        now: float = 0.0,
    ) -> None:
        self.car = car
        self.hw_max_ma = hw_max_ma
        self.phase_count = phase_count
        self.force_1p_allowed = force_1p_allowed
        self.installation_limit_ma = installation_limit_ma
        self.switch_interrupt_s = switch_interrupt_s
        self.voltage_v = voltage_v
        self.rest_limit_ma = hw_max_ma
        self.force_1_phase = False
        self.energy_total_wh = 0.0
        self.energy_session_wh = 0.0
        self._current_a = 0.0
        self._now = now
        self._interrupted_until = -math.inf

    def set_limit(self, limit_ma: int, now: float) -> None:
        self.step(now)
        self.rest_limit_ma = limit_ma

    def set_force_1_phase(self, on: bool, now: float) -> None:
        self.step(now)
        if on != self.force_1_phase and self._current_a > 0:
            self._interrupted_until = now + self.switch_interrupt_s
            self._current_a = 0.0
        self.force_1_phase = on

    def reboot(self, now: float) -> None:
        """A reboot forgets the REST limit: it reads back as the hardware maximum."""
        self.step(now)
        self.rest_limit_ma = self.hw_max_ma
        self._current_a = 0.0

    def limit_actual_ma(self) -> int:
        limit, _ = self._winner()
        return limit if limit >= MIN_CHARGE_MA else 0

    def limit_source(self) -> str:
        return self._winner()[1]

    def _winner(self) -> tuple[int, str]:
        """The lowest limit and its source; on a tie the REST limit wins, as the charger reports it."""
        limit, source = self.rest_limit_ma, "Local REST API"
        if self.hw_max_ma < limit:
            limit, source = self.hw_max_ma, "Hardware limitation"
        installation = self.installation_limit_ma
        if installation is not None and installation < limit:
            limit, source = installation, "Installation limit"
        return limit, source

    def active_phases(self) -> int:
        if self.phase_count == 1 or self.car.phases == 1 or self.force_1_phase:
            return 1
        return 3

    def _target_a(self, start: float) -> float:
        """What the car heads for over a step that begins at `start`."""
        car = self.car
        if not car.plugged or car.full or start < self._interrupted_until:
            return 0.0
        offered = self.limit_actual_ma() / 1000
        if offered < MIN_CHARGE_MA / 1000:
            return 0.0
        return min(offered, car.max_current_a)

    def step(self, now: float) -> None:
        dt = now - self._now
        if dt <= 0:
            return
        if self._now < self._interrupted_until < now:
            # The phase-switch pause ends inside this step: no current until then, the ramp after it.
            self.step(self._interrupted_until)
            dt = now - self._now
        target = self._target_a(self._now)
        start = self._current_a
        if target <= 0:
            end = 0.0
        else:
            end = target + (start - target) * math.exp(-dt / max(self.car.lag_s, 1e-6))
        watts = (start + end) / 2 * self.active_phases() * self.voltage_v
        wh = watts * dt / 3600
        self.energy_total_wh += wh
        self.energy_session_wh += wh
        if self.car.capacity_kwh > 0:
            self.car.soc = min(1.0, self.car.soc + wh / 1000 / self.car.capacity_kwh)
        self._current_a = end
        self._now = now

    def car_current_a(self) -> float:
        return self._current_a

    def phase_currents_a(self) -> tuple[float, float, float]:
        amps = self._current_a
        if self.active_phases() == 1:
            return (amps, 0.0, 0.0)
        return (amps, amps, amps)

    def power_w(self) -> float:
        return self._current_a * self.active_phases() * self.voltage_v

    def cp_state(self) -> str:
        if not self.car.plugged:
            return "State A"
        return "State C" if self._current_a > 0.05 else "State B"

    def plug(self, plugged: bool, now: float) -> None:
        self.step(now)
        self.car.plugged = plugged
        if plugged:
            self.energy_session_wh = 0.0
        else:
            self._current_a = 0.0
