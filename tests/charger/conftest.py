"""Every charger test runs with all logs captured at DEBUG and fails if the API token shows up."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from tests.charger.test_peblar_client import TOKEN


@pytest.fixture(autouse=True)
def _token_never_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    yield
    assert TOKEN not in caplog.text
