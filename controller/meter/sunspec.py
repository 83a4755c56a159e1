"""SunSpec discovery: find the map, walk the model chain, and build a register map for one meter.

Absolute addresses move between vendors and firmware (KSEM 2.6 shifted its meter by one register;
Fronius switches between float and int+SF models), so the chain is walked instead of hard-coded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from controller.meter.base import MeterConfigError, MeterExceptionReply
from controller.meter.registers import RegisterMap, RegisterSpec

BASES = (40000, 50000, 0)
MARKER = [0x5375, 0x6E53]  # "SunS"
END = 0xFFFF
LAST_ADDRESS = 0xFFFF
INT_METERS = range(201, 205)
FLOAT_METERS = range(211, 215)

ReadHolding = Callable[[int, int], Awaitable[list[int]]]


@dataclass(frozen=True)
class Model:
    id: int
    address: int
    """Address of the model's ID register; its data starts two registers later."""
    length: int
    device: int
    """Index of the logical device (each Common model 1 starts a new one)."""


async def find_base(read: ReadHolding) -> int:
    for base in BASES:
        try:
            if await read(base, 2) == MARKER:
                return base
        except MeterExceptionReply:
            continue  # an absent base answers with an exception reply
    raise MeterConfigError("no SunSpec map found ('SunS' at 40000, 50000 or 0); is SunSpec/Modbus enabled?")


async def walk(read: ReadHolding, base: int, max_models: int = 64) -> list[Model]:
    models: list[Model] = []
    address = base + 2
    device = -1
    for _ in range(max_models):
        model_id = (await read(address, 1))[0]
        if model_id == END:
            return models
        length = (await read(address + 1, 1))[0]
        if model_id == 1:
            device += 1
        models.append(Model(model_id, address, length, max(device, 0)))
        address = _next_header(models[-1])
    return models


def _next_header(model: Model) -> int:
    """Where the model after `model` starts. A garbled length must end the walk with a reason rather
    than send a request beyond the 16-bit address space, which pymodbus refuses with a ValueError."""
    address = model.address + 2 + model.length
    if address + 1 > LAST_ADDRESS:
        raise MeterConfigError(
            f"SunSpec model {model.id} at {model.address} has length {model.length}, which runs past "
            f"register {LAST_ADDRESS} before the end marker; the device's SunSpec map is corrupt "
            "(wrong unit id, or a gateway mixing up answers?)"
        )
    return address


def meter_map(model: Model, export_positive: bool) -> RegisterMap:
    return _phases_of(model, _all_phases_map(model, export_positive))


def _all_phases_map(model: Model, export_positive: bool) -> RegisterMap:
    a = model.address
    if model.id in INT_METERS:

        def sf(offset: int, sf_offset: int, scale: float = 1.0, dtype: str = "int16") -> RegisterSpec:
            return RegisterSpec.model_validate(
                {"address": a + offset, "type": dtype, "scale": scale, "scale_factor_address": a + sf_offset}
            )

        return RegisterMap(
            function=3,
            max_block=110,
            export_positive=export_positive,
            current_l1=sf(3, 6),
            current_l2=sf(4, 6),
            current_l3=sf(5, 6),
            voltage_l1=sf(8, 15),
            voltage_l2=sf(9, 15),
            voltage_l3=sf(10, 15),
            power=sf(18, 22),
            power_l1=sf(19, 22),
            power_l2=sf(20, 22),
            power_l3=sf(21, 22),
            export_kwh=sf(38, 54, 0.001, "uint32"),
            import_kwh=sf(46, 54, 0.001, "uint32"),
        )

    def fl(offset: int, scale: float = 1.0) -> RegisterSpec:
        return RegisterSpec(address=a + offset, type="float32", scale=scale)

    return RegisterMap(
        function=3,
        max_block=110,
        export_positive=export_positive,
        current_l1=fl(4),
        current_l2=fl(6),
        current_l3=fl(8),
        voltage_l1=fl(12),
        voltage_l2=fl(14),
        voltage_l3=fl(16),
        power=fl(28),
        power_l1=fl(30),
        power_l2=fl(32),
        power_l3=fl(34),
        export_kwh=fl(60, 0.001),
        import_kwh=fl(68, 0.001),
    )


PHASES = {201: 1, 202: 2, 211: 1, 212: 2}
"""Single-phase (201/211) and split-phase (202/212) meter models leave the other phases' registers
unimplemented; 203/204/213/214 have three."""


def _phases_of(model: Model, regmap: RegisterMap) -> RegisterMap:
    """The map without the phases this model does not have, so their not-implemented markers are not
    taken for a meter that lost a phase's value (which is refused, see `modbus._check_phase_gaps`)."""
    count = PHASES.get(model.id, 3)
    absent = {
        f"{quantity}_l{n}": None for quantity in ("current", "voltage", "power") for n in range(count + 1, 4)
    }
    return regmap.model_copy(update=absent)


async def discover(read: ReadHolding, meter_index: int, export_positive: bool) -> tuple[RegisterMap, str]:
    """The register map of the `meter_index`-th meter model in the chain, and a description of it."""
    base = await find_base(read)
    models = await walk(read, base)
    meters = [m for m in models if m.id in INT_METERS or m.id in FLOAT_METERS]
    if not meters:
        found = ", ".join(str(m.id) for m in models) or "none"
        raise MeterConfigError(
            f"SunSpec map at {base} has no meter model (201-204, 211-214); models: {found}"
        )
    if meter_index >= len(meters):
        raise MeterConfigError(
            f"meter.meter_index = {meter_index}, but the SunSpec chain has {len(meters)} meter(s); "
            f"use 0..{len(meters) - 1}"
        )
    model = meters[meter_index]
    text = f"SunSpec model {model.id} at {model.address} (meter {meter_index + 1} of {len(meters)})"
    return _within_model(model, meter_map(model, export_positive)), text


def _within_model(model: Model, regmap: RegisterMap) -> RegisterMap:
    """A model shorter than the registers a meter model holds would have us read its neighbour's
    registers as phase currents and powers: a corrupt map, said as such rather than decoded."""
    last = max(
        max(spec.address + spec.size - 1, spec.scale_factor_address or 0) for spec in regmap.specs().values()
    )
    needed = last - (model.address + 2) + 1
    if model.length < needed:
        raise MeterConfigError(
            f"SunSpec model {model.id} at {model.address} has length {model.length}, shorter than the "
            f"{needed} registers a meter model {model.id} holds; the device's SunSpec map is corrupt "
            "(wrong unit id, or a gateway mixing up answers?)"
        )
    return regmap
