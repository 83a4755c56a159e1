"""A Peblar charger's local REST API on loopback, for the tests and the demo.

A real HTTP/1.1 server (asyncio streams, keep-alive) with the real endpoints, status codes and
`{"statusmsg": …}` error bodies, over `ChargerModel` physics. Time comes from the injected clock, so
the token bucket that answers 429 and the car's lag run at whatever speed the caller's clock runs.
Faults can be injected to see that the controller survives what real chargers do.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any

from controller.clock import Clock
from controller.simulation.charger_model import CarModel, ChargerModel

API = "/api/wlac/v1"
WRITABLE = {"ChargeCurrentLimit", "Force1Phase"}
READ_ONLY = {"CpState", "LockState", "ChargeCurrentLimitSource", "ChargeCurrentLimitActual"}
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}


@dataclass
class Faults:
    """What goes wrong next; each counter is the number of requests it applies to."""

    delay_s: float = 0.0
    status: int = 500
    status_count: int = 0
    malformed_count: int = 0
    drop_count: int = 0


class PeblarEmulator:
    def __init__(
        self,
        clock: Clock,
        *,
        token: str,
        model: ChargerModel | None = None,
        access_mode: str = "ReadWrite",
        firmware: str = "1.9.0+1+WL-1",
        api_version: str = "1.0",
        rate_per_s: float = 5.0,
        burst: int = 10,
    ) -> None:
        self.clock = clock
        self.token = token
        self.model = model or ChargerModel(CarModel(), now=clock.now())
        self.access_mode = access_mode
        self.firmware = firmware
        self.api_version = api_version
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.faults = Faults()
        self.requests = 0
        self.writes = 0
        self.write_log: list[tuple[float, dict[str, Any]]] = []
        self.limit_source_override: str | None = None
        self.cp_state_override: str | None = None
        self._tokens = float(burst)
        self._stamp = clock.now()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.url

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None

    async def __aenter__(self) -> PeblarEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def change_token(self, token: str) -> None:
        self.token = token

    def reboot(self) -> None:
        self.model.reboot(self.clock.now())

    # ---- HTTP -----------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    break
                if self.faults.drop_count > 0:
                    self.faults.drop_count -= 1
                    break
                if self.faults.delay_s:
                    await asyncio.sleep(self.faults.delay_s)
                status, payload = self._handle(*request)
                if self.faults.malformed_count > 0 and status == 200:
                    self.faults.malformed_count -= 1
                    body = b"<html>not json</html>"
                else:
                    body = json.dumps(payload).encode()
                head = (
                    f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                    "Connection: keep-alive\r\n\r\n"
                )
                writer.write(head.encode() + body)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _take_token(self) -> bool:
        now = self.clock.now()
        # a clock stepped back refills nothing: a negative refill answered 429 until it caught up
        refill = (now - self._stamp) * self.rate_per_s if now > self._stamp else 0.0
        self._tokens = min(self.burst, self._tokens + refill)
        self._stamp = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def _handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        self.requests += 1
        self.model.step(self.clock.now())
        if not self._take_token():
            return 429, {"statusmsg": "Too many requests"}
        if self.faults.status_count > 0:
            self.faults.status_count -= 1
            return self.faults.status, {"statusmsg": "An internal server error occurred"}
        if not path.startswith(API):
            return 404, {"statusmsg": "Not found"}
        endpoint = path[len(API) :]
        if endpoint == "/health" and method == "GET":
            return 200, {"ApiVersion": self.api_version, "AccessMode": self.access_mode}
        if headers.get("authorization") != self.token:
            return 401, {"statusmsg": "Unauthorized. An API token is required."}
        if method == "GET" and endpoint == "/system":
            return 200, self._system()
        if method == "GET" and endpoint == "/evinterface":
            return 200, self._evinterface()
        if method == "GET" and endpoint == "/meter":
            return 200, self._meter()
        if method in ("PATCH", "PUT") and endpoint == "/evinterface":
            return self._write(method, body)
        return 404, {"statusmsg": "Not found"}

    def _write(self, method: str, raw: bytes) -> tuple[int, Any]:
        if self.access_mode != "ReadWrite":
            return 403, {"statusmsg": "Access mode is ReadOnly"}
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            return 400, {"statusmsg": "Invalid JSON"}
        if not isinstance(body, dict):
            return 400, {"statusmsg": "Expected an object"}
        if read_only := sorted(set(body) & READ_ONLY):
            return 403, {"statusmsg": f"Field is read-only: {read_only[0]}"}
        if unknown := sorted(set(body) - WRITABLE):
            return 400, {"statusmsg": f"Unknown field: {unknown[0]}"}
        if method == "PUT" and set(body) != WRITABLE:
            return 400, {"statusmsg": "PUT requires ChargeCurrentLimit and Force1Phase"}
        limit = body.get("ChargeCurrentLimit")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
            return 400, {"statusmsg": "ChargeCurrentLimit must be a non-negative integer (mA)"}
        if limit is not None and limit > self.model.hw_max_ma:
            return 400, {"statusmsg": f"ChargeCurrentLimit above {self.model.hw_max_ma} mA"}
        force = body.get("Force1Phase")
        if force is not None and not isinstance(force, bool):
            return 400, {"statusmsg": "Force1Phase must be a boolean"}
        if force is not None and force and not self.model.force_1p_allowed:
            return 400, {"statusmsg": "Force1Phase is not allowed on this charger"}
        now = self.clock.now()
        self.writes += 1
        self.write_log.append((now, dict(body)))
        if limit is not None:
            self.model.set_limit(limit, now)
        if force is not None:
            self.model.set_force_1_phase(force, now)
        return 200, self._evinterface()

    # ---- payloads -------------------------------------------------------------------------------

    def _system(self) -> dict[str, Any]:
        return {
            "ProductPn": "6004-2200-7600",
            "ProductSn": "23-45-A4O-MOF",
            "FirmwareVersion": self.firmware,
            "WlanSignalStrength": -61,
            "CellularSignalStrength": None,
            "Uptime": int(self.clock.now()) % 1_000_000,
            "PhaseCount": self.model.phase_count,
            "Force1PhaseAllowed": self.model.force_1p_allowed,
            "ActiveErrorCodes": [],
            "ActiveWarningCodes": [],
        }

    def _evinterface(self) -> dict[str, Any]:
        m = self.model
        return {
            "CpState": self.cp_state_override or m.cp_state(),
            "LockState": True,
            "ChargeCurrentLimit": m.rest_limit_ma,
            "ChargeCurrentLimitSource": self.limit_source_override or m.limit_source(),
            "ChargeCurrentLimitActual": m.limit_actual_ma(),
            "Force1Phase": m.force_1_phase,
        }

    def _meter(self) -> dict[str, Any]:
        m = self.model
        currents = m.phase_currents_a()
        volts = m.voltage_v
        payload: dict[str, Any] = {}
        for index in range(m.phase_count):
            amps = currents[index]
            payload[f"CurrentPhase{index + 1}"] = round(amps * 1000)
            payload[f"VoltagePhase{index + 1}"] = round(volts)
            payload[f"PowerPhase{index + 1}"] = round(amps * volts)
        payload["PowerTotal"] = round(m.power_w())
        payload["EnergyTotal"] = round(m.energy_total_wh)
        payload["EnergySession"] = round(m.energy_session_wh)
        return payload


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str], bytes] | None:
    line = await reader.readline()
    if not line:
        return None
    parts = line.decode("latin-1").split()
    if len(parts) < 2:
        return None
    method, path = parts[0], parts[1].split("?", 1)[0]
    headers: dict[str, str] = {}
    while True:
        raw = await reader.readline()
        if raw in (b"\r\n", b"\n", b""):
            break
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    body = await reader.readexactly(length) if length else b""
    return method, path, headers, body
