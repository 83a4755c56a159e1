"""The site's power balance: how much the car could take without importing from the grid."""

from __future__ import annotations

from controller.core.state import SiteState


def surplus_w(state: SiteState, reserve_w: float = 0.0) -> float | None:
    """Power available for the car: export at the meter plus what the car draws now, minus a reserve.

    The car's own draw comes from the charger's meter, because the grid meter only sees the net. None
    when there is no grid reading at all.
    """
    if state.grid is None:
        return None
    return -state.grid.power_w + state.car_power_w() - reserve_w
