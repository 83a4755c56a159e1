"""`pv`: charge on solar surplus only, with as few contactor operations as the weather allows.

Each rule answers a complaint users of evcc and openWB raise (see shared research, anchors.md §c):

- the surplus is `−grid + car − reserve`, so the car's own draw never hides the sun;
- smoothing reacts at once to a drop (no grid import while the average catches up) and slowly to a
  rise (no chasing a passing gap in the clouds);
- start only after the surplus held the minimum power for `enable_delay_s` (cloud flapping, evcc#32760);
- during a dip at minimum current the grid energy drawn is counted, and charging stops once it exceeds
  `dip_import_wh` or the dip lasts `disable_delay_s`: a short shallow dip is bridged, a deep one is not
  (evcc#8076 keeps drawing for the whole 3-minute timer whatever the depth);
- 1p/3p switching has its own thresholds with hysteresis and its own delays, which run whether or not
  the car is drawing (evcc#12825 switched twice in 34 s because idle skipped the timers); under broken
  cloud the sun that 1 phase leaves behind also counts towards 1→3, so shadows cannot hold it off;
- when the surplus fails, it prefers 1 phase while paused, so the next start needs only 1.4 kW;
- a car that charges on one phase of a 3-phase charger (many plug-in hybrids) is recognised from the
  charger's phase currents: it gets the whole surplus on that phase, and no phase switches, which
  would interrupt it for nothing.
"""

from __future__ import annotations

import math
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from controller.core.balance import surplus_w
from controller.core.decision import Decision
from controller.core.state import SiteState

ONE_PHASE_CAR_S = 30.0
"""How long a car must draw on one phase of three before it counts as a 1-phase car: longer than a
3-phase car takes to bring in all its phases when it starts."""


CAR_MAX_GAP_A = 1.5
"""How far below the charger's maximum a car must stay to count as taking less."""
CAR_MAX_S = 60.0
"""For how long: several of the car's own ramp times."""


class PvParams(BaseModel):
    """Defaults tuned on the DTU Lyngby / UCI traces (bench/RESULTS.md) against evcc-default."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)
    enable_delay_s: float = Field(
        30, ge=0, description="surplus must hold the minimum power this long to start"
    )
    disable_delay_s: float = Field(600, ge=0, description="longest dip bridged at minimum current")
    dip_import_wh: float = Field(120, ge=0, description="grid energy a dip may draw before charging stops")
    phase_switch_delay_s: float = Field(240, ge=0, description="surplus must carry 3 phases this long (1→3)")
    phase_down_delay_s: float = Field(
        360, ge=0, description="surplus below the 3-phase minimum this long (3→1)"
    )
    phase_up_wh: float = Field(
        300, ge=0, description="sun 1 phase may leave behind before 1→3 (sooner than the delay)"
    )
    phase_margin_w: float = Field(300, ge=0, description="surplus above the 3-phase minimum needed for 1→3")
    reserve_w: float = Field(0, ge=0, description="export kept as a margin")
    rise_time_s: float = Field(1, gt=0, description="time constant for following a rising surplus")
    step_a: float = Field(0.1, gt=0, description="smallest increase worth a write")


class Pv:
    Params = PvParams
    summary: ClassVar[str] = "solar surplus only: start, follow and stop with the sun, 1p/3p automatically"
    keep_minimum: ClassVar[bool] = False

    def __init__(self, params: PvParams) -> None:
        self.params = params
        self.smoothed_w: float | None = None
        self.last_s: float | None = None
        self.running = False
        self.phases = 0
        """Phase mode this strategy wants; 0 until the first decision reads the charger's."""
        self.enough_since: float | None = None
        self.in_dip = False
        """A dip is being bridged; it lasts until the surplus has held the minimum (`recovered_since`)."""
        self.dip_wh = 0.0
        self.dip_s = 0.0
        """Seconds of the dip spent below the minimum."""
        self.recovered_since: float | None = None
        """Since when the surplus is back at the minimum during a dip."""
        self.up_since: float | None = None
        self.down_since: float | None = None
        self.up_wh = 0.0
        self.target_a = 0.0
        self.car_phases = 3
        """Phases the car draws on; 1 once it drew on one phase only while offered three."""
        self.one_phase_since: float | None = None
        self.car_max_a: float | None = None
        """The most the car takes, once it drew clearly less than the charger's maximum for a minute
        while offered it; None: as much as the charger gives."""
        self.below_max_since: float | None = None
        self.drew = False
        """The car has drawn since it was plugged in: if it stops while offered current, it is full
        or waits on its own timer, and a dip or a phase switch would change nothing it draws."""
        self.was_drawing = False
        """The car drew in the last cycle."""
        self.dip_ends_on_1p = False
        """A dip's spent budget asked for 1 phase: the dip ends when the charger is on it."""
        self._waiting_key: tuple[float, float, float, float] | None = None
        self._waiting_reason = ""
        """The reason of the last cycle that waited for the sun, and the numbers in it: while they hold,
        so does the reason. Formatting it cost more than the decision, on ten thousand night cycles of a
        simulated day."""

    def _smooth(self, raw: float, now: float) -> float:
        """Instant on a drop, first-order on a rise: import is corrected at once, export cautiously."""
        if self.smoothed_w is None or self.last_s is None or raw <= self.smoothed_w:
            return raw
        dt = now - self.last_s if now > self.last_s else 0.0
        alpha = 1 - math.exp(-dt / self.params.rise_time_s)
        return self.smoothed_w + (raw - self.smoothed_w) * alpha

    def decide(self, state: SiteState) -> Decision:
        p = self.params
        now = state.now
        limits = state.limits
        volts = limits.voltage_v
        raw = surplus_w(state, p.reserve_w)
        if raw is None:
            return Decision.pause("pv: no meter reading yet", state.active_phases())
        if self.last_s is not None and now < self.last_s:
            self._clock_stepped_back()
        first = self.last_s is None
        # Comparisons rather than min() and max() on every cycle's path: in CPython a call of either
        # costs more than the arithmetic around it.
        dt = now - self.last_s if self.last_s is not None and now > self.last_s else 0.0
        surplus = self._smooth(raw, now)
        self.smoothed_w, self.last_s = surplus, now

        can_switch = state.info.can_switch_phases()
        active = state.active_phases()
        if self.phases == 0 or not can_switch:
            self.phases = active
        one_min = limits.min_current_a * volts
        three_min = 3 * one_min
        self._recognise_car(state, active, now)
        charger = state.charger
        drawing = charger is not None and charger.charging
        if first and drawing:
            # Taking over a car that charges on the sun (a restart, a schedule switch): carry on,
            # on 1 phase if only that is carried (3→1 under way needs no pause).
            if surplus >= active * one_min:
                self.running, self.phases = True, active
            elif can_switch and surplus >= one_min:
                self.running, self.phases = True, 1
        # Full, or waiting on its own timer: no dip to end, no phase mode worth a switch. Only while the
        # charger offers current: a charger the safety layer holds paused (the relay budget) is not a
        # resting car, and a dip meanwhile must end the charge as it would a drawing one.
        offered = charger is not None and charger.limit_actual_ma >= limits.min_current_a * 1000
        resting = self.running and self.drew and not drawing and offered
        one_max = (limits.max_current_a if self.car_max_a is None else self.car_max_a) * volts
        if self.phases == 1 and active == 3 and can_switch and surplus >= three_min and self.car_phases == 3:
            # A switch to 1 phase not carried out yet (the safety layer holds it back, or the charge
            # stopped first), and 3 phases carry the sun again: carried out, it would cost a switch,
            # export and a pause to switch back.
            self.phases, self.dip_ends_on_1p = 3, False
        self._phase_timers(surplus, now, dt, can_switch and not resting, one_min, one_max)

        # While a switch to 1 phase is held back the charger still draws the 3-phase minimum.
        loaded = self.phases if self.phases > active else active
        min_power = (loaded if loaded < self.car_phases else self.car_phases) * one_min
        just_stopped, self.was_drawing = self.was_drawing and not drawing, drawing
        if self.running and not drawing and not offered and surplus < min_power and not self.keep_minimum:
            if just_stopped:
                # The charger reads the car at 0 W already, the meter (read a moment earlier, or slower
                # to update) may still see it drawing: the surplus looks that much smaller. Judged now,
                # the pause of a 1→3 switch dropped the switch (in the demo two of three, each costing
                # a pause). Held one cycle on the phases in use; the next one judges a settled meter.
                return Decision.pause(
                    f"pv: surplus {surplus:.0f} W < {min_power:.0f} W just after the car stopped: "
                    "waiting for the meter to settle",
                    active,
                )
            # Held paused (the relay budget, the fuse, a 1→3 switch under way) while the sun went: a
            # dip is bridged to spare the contactor, and here it is open already. Resuming would start
            # the car into the dip from the grid; a new start waits for the sun like any other.
            self.running = False
            self.enough_since = None
            self.in_dip, self.dip_wh = False, 0.0
            self.target_a = 0.0
            if can_switch and self.car_phases == 3 and surplus < three_min:
                # a 1→3 switch under way that the sun no longer carries: dropped, not completed
                self.phases = 1
            return Decision.pause(
                f"pv: surplus {surplus:.0f} W < {min_power:.0f} W while the charger is held paused: "
                "not resuming into a dip",
                self.phases,
            )
        if not self.running:
            start_power = one_min if can_switch else min_power
            if surplus >= start_power:
                self.enough_since = self.enough_since if self.enough_since is not None else now
            else:
                self.enough_since = None
            held = 0.0 if self.enough_since is None else now - self.enough_since
            if self.enough_since is None or held < p.enable_delay_s:
                key = (surplus, start_power, held, p.enable_delay_s)
                if key != self._waiting_key:
                    self._waiting_key = key
                    self._waiting_reason = (
                        f"pv: surplus {surplus:.0f} W, start needs {start_power:.0f} W "
                        f"for {p.enable_delay_s:.0f} s (held {held:.0f} s)"
                    )
                return Decision.pause(self._waiting_reason, self.phases)
            if can_switch and surplus < three_min and active == 3 and self.car_phases == 3:
                # Starting on 3 phases would import the difference until the safety layer may
                # switch (min_phase_switch_interval_s): ask for 1 phase and start once it is there.
                self.phases = 1
                return Decision.pause(
                    f"pv: surplus {surplus:.0f} W carries 1 phase only; start once the charger is on it",
                    1,
                )
            self.running = True
            self.in_dip, self.dip_wh = False, 0.0
            self.target_a = 0.0
            if can_switch and self.phases == 3 and surplus < three_min and self.car_phases == 3:
                self.phases = 1
                min_power = one_min

        if self.dip_ends_on_1p and (active == 1 or not self.in_dip):
            self.dip_ends_on_1p = False
            if active == 1:
                self.in_dip, self.dip_wh = False, 0.0
        if surplus < min_power and not resting:
            if not self.in_dip:
                self.in_dip, self.dip_s = True, 0.0
            else:
                self.dip_s += dt  # the time below the minimum only: sunny spells inside do not count
            self.recovered_since = None
            self.dip_wh += (min_power - surplus) * dt / 3600
            dip_s = self.dip_s
            spent = self.dip_wh > p.dip_import_wh or dip_s > p.disable_delay_s
            if spent and self.phases == 3 and can_switch and surplus >= one_min:
                # One phase still carries this surplus: switching costs no pause. The dip ends once
                # the charger is on 1 phase; while the safety layer holds the switch back (its
                # minimum interval) the car still draws the 3-phase minimum, and the spent budget
                # stops it next cycle rather than giving the same dip a second one.
                self.phases, self.down_since = 1, None
                self.dip_ends_on_1p = True
                min_power = one_min
                spent = False
            if spent:
                self.running = False
                self.enough_since = None
                reason = (
                    f"pv: dip drew {self.dip_wh:.0f} Wh in {dip_s:.0f} s "
                    f"(budget {p.dip_import_wh:.0f} Wh / {p.disable_delay_s:.0f} s)"
                )
                self.in_dip, self.dip_wh = False, 0.0
                return self._dip_spent(reason, state)
            if not self.keep_minimum and surplus < min_power:
                return self._set(
                    limits.min_current_a,
                    f"pv: dip, surplus {surplus:.0f} W < {min_power:.0f} W, bridging "
                    f"({self.dip_wh:.0f}/{p.dip_import_wh:.0f} Wh)",
                )
        elif self.in_dip:
            # A dip ends when the surplus has held the minimum as long as a start needs: five seconds
            # of sun in an overcast hour must not give the next shadow a fresh budget.
            self.recovered_since = self.recovered_since if self.recovered_since is not None else now
            if resting or now - self.recovered_since >= p.enable_delay_s:
                self.in_dip, self.dip_wh, self.recovered_since = False, 0.0, None

        wanted = surplus / ((self.phases if self.phases < self.car_phases else self.car_phases) * volts)
        wanted = wanted if wanted < limits.max_current_a else limits.max_current_a
        wanted = wanted if wanted > limits.min_current_a else limits.min_current_a
        return self._set(wanted, f"pv: surplus {surplus:.0f} W")

    def _recognise_car(self, state: SiteState, active: int, now: float) -> None:
        """Whether the car has drawn since it was plugged in, on how many phases, and how much.

        One phase drawing (≥ 4 A) and the other two not (< 1 A) for `ONE_PHASE_CAR_S` while three are
        offered: a 1-phase car, until it is unplugged. Sized for three phases, it would get a third of
        the surplus; evcc learns this from the charger's currents too.

        A car that takes less than the charger offers (10 A behind 16 A) leaves more sun behind on
        1 phase than 16 A would, which is what the 1→3 rule counts. Learnt only while the charger's
        maximum is offered, so a car still ramping up or following the sun is not mistaken for one.
        Every cycle of a charge passes here: plain comparisons, no sorting.
        """
        charger = state.charger
        if charger is None or not charger.vehicle_connected:
            self.car_phases, self.one_phase_since, self.drew = 3, None, False
            self.car_max_a = self.below_max_since = None
            return
        currents = charger.phase_currents_a
        self.drew = self.drew or charger.charging
        if not charger.charging or len(currents) != 3:
            self.one_phase_since = self.below_max_since = None
            return
        a, b, c = currents
        highest = a if a > b else b
        highest = highest if highest > c else c

        if active == 3 and highest >= 4.0 and (a >= 1.0) + (b >= 1.0) + (c >= 1.0) == 1:
            self.one_phase_since = self.one_phase_since if self.one_phase_since is not None else now
            if now - self.one_phase_since >= ONE_PHASE_CAR_S:
                self.car_phases = 1
        else:
            self.one_phase_since = None

        max_a = state.limits.max_current_a
        if self.car_max_a is not None and highest > self.car_max_a + CAR_MAX_GAP_A / 2:
            self.car_max_a = None  # it takes more now (a cold battery warmed up): forget the ceiling
        if highest < max_a - CAR_MAX_GAP_A and charger.limit_actual_ma >= max_a * 1000 - 100:
            self.below_max_since = self.below_max_since if self.below_max_since is not None else now
            if now - self.below_max_since >= CAR_MAX_S:
                self.car_max_a = highest + CAR_MAX_GAP_A / 3
        else:
            self.below_max_since = None

    def _clock_stepped_back(self) -> None:
        """Timers stamped in the future would hold their delays for as long as the step: start them
        again from now (a running charge keeps running)."""
        self.enough_since = self.recovered_since = self.up_since = self.down_since = None
        self.in_dip = False
        self.smoothed_w = None

    def _phase_timers(
        self, surplus: float, now: float, dt: float, can_switch: bool, one_min: float, one_max: float
    ) -> None:
        """Separate up and down thresholds and delays; they run whether or not the car is drawing.

        Above the up threshold (3-phase minimum + margin), 1→3 also happens once 1 phase has left
        `phase_up_wh` of sun behind, net of what 3 phases would have drawn from the grid in the shadows
        between: under broken cloud, where every shadow restarts the delay, a surplus that is mostly well
        above the threshold still gets its 3 phases, while a passing spike (one minute at 8 kW leaves
        72 Wh) switches nothing.
        """
        p = self.params
        if not can_switch or self.car_phases == 1:
            self.up_since = self.down_since = None
            self.up_wh = 0.0
            return
        three_min = 3 * one_min
        if self.phases == 1:
            self.down_since = None
            # 3 phases over 1: the sun 1 phase cannot take, less the grid draw of the 3-phase minimum
            # (nothing to count while 1 phase takes it all and nothing is counted yet: most cycles)
            if surplus > one_max or self.up_wh > 0.0:
                sun = min(surplus, 3 * one_max) - min(surplus, one_max)
                grid = max(three_min - max(surplus, one_min), 0.0)
                self.up_wh = max(0.0, self.up_wh + (sun - grid) * dt / 3600)
            above = surplus >= three_min + p.phase_margin_w
            if above:
                self.up_since = self.up_since if self.up_since is not None else now
            else:
                self.up_since = None
            held = self.up_since is not None and now - self.up_since >= p.phase_switch_delay_s
            if held or (above and self.up_wh >= p.phase_up_wh):
                self.phases, self.up_since, self.up_wh = 3, None, 0.0
                self.target_a = 0.0
        else:
            self.up_since = None
            if surplus < three_min:
                self.down_since = self.down_since if self.down_since is not None else now
                if now - self.down_since >= p.phase_down_delay_s:
                    self.phases, self.down_since = 1, None
                    self.target_a = 0.0
            else:
                self.down_since = None

    def _set(self, current_a: float, why: str) -> Decision:
        """Deadband: cuts pass at once, increases only in steps worth a write."""
        if current_a < self.target_a or current_a >= self.target_a + self.params.step_a or self.target_a == 0:
            self.target_a = math.floor(current_a * 10) / 10
        return Decision(self.target_a, self.phases, f"{why} → {self.target_a:.1f} A {self.phases}p")

    def _dip_spent(self, reason: str, state: SiteState) -> Decision:
        """What a dip past its budget ends in: a pause (`minpv` keeps the minimum instead)."""
        self.target_a = 0.0
        return Decision.pause(f"{reason}, pausing", self.phases or state.active_phases())
