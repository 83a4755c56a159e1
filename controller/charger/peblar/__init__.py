"""The Peblar local REST API (`/api/wlac/v1/`): wire models, open enums and the async client."""

from controller.charger.peblar.client import PeblarClient
from controller.charger.peblar.const import ChargeCurrentLimitSource, CpState

__all__ = ["ChargeCurrentLimitSource", "CpState", "PeblarClient"]
