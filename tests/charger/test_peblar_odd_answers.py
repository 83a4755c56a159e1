"""The REST client against a tiny loopback server that answers with bytes a real charger, or something
between it and us, might send: every odd answer must become a `ChargerError` with a message to act on."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from controller.charger.base import (
    ChargerBadRequest,
    ChargerError,
    ChargerMalformedAnswer,
    ChargerServerError,
    ChargerTimeout,
    ChargerUnreachable,
)
from controller.charger.peblar.client import API_PATH, PeblarClient
from controller.core.commands import Write
from tests.charger.test_peblar_client import TOKEN

EVI = {
    "CpState": "State C",
    "LockState": True,
    "ChargeCurrentLimit": 16000,
    "ChargeCurrentLimitSource": "Local REST API",
    "ChargeCurrentLimitActual": 15549,
    "Force1Phase": False,
}
METER = {
    "CurrentPhase1": 15510,
    "CurrentPhase2": 15420,
    "CurrentPhase3": 15380,
    "PowerPhase1": 3567,
    "PowerPhase2": 3546,
    "PowerPhase3": 3537,
    "PowerTotal": 10650,
}


@dataclass
class Answer:
    """One canned HTTP answer; `cut` promises a longer body than it sends, then closes; `trickle_s`
    sends the body one byte every so many seconds, each byte well inside a read timeout."""

    body: bytes
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    cut: bool = False
    trickle_s: float = 0.0


def answer_json(payload: Any, status: int = 200) -> Answer:
    return Answer(json.dumps(payload).encode(), status)


DEFAULTS = {
    ("GET", "/health"): answer_json({"ApiVersion": "1.0", "AccessMode": "ReadWrite"}),
    ("GET", "/system"): answer_json({"PhaseCount": 3, "Force1PhaseAllowed": True}),
    ("GET", "/evinterface"): answer_json(EVI),
    ("GET", "/meter"): answer_json(METER),
    ("PATCH", "/evinterface"): answer_json({**EVI, "ChargeCurrentLimit": 8000}),
}


class CannedCharger:
    """HTTP/1.1 with keep-alive on 127.0.0.1: `answers[(method, endpoint)]` is sent back verbatim."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], Answer] = dict(DEFAULTS)
        self.url = ""
        self._server: asyncio.Server | None = None
        self._serving: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> CannedCharger:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        # A trickle the client gave up on would go on sending into the void after the test.
        for task in self._serving:
            task.cancel()
        await asyncio.gather(*self._serving, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._serving.add(task)
        try:
            await self._answer_all(reader, writer)
        finally:
            writer.close()
            self._serving.discard(task)

    async def _answer_all(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while line := await reader.readline():
                method, path = line.decode("latin-1").split()[:2]
                length = 0
                while (header := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = header.decode("latin-1").partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                await reader.readexactly(length)
                answer = self.answers[(method, path.removeprefix(API_PATH))]
                head = [f"HTTP/1.1 {answer.status} X", "Content-Type: application/json"]
                head += [f"{k}: {v}" for k, v in answer.headers.items()]
                head.append(f"Content-Length: {len(answer.body) * (2 if answer.cut else 1)}")
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
                await self._send_body(writer, answer)
                if answer.cut:
                    break

    @staticmethod
    async def _send_body(writer: asyncio.StreamWriter, answer: Answer) -> None:
        if not answer.trickle_s:
            writer.write(answer.body)
            await writer.drain()
            return
        await writer.drain()
        for i in range(len(answer.body)):
            writer.write(answer.body[i : i + 1])
            await writer.drain()
            await asyncio.sleep(answer.trickle_s)


@pytest.fixture
async def charger() -> AsyncIterator[CannedCharger]:
    async with CannedCharger() as server:
        yield server


@pytest.fixture
async def client(charger: CannedCharger) -> AsyncIterator[PeblarClient]:
    async with PeblarClient(charger.url, TOKEN, retry_budget_s=0.0, max_requests_per_s=1000) as c:
        yield c


def message(err: pytest.ExceptionInfo[ChargerError]) -> str:
    """The error text, checked for what every charger error must be: one line, without the token."""
    text = str(err.value)
    assert "\n" not in text
    assert TOKEN not in text
    return text


async def test_a_gzip_header_on_a_body_that_is_not_gzip_is_a_malformed_answer(
    charger: CannedCharger, client: PeblarClient
) -> None:
    charger.answers["GET", "/meter"] = Answer(b"not gzip at all", headers={"Content-Encoding": "gzip"})
    with pytest.raises(ChargerMalformedAnswer) as err:
        await client.read(0)
    assert "/meter: the answer could not be decoded" in message(err)
    charger.answers["GET", "/meter"] = Answer(
        gzip.compress(json.dumps(METER).encode()), headers={"Content-Encoding": "gzip"}
    )
    assert (await client.read(0)).power_w == 10650


async def test_an_error_body_too_deep_to_decode_still_gives_the_status_class(
    charger: CannedCharger, client: PeblarClient
) -> None:
    charger.answers["GET", "/evinterface"] = Answer(b"[" * 100_000, status=500)
    with pytest.raises(ChargerServerError, match="charger error 500") as err:
        await client.read(0)
    assert len(message(err)) < 400


async def test_a_redirect_loop_says_to_check_the_url(charger: CannedCharger) -> None:
    charger.answers["GET", "/health"] = Answer(b"", 302, {"Location": f"{API_PATH}/health"})
    async with (
        httpx.AsyncClient(follow_redirects=True, max_redirects=3) as http,
        PeblarClient(charger.url, TOKEN, http=http, retry_budget_s=0.0) as c,
    ):
        with pytest.raises(ChargerUnreachable) as err:
            await c.probe()
    assert "TooManyRedirects); check the charger URL" in message(err)


ODD_ANSWERS = {
    "gzip garbage": Answer(b"\x1f\x8b garbage", headers={"Content-Encoding": "gzip"}),
    "deflate garbage": Answer(b"garbage", headers={"Content-Encoding": "deflate"}),
    "JSON nested too deep": Answer(b'{"a":' * 50_000 + b"1" + b"}" * 50_000),
    "HTML": Answer(b"<html>ok</html>"),
    "JSON array": answer_json([EVI]),
    "not UTF-8": Answer(b"\xff\xfe\xfa"),
    "body cut short": Answer(b'{"CpState": "State C"', cut=True),
    "redirect": Answer(b"", 302, {"Location": "/login"}),
    "404": answer_json({"statusmsg": "Not found"}, 404),
    "503 nested too deep": Answer(b"[" * 100_000, 503),
}


@pytest.mark.parametrize("endpoint", ["/health", "/system", "/evinterface", "/meter"])
@pytest.mark.parametrize("odd", ODD_ANSWERS.values(), ids=ODD_ANSWERS.keys())
async def test_every_odd_answer_becomes_a_charger_error(
    charger: CannedCharger, client: PeblarClient, endpoint: str, odd: Answer
) -> None:
    """Each call that meets the odd answer raises a ChargerError (nothing else, and not nothing); the
    calls that do not read that endpoint still work."""
    charger.answers["GET", endpoint] = charger.answers["PATCH", "/evinterface"] = odd
    calls: tuple[tuple[Callable[[], Awaitable[object]], bool], ...] = (
        (client.probe, endpoint in ("/health", "/system", "/evinterface")),
        (lambda: client.read(0), endpoint in ("/evinterface", "/meter")),
        (lambda: client.write(Write(limit_ma=8000)), True),
    )
    for call, meets_it in calls:
        if meets_it:
            with pytest.raises(ChargerError):
                await call()
        else:
            await call()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("CurrentPhase1", 2**31 - 1),
        ("CurrentPhase2", 80_001),
        ("CurrentPhase3", -2000),
        ("PowerPhase1", 24_001),
        ("PowerPhase2", -151),
        ("PowerTotal", 2**40),
        ("PowerTotal", -451),
    ],
)
async def test_a_reading_no_charger_can_draw_is_refused(
    charger: CannedCharger, client: PeblarClient, field: str, value: int
) -> None:
    """These values feed the main-fuse check: a car current of 2 MA makes any house load look small."""
    charger.answers["GET", "/meter"] = answer_json({**METER, field: value})
    with pytest.raises(ChargerMalformedAnswer) as err:
        await client.read(0)
    assert f"/meter: unexpected answer from the charger ({field}: {value} " in message(err)


async def test_readings_at_the_bounds_and_small_negative_noise_pass(
    charger: CannedCharger, client: PeblarClient
) -> None:
    charger.answers["GET", "/meter"] = answer_json(
        {"CurrentPhase1": 80_000, "CurrentPhase2": -500, "CurrentPhase3": -12, "PowerTotal": 72_000}
    )
    reading = await client.read(0)
    assert reading.phase_currents_a == (80.0, -0.5, -0.012)
    assert reading.power_w == 72_000
    charger.answers["GET", "/meter"] = answer_json({"PowerPhase1": 24_000, "PowerPhase2": -150})
    assert (await client.read(0)).power_w == 23_850


@pytest.mark.parametrize("body", [b"", b"{}", b" { }\r\n"], ids=["empty", "{}", "{} with spaces"])
async def test_an_empty_2xx_answer_to_the_patch_is_a_successful_write(
    charger: CannedCharger, client: PeblarClient, body: bytes
) -> None:
    """Peblar's spec marks no field of the PATCH answer required; python-peblar re-reads with a GET."""
    await client.read(0)
    charger.answers["PATCH", "/evinterface"] = Answer(body)
    await client.write(Write(limit_ma=8000))
    assert client.last_evinterface is None


async def test_a_patch_answer_that_is_there_is_still_checked(
    charger: CannedCharger, client: PeblarClient
) -> None:
    await client.write(Write(limit_ma=8000))
    assert client.last_evinterface is not None
    assert client.last_evinterface.charge_current_limit == 8000
    charger.answers["PATCH", "/evinterface"] = answer_json({"Force1Phase": False})
    with pytest.raises(ChargerMalformedAnswer, match="ChargeCurrentLimit: Field required") as err:
        await client.write(Write(limit_ma=8000))
    message(err)
    charger.answers["PATCH", "/evinterface"] = Answer(b"", 302, {"Location": "/login"})
    with pytest.raises(ChargerMalformedAnswer, match="/evinterface: unexpected answer"):
        await client.write(Write(limit_ma=8000))


async def test_an_answer_that_breaks_off_says_so_rather_than_cannot_connect(
    charger: CannedCharger, client: PeblarClient
) -> None:
    charger.answers["GET", "/evinterface"] = ODD_ANSWERS["body cut short"]
    with pytest.raises(ChargerUnreachable) as err:
        await client.read(0)
    assert "the answer broke off (RemoteProtocolError" in message(err)
    assert "cannot connect" not in message(err)


async def test_an_answer_that_trickles_in_is_cut_off_at_the_timeout(charger: CannedCharger) -> None:
    """httpx's timeout bounds each socket read, not the request: a charger (or a flaky Wi-Fi link)
    sending a byte every 0.1 s would hold the control cycle for the whole body, 17 s here. Each
    attempt gets the timeout as its deadline, and the retry budget still bounds the retries; the
    client stays usable afterwards."""
    slow = Answer(json.dumps(EVI).encode(), trickle_s=0.1)
    assert len(slow.body) * slow.trickle_s > 10
    charger.answers["GET", "/evinterface"] = slow
    async with PeblarClient(
        charger.url, TOKEN, timeout_s=0.3, retry_budget_s=0.0, max_requests_per_s=1000
    ) as c:
        with pytest.raises(ChargerTimeout) as err:
            # A liveness bound, far below the trickle's 17 s and far above the 0.3 s deadline.
            await asyncio.wait_for(c.read(0), 3.0)
        assert "/evinterface: the answer did not arrive complete within 0.3 s" in message(err)
        charger.answers["GET", "/evinterface"] = DEFAULTS["GET", "/evinterface"]
        assert (await c.read(0)).limit_ma == 16000
    charger.answers["GET", "/evinterface"] = slow
    async with PeblarClient(
        charger.url, TOKEN, timeout_s=0.3, retry_budget_s=0.5, max_requests_per_s=1000
    ) as c:
        start = time.monotonic()
        with pytest.raises(ChargerTimeout):
            await asyncio.wait_for(c.read(0), 3.0)  # the budget (0.5 s) plus one attempt (0.3 s)
        assert time.monotonic() - start >= 0.3
        assert c.requests >= 1


@pytest.mark.parametrize(
    ("body", "excerpt"),
    [(b"", "(404)"), (b"<h1>Not Found</h1>", "(404: <h1>Not Found</h1>)")],
    ids=["empty body", "HTML body"],
)
async def test_a_404_says_there_is_no_peblar_api_at_that_address(
    charger: CannedCharger, client: PeblarClient, body: bytes, excerpt: str
) -> None:
    """A URL that leads to another web server (a router, a NAS), or a charger whose local REST API is
    off, answers 404, often with an empty body: say what to check, not just the bare status."""
    charger.answers["GET", "/health"] = Answer(body, 404)
    with pytest.raises(ChargerBadRequest) as err:
        await client.probe()
    text = message(err)
    assert f"/health: no Peblar local REST API at this address {excerpt}" in text
    assert "Settings > Advanced" in text
    assert err.value.status == 404
