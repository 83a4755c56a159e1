"""Error texts as the log shows them: every event is one line, whatever an exception's own text holds
(pydantic's span several lines, an HTML error page many)."""

from __future__ import annotations

import re

TOKEN_LIKE = re.compile(r"[A-Za-z0-9_+=]{40,}")
"""What a Peblar API token looks like to the redaction and to the host checks: 40 or more of these."""


def one_line(text: str, limit: int | None = None) -> str:
    """`text` with its whitespace, newlines included, collapsed; cut at `limit` characters if given."""
    flat = " ".join(text.split())
    return flat if limit is None else flat[:limit]


def unexpected(exc: BaseException) -> str:
    """An exception the device modules did not foresee, named by its type, on one line."""
    return f"unexpected {type(exc).__name__}: {one_line(str(exc))}"
