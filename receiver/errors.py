"""What to log of an exception: one line, never empty (a TimeoutError has no message)."""

from __future__ import annotations


def first_line(exc: BaseException, limit: int = 300) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:limit] if lines else type(exc).__name__
