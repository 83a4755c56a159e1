"""Register maps as data, and the pure arithmetic that turns raw registers into physical values.

A preset (`presets/*.toml`) or a user's `[meter.registers]` table becomes a `RegisterMap`; `plan` groups
its registers into as few requests as the device allows, and `decode` reads values out of the answers.
Nothing here talks to a device, so every preset is tested on plain lists of registers.
"""

from __future__ import annotations

import math
import struct
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DataType = Literal["int16", "uint16", "int32", "uint32", "float32", "int64", "uint64"]
WordOrder = Literal["big", "little"]

SIZES: dict[str, int] = {
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "float32": 2,
    "int64": 4,
    "uint64": 4,
}
_FORMATS = {
    "int16": ">h",
    "uint16": ">H",
    "int32": ">i",
    "uint32": ">I",
    "float32": ">f",
    "int64": ">q",
    "uint64": ">Q",
}
NOT_IMPLEMENTED = {
    "int16": 0x8000,
    "uint16": 0xFFFF,
    "int32": 0x80000000,
    "uint32": 0xFFFFFFFF,
    "int64": 0x8000000000000000,
    "uint64": 0xFFFFFFFFFFFFFFFF,
}
"""SunSpec's (and SMA's, ABB's) markers for "no value": never a reading, never 0."""

QUANTITIES = (
    "power",
    "power_l1",
    "power_l2",
    "power_l3",
    "current_l1",
    "current_l2",
    "current_l3",
    "voltage_l1",
    "voltage_l2",
    "voltage_l3",
    "import_kwh",
    "export_kwh",
)


class RegisterSpec(BaseModel):
    """One quantity: where it is, how it is encoded, and the factor to physical units (W, A, V, kWh)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    address: int = Field(ge=0, le=65535, description="0-based address on the wire")
    type: DataType = "float32"
    scale: float = 1.0
    scale_factor_address: int | None = Field(
        None, ge=0, le=65535, description="SunSpec: a signed power-of-ten register read in the same request"
    )

    @property
    def size(self) -> int:
        return SIZES[self.type]


class RegisterMap(BaseModel):
    """A meter's layout. Signs: `export_positive` meters (SolarEdge, Huawei) are negated on reading."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    function: Literal[3, 4] = 4
    word_order: WordOrder = "big"
    max_block: int = Field(100, ge=2, le=125)
    even_count: bool = False
    max_gap: int = Field(8, ge=0, description="unused registers a request may span to save a request")
    export_positive: bool = False
    current_unsigned: bool = False
    power: RegisterSpec | None = None
    power_l1: RegisterSpec | None = None
    power_l2: RegisterSpec | None = None
    power_l3: RegisterSpec | None = None
    current_l1: RegisterSpec | None = None
    current_l2: RegisterSpec | None = None
    current_l3: RegisterSpec | None = None
    voltage_l1: RegisterSpec | None = None
    voltage_l2: RegisterSpec | None = None
    voltage_l3: RegisterSpec | None = None
    import_kwh: RegisterSpec | None = None
    export_kwh: RegisterSpec | None = None

    def specs(self) -> dict[str, RegisterSpec]:
        return {name: spec for name in QUANTITIES if (spec := getattr(self, name)) is not None}


def _spans(spec: RegisterSpec) -> list[tuple[int, int]]:
    spans = [(spec.address, spec.address + spec.size)]
    if spec.scale_factor_address is not None:
        spans.append((spec.scale_factor_address, spec.scale_factor_address + 1))
    return spans


def plan(regmap: RegisterMap) -> list[tuple[int, int]]:
    """(start, count) requests covering every register, merging neighbours closer than `max_gap`."""
    gap = regmap.max_gap
    spans = sorted(s for spec in regmap.specs().values() for s in _spans(spec))
    blocks: list[list[int]] = []
    for start, end in spans:
        if blocks and start - blocks[-1][1] <= gap and end - blocks[-1][0] <= regmap.max_block:
            blocks[-1][1] = max(blocks[-1][1], end)
        else:
            blocks.append([start, end])
    result = []
    for start, end in blocks:
        count = end - start
        if regmap.even_count and count % 2:
            count += 1
        result.append((start, count))
    return result


def to_value(words: list[int], dtype: str, word_order: str) -> float | None:
    """One value from its registers; None for a not-implemented marker or a NaN."""
    if word_order == "little":
        words = list(reversed(words))
    raw = b"".join(w.to_bytes(2, "big") for w in words)
    unsigned = int.from_bytes(raw, "big")
    if dtype == "float32":
        value = float(struct.unpack(">f", raw)[0])
        return None if math.isnan(value) or math.isinf(value) else value
    if NOT_IMPLEMENTED.get(dtype) == unsigned:
        return None
    return float(struct.unpack(_FORMATS[dtype], raw)[0])


def to_words(value: float, dtype: str, word_order: str) -> list[int]:
    """The inverse of `to_value`, for the emulator and the tests."""
    fmt = _FORMATS[dtype]
    raw = struct.pack(fmt, value if dtype == "float32" else round(value))
    words = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
    return list(reversed(words)) if word_order == "little" else words


def decode(regmap: RegisterMap, blocks: dict[int, list[int]]) -> dict[str, float | None]:
    """Physical values by quantity; None where the meter has no value (marker, NaN, bad SF)."""
    image: dict[int, int] = {}
    for start, words in blocks.items():
        for offset, word in enumerate(words):
            image[start + offset] = word
    values: dict[str, float | None] = {}
    for name, spec in regmap.specs().items():
        words = [image[a] for a in range(spec.address, spec.address + spec.size)]
        value = to_value(words, spec.type, regmap.word_order)
        if value is not None and spec.scale_factor_address is not None:
            sf_raw = image[spec.scale_factor_address]
            sf = sf_raw - 0x10000 if sf_raw >= 0x8000 else sf_raw
            value = None if not -10 <= sf <= 10 else value * 10.0**sf
        values[name] = None if value is None else value * spec.scale
    return values
