"""Error texts as the log shows them: every event is one line, whatever an exception's own text holds
(pydantic's span several lines, an HTML error page many)."""

from __future__ import annotations

import re

TOKEN_LIKE = re.compile(r"[A-Za-z0-9_+=]{40,}")
"""A Peblar token is 64 letters and digits; a run of 40 or more in an error message or a host name is
taken for one. Not counting `-` or `.`, so the UUID of a mounted disk or a host name in a path stays
readable."""


def one_line(text: str, limit: int | None = None) -> str:
    """`text` with its whitespace, newlines included, collapsed; cut at `limit` characters if given."""
    flat = " ".join(text.split())
    return flat if limit is None else flat[:limit]


def unexpected(exc: BaseException) -> str:
    """An exception the device modules did not foresee, named by its type, on one line."""
    return f"unexpected {type(exc).__name__}: {one_line(str(exc))}"
