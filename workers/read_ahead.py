"""Reading ahead: the items of an iterator produced by a thread of their own, a few ahead.

For reading from a database while the caller works on what was read: the database's work,
and the wait for it, overlap with the caller's. The iterator runs entirely in the thread, so
its resources (a cursor, a connection) must not be used by anyone else meanwhile.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from queue import Full, Queue
from types import TracebackType
from typing import Generic, TypeVar, cast

T = TypeVar("T")

_POLL = 0.1  # seconds between two looks at whether the reader must stop


class ReadAhead(Generic[T]):
    """`with ReadAhead(items) as ahead: for item in ahead: ...`; leaving the block stops the
    thread (also on an error) and waits for it. An error of the iterator is raised here."""

    def __init__(self, items: Iterator[T], depth: int = 4) -> None:
        self._items = items
        self._queue: Queue[tuple[bool, T | BaseException | None]] = Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="read-ahead", daemon=True)

    def __enter__(self) -> ReadAhead[T]:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def __iter__(self) -> Iterator[T]:
        while True:
            more, value = self._queue.get()  # the thread always ends with a last entry
            if not more:
                if isinstance(value, BaseException):
                    raise value
                return
            yield cast(T, value)

    def _produce(self) -> None:
        end: tuple[bool, T | BaseException | None] = (False, None)
        try:
            for item in self._items:
                if not self._put((True, item)):
                    return
        except BaseException as error:  # handed to the consumer, raised there
            end = (False, error)
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()  # a generator's own clean-up (its cursor), in this thread
        self._put(end)

    def _put(self, entry: tuple[bool, T | BaseException | None]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=_POLL)
            except Full:
                continue
            return True
        return False
