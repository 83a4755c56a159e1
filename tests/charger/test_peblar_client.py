"""The REST client against the emulator over real sockets: every endpoint, every error class."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from controller.charger.base import (
    ChargerAuthError,
    ChargerBadRequest,
    ChargerMalformedAnswer,
    ChargerRateLimited,
    ChargerServerError,
    ChargerTimeout,
    ChargerUnreachable,
    ChargerWriteRefused,
)
from controller.charger.peblar.client import PeblarClient
from controller.charger.peblar.const import ChargeCurrentLimitSource, CpState
from controller.charger.peblar.models import EVInterfaceResponse, MeterResponse
from controller.clock import ManualClock
from controller.core.commands import Write
from controller.simulation.charger_model import CarModel, ChargerModel
from controller.simulation.peblar_emulator import PeblarEmulator

TOKEN = "a" * 60 + "b7c9"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_000_000.0)


@pytest.fixture
async def emulator(clock: ManualClock) -> AsyncIterator[PeblarEmulator]:
    model = ChargerModel(CarModel(lag_s=1.0), hw_max_ma=16000, now=clock.now())
    async with PeblarEmulator(clock, token=TOKEN, model=model) as emu:
        yield emu


@pytest.fixture
async def client(emulator: PeblarEmulator) -> AsyncIterator[PeblarClient]:
    async with PeblarClient(
        emulator.url, TOKEN, timeout_s=0.5, retry_budget_s=0.0, max_requests_per_s=1000
    ) as c:
        yield c


async def test_probe_reads_health_and_system(client: PeblarClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    info = await client.probe()
    assert (info.phase_count, info.force_1_phase_allowed, info.firmware) == (3, True, "1.9.0+1+WL-1")
    assert "firmware 1.9.0+1+WL-1, API 1.0 (ReadWrite), 3 phases, Force1PhaseAllowed=True" in caplog.text


async def test_read_maps_evinterface_and_meter(
    client: PeblarClient, emulator: PeblarEmulator, clock: ManualClock
) -> None:
    emulator.model.set_limit(10000, clock.now())
    clock.advance(30)
    reading = await client.read(clock.now())
    assert reading.charging and reading.vehicle_connected
    assert reading.cp_state == "State C"
    assert (reading.limit_ma, reading.limit_actual_ma) == (10000, 10000)
    assert reading.limit_source == "Local REST API"
    assert reading.phase_currents_a == pytest.approx((10.0, 10.0, 10.0), abs=0.01)
    assert reading.power_w == pytest.approx(6900, abs=10)


async def test_write_patches_only_the_given_fields(client: PeblarClient, emulator: PeblarEmulator) -> None:
    await client.probe()
    await client.write(Write(limit_ma=7000))
    await client.write(Write(force_1_phase=True))
    assert [body for _, body in emulator.write_log] == [{"ChargeCurrentLimit": 7000}, {"Force1Phase": True}]
    assert client.last_evinterface is not None
    assert client.last_evinterface.force1_phase is True
    await client.write(Write(limit_ma=0))
    assert emulator.model.limit_actual_ma() == 0


@pytest.mark.parametrize("limit", [1, 5999, 16001, -5])
async def test_invalid_limits_are_refused_before_sending(
    client: PeblarClient, emulator: PeblarEmulator, limit: int
) -> None:
    with pytest.raises(ValueError, match="use 0 to pause or 6000..16000 mA"):
        await client.write(Write(limit_ma=limit))
    assert emulator.writes == 0


async def test_force_1_phase_only_where_allowed(clock: ManualClock) -> None:
    model = ChargerModel(CarModel(), force_1p_allowed=False, now=clock.now())
    async with PeblarEmulator(clock, token=TOKEN, model=model) as emu, PeblarClient(emu.url, TOKEN) as c:
        info = await c.probe()
        assert not info.can_switch_phases()
        with pytest.raises(ValueError, match="does not allow 1-phase"):
            await c.write(Write(force_1_phase=True))


async def test_wrong_token_is_an_auth_error_that_says_where_to_look(emulator: PeblarEmulator) -> None:
    emulator.change_token("rotated-after-reboot")
    async with PeblarClient(emulator.url, TOKEN, retry_budget_s=0) as c:
        with pytest.raises(ChargerAuthError, match=r"Settings > Advanced") as err:
            await c.read(0)
    assert err.value.status == 401


async def test_read_only_api_fails_the_probe_with_the_fix(clock: ManualClock) -> None:
    async with (
        PeblarEmulator(clock, token=TOKEN, access_mode="ReadOnly") as emu,
        PeblarClient(emu.url, TOKEN) as c,
    ):
        with pytest.raises(ChargerWriteRefused, match="ReadWrite"):
            await c.probe()
        info = await c.probe(needs_write=False)
        assert info.phase_count == 3
        with pytest.raises(ChargerWriteRefused, match="403"):
            await c.write(Write(limit_ma=6000))


async def test_rate_limit_gives_rate_limited(client: PeblarClient, emulator: PeblarEmulator) -> None:
    emulator.rate_per_s, emulator.burst = 0.0, 0
    emulator._tokens = 0
    with pytest.raises(ChargerRateLimited, match="429"):
        await client.read(0)


async def test_the_emulator_keeps_answering_after_its_clock_steps_back(
    client: PeblarClient, clock: ManualClock
) -> None:
    """Clock-step tests of the daemon run against the emulator: a rate limiter refilling by a negative
    time answered 429 for the hour the clock needed to catch up, which read as a blind controller."""
    await client.read(clock.now())
    clock.advance(-3600)
    reading = await client.read(clock.now())
    assert reading.vehicle_connected


async def test_server_errors_are_retried_with_back_off_within_the_budget(emulator: PeblarEmulator) -> None:
    """A passing 500 is retried after 0.1, 0.2, 0.4 s …; once the next wait would pass the retry budget
    the error goes to the cycle, which falls back on its own timers: the budget bounds the delay."""
    waits = ManualClock()
    emulator.faults.status_count = 3
    async with PeblarClient(
        emulator.url, TOKEN, retry_budget_s=1.0, max_requests_per_s=1000, waits=waits
    ) as c:
        reading = await c.read(0)
    assert reading.limit_ma == 16000
    assert waits.slept == pytest.approx([0.1, 0.2, 0.4])
    waits.slept.clear()
    emulator.faults.status_count = 5
    async with PeblarClient(
        emulator.url, TOKEN, retry_budget_s=0.5, max_requests_per_s=1000, waits=waits
    ) as c:
        with pytest.raises(ChargerServerError, match="An internal server error occurred"):
            await c.read(0)
    assert waits.slept == pytest.approx([0.1, 0.2])  # 0.1 + 0.2 + 0.4 would pass 0.5 s
    emulator.faults.status_count = 1
    async with PeblarClient(emulator.url, TOKEN, retry_budget_s=0.0) as c:
        with pytest.raises(ChargerServerError, match="An internal server error occurred"):
            await c.read(0)


async def test_the_client_keeps_to_its_request_rate(emulator: PeblarEmulator) -> None:
    """Two requests a second with a burst of 6: the start-up probe and a cycle never wait, a seventh
    request in the same instant waits half a second."""
    waits = ManualClock()
    async with PeblarClient(emulator.url, TOKEN, max_requests_per_s=2.0, waits=waits) as c:
        await c.probe()  # 3 requests
        await c.read(0)  # 2
        await c.write(Write(limit_ma=8000))  # 1
        assert waits.slept == []
        await c.write(Write(limit_ma=9000))
    assert sum(waits.slept) == pytest.approx(0.5)


async def test_malformed_answer(client: PeblarClient, emulator: PeblarEmulator) -> None:
    emulator.faults.malformed_count = 1
    with pytest.raises(ChargerMalformedAnswer, match="/evinterface"):
        await client.read(0)


async def test_bad_request_carries_the_statusmsg(client: PeblarClient) -> None:
    with pytest.raises(ChargerBadRequest, match="Unknown field: Colour"):
        await client._request("PATCH", "/evinterface", body={"Colour": "red"})


async def test_timeout_and_refused_connection(emulator: PeblarEmulator) -> None:
    emulator.faults.delay_s = 0.5
    async with PeblarClient(emulator.url, TOKEN, timeout_s=0.1, retry_budget_s=0) as c:
        with pytest.raises(ChargerTimeout, match="no answer within 0.1 s"):
            await c.read(0)
    emulator.faults.delay_s = 0
    url = emulator.url
    await emulator.stop()
    async with PeblarClient(url, TOKEN, retry_budget_s=0) as c:
        with pytest.raises(ChargerUnreachable, match="cannot connect"):
            await c.read(0)


async def test_an_https_url_to_the_charger_says_its_api_speaks_plain_http(emulator: PeblarEmulator) -> None:
    """The charger answers TLS with an HTTP error, or waits for a request it can read: neither is the
    network's fault, which the timeout's message alone would suggest."""
    https = emulator.url.replace("http://", "https://")
    async with PeblarClient(https, TOKEN, retry_budget_s=0) as c:
        with pytest.raises(ChargerUnreachable, match=r"speaks plain HTTP \(write \[charger\] url as http://"):
            await c.read(0)

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers, until the client gives up
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        for scheme, hinted in (("https", True), ("http", False)):
            async with PeblarClient(
                f"{scheme}://127.0.0.1:{port}", TOKEN, timeout_s=0.2, retry_budget_s=0
            ) as c:
                with pytest.raises(ChargerTimeout, match="no answer within 0.2 s") as caught:
                    await c.read(0)
            assert ("speaks plain HTTP" in str(caught.value)) is hinted
    finally:
        server.close()
        await server.wait_closed()


async def test_a_charger_name_that_does_not_resolve_is_told_from_a_charger_that_is_off() -> None:
    async with PeblarClient("http://peblar.invalid", TOKEN, retry_budget_s=0) as c:
        with pytest.raises(ChargerUnreachable, match="the name 'peblar.invalid' does not resolve; check"):
            await c.read(0)


async def test_proxy_variables_are_ignored(emulator: PeblarEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """The charger is on the LAN: a proxy set for the shell (here a dead one) must not get its
    requests, nor the token in their headers."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
        monkeypatch.setenv(name.lower(), "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with PeblarClient(emulator.url, TOKEN, retry_budget_s=0) as c:
        assert (await c.probe()).phase_count == 3


async def test_dropped_connection_is_unreachable(emulator: PeblarEmulator) -> None:
    emulator.faults.drop_count = 1
    async with PeblarClient(emulator.url, TOKEN, retry_budget_s=0) as c:
        with pytest.raises(ChargerUnreachable):
            await c.read(0)


async def test_reboot_resets_the_limit_to_the_hardware_maximum(
    client: PeblarClient, emulator: PeblarEmulator
) -> None:
    await client.write(Write(limit_ma=6000))
    emulator.reboot()
    assert (await client.read(0)).limit_ma == 16000


def test_unknown_enum_strings_do_not_crash(caplog: pytest.LogCaptureFixture) -> None:
    evi = EVInterfaceResponse.from_dict(
        {
            "CpState": "State Z",
            "ChargeCurrentLimit": 16000,
            "ChargeCurrentLimitSource": "Quantum limiter",
            "ChargeCurrentLimitActual": 15549,
            "Force1Phase": False,
        }
    )
    assert evi.cp_state is CpState.UNKNOWN
    assert evi.charge_current_limit_source is ChargeCurrentLimitSource.UNKNOWN
    assert evi.lock_state is None
    assert "'Quantum limiter'" in caplog.text
    newer = EVInterfaceResponse.from_json(
        '{"CpState":"State Invalid","ChargeCurrentLimit":0,"ChargeCurrentLimitSource":"Internal power limit",'
        '"ChargeCurrentLimitActual":0,"Force1Phase":true}'
    )
    assert newer.cp_state is CpState.STATE_INVALID
    assert newer.to_dict()["ChargeCurrentLimitSource"] == "Internal power limit"


def test_one_phase_meter_omits_phases_two_and_three() -> None:
    meter = MeterResponse.from_dict(
        {"CurrentPhase1": 7120, "VoltagePhase1": None, "PowerPhase1": 1638, "PowerTotal": 1638}
    )
    assert meter.phase_currents_a() == (7.12,)
    assert meter.total_power_w() == 1638


def test_a_phase_missing_before_others_keeps_their_places() -> None:
    """L1's current left out, L2's and L3's given: shifted down, L2's 8 A counted as L1's, and the
    fuse check took it off the grid phase of charger L1."""
    meter = MeterResponse.from_dict({"CurrentPhase2": 8000, "CurrentPhase3": 7500, "PowerTotal": 3565})
    assert meter.phase_currents_a() == (0.0, 8.0, 7.5)
    no_l3 = MeterResponse.from_dict({"CurrentPhase1": 8000, "CurrentPhase2": 12000, "PowerTotal": 4600})
    assert no_l3.phase_currents_a() == (8.0, 12.0, 0.0)  # three, so L2's 12 A still counts as drawing
    assert MeterResponse.from_dict({"PowerTotal": 0}).phase_currents_a() == ()


async def test_the_token_never_appears_in_logs_or_errors(
    emulator: PeblarEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[str] = []
    async with PeblarClient(
        emulator.url, TOKEN, retry_budget_s=0.3, max_requests_per_s=1000, waits=ManualClock()
    ) as c:
        errors.append(repr(c))
        await c.probe()
        await c.read(0)
        await c.write(Write(limit_ma=8000))
        emulator.faults.status_count = 3
        for exc_type in (ChargerServerError,):
            with pytest.raises(exc_type) as err:
                await c.read(0)
            errors.append(str(err.value))
        emulator.change_token("other")
        with pytest.raises(ChargerAuthError) as auth:
            await c.read(0)
        errors.append(str(auth.value))
    assert TOKEN not in caplog.text
    assert all(TOKEN not in text for text in errors)
