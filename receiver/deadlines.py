"""Deadlines for many waits of one length on the event loop, with one timer between them all.

A timer per request (`asyncio.timeout`, `loop.call_later`) costs the event loop more, under
uvloop, than verifying a delivery's signature: each is a timer handle, started and stopped,
and `asyncio.timeout` adds a context manager and a task lookup on top (docs/performance.md).
The receiver's waits (a body being read, a commit awaited) each have a fixed length, so their
deadlines come due in the order they were set. They are kept in that order, and one timer, set
for the earliest, expires those that are due and is set again for the next one.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

# A timer may fire a little before the time it was set for (libuv counts milliseconds).
_EARLY = 0.002


class Deadlines(Generic[K]):
    """`expire(key)` is called `seconds` after `add(key)`, unless `discard(key)` came first."""

    def __init__(self, seconds: float, expire: Callable[[K], object]) -> None:
        self.seconds = seconds
        self._expire = expire
        self._due: OrderedDict[K, float] = OrderedDict()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        return len(self._due)

    def add(self, key: K) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # A new event loop (an app served again, in tests): the old one's waits are gone.
            self._due.clear()
            self._loop, self._timer = loop, None
        at = loop.time() + self.seconds
        self._due[key] = at
        if self._timer is None:
            self._timer = loop.call_at(at, self._fire, loop)

    def discard(self, key: K) -> None:
        self._due.pop(key, None)

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        now = loop.time() + _EARLY
        due = self._due
        while due:
            key, at = next(iter(due.items()))
            if at > now:
                self._timer = loop.call_at(at, self._fire, loop)
                return
            del due[key]
            self._expire(key)
