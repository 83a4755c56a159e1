"""The `[meter]` table of config.toml."""

from __future__ import annotations

import importlib.util
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from controller.errortext import TOKEN_LIKE
from controller.meter.registers import RegisterMap

PresetName = Literal[
    "sdm630",
    "sdm120",
    "em24-e1",
    "abb-b23",
    "shelly-pro-3em",
    "victron-gx",
    "sunspec",
    "fronius",
    "solaredge",
    "huawei-sun2000",
    "custom",
]


class MeterSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    preset: PresetName
    host: str | None = Field(None, description="meter, inverter or RS485 gateway (TCP transports)")
    port: int | None = Field(None, ge=1, le=65535, description="default from the preset")
    unit_id: int | None = Field(None, ge=0, le=255, description="default from the preset")
    invert: bool = False
    transport: Literal["tcp", "rtu-over-tcp", "serial"] = "tcp"
    serial_port: str | None = None
    baudrate: int | None = Field(None, gt=0, description="default from the preset (9600; SDM120 2400)")
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    connect_delay_s: float | None = Field(None, ge=0, le=10)
    request_delay_s: float | None = Field(None, ge=0, le=5)
    timeout_s: float = Field(1.0, gt=0, le=10)
    meter_index: int = Field(0, ge=0, description="SunSpec: which meter in the chain (0 = first)")
    max_power_w: float | None = Field(
        None,
        gt=0,
        description="readings beyond this are rejected as implausible (default 69000: 3 × 100 A at 230 V)",
    )
    registers: RegisterMap | None = Field(None, description="the register table of the custom preset")

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        """A DNS label has at most 63 characters and no host name is a run of 40 letters and digits, so
        a pasted token or URL is caught here, not at connect."""
        if value is None:
            return None
        value = value.strip()
        if not value:
            return None  # "required", said by _complete with the whole context
        if "://" in value:  # before the port check: 'http://192.168.1.60' has one colon too
            raise ValueError(
                f"{value!r}: give the bare host name or IP address without a scheme: {_bare(value)}"
            )
        if value.startswith("[") and value.endswith("]"):
            value = value[1:-1]  # an IPv6 literal as written in a URL
        if value.count(":") == 1:
            raise ValueError(f"{value!r}: give the port as meter.port, not after the host")
        if (
            any(c.isspace() or c in "/@" for c in value)
            or max(map(len, value.split("."))) > 63
            or TOKEN_LIKE.search(value)
        ):
            raise ValueError(
                f"{value!r} is not a host name or IP address; give the meter's, inverter's or "
                "gateway's address, e.g. 192.168.1.60"
            )
        return value

    @field_validator("serial_port")
    @classmethod
    def _device(cls, value: str | None) -> str | None:
        """A device path is short; a run of 40 letters and digits is a pasted token, which the meter's
        description would otherwise print and log."""
        if value is not None and TOKEN_LIKE.search(value):
            raise ValueError("looks like an API token, not a serial device; give e.g. '/dev/ttyUSB0'")
        return value

    @model_validator(mode="after")
    def _complete(self) -> MeterSettings:
        if self.transport == "serial":
            if not self.serial_port:
                raise ValueError("meter.serial_port: required with transport = 'serial', e.g. '/dev/ttyUSB0'")
        elif not self.host:
            raise ValueError("meter.host: required; the IP address of the meter, inverter or gateway")
        if self.preset == "custom" and self.registers is None:
            raise ValueError("meter.registers: preset 'custom' needs a [meter.registers] table (see README)")
        regs = self.registers
        if regs is not None and regs.power is None and None in (regs.power_l1, regs.power_l2, regs.power_l3):
            # Every read would fail for want of a total: the controller blind for good, at the fallback.
            raise ValueError(
                "meter.registers: give `power` (the total) or all three of power_l1, power_l2, power_l3"
            )
        if self.preset != "custom" and self.registers is not None:
            raise ValueError(
                "meter.registers: only for preset = 'custom'; remove it or set preset = 'custom'"
            )
        return self


def _bare(url: str) -> str:
    """What to write instead of a URL, e.g. `host = '192.168.1.60' and port = 502`."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host:
        return "e.g. host = '192.168.1.60'"
    return f"host = {host!r}" + (f" and port = {port}" if port else "")


def missing_library(settings: MeterSettings) -> str | None:
    """What the transport needs that is not installed, for `run` and `check` to refuse at start.

    Not a validation error of the settings: `simulate` reads the same config without a meter, on a
    laptop that has no serial port. pymodbus would raise RuntimeError at the first connect, a
    traceback and exit 1 that systemd restarts for ever, where exit 2 says "fix the installation".
    """
    if settings.transport == "serial" and importlib.util.find_spec("serial") is None:
        return (
            "meter.transport: 'serial' needs pyserial, which is not installed; install the serial "
            "extra with the pip of the environment peblar-surplus runs from: "
            "pip install 'peblar-surplus[serial]'"
        )
    return None
