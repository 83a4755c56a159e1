"""Async client for the Peblar local REST API; the only module that speaks HTTP.

One `httpx.AsyncClient` for the daemon's whole life (keep-alive), a client-side token bucket that keeps
our share of the charger's 5 requests/s budget small, and retries only where they are safe (connection
errors, 429, 5xx), bounded in total time so a control cycle is never blocked for long. The token goes
into the `Authorization` header of each request and nowhere else: not in logs, messages or reprs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from controller.charger.base import (
    ChargerAuthError,
    ChargerBadRequest,
    ChargerError,
    ChargerMalformedAnswer,
    ChargerRateLimited,
    ChargerServerError,
    ChargerTimeout,
    ChargerUnreachable,
    ChargerWriteRefused,
)
from controller.charger.peblar.const import SMART_FEATURES
from controller.charger.peblar.models import (
    EVInterfaceResponse,
    HealthResponse,
    MeterResponse,
    SystemResponse,
)
from controller.clock import RealWaits, Waits
from controller.core.commands import Write
from controller.core.state import ChargerInfo, ChargerReading
from controller.errortext import one_line

log = logging.getLogger("peblar_surplus.charger")

API_PATH = "/api/wlac/v1"
READ_WRITE_HINT = (
    "on the charger's web UI open Settings > Advanced and set the local REST API access mode to "
    "ReadWrite (or run with --dry-run)"
)

M = TypeVar("M", bound=BaseModel)


class TokenBucket:
    """Client-side rate limit: `rate` requests per second with bursts of `burst`."""

    def __init__(self, rate: float, burst: int, waits: Waits) -> None:
        self.rate = rate
        self.burst = burst
        self._waits = waits
        self._tokens = float(burst)
        self._stamp = waits.monotonic()

    async def acquire(self) -> None:
        while True:
            now = self._waits.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens >= 1:
                self._tokens -= 1
                return
            await self._waits.sleep((1 - self._tokens) / self.rate)


class PeblarClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        http: httpx.AsyncClient | None = None,
        timeout_s: float = 3.0,
        retry_budget_s: float = 2.0,
        max_requests_per_s: float = 2.0,
        max_current_ma: int = 16000,
        waits: Waits | None = None,
        token_source: str = "the caller",  # noqa: S107 - where the token came from, not a token
    ) -> None:
        """`token_source` says where the token came from, for the message when the charger rejects it:
        a stale `$PEBLAR_SURPLUS_TOKEN` wins over the config and would send a user to copy a token
        file that was never read."""
        self.base_url = base_url.rstrip("/")
        self._token_source = token_source
        self._waits = waits or RealWaits()
        self._token = token
        self._own_http = http is None
        # trust_env=False: the charger is on the LAN, so a proxy set for the shell (HTTP_PROXY,
        # ALL_PROXY, ...) must not get its requests and their token; nor do .netrc or SSL_CERT_FILE
        # apply to it. A caller passing its own `http` client decides this for itself.
        self._http = http or httpx.AsyncClient(timeout=timeout_s, trust_env=False)
        self._timeout_s = timeout_s
        self._retry_budget_s = retry_budget_s
        # Burst 6: the start-up probe (3) and a full cycle (read 2, write 1) never wait.
        self._bucket = TokenBucket(max_requests_per_s, max(6, int(max_requests_per_s * 2)), self._waits)
        self.max_current_ma = max_current_ma
        self.requests = 0
        self.info: ChargerInfo | None = None
        self.last_health: HealthResponse | None = None
        self.last_system: SystemResponse | None = None
        self.last_evinterface: EVInterfaceResponse | None = None
        self.last_meter: MeterResponse | None = None

    def __repr__(self) -> str:
        return f"PeblarClient({self.base_url!r})"

    async def __aenter__(self) -> PeblarClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    # ---- the Charger protocol -------------------------------------------------------------------

    async def probe(self, needs_write: bool = True) -> ChargerInfo:
        health = await self._get("/health", HealthResponse, auth=False)
        system = await self._get("/system", SystemResponse)
        evi = await self._get("/evinterface", EVInterfaceResponse)
        self.last_health, self.last_system = health, system
        info = ChargerInfo(
            phase_count=system.phase_count or 3,
            force_1_phase_allowed=bool(system.force1_phase_allowed),
            firmware=system.firmware_version or "unknown",
        )
        self.info = info
        log.info(
            "charger %s: firmware %s, API %s (%s), %d phases, Force1PhaseAllowed=%s",
            self.base_url,
            info.firmware,
            health.api_version or "?",
            health.access_mode or "?",
            info.phase_count,
            info.force_1_phase_allowed,
        )
        if needs_write and health.access_mode == "ReadOnly":
            raise ChargerWriteRefused(f"the charger's REST API is ReadOnly; {READ_WRITE_HINT}")
        if evi.charge_current_limit_source in SMART_FEATURES:
            log.warning(
                "the charger's own %r is limiting the current; set Peblar's smart-charging mode to "
                "'Default' on its web UI, or the two controllers will fight",
                evi.charge_current_limit_source.value,
            )
        return info

    async def read(self, now: float) -> ChargerReading:
        evi = await self._get("/evinterface", EVInterfaceResponse)
        meter = await self._get("/meter", MeterResponse)
        self.last_evinterface, self.last_meter = evi, meter
        return ChargerReading(
            time=now,
            vehicle_connected=evi.cp_state.vehicle_connected,
            charging=evi.cp_state.charging,
            limit_ma=evi.charge_current_limit,
            limit_actual_ma=evi.charge_current_limit_actual,
            limit_source=evi.charge_current_limit_source.value,
            force_1_phase=evi.force1_phase,
            power_w=meter.total_power_w(),
            phase_currents_a=meter.phase_currents_a(),
            cp_state=evi.cp_state.value,
        )

    async def write(self, write: Write) -> None:
        body: dict[str, Any] = {}
        if write.limit_ma is not None:
            limit = write.limit_ma
            if limit != 0 and not 6000 <= limit <= self.max_current_ma:
                raise ValueError(
                    f"ChargeCurrentLimit {limit} mA: use 0 to pause or 6000..{self.max_current_ma} mA"
                )
            body["ChargeCurrentLimit"] = int(limit)
        if write.force_1_phase is not None:
            if self.info is not None and not self.info.force_1_phase_allowed:
                raise ValueError(
                    "Force1Phase: this charger does not allow 1-phase charging (Force1PhaseAllowed)"
                )
            body["Force1Phase"] = write.force_1_phase
        if not body:
            return
        answer = await self._request("PATCH", "/evinterface", body=body)
        self.last_evinterface = _parse_write_answer(answer)

    # ---- HTTP -----------------------------------------------------------------------------------

    async def _get(self, path: str, model: type[M], *, auth: bool = True) -> M:
        return _parse(model, await self._request("GET", path, auth=auth), path)

    async def _request(
        self, method: str, path: str, *, body: dict[str, Any] | None = None, auth: bool = True
    ) -> httpx.Response:
        """One request, retried while the retry budget lasts: no retry starts after the budget is
        spent, and each attempt ends within `timeout_s`, so a call takes at most the budget plus one
        timeout (plus any wait for the rate limit)."""
        deadline = self._waits.monotonic() + self._retry_budget_s
        delay = 0.1
        while True:
            try:
                return await self._once(method, path, body, auth)
            except (ChargerUnreachable, ChargerRateLimited, ChargerServerError) as exc:
                if self._waits.monotonic() + delay > deadline:
                    raise
                log.debug("%s %s: %s; retrying in %.1f s", method, path, exc, delay)
                await self._waits.sleep(delay)
                delay *= 2

    async def _once(self, method: str, path: str, body: dict[str, Any] | None, auth: bool) -> httpx.Response:
        """One attempt, over within `timeout_s` whatever the other end does.

        httpx's timeout bounds each socket operation, not the request: an answer sent a few bytes at a
        time, each in time, would hold the control cycle for as long as it lasts. So the attempt as a
        whole (connect, send, the complete answer) also gets `timeout_s` as its deadline, on the event
        loop's real clock like httpx's own timeouts; the wait for the rate limit comes before it and
        does not count. Streaming tells a silent charger from one whose answer began but came too
        slowly, which the message then says.
        """
        await self._bucket.acquire()
        url = f"{self.base_url}{API_PATH}{path}"
        headers = {"Authorization": self._token} if auth else {}
        self.requests += 1
        answer_began = False
        try:
            async with (
                asyncio.timeout(self._timeout_s),
                self._http.stream(
                    method, url, json=body, headers=headers, timeout=self._timeout_s
                ) as response,
            ):
                answer_began = True
                await response.aread()
        except (TimeoutError, httpx.TimeoutException):  # our deadline, or one of httpx's per-operation ones
            what = "the answer did not arrive complete" if answer_began else "no answer"
            raise ChargerTimeout(
                f"{method} {url}: {what} within {self._timeout_s:g} s; "
                + (_HTTPS_HINT if url.startswith("https:") and not answer_began else "")
                + "the charger may be overloaded or the network to it poor"
            ) from None
        except httpx.ProtocolError as exc:  # connected, then the answer broke off or made no sense
            raise ChargerUnreachable(
                f"{method} {url}: the answer broke off ({type(exc).__name__}: "
                f"{one_line(str(exc), BODY_CHARS)}); the charger may be restarting or overloaded"
            ) from None
        except httpx.TransportError as exc:
            if _unresolvable(exc):
                raise ChargerUnreachable(
                    f"{method} {url}: cannot connect, the name {httpx.URL(url).host!r} does not resolve; "
                    "check [charger] url (the charger's IP address works where its name does not)"
                ) from None
            reason = one_line(str(exc), BODY_CHARS)
            raise ChargerUnreachable(
                f"{method} {url}: cannot connect ({type(exc).__name__}{': ' + reason if reason else ''}); "
                + (_HTTPS_HINT if url.startswith("https:") else "")
                + "is the charger on and its local REST API enabled?"
            ) from None
        except httpx.DecodingError as exc:
            raise ChargerMalformedAnswer(
                f"{method} {url}: the answer could not be decoded ({one_line(str(exc), BODY_CHARS)}); "
                "a proxy or a firmware fault garbled it; restart the charger if this repeats"
            ) from None
        except httpx.HTTPError as exc:
            # What is left of httpx's errors, e.g. a redirect loop when the caller's client follows
            # redirects: the URL does not lead to the charger's API.
            raise ChargerUnreachable(
                f"{method} {url}: request failed ({type(exc).__name__}); check the charger URL "
                "(http://<charger-ip>, no path)"
            ) from None
        _raise_for_status(method, url, response, self._token_source)
        return response


BODY_CHARS = 200
"""Of a charger's answer (an HTML error page, say) quoted in an error message, at most this much."""


def _status_message(response: httpx.Response) -> str:
    """The charger's `statusmsg`, tolerating the bare or double-encoded strings some endpoints send.

    Whatever the error body holds (HTML, garbage, JSON nested deeper than the decoder's recursion
    limit), the status code still decides the error class, so decoding trouble here only shortens the
    message.
    """
    try:
        data: Any = response.json()
        if isinstance(data, str):
            data = json.loads(data) if data.startswith("{") else data
    except (ValueError, RecursionError):
        return one_line(response.text, BODY_CHARS)
    if isinstance(data, dict):
        return one_line(str(data.get("statusmsg") or data.get("StatusMsg") or data), BODY_CHARS)
    return one_line(str(data), BODY_CHARS)


def _raise_for_status(method: str, url: str, response: httpx.Response, token_source: str) -> None:
    status = response.status_code
    if status < 400:
        return
    message = _status_message(response)
    where = f"{method} {url}"
    error: ChargerError
    if status == 401:
        error = ChargerAuthError(
            f"{where}: the charger rejected the API token from {token_source} (401); compare it with the "
            "one on the charger's web UI, Settings > Advanced",
            status,
        )
    elif status == 403:
        error = ChargerWriteRefused(f"{where}: write refused (403: {message}); {READ_WRITE_HINT}", status)
    elif status == 400:
        error = ChargerBadRequest(f"{where}: the charger rejected the request (400: {message})", status)
    elif status == 429:
        error = ChargerRateLimited(
            f"{where}: too many requests (429); the charger allows 5/s for all its clients together",
            status,
        )
    elif status == 404:
        # Every path we use exists on a charger with the API on, so a 404 means we did not reach
        # that API: another web server (router, NAS) at this address, or the API switched off.
        # Such servers often send an empty body, which alone would leave nothing to go on.
        error = ChargerBadRequest(
            f"{where}: no Peblar local REST API at this address ({_with_excerpt(status, message)}); "
            "check the charger URL (http://<charger-ip>, no path) and that the local REST API is "
            "enabled on the charger's web UI under Settings > Advanced",
            status,
        )
    elif status >= 500:
        error = ChargerServerError(f"{where}: charger error {status}: {message}", status)
    else:
        error = ChargerBadRequest(f"{where}: unexpected status {_with_excerpt(status, message)}", status)
    raise error


def _with_excerpt(status: int, message: str) -> str:
    """`404: <body excerpt>`, or the bare status when the body is empty: no dangling colon."""
    return f"{status}: {message}" if message else str(status)


_HTTPS_HINT = (
    "the charger's API speaks plain HTTP (write [charger] url as http://…, unless a proxy adds TLS); "
)
"""An https:// URL to the charger itself fails in the TLS handshake: with an error, or, where the
charger waits for a request it can read, with a timeout that would otherwise blame the network."""


def _unresolvable(exc: BaseException) -> bool:
    """Whether a connection failed at the name lookup, which httpx reports like a charger that is off."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, socket.gaierror):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _parse(model: type[M], response: httpx.Response, path: str) -> M:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise ChargerMalformedAnswer(
            f"{path}: unexpected answer from the charger ({where}: {first['msg']})"
        ) from None


_EMPTY_ANSWER = re.compile(rb"\s*(\{\s*\})?\s*")


def _parse_write_answer(response: httpx.Response) -> EVInterfaceResponse | None:
    """The EV interface as the PATCH answer reports it, or None when the 2xx answer is empty or `{}`.

    Peblar's OpenAPI 1.0 gives the PATCH's 200 the `EVInterfaceResponse` schema but marks none of its
    fields required, no real charger's PATCH answer is on record, and python-peblar ignores the body
    and reads back with a GET. So an empty body or `{}` with a 2xx is the charger confirming the write;
    the state is unknown (None) until the next read. Any other body (or a 3xx) is checked like every
    answer.
    """
    if response.is_success and _EMPTY_ANSWER.fullmatch(response.content):
        return None
    return _parse(EVInterfaceResponse, response, "/evinterface")
