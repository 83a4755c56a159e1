"""`evcc-default`: evcc's PV mode with its default settings, as the yardstick `pv` must beat.

Faithful, not clever (evcc `core/loadpoint.go` pvMaxCurrent / pvScalePhases at b29b49e, as summarised in
the shared research): a 30 s interval; start after 1 min of export above the minimum power; keep the
minimum current through 3 min of import, then stop (the import is projected as after a pending 3→1
switch, so a surplus that one phase carries leads to 1 phase, not to a stop); current = measured +
grid delta over phases × 230 V in whole amps (or, with `milliamps`, in mA as evcc's own Peblar driver
writes them); 1p/3p on the same 1 min / 3 min timers, immediate when
not charging; 60 s settle after a switch. Its weaknesses (timers skipped while idle, no phase
hysteresis of its own) are kept on purpose.
"""

from __future__ import annotations

import math
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from controller.core.decision import Decision
from controller.core.state import SiteState

EVCC_VOLTAGE = 230.0


class EvccParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)
    enable_delay_s: float = Field(60, ge=0, description="evcc Enable.Delay")
    disable_delay_s: float = Field(180, ge=0, description="evcc Disable.Delay")
    enable_threshold_w: float = Field(0, description="evcc Enable.Threshold (0: export of min power)")
    disable_threshold_w: float = Field(0, description="evcc Disable.Threshold (0: any import)")
    residual_power_w: float = Field(0, description="evcc residualPower")
    phase_switch_duration_s: float = Field(60, ge=0, description="evcc phaseSwitchDuration")
    milliamps: bool = Field(
        False,
        description="currents in mA, as evcc writes them to a charger that takes mA (its Peblar driver "
        "does); off: whole amps, as for most chargers and as the benchmark's yardstick",
    )


class EvccDefault:
    Params = EvccParams
    summary: ClassVar[str] = "reference: evcc's PV mode with its defaults (for the benchmark)"
    interval_s: ClassVar[float] = 30.0

    def __init__(self, params: EvccParams) -> None:
        self.params = params
        self.enabled = False
        self.offered_a = 0.0
        self.phases = 0
        self.pv_timer: float | None = None
        self.phase_timer: float | None = None
        self.phase_direction = 0
        self.last_switch_s = -math.inf
        self.last_s = -math.inf

    def decide(self, state: SiteState) -> Decision:
        p = self.params
        now = state.now
        limits = state.limits
        if now < self.last_s:
            self._clock_stepped_back(now)
        self.last_s = now
        if self.phases == 0 or not state.info.can_switch_phases():
            self.phases = state.active_phases()
        if state.grid is None or state.charger is None:
            return Decision.pause("evcc: no data", self.phases)
        if not state.charger.vehicle_connected:
            # evcc disables the charger without a vehicle: a car plugged in waits for the enable timer
            self.enabled, self.pv_timer = False, None
            return Decision.pause("evcc: no vehicle", self.phases)
        site_power = state.grid.power_w + p.residual_power_w
        charger = state.charger
        charging = charger.charging
        charge_power = state.car_power_w()
        if state.info.can_switch_phases() and now - self.last_switch_s > p.phase_switch_duration_s:
            self._scale_phases(state, site_power, charge_power, charging)

        effective = 0.0
        if charging:
            measured = max(charger.phase_currents_a, default=0.0)
            effective = min(measured + 2.0, self.offered_a) if self.offered_a else measured
        delta = -site_power / (self.phases * EVCC_VOLTAGE)
        target = max(effective + delta, 0.0)
        min_a, max_a = limits.min_current_a, limits.max_current_a

        if self.enabled and target < min_a:
            projected = site_power
            if self.phase_timer is not None:
                projected -= EVCC_VOLTAGE * min_a * (state.active_phases() - 1)
            if projected >= p.disable_threshold_w:
                self.pv_timer = self.pv_timer if self.pv_timer is not None else now
                if now - self.pv_timer >= p.disable_delay_s:
                    return self._off(f"evcc: disable after {p.disable_delay_s:.0f} s of import")
            else:
                self.pv_timer = None
            return self._on(min_a, f"evcc: keep minimum, site {site_power:+.0f} W")
        if not self.enabled:
            ready = target >= min_a if p.enable_threshold_w == 0 else site_power <= p.enable_threshold_w
            if not ready:
                self.pv_timer = None
                return Decision.pause(f"evcc: site {site_power:+.0f} W, waiting for surplus", self.phases)
            self.pv_timer = self.pv_timer if self.pv_timer is not None else now
            if now - self.pv_timer < p.enable_delay_s:
                return Decision.pause(f"evcc: enable timer {now - self.pv_timer:.0f} s", self.phases)
            self.pv_timer = None
            self.enabled = True
            return self._on(min_a, "evcc: enable at minimum")
        self.pv_timer = None
        steps = 1000 if p.milliamps else 1  # evcc floors to what the charger takes
        return self._on(min(math.floor(target * steps) / steps, max_a), f"evcc: site {site_power:+.0f} W")

    def _scale_phases(self, state: SiteState, site_power: float, charge_power: float, charging: bool) -> None:
        """evcc's pvScalePhases: down on the disable timer, up on the enable timer, immediate when idle."""
        p = self.params
        limits = state.limits
        now = state.now
        available = charge_power - site_power
        if self.phases == 3:
            importing = site_power > p.disable_threshold_w or not self.enabled
            if importing and available / (3 * EVCC_VOLTAGE) < limits.min_current_a:
                if self._timer(-1, now, p.disable_delay_s, charging):
                    self._switch(1, now)
                return
        else:
            one_phase_target = available / EVCC_VOLTAGE
            if (
                available / (3 * EVCC_VOLTAGE) >= limits.min_current_a
                and one_phase_target > limits.max_current_a
            ):
                if self._timer(1, now, p.enable_delay_s, charging):
                    self._switch(3, now)
                return
        self.phase_timer, self.phase_direction = None, 0

    def _clock_stepped_back(self, now: float) -> None:
        """evcc times its delays on Go's monotonic clock, which a step of the wall clock does not move;
        here time is `state.now`, so timers stamped in the future restart from now instead of waiting
        for the clock to catch up with them."""
        if self.pv_timer is not None:
            self.pv_timer = now
        if self.phase_timer is not None:
            self.phase_timer = now
        self.last_switch_s = min(self.last_switch_s, now)

    def _timer(self, direction: int, now: float, delay: float, charging: bool) -> bool:
        if not charging:
            return True
        if self.phase_direction != direction or self.phase_timer is None:
            self.phase_timer, self.phase_direction = now, direction
        return now - self.phase_timer >= delay

    def _switch(self, phases: int, now: float) -> None:
        if phases == 3:
            self.offered_a /= 3
        self.phases = phases
        self.last_switch_s = now
        self.phase_timer, self.phase_direction = None, 0

    def _on(self, current_a: float, reason: str) -> Decision:
        self.offered_a = current_a
        return Decision(current_a, self.phases, reason)

    def _off(self, reason: str) -> Decision:
        self.enabled = False
        self.offered_a = 0.0
        self.pv_timer = None
        return Decision.pause(reason, self.phases)
