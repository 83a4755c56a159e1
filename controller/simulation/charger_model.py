"""Physics of a Peblar charger with a car attached, advanced by time and free of I/O.

The REST emulator and the demo drive it, so the daemon is tested against the same behaviour the
simulator models: the charger offers the lowest of its limits, pauses below 6 A, interrupts the current
for a few seconds on a phase change, and the car follows the offer with a first-order lag.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_CHARGE_MA = 6000
MIN_LAG_S = 1e-6
"""The time constant the closed forms use for a car without lag: a jump, to within a microsecond."""
FULL_AS = 1e-4
"""Ampere-seconds short of full that count as full (0.02 mWh on three phases): a step that ends at
the computed full point lands within float rounding of a timestamp (0.24 µs at 2016) of it, and must
leave the battery full rather than a hair short of it."""


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

    @property
    def tau_s(self) -> float:
        """`lag_s` as the closed forms take it: a car without lag follows within `MIN_LAG_S`."""
        return self.lag_s if self.lag_s > MIN_LAG_S else MIN_LAG_S


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
        return car.max_current_a if car.max_current_a < offered else offered

    def step(self, now: float) -> None:
        """Advance to `now` without new commands.

        The energy is the exact integral of the exponential the current follows, so the counters and
        the state of charge do not depend on how the time is cut into steps (the emulator steps at
        each request, the simulator at each event); a trapezoid of the end points would count half
        of a jump, and half of the current before a pause for the whole paused step. A battery that
        fills inside the step takes exactly its room and draws nothing after it.

        A `now` before the model's time is the emulator's clock stepped back (an NTP correction in a
        test): no time passed for the car, which goes on from there; stuck at its old time, it froze
        for as long as the step.
        """
        dt = now - self._now
        if dt <= 0:
            if dt < 0:
                self._interrupted_until += dt  # -inf stays -inf
                self._now = now
            return
        if self._now < self._interrupted_until < now:
            # The phase-switch pause ends inside this step: no current until then, the ramp after it.
            self.step(self._interrupted_until)
            dt = now - self._now
        target = self._target_a(self._now)
        self._now = now
        if target <= 0:  # paused, interrupted, full or unplugged: the current stops at once
            self._current_a = 0.0
            return
        start = self._current_a
        tau = self.car.tau_s
        end = lag_current(start, target, tau, dt)
        charge = lag_integral(start, target, tau, dt)
        w_per_a = self.active_phases() * self.voltage_v
        car = self.car
        if car.capacity_kwh > 0:
            room = self.room_as(w_per_a)
            if charge >= room - FULL_AS:
                if charge > room + FULL_AS:  # full before the end of the step: nothing flows after
                    end = 0.0
                charge = room
                car.soc = 1.0
            else:
                car.soc += charge * w_per_a / 3.6e6 / car.capacity_kwh
        wh = charge * w_per_a / 3600
        self.energy_total_wh += wh
        self.energy_session_wh += wh
        self._current_a = end

    def full_at(self, now: float) -> float:
        """When the battery fills if the model steps to `now` without new commands; inf if not by then.

        The simulator ends its closed-form segment there: its integrals follow one exponential, and
        at the full point the car stops. Stepping to the time returned leaves the battery full.
        """
        start_t, start = self._now, self._current_a
        if start_t < self._interrupted_until < now:
            start_t, start = self._interrupted_until, 0.0
        car = self.car
        target = self._target_a(start_t)
        if target <= 0 or now <= start_t or car.capacity_kwh <= 0:
            return math.inf
        room = self.room_as(self.active_phases() * self.voltage_v)
        tau = car.tau_s
        d = now - start_t
        if lag_integral(start, target, tau, d) < room - FULL_AS:
            return math.inf
        full_t = start_t + lag_time_to_charge(start, target, tau, room, d)
        # A timestamp rounds to 0.24 µs (in 2016): not past the full point, so that a segment ending
        # here takes no more than the room (the step there still fills it, within FULL_AS).
        for _ in range(4):
            if full_t <= start_t or lag_integral(start, target, tau, full_t - start_t) <= room:
                break
            full_t = math.nextafter(full_t, -math.inf)
        return full_t

    def room_as(self, w_per_a: float) -> float:
        """Ampere-seconds (at `w_per_a` watts per ampere) until the battery is full."""
        return (1.0 - self.car.soc) * self.car.capacity_kwh * 3.6e6 / w_per_a

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


def lag_current(amps0: float, target: float, tau: float, x: float) -> float:
    """The car's current `x` seconds after it started at `amps0` heading for `target` (time constant
    `tau`): the one formula the model and the simulator's integrals share."""
    return target + (amps0 - target) * math.exp(-x / tau)


def lag_integral(amps0: float, target: float, tau: float, d: float) -> float:
    """∫₀ᵈ I(x) dx of that current, in ampere-seconds."""
    return target * d + (amps0 - target) * tau * (1.0 - math.exp(-d / tau))


def lag_time_to_charge(amps0: float, target: float, tau: float, charge: float, d: float) -> float:
    """The x in [0, d] at which ∫₀ˣ I reaches `charge` ampere-seconds (d when it does not by then).

    Newton's method on a monotone integral (I > 0 for a positive target): a rising current makes it
    convex, so the iteration starts at d and walks down onto the root; a falling one makes it concave,
    so it starts at 0 and walks up. Either way it never overshoots, and converges in a few steps.
    """
    if charge <= 0.0:
        return 0.0
    if lag_integral(amps0, target, tau, d) <= charge:
        return d
    x = d if amps0 < target else 0.0
    for _ in range(100):
        slope = lag_current(amps0, target, tau, x)
        if slope <= 0.0:
            break
        step = (lag_integral(amps0, target, tau, x) - charge) / slope
        x = min(max(x - step, 0.0), d)
        if abs(step) <= 1e-12 * (1.0 + x):
            break
    return x
