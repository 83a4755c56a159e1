"""The commands' standard output, whose reader may leave before they are done (`… | head`)."""

from __future__ import annotations

import os
import sys


def reader_gone() -> None:
    """Send the rest of stdout nowhere: the reader has all it wanted, and a second BrokenPipeError
    (the next line, or the flush at exit) must not turn that into an error."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
