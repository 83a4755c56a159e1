"""The built-in meter presets: `presets/<name>.toml`, each a register map plus connection defaults."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any, get_args

from controller.meter.registers import RegisterMap
from controller.meter.settings import PresetName

NAMES = tuple(name for name in get_args(PresetName) if name != "custom")


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    port: int
    unit_id: int
    regmap: RegisterMap | None
    """None for SunSpec presets: the map is discovered on the device."""
    sunspec: bool = False
    export_positive: bool = False
    connect_delay_s: float = 0.0
    request_delay_s: float = 0.0
    baudrate: int = 9600


def load_preset(name: str) -> Preset:
    text = (resources.files("controller.meter") / "presets" / f"{name}.toml").read_text(encoding="utf-8")
    data: dict[str, Any] = tomllib.loads(text)
    regmap = RegisterMap.model_validate(data["map"]) if "map" in data else None
    return Preset(
        name=name,
        description=data["description"],
        port=data.get("port", 502),
        unit_id=data.get("unit_id", 1),
        regmap=regmap,
        sunspec=data.get("sunspec", False),
        export_positive=data.get("export_positive", False),
        connect_delay_s=data.get("connect_delay_s", 0.0),
        request_delay_s=data.get("request_delay_s", 0.0),
        baudrate=data.get("baudrate", 9600),
    )
