"""`minpv`: always charge at least the minimum current, more when the sun allows.

For when the car must gain range whatever the weather: it never pauses, so it never wears the
contactor, and it uses 1 phase while the surplus is small so the grid share stays at 1.4 kW.
"""

from __future__ import annotations

from typing import ClassVar

from controller.core.balance import surplus_w
from controller.core.decision import Decision
from controller.core.state import SiteState
from strategies.pv import Pv


class MinPv(Pv):
    summary: ClassVar[str] = "minimum current always (1 phase when the sun is weak), more with surplus"
    keep_minimum: ClassVar[bool] = True

    def decide(self, state: SiteState) -> Decision:
        self.running = True
        charger, limits = state.charger, state.limits
        if charger is not None and not charger.charging and not self.drew and state.info.can_switch_phases():
            # Not drawing yet (plugged in at night): a switch costs no pause now, and without sun
            # the 3-phase minimum would draw three times the grid power until the phase-down delay.
            # (A car that drew and stopped is full: switching would change nothing it draws.)
            surplus = surplus_w(state, self.params.reserve_w)
            if surplus is not None and surplus < limits.min_current_a * limits.voltage_v:
                self.phases, self.down_since = 1, None
        decision = super().decide(state)
        if decision.paused:
            return Decision(state.limits.min_current_a, decision.phases, f"minpv: {decision.reason}")
        return decision

    def _dip_spent(self, reason: str, state: SiteState) -> Decision:
        """Where `pv` pauses, the minimum, on 1 phase if the charger can switch: under no sun the
        3-phase minimum would draw 4.1 kW from the grid until the phase-down delay, and a 3→1 switch
        costs no pause. (A 1-phase car draws on one phase whatever the mode.)"""
        if state.info.can_switch_phases() and self.car_phases == 3:
            self.phases, self.down_since = 1, None
        current = state.limits.min_current_a
        self.target_a = current
        return Decision(
            current, self.phases, f"minpv: {reason}, keeping the minimum {current:g} A {self.phases}p"
        )
