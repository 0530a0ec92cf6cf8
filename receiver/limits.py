"""Bounds on what unauthenticated requests may take, and a log that a flood cannot fill."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class ByteBudget:
    """Bytes of bodies being read before their signature is checked, across all requests of
    a process. A request that cannot take its share is refused at once (503), so a flood of
    large unsigned bodies holds at most `limit` bytes however many arrive together."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.peak = 0

    def take(self, size: int) -> bool:
        if self.used + size > self.limit:
            return False
        self.used += size
        self.peak = max(self.peak, self.used)
        return True

    def give(self, size: int) -> None:
        self.used -= size


class Throttled:
    """Calls `emit` for the first occurrence, then at most once per `every` seconds with the
    number of occurrences left unlogged: a flood of refused requests costs one line a period."""

    def __init__(
        self,
        emit: Callable[..., Any],
        every: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._emit = emit
        self._every = every
        self._clock = clock
        self._last: float | None = None
        self._unlogged = 0

    def __call__(self, **fields: Any) -> None:
        now = self._clock()
        if self._last is not None and now - self._last < self._every:
            self._unlogged += 1
            return
        self._emit(**fields, suppressed=self._unlogged)
        self._last = now
        self._unlogged = 0
