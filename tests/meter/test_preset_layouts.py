"""Known-answer tests: every shipped meter preset against the register layouts documented in meters.md.

Why this file exists: ``test_modbus_meter.py::test_every_preset_decodes_power_sign_and_phases`` reads
each preset from ``MeterEmulator``, which encodes its registers from the same preset table
(``controller/meter/presets/*.toml``, and ``sunspec.meter_map`` for SunSpec) that the reader decodes
with. A wrong address, data type, scale, word order, function code or export sign therefore cancels
out there. Here each preset is checked against the *documented* layout instead of against itself:
the layouts below are written out by hand from /work/shared/meters.md and never read from the preset
files or the emulator.

Sources in meters.md:

* §0 "Conventions": wire addresses are 0-based (Eastron 30001 = input register 0, SunSpec "40001" =
  wire 40000, Shelly 31013 = input register 1013); word order big = high word first, little = low
  word first; "import +"; FC3 = holding, FC4 = input registers.
* §1 "Meter register table", rows: Eastron SDM630; Eastron SDM120; Carlo Gavazzi EM24 Ethernet
  (EM24_E1) / EM330/EM340/ET340; ABB B23/B24; Shelly Pro 3EM; Victron GX system service (unit 100);
  SunSpec meter 201/202/203/204 and 211/212/213/214 (generic offsets from the model start, i.e. its
  ID register); Fronius Smart Meter via inverter; SolarEdge meter via inverter; Huawei SUN2000 with
  DTSU666-H. Plus the notes under the table (Eastron currents are unsigned magnitudes).
* §2 "SunSpec discovery": the "SunS" marker at wire 40000, the [ID][L][data] chain that ends with
  0xFFFF, Common model 1 (L = 65 or 66), SolarEdge's inverter common + model 103 before the meter's
  common block at 40121 and model 203 at 40188, scale factors value = raw × 10^SF.
* §2.8 and §3 "Sign convention": SolarEdge and Huawei report export +, the others import +.
* §4 "In-process server for tests" for the pymodbus 3.16 simulator API.

How: for each case the documented registers are filled with raw words encoding one known reading
(import 2346 W: L1 +2415 W / 10.5 A, L2 exporting −736 W / −3.2 A, L3 +667 W / 2.9 A; 231.0 / 229.5 /
233.2 V; 12345.6 kWh imported, 6789.1 kWh exported; the single-phase SDM120 gets L1's values), and
once more mirrored (every power and current negated: the site exports 2346 W), converted to the
device's own convention (sign, scale, scale factor, word order) with pymodbus'
``convert_to_registers``. The image is served by a real pymodbus Modbus TCP server on 127.0.0.1
with *separate* holding and input tables, so a preset using the wrong function code gets exception
2. ``MeterEmulator`` is not used: it serves one shared block for FC3 and FC4 and encodes from the
presets. The image is read with ``ModbusMeter`` configured the way a user's ``[meter]`` table does
it (preset, host, port; unit id from the preset), and every decoded quantity is compared with the
known reading, import positive.

Current signs: Eastron and ABB currents are documented as unsigned magnitudes, Huawei's as "signed
like power" (export +). meters.md does not say whether EM24, Shelly or SunSpec currents carry a sign,
so those meters are served both ways, magnitudes and signed like their power. Either way the decoded
current must carry the sign of its phase's power, import positive: a current read as export would
count as room under the fuse.

Not covered: ``custom`` has no fixed layout (its map is the user's ``[meter.registers]`` table). The
SunSpec presets (``sunspec``, ``fronius``, ``solaredge``) discover their map, so they are served a
hand-built SunSpec chain with the meter model where meters.md places it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Literal

import pytest
from pymodbus.client.mixin import ModbusClientMixin
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from controller.core.state import MeterReading
from controller.meter.modbus import ModbusMeter
from controller.meter.presets import NAMES
from controller.meter.registers import QUANTITIES
from controller.meter.settings import MeterSettings

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

Table = Literal["holding", "input"]
Dtype = Literal["int16", "uint16", "int32", "uint32", "uint64", "float32"]
WordOrder = Literal["big", "little"]
CurrentSign = Literal["magnitude", "like power", "undocumented"]
Flow = Literal["import", "export"]

# The known reading, import positive. Distinct per phase, L2 exporting, so a swapped register or a
# wrong sign shows; the total equals the sum of the phases.
PHASE_W = (2415.0, -736.0, 667.0)
TOTAL_W = 2346.0
PHASE_A = (10.5, -3.2, 2.9)
PHASE_V = (231.0, 229.5, 233.2)
IMPORT_KWH = 12345.6
EXPORT_KWH = 6789.1

_DATATYPE = {
    "int16": ModbusClientMixin.DATATYPE.INT16,
    "uint16": ModbusClientMixin.DATATYPE.UINT16,
    "int32": ModbusClientMixin.DATATYPE.INT32,
    "uint32": ModbusClientMixin.DATATYPE.UINT32,
    "uint64": ModbusClientMixin.DATATYPE.UINT64,
    "float32": ModbusClientMixin.DATATYPE.FLOAT32,
}


@dataclass(frozen=True)
class Reg:
    """One documented register: wire address, type, and physical units (W, A, V, kWh) per raw count."""

    address: int
    dtype: Dtype = "float32"
    scale: float = 1.0
    """0.1 for meters.md's "/10"; for SunSpec this includes 10^SF (and 1/1000 for Wh → kWh)."""
    sf_address: int | None = None
    """SunSpec: the sunssf register, written with `sf`."""
    sf: int = 0


@dataclass(frozen=True)
class Layout:
    case: str
    preset: str
    unit_id: int
    tables: tuple[Table, ...]
    """Which Modbus tables the device answers the registers from (FC3 holding, FC4 input)."""
    word_order: WordOrder
    export_positive: bool
    current_sign: CurrentSign
    regs: Mapping[str, Reg]
    header: Mapping[int, int] = field(default_factory=dict)
    """Raw words at fixed addresses besides the quantities (the SunSpec marker and model headers)."""
    phases: int = 3
    xfail: str | None = None
    """Set (quoting meters.md) where the preset disagrees with the documentation."""


def sunspec_chain(*blocks: tuple[int, int], base: int = 40000) -> tuple[dict[int, int], dict[int, int]]:
    """The "SunS" marker at `base`, then [ID][L] headers of `blocks` (model id, length) and the end
    marker (meters.md §2.1-2.2). Returns the header words and the address of the last block's ID."""
    words = {base: 0x5375, base + 1: 0x6E53}
    address = base + 2
    starts: dict[int, int] = {}
    for model_id, length in blocks:
        words[address], words[address + 1] = model_id, length
        starts[model_id] = address
        address += 2 + length
    words[address], words[address + 1] = 0xFFFF, 0
    return words, starts


def sunspec_int_meter(start: int, a_sf: int, v_sf: int, w_sf: int, wh_sf: int) -> dict[str, Reg]:
    """Model 201-204 points at `start` (the model's ID register), meters.md §1 "SunSpec meter
    201/202/203/204": A per phase +3/+4/+5 (SF +6), PhV +8/+9/+10 (SF +15), W +18 with phases
    +19/+20/+21 (SF +22), TotWhExp +38, TotWhImp +46 (acc32 Wh, SF +54); int16 + sunssf."""

    def point(offset: int, sf_offset: int, sf: int) -> Reg:
        return Reg(start + offset, "int16", 10.0**sf, start + sf_offset, sf)

    def energy(offset: int) -> Reg:
        return Reg(start + offset, "uint32", 1e-3 * 10.0**wh_sf, start + 54, wh_sf)

    return {
        "current_l1": point(3, 6, a_sf),
        "current_l2": point(4, 6, a_sf),
        "current_l3": point(5, 6, a_sf),
        "voltage_l1": point(8, 15, v_sf),
        "voltage_l2": point(9, 15, v_sf),
        "voltage_l3": point(10, 15, v_sf),
        "power": point(18, 22, w_sf),
        "power_l1": point(19, 22, w_sf),
        "power_l2": point(20, 22, w_sf),
        "power_l3": point(21, 22, w_sf),
        "export_kwh": energy(38),
        "import_kwh": energy(46),
    }


def sunspec_float_meter(start: int) -> dict[str, Reg]:
    """Model 211-214 points at `start`, meters.md §1 "SunSpec meter 211/212/213/214": AphA-C +4/+6/+8,
    PhVphA-C +12/+14/+16, W +28 with phases +30/+32/+34, TotWhExp +60, TotWhImp +68 (Wh); float32."""
    wh = 1e-3
    return {
        "current_l1": Reg(start + 4),
        "current_l2": Reg(start + 6),
        "current_l3": Reg(start + 8),
        "voltage_l1": Reg(start + 12),
        "voltage_l2": Reg(start + 14),
        "voltage_l3": Reg(start + 16),
        "power": Reg(start + 28),
        "power_l1": Reg(start + 30),
        "power_l2": Reg(start + 32),
        "power_l3": Reg(start + 34),
        "export_kwh": Reg(start + 60, scale=wh),
        "import_kwh": Reg(start + 68, scale=wh),
    }


# Generic SunSpec device: Common model with L = 66 (with pad), the meter model right after it.
GENERIC_203_HEADER, GENERIC_203 = sunspec_chain((1, 66), (203, 105))
GENERIC_213_HEADER, GENERIC_213 = sunspec_chain((1, 66), (213, 124))
# Fronius: "model 213 starts at 40069"; int+SF model 203 at "same start".
FRONIUS_213_HEADER, FRONIUS_213 = sunspec_chain((1, 65), (213, 124))
FRONIUS_203_HEADER, FRONIUS_203 = sunspec_chain((1, 65), (203, 105))
# SolarEdge (§2.3): inverter common + model 103 at 40000…, meter 1 common at 40121, model 203 at 40188,
# meter 2 (here: the end marker) at 40295.
SOLAREDGE_HEADER, SOLAREDGE = sunspec_chain((1, 65), (103, 50), (1, 65), (203, 105))

A_SF, V_SF, W_SF, WH_SF = -3, -2, -1, 2
"""Distinct scale factors (negative and positive), so a reader that uses the wrong SF register fails."""

LAYOUTS = (
    Layout(
        # §1 "Eastron SDM630 (v2)": FC4, float32 W/A/V/kWh, big; currents magnitude only.
        case="sdm630",
        preset="sdm630",
        unit_id=1,
        tables=("input",),
        word_order="big",
        export_positive=False,
        current_sign="magnitude",
        regs={
            "voltage_l1": Reg(0x0000),
            "voltage_l2": Reg(0x0002),
            "voltage_l3": Reg(0x0004),
            "current_l1": Reg(0x0006),
            "current_l2": Reg(0x0008),
            "current_l3": Reg(0x000A),
            "power_l1": Reg(0x000C),
            "power_l2": Reg(0x000E),
            "power_l3": Reg(0x0010),
            "power": Reg(0x0034),
            "import_kwh": Reg(0x0048),
            "export_kwh": Reg(0x004A),
        },
    ),
    Layout(
        # §1 "Eastron SDM120 (1-phase)": FC4, total power 0x000C (same register as the phase),
        # current 0x0006, voltage 0x0000, energy 0x0048 / 0x004A; float32, big.
        case="sdm120",
        preset="sdm120",
        unit_id=1,
        tables=("input",),
        word_order="big",
        export_positive=False,
        current_sign="magnitude",
        phases=1,
        regs={
            "voltage_l1": Reg(0x0000),
            "current_l1": Reg(0x0006),
            "power": Reg(0x000C),
            "power_l1": Reg(0x000C),
            "import_kwh": Reg(0x0048),
            "export_kwh": Reg(0x004A),
        },
    ),
    Layout(
        # §1 "Carlo Gavazzi EM24 Ethernet (EM24_E1), EM330/EM340/ET340": FC4, INT32 little;
        # V/10, A/1000, W/10, kWh/10. Served on FC4 only: only EM24_E1 is said to answer FC3 too,
        # and the preset also claims EM330/EM340/ET340.
        case="em24-e1",
        preset="em24-e1",
        unit_id=1,
        tables=("input",),
        word_order="little",
        export_positive=False,
        current_sign="undocumented",
        regs={
            "voltage_l1": Reg(0x0000, "int32", 0.1),
            "voltage_l2": Reg(0x0002, "int32", 0.1),
            "voltage_l3": Reg(0x0004, "int32", 0.1),
            "current_l1": Reg(0x000C, "int32", 0.001),
            "current_l2": Reg(0x000E, "int32", 0.001),
            "current_l3": Reg(0x0010, "int32", 0.001),
            "power_l1": Reg(0x0012, "int32", 0.1),
            "power_l2": Reg(0x0014, "int32", 0.1),
            "power_l3": Reg(0x0016, "int32", 0.1),
            "power": Reg(0x0028, "int32", 0.1),
            "import_kwh": Reg(0x0034, "int32", 0.1),
            "export_kwh": Reg(0x004E, "int32", 0.1),
        },
    ),
    Layout(
        # §1 "ABB B23 / B24": FC3, big; power int32 W/100, currents uint32 A/100, voltages uint32
        # V/10, energy uint64 kWh/100.
        case="abb-b23",
        preset="abb-b23",
        unit_id=1,
        tables=("holding",),
        word_order="big",
        export_positive=False,
        current_sign="magnitude",
        regs={
            "voltage_l1": Reg(0x5B00, "uint32", 0.1),
            "voltage_l2": Reg(0x5B02, "uint32", 0.1),
            "voltage_l3": Reg(0x5B04, "uint32", 0.1),
            "current_l1": Reg(0x5B0C, "uint32", 0.01),
            "current_l2": Reg(0x5B0E, "uint32", 0.01),
            "current_l3": Reg(0x5B10, "uint32", 0.01),
            "power": Reg(0x5B14, "int32", 0.01),
            "power_l1": Reg(0x5B16, "int32", 0.01),
            "power_l2": Reg(0x5B18, "int32", 0.01),
            "power_l3": Reg(0x5B1A, "int32", 0.01),
            "import_kwh": Reg(0x5000, "uint64", 0.01),
            "export_kwh": Reg(0x5004, "uint64", 0.01),
        },
    ),
    Layout(
        # §1 "Shelly Pro 3EM (triphase)": FC4, float32 little; total 1013 (doc 31013), V/A/W per
        # phase at 1020/1022/1024 + 20·n, energy 1162 / 1164 in Wh.
        case="shelly-pro-3em",
        preset="shelly-pro-3em",
        unit_id=1,
        tables=("input",),
        word_order="little",
        export_positive=False,
        current_sign="undocumented",
        regs={
            "power": Reg(1013),
            "voltage_l1": Reg(1020),
            "current_l1": Reg(1022),
            "power_l1": Reg(1024),
            "voltage_l2": Reg(1040),
            "current_l2": Reg(1042),
            "power_l2": Reg(1044),
            "voltage_l3": Reg(1060),
            "current_l3": Reg(1062),
            "power_l3": Reg(1064),
            "import_kwh": Reg(1162, scale=0.001),
            "export_kwh": Reg(1164, scale=0.001),
        },
    ),
    Layout(
        # §1 "Victron GX, system service (unit 100)": FC3 or FC4 alike, grid L1-L3 at 820/821/822
        # int16 W, no total register (sum the phases), no currents or voltages.
        case="victron-gx",
        preset="victron-gx",
        unit_id=100,
        tables=("holding", "input"),
        word_order="big",
        export_positive=False,
        current_sign="undocumented",
        regs={
            "power_l1": Reg(820, "int16"),
            "power_l2": Reg(821, "int16"),
            "power_l3": Reg(822, "int16"),
        },
    ),
    Layout(
        # §1 "Huawei SUN2000 + DTSU666-H": FC3, big, export +; power 37113 int32 W, phases
        # 37132/37134/37136; currents 37107/37109/37111 int32 A/100 signed like power; voltages
        # 37101/37103/37105 int32 V/10; import = "reverse active" 37121, export = "positive
        # active" 37119 (kWh/100).
        case="huawei-sun2000",
        preset="huawei-sun2000",
        unit_id=1,
        tables=("holding",),
        word_order="big",
        export_positive=True,
        current_sign="like power",
        regs={
            "voltage_l1": Reg(37101, "int32", 0.1),
            "voltage_l2": Reg(37103, "int32", 0.1),
            "voltage_l3": Reg(37105, "int32", 0.1),
            "current_l1": Reg(37107, "int32", 0.01),
            "current_l2": Reg(37109, "int32", 0.01),
            "current_l3": Reg(37111, "int32", 0.01),
            "power": Reg(37113, "int32"),
            "export_kwh": Reg(37119, "uint32", 0.01),
            "import_kwh": Reg(37121, "uint32", 0.01),
            "power_l1": Reg(37132, "int32"),
            "power_l2": Reg(37134, "int32"),
            "power_l3": Reg(37136, "int32"),
        },
    ),
    Layout(
        # §1 "SunSpec meter 201/202/203/204", §2.8: generic SunSpec meters report import +.
        case="sunspec-203",
        preset="sunspec",
        unit_id=1,
        tables=("holding",),
        word_order="big",
        export_positive=False,
        current_sign="undocumented",
        header=GENERIC_203_HEADER,
        regs=sunspec_int_meter(GENERIC_203[203], A_SF, V_SF, W_SF, WH_SF),
    ),
    Layout(
        # §1 "SunSpec meter 211/212/213/214".
        case="sunspec-213",
        preset="sunspec",
        unit_id=1,
        tables=("holding",),
        word_order="big",
        export_positive=False,
        current_sign="undocumented",
        header=GENERIC_213_HEADER,
        regs=sunspec_float_meter(GENERIC_213[213]),
    ),
    Layout(
        # §1 "Fronius Smart Meter via inverter": FC3, float32 model 213 at 40069, W 40097, phases
        # 40099/40101/40103, A 40073/40075/40077, V 40081/40083/40085, import 40137 / export 40129
        # (Wh); import +; unit 200 on GEN24.
        case="fronius-213",
        preset="fronius",
        unit_id=200,
        tables=("holding",),
        word_order="big",
        export_positive=False,
        current_sign="undocumented",
        header=FRONIUS_213_HEADER,
        regs={
            "current_l1": Reg(40073),
            "current_l2": Reg(40075),
            "current_l3": Reg(40077),
            "voltage_l1": Reg(40081),
            "voltage_l2": Reg(40083),
            "voltage_l3": Reg(40085),
            "power": Reg(40097),
            "power_l1": Reg(40099),
            "power_l2": Reg(40101),
            "power_l3": Reg(40103),
            "export_kwh": Reg(40129, scale=0.001),
            "import_kwh": Reg(40137, scale=0.001),
        },
    ),
    Layout(
        # §1 "Fronius": "or int+SF (model 203, same start) depending on the inverter's SunSpec model
        # type setting"; points at the generic 201-204 offsets from 40069.
        case="fronius-203",
        preset="fronius",
        unit_id=200,
        tables=("holding",),
        word_order="big",
        export_positive=False,
        current_sign="undocumented",
        header=FRONIUS_203_HEADER,
        regs=sunspec_int_meter(40069, A_SF, V_SF, W_SF, WH_SF),
    ),
    Layout(
        # §1 "SolarEdge meter via inverter (meter 1)": FC3, int16 + SF, big, export +; W 40206 (SF
        # 40210), phases 40207/40208/40209; A 40191/40192/40193 (SF 40194); V 40196/40197/40198
        # (SF 40203); import 40234 / export 40226 (uint32 Wh, SF 40242); device ID 1.
        case="solaredge-203",
        preset="solaredge",
        unit_id=1,
        tables=("holding",),
        word_order="big",
        export_positive=True,
        current_sign="undocumented",
        header=SOLAREDGE_HEADER,
        regs={
            "current_l1": Reg(40191, "int16", 10.0**A_SF, 40194, A_SF),
            "current_l2": Reg(40192, "int16", 10.0**A_SF, 40194, A_SF),
            "current_l3": Reg(40193, "int16", 10.0**A_SF, 40194, A_SF),
            "voltage_l1": Reg(40196, "int16", 10.0**V_SF, 40203, V_SF),
            "voltage_l2": Reg(40197, "int16", 10.0**V_SF, 40203, V_SF),
            "voltage_l3": Reg(40198, "int16", 10.0**V_SF, 40203, V_SF),
            "power": Reg(40206, "int16", 10.0**W_SF, 40210, W_SF),
            "power_l1": Reg(40207, "int16", 10.0**W_SF, 40210, W_SF),
            "power_l2": Reg(40208, "int16", 10.0**W_SF, 40210, W_SF),
            "power_l3": Reg(40209, "int16", 10.0**W_SF, 40210, W_SF),
            "export_kwh": Reg(40226, "uint32", 1e-3 * 10.0**WH_SF, 40242, WH_SF),
            "import_kwh": Reg(40234, "uint32", 1e-3 * 10.0**WH_SF, 40242, WH_SF),
        },
    ),
)


def known_reading(layout: Layout, flow: Flow) -> dict[str, float | None]:
    """What the reader must return for each quantity, import positive; None where the meter has none.

    `flow` "export" mirrors the reading (every power and current negated: the site exports 2346 W,
    L2 imports), so the sign and signedness of the total and of every phase are checked both ways."""
    sign = 1.0 if flow == "import" else -1.0
    physical: dict[str, float] = {"import_kwh": IMPORT_KWH, "export_kwh": EXPORT_KWH}
    for n in range(layout.phases):
        physical[f"power_l{n + 1}"] = sign * PHASE_W[n]
        physical[f"current_l{n + 1}"] = sign * PHASE_A[n]
        physical[f"voltage_l{n + 1}"] = PHASE_V[n]
    physical["power"] = sign * (TOTAL_W if layout.phases == 3 else PHASE_W[0])
    want: dict[str, float | None] = {q: physical[q] if q in layout.regs else None for q in QUANTITIES}
    want["power"] = physical["power"]  # a meter without a total register: the reader sums the phases
    return want


def on_the_device(layout: Layout, quantity: str, value: float) -> float:
    """`value` (import positive) in the meter's own convention."""
    flip = -1.0 if layout.export_positive else 1.0
    if quantity.startswith("power"):
        return value * flip
    if quantity.startswith("current"):
        return abs(value) if layout.current_sign == "magnitude" else value * flip
    return value


def encode(reg: Reg, value: float, word_order: WordOrder) -> list[int]:
    raw = value / reg.scale
    if reg.dtype != "float32":
        assert abs(raw - round(raw)) < 1e-6, f"{value} is not a whole number of {reg.scale} steps"
        raw = round(raw)
    return list(ModbusClientMixin.convert_to_registers(raw, _DATATYPE[reg.dtype], word_order=word_order))


def register_image(layout: Layout, flow: Flow) -> dict[int, int]:
    """Wire address → raw word for the documented registers of `layout` holding the known reading."""
    image: dict[int, int] = dict(layout.header)

    def put(address: int, words: list[int]) -> None:
        for offset, word in enumerate(words):
            at = address + offset
            assert image.get(at, word) == word, f"{layout.case}: two documented values at {at}"
            image[at] = word

    want = known_reading(layout, flow)
    for quantity, reg in layout.regs.items():
        value = want[quantity]
        assert value is not None
        put(reg.address, encode(reg, on_the_device(layout, quantity, value), layout.word_order))
        if reg.sf_address is not None:
            put(reg.sf_address, [reg.sf & 0xFFFF])
    return image


PAD = 16
"""Zero registers served around the documented ones, so a slightly wrong address decodes a wrong
value (which the assertion names) instead of an exception reply."""


@asynccontextmanager
async def serve(layout: Layout, image: Mapping[int, int]) -> AsyncIterator[int]:
    """A real pymodbus Modbus TCP server on a free loopback port, answering unit `layout.unit_id`
    with `image` (zeros in between) from the tables the device uses; the other table holds a single
    unrelated register, so reading the image with the wrong function code gets exception 2."""
    low, high = max(min(image) - PAD, 0), min(max(image) + 1 + PAD, 0xFFFF)
    values = [image.get(address, 0) for address in range(low, high)]

    def table(name: Table) -> list[SimData]:
        if name in layout.tables:
            return [SimData(address=low, values=values, datatype=DataType.REGISTERS)]
        return [SimData(address=0xFFFF, values=[0], datatype=DataType.REGISTERS)]

    bits = [SimData(address=0, values=[False], datatype=DataType.BITS)]
    device = SimDevice(id=layout.unit_id, simdata=(bits, bits, table("holding"), table("input")))
    server = ModbusTcpServer(device, address=("127.0.0.1", 0))
    await server.serve_forever(background=True)
    try:
        yield server.transport.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]


def decoded(reading: MeterReading) -> dict[str, float | None]:
    got: dict[str, float | None] = dict.fromkeys(QUANTITIES)
    got.update(power=reading.power_w, import_kwh=reading.import_kwh, export_kwh=reading.export_kwh)
    for n, phase in enumerate(reading.phases, start=1):
        got.update(
            {f"power_l{n}": phase.power_w, f"current_l{n}": phase.current_a, f"voltage_l{n}": phase.voltage_v}
        )
    return got


def mismatches(
    layout: Layout, got: Mapping[str, float | None], want: Mapping[str, float | None]
) -> list[str]:
    wrong = []
    for quantity in QUANTITIES:
        actual, expected = got[quantity], want[quantity]
        if expected is None or actual is None:
            ok = actual is expected
        else:
            ok = actual == pytest.approx(expected, rel=1e-6, abs=1e-6)
        if not ok:
            wrong.append(f"{quantity}: decoded {actual!r}, documented layout holds {expected!r}")
    return wrong


def served_layouts() -> list[Layout]:
    """Each layout once; one whose current sign meters.md leaves open twice, once for each way."""
    served = []
    for layout in LAYOUTS:
        if layout.current_sign != "undocumented":
            served.append(layout)
            continue
        for sign, name in (("magnitude", "magnitudes"), ("like power", "signed")):
            served.append(replace(layout, current_sign=sign, case=f"{layout.case}-currents-{name}"))
    return served


def case(layout: Layout, flow: Flow) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=layout.xfail)] if layout.xfail else []
    return pytest.param(layout, flow, id=f"{layout.case}-{flow}", marks=marks)


async def read_image(layout: Layout, image: Mapping[int, int]) -> MeterReading:
    async with serve(layout, image) as port:
        meter = ModbusMeter(
            MeterSettings.model_validate(
                {
                    "preset": layout.preset,
                    "host": "127.0.0.1",
                    "port": port,
                    "timeout_s": 0.5,
                    "connect_delay_s": 0,
                    "request_delay_s": 0,
                }
            )
        )
        try:
            return await meter.read(now=1.0)
        finally:
            await meter.aclose()


@pytest.mark.parametrize(
    ("layout", "flow"), [case(layout, flow) for layout in served_layouts() for flow in ("import", "export")]
)
async def test_preset_decodes_the_documented_layout(layout: Layout, flow: Flow) -> None:
    reading = await read_image(layout, register_image(layout, flow))
    assert len(reading.phases) == layout.phases
    wrong = mismatches(layout, decoded(reading), known_reading(layout, flow))
    assert not wrong, "; ".join(wrong)


async def test_without_phase_power_an_export_positive_meters_currents_count_as_import() -> None:
    """SolarEdge counts export positive and does not say whether its currents are signed. With the
    per-phase W not implemented (0x8000) nothing tells a phase's direction: a magnitude negated as a
    signed value would show an importing phase as exporting, room for the fuse check. Read as import."""
    layout = replace(next(la for la in LAYOUTS if la.case == "solaredge-203"), current_sign="magnitude")
    image = register_image(layout, "import")
    for n in (1, 2, 3):
        image[layout.regs[f"power_l{n}"].address] = 0x8000
    reading = await read_image(layout, image)
    assert reading.power_w == pytest.approx(TOTAL_W)
    assert [p.current_a for p in reading.phases] == pytest.approx([abs(a) for a in PHASE_A])


def test_every_shipped_preset_has_a_documented_layout_here() -> None:
    assert {layout.preset for layout in LAYOUTS} == set(NAMES)


def test_hand_built_sunspec_chains_put_the_meter_models_where_meters_md_says() -> None:
    """§1 Fronius "model 213 starts at 40069"; §2.3 SolarEdge meter common at 40121, model 203 at 40188,
    meter 2 at 40295 (the end marker here)."""
    assert FRONIUS_213[213] == FRONIUS_203[203] == 40069
    assert SOLAREDGE[103] == 40069
    assert SOLAREDGE[1] == 40121
    assert SOLAREDGE[203] == 40188
    assert SOLAREDGE_HEADER[40295] == 0xFFFF
    assert SOLAREDGE[203] + 18 == 40206  # W, consistent with the generic "+18"


@pytest.mark.parametrize(
    ("preset", "port", "unit_id"),
    [
        # §1 "Defaults" column, where a TCP port / unit is documented.
        ("em24-e1", 502, 1),
        ("shelly-pro-3em", 502, 1),
        ("victron-gx", 502, 100),
        ("fronius", 502, 200),
        ("solaredge", 1502, 1),
        ("huawei-sun2000", 502, 1),
    ],
)
async def test_preset_tcp_defaults(preset: str, port: int, unit_id: int) -> None:
    meter = ModbusMeter(MeterSettings(preset=preset, host="127.0.0.1"))
    await meter.aclose()
    assert (meter.port, meter.unit_id) == (port, unit_id)


@pytest.mark.parametrize(("preset", "baudrate"), [("sdm630", 9600), ("sdm120", 2400)])
async def test_preset_serial_baud_rate(preset: str, baudrate: int) -> None:
    """§1 "Defaults": SDM630 RTU 9600 8N1, SDM120 RTU 2400 8N1."""
    meter = ModbusMeter(MeterSettings(preset=preset, transport="serial", serial_port="/dev/null"))
    await meter.aclose()
    assert meter._client.comm_params.baudrate == baudrate


async def test_huawei_waits_after_connect() -> None:
    """§1 Huawei: "Needs a 1-2 s pause after connect"."""
    meter = ModbusMeter(MeterSettings(preset="huawei-sun2000", host="127.0.0.1"))
    await meter.aclose()
    assert 1.0 <= meter.connect_delay_s <= 2.0
