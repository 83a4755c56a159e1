"""The safety layer: every strategy's wish passes through here, plugins included.

Order matters and each step only ever lowers what the previous one allowed, with two exceptions: the
relay budget may hold a pause a strategy wanted to end, and while a phase switch is held back the
current is converted to the strategy's power on the phases in use (then clamped like any other, so a
held 3→1 mostly charges at the minimum current of the 3 phases still in use):

1. blind fail-safe: no valid meter or charger data for `stale_after_s` → `fallback_current_a`;
2. phase mode: only what the charger can do, never faster than `min_phase_switch_interval_s`, and a
   1→3 switch while charging goes pause → switch → resume (unless `pause_before_phase_up` is off);
   while a switch is held back, the strategy's current is converted to the same power;
3. clamp to `[min_current_a, max_current_a]`; while the meter's reading is older than the charger's
   (it failed this cycle), no rise above the last command and no 1→3 switch;
4. main fuse per grid phase, from the meter's phase currents minus the car's own draw;
5. relay budget: at most `max_pauses` pauses in any `pause_window_s`.

Cuts (fuse, blind) take effect in the same cycle and are never held back by the relay budget; a
resume is, also one to a blind fallback above 0 A.
"""

from __future__ import annotations

import math

from controller.core.commands import Command
from controller.core.decision import Decision
from controller.core.records import core_record
from controller.core.state import MeterReading, SiteLimits, SiteState
from controller.core.units import MIN_SIGNAL_A, ma

PAUSE_FOR_SWITCH = "1→3 switch: pausing first"
"""The note of the pause before a 1→3 switch under way, which opens the contactor without a stop."""


@core_record
class SafetyMemory:
    """What the safety layer must remember between cycles; returned each cycle, the same object when
    nothing in it changed.

    Built with the constructor rather than `dataclasses.replace`, which costs more than the rest of a
    cycle's bookkeeping: the simulator runs this half a million times a month.
    """

    pause_times: tuple[float, ...] = ()
    """Oldest first."""
    last_switch_s: float | None = None
    last_limit_ma: int | None = None
    switching_up: bool = False
    """A 1→3 switch is under way: the charger has been paused and must stop before switching."""
    car_ceiling: tuple[int, float | None] = (0, None)
    """(mA, since): the highest limit the charger had in force within the last `CAR_SETTLE_S`, the
    most the car can still be drawing while it slows down to a lower one; and when the limit in force
    fell below it (None: it has not)."""
    up_switch_s: float | None = None
    """When the last 1→3 switch was commanded: for `CAR_SETTLE_S` after it, a charger that still reads
    1 phase may be on 3 already (a read-back one read late, a write that failed but was applied)."""


LOWEST_VOLTAGE_FACTOR = 0.9
"""EN 50160 lets the mains sit 10 % below nominal. Where a meter gives a phase's power but not its
voltage (or only the total power), the current is computed at that voltage, so that a feeder at 207 V
does not hide a tenth of the load from the fuse check."""

DRAWING_A = 1.0
"""A charger phase with at least this current is loaded; an idle one reads a few tenths at most."""

CAR_SETTLE_S = 30.0
"""How long a car may take to come down to a lower limit: IEC 61851 gives it 5 s, cars with a slow
ramp (and the simulator's, a 10 s time constant) take longer."""


def fuse_headroom_a(state: SiteState, phases: int, car_ceiling_ma: int) -> float | None:
    """The largest per-phase charge current that keeps every loaded grid phase under the fuse.

    Other load on a grid phase = meter current − the car's own current on that phase. Export on a phase
    is not counted as headroom, because a cloud can take it away faster than the next cycle. Without
    per-phase data, the whole non-car import is assumed on each phase; the car's power taken off it is
    never more than its capped current at the nominal voltage, so that a charger reading 15.6 kW on an
    11 kW limit cannot hide 4.6 kW of house load. A meter with phase values that does not measure a
    phase this mode loads leaves no headroom.
    """
    grid = state.grid
    if grid is None:
        return None
    limits = state.limits
    car_on_grid = _car_current_by_grid_phase(state, car_ceiling_ma)
    low_v = limits.voltage_v * LOWEST_VOLTAGE_FACTOR
    headroom: float | None = None
    for grid_phase in limits.grid_phases(phases):
        measured = grid.phase_current_a(grid_phase, low_v)
        if measured is None and _measures_phases(grid):
            # A meter of fewer phases than this mode loads (an sdm120 ahead of 3 phases): its total
            # is the power of its own phase, not the site's, so nothing bounds this phase's load.
            return 0.0
        if measured is None:
            car_w = state.car_power_w()
            car_most_w = (car_on_grid[0] + car_on_grid[1] + car_on_grid[2]) * limits.voltage_v
            other = (grid.power_w - (car_w if car_w < car_most_w else car_most_w)) / low_v
        else:
            other = measured - car_on_grid[grid_phase]
        room = limits.main_fuse_a - (0.0 if other < 0.0 else other)
        if math.isnan(room):  # the device layers refuse NaN, so this is a reading built past them
            return 0.0
        headroom = room if headroom is None or room < headroom else headroom
    return headroom


def _measures_phases(grid: MeterReading) -> bool:
    """Whether the meter gives a current or a power for some phase; one with phase voltages alone
    (a custom map, a SunSpec meter leaving the rest unimplemented) is a total-only meter."""
    return any(phase.current_a is not None or phase.power_w is not None for phase in grid.phases)


def _unmeasured_phase(state: SiteState, phases: int) -> int | None:
    """The first grid phase this mode loads that a meter with phase values does not measure."""
    grid = state.grid
    if grid is None or not _measures_phases(grid):
        return None
    low_v = state.limits.voltage_v * LOWEST_VOLTAGE_FACTOR
    for grid_phase in state.limits.grid_phases(phases):
        if grid.phase_current_a(grid_phase, low_v) is None:
            return grid_phase
    return None


def _car_current_by_grid_phase(state: SiteState, car_ceiling_ma: int) -> list[float]:
    """The car's current on each grid phase, never more than the charger lets it draw.

    Every amp counted here is taken off the meter's phase current as the car's own, so a charger
    reading an impossible current (45 A on a 10 A limit) would hide that much house load from the fuse
    check. A car draws no more than the installation's maximum and the highest limit in force while it
    had time to follow (`car_ceiling_ma`, `SafetyMemory.car_ceiling`). Not just the limit now: after a
    cut the car is still slowing down, and counting its real draw as house load would pause it.
    """
    currents = [0.0, 0.0, 0.0]
    charger = state.charger
    if charger is None:
        return currents
    limits = state.limits
    ceiling = car_ceiling_ma / 1000
    ceiling = limits.max_current_a if limits.max_current_a < ceiling else ceiling
    rotation = limits.phase_rotation
    if charger.phase_currents_a:
        for charger_phase, amps in enumerate(charger.phase_currents_a[:3]):
            if amps > 0.0:
                currents[rotation[charger_phase]] += amps if amps < ceiling else ceiling
        return currents
    phases = state.active_phases()
    per_phase = min(max(charger.power_w / (phases * limits.voltage_v), 0.0), ceiling)
    for grid_phase in limits.grid_phases(phases):
        currents[grid_phase] += per_phase
    return currents


def _car_ceiling(before: tuple[int, float | None], limit: int, now: float) -> tuple[int, float | None]:
    """`SafetyMemory.car_ceiling` for this cycle: a rise counts at once, a fall after `CAR_SETTLE_S`."""
    ceiling, lowered = before
    if limit >= ceiling:
        return limit, None
    if lowered is None:
        return ceiling, now
    if now - lowered >= CAR_SETTLE_S or now < lowered:
        return limit, None
    return ceiling, lowered


def _restamped(memory: SafetyMemory, now: float) -> SafetyMemory:
    """The memory after the clock stepped back past some of its times (an NTP correction).

    A pause or a switch stamped in the future happened at an unknown time before now: counted as just
    now, it holds the relay budget and the switch interval for one window, as after any pause or switch.
    Kept at its stamp, its age would be negative until the clock caught up: an hour's step kept the car
    paused, or on one phase, for an hour and ten minutes.
    """
    pauses = tuple(t if t <= now else now for t in memory.pause_times)
    last_switch_s = memory.last_switch_s
    if last_switch_s is not None and last_switch_s > now:
        last_switch_s = now
    up_switch_s = memory.up_switch_s
    if up_switch_s is not None and up_switch_s > now:
        up_switch_s = now
    return SafetyMemory(
        pauses, last_switch_s, memory.last_limit_ma, memory.switching_up, memory.car_ceiling, up_switch_s
    )


def _pauses_in_window(memory: SafetyMemory, now: float, limits: SiteLimits) -> tuple[float, ...]:
    times = memory.pause_times
    if not times or now - times[0] < limits.pause_window_s:  # oldest first: nothing has aged out
        return times
    return tuple(t for t in times if now - t < limits.pause_window_s)


def apply(
    decision: Decision, state: SiteState, memory: SafetyMemory
) -> tuple[Command, SafetyMemory, list[str]]:
    """Turn a strategy's decision into a command that respects every limit, with notes saying why."""
    limits = state.limits
    now = state.now
    notes: list[str] = []
    if (
        (memory.pause_times and memory.pause_times[-1] > now)
        or (memory.last_switch_s is not None and memory.last_switch_s > now)
        or (memory.up_switch_s is not None and memory.up_switch_s > now)
    ):
        memory = _restamped(memory, now)
    pauses = _pauses_in_window(memory, now, limits)
    current_phases = state.active_phases()
    was_running = _was_running(state, memory)
    car_ceiling = memory.car_ceiling
    limit_in_force = state.charger.limit_actual_ma if state.charger is not None else 0
    if limit_in_force != car_ceiling[0] or car_ceiling[1] is not None:  # else unchanged: most cycles
        car_ceiling = _car_ceiling(car_ceiling, limit_in_force, now)

    blind = _blind_reason(state)
    if blind is not None:
        target = min(limits.fallback_current_a, limits.max_current_a)
        notes.append(f"BLIND ({blind}): fallback {target:g} A")
        if target > 0 and not was_running and len(pauses) >= limits.max_pauses:
            # a resume to the fallback is a contactor operation like any other
            notes.append(f"relay budget: {len(pauses)} pauses in {limits.pause_window_s:g} s, stay paused")
            target = 0.0
        phases, last_switch_s, switching_up = current_phases, memory.last_switch_s, memory.switching_up
    else:
        target, phases, last_switch_s, switching_up = _limit(
            decision, state, current_phases, memory, pauses, was_running, car_ceiling[0], notes
        )
    switched_up = phases > current_phases and state.info.can_switch_phases()  # a 1→3 switch, commanded now
    up_switch_s = now if switched_up else memory.up_switch_s
    return _finish(
        target,
        phases,
        state,
        pauses,
        was_running,
        notes,
        memory,
        last_switch_s,
        switching_up,
        car_ceiling,
        up_switch_s,
    )


def _limit(
    decision: Decision,
    state: SiteState,
    current_phases: int,
    memory: SafetyMemory,
    pauses: tuple[float, ...],
    was_running: bool,
    car_ceiling_ma: int,
    notes: list[str],
) -> tuple[float, int, float | None, bool]:
    """Steps 2–5 for a controller that sees: (target A, phases, last switch time, switching up)."""
    limits = state.limits
    wanted = 3 if decision.phases >= 3 else 1
    behind = _meter_behind(state)
    if behind and wanted > current_phases:
        wanted = current_phases
    phases, switching_up, switched = _choose_phases(
        decision, wanted, state, current_phases, memory, pauses, notes
    )
    if switching_up:
        notes.append(PAUSE_FOR_SWITCH)
        return 0.0, current_phases, memory.last_switch_s, True

    target = decision.current_a
    if target > 0 and phases != wanted and state.info.can_switch_phases():
        # The current is per phase of the mode the strategy asked for; while a switch is held back
        # the same power is the same amps × phases on the mode in use. (A charger that cannot switch
        # gets the current as asked: strategies size it for the phases they read, `fast` for its max.)
        scaled = target * wanted / phases
        notes.append(f"{target:.1f} A on {wanted}p is {scaled:.1f} A on {phases}p")
        target = scaled
    if target > 0:
        clamped = limits.min_current_a if limits.min_current_a > target else target
        clamped = limits.max_current_a if limits.max_current_a < clamped else clamped
        if clamped != target:
            notes.append(f"clamp {target:.1f}→{clamped:.1f} A")
        target = clamped
        if limits.max_increase_a_per_cycle is not None and memory.last_limit_ma:
            ceiling = memory.last_limit_ma / 1000 + limits.max_increase_a_per_cycle
            if target > ceiling:
                target = max(ceiling, limits.min_current_a)

    if behind and target > 0:
        held_ma = memory.last_limit_ma
        if held_ma is None:
            held_ma = state.charger.limit_ma if state.charger is not None else 0
        held = held_ma / 1000
        if target > held:
            notes.append(f"meter reading from an earlier cycle: holding {held:.1f} A")
            target = held

    # In a 3→1 cycle the new limit may reach the charger before its contactors drop L2 and L3, so
    # it must fit all three for that moment, and so in any later cycle while the charger's meter
    # still sees current on them (contactors slower than a cycle). Shortly after a 1→3 switch a
    # reading of 1 phase may be old: the current sized for L1 alone could land on all three.
    loaded = (
        3
        if phases == 1 and (switched or _drawing_on_l2_l3(state) or _lately_up(memory, state.now))
        else phases
    )
    headroom = fuse_headroom_a(state, loaded, car_ceiling_ma) if target > 0 else None
    if headroom is not None and target > headroom:
        if headroom >= max(limits.min_current_a, MIN_SIGNAL_A):
            notes.append(f"fuse: {target:.1f}→{headroom:.1f} A")
            target = headroom
        elif (blank := _unmeasured_phase(state, loaded)) is not None:
            notes.append(f"fuse: the meter does not measure grid L{blank + 1}, pausing {loaded}p charging")
            target = 0.0
        else:
            notes.append(f"fuse: headroom {headroom:.1f} A < minimum, pausing")
            target = 0.0

    if target > 0 and not was_running and len(pauses) >= limits.max_pauses:
        notes.append(f"relay budget: {len(pauses)} pauses in {limits.pause_window_s:g} s, stay paused")
        target = 0.0

    last_switch_s = state.now if switched else memory.last_switch_s
    return target, phases, last_switch_s, False


def _lately_up(memory: SafetyMemory, now: float) -> bool:
    return memory.up_switch_s is not None and now - memory.up_switch_s < CAR_SETTLE_S


def _drawing_on_l2_l3(state: SiteState) -> bool:
    charger = state.charger
    if charger is None or len(charger.phase_currents_a) < 3:
        return False
    return charger.phase_currents_a[1] >= DRAWING_A or charger.phase_currents_a[2] >= DRAWING_A


def _blind_reason(state: SiteState) -> str | None:
    limits = state.limits
    if state.meter_health.stale(state.now, limits.stale_after_s):
        return _age("meter", state.meter_health.last_ok, state.now)
    if state.charger_health.stale(state.now, limits.stale_after_s):
        return _age("charger", state.charger_health.last_ok, state.now)
    return None


def _meter_behind(state: SiteState) -> bool:
    """The meter failed this cycle while the charger answered.

    The fuse headroom is the meter's phase current minus the car's current, so an old meter reading
    with a new car current counts every amp the car gained as free capacity: each cycle would allow
    more, until the meter is stale. Until the meter answers again the limit may hold or fall, not rise.
    """
    meter_ok = state.meter_health.last_ok
    charger_ok = state.charger_health.last_ok
    return meter_ok is not None and charger_ok is not None and meter_ok < charger_ok


def _age(device: str, last_ok: float | None, now: float) -> str:
    if last_ok is None:
        return f"no valid {device} data yet"
    if now < last_ok:
        return f"the clock stepped back {last_ok - now:.0f} s since the last valid {device} data"
    return f"no valid {device} data for {now - last_ok:.0f} s"


def _was_running(state: SiteState, memory: SafetyMemory) -> bool:
    if memory.last_limit_ma is not None:
        return memory.last_limit_ma > 0
    return state.charger is not None and state.charger.limit_ma >= 6000


def _choose_phases(
    decision: Decision,
    wanted: int,
    state: SiteState,
    current: int,
    memory: SafetyMemory,
    pauses: tuple[float, ...],
    notes: list[str],
) -> tuple[int, bool, bool]:
    """(phases to command, whether to pause first for a 1→3 switch, whether a switch happens now),
    from the phase mode the strategy `wanted` and the `current` one of the charger."""
    if not state.info.can_switch_phases():
        return state.info.phase_count, False, False
    if wanted == current:
        return current, False, False
    limits = state.limits
    if memory.last_switch_s is not None and not memory.switching_up:
        since = state.now - memory.last_switch_s
        if since < limits.min_phase_switch_interval_s:
            notes.append(f"phase switch held: {since:.0f} s since last")
            return current, False, False
    charging = state.charger is not None and state.charger.charging
    if wanted == 3 and charging and not decision.paused and limits.pause_before_phase_up:
        # The switch costs a pause and the resume after it must still fit the budget.
        if not memory.switching_up and len(pauses) >= limits.max_pauses - 1:
            notes.append("1→3 switch deferred: relay budget used")
            return current, False, False
        return current, True, False
    return wanted, False, True


def _finish(
    target_a: float,
    phases: int,
    state: SiteState,
    pauses: tuple[float, ...],
    was_running: bool,
    notes: list[str],
    memory: SafetyMemory,
    last_switch_s: float | None,
    switching_up: bool,
    car_ceiling: tuple[int, float | None],
    up_switch_s: float | None,
) -> tuple[Command, SafetyMemory, list[str]]:
    """The command, and the memory for the next cycle: the same object when nothing in it changed."""
    limit_ma = ma(target_a) if target_a >= MIN_SIGNAL_A else 0
    if limit_ma == 0 and was_running:
        pauses = (*pauses, state.now)  # oldest first: none lies after now (`_restamped`)
    force_1p = (phases == 1) if state.info.can_switch_phases() else None
    if (
        pauses is memory.pause_times
        and limit_ma == memory.last_limit_ma
        and last_switch_s == memory.last_switch_s
        and switching_up == memory.switching_up
        and car_ceiling == memory.car_ceiling
        and up_switch_s == memory.up_switch_s
    ):
        mem = memory
    else:
        mem = SafetyMemory(pauses, last_switch_s, limit_ma, switching_up, car_ceiling, up_switch_s)
    return Command(limit_ma, force_1p), mem, notes
