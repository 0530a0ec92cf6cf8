"""Reading ahead in a thread (workers.read_ahead): same items, same errors, a clean stop."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from workers.read_ahead import ReadAhead


def test_every_item_comes_in_order() -> None:
    with ReadAhead(iter(range(100)), depth=3) as ahead:
        assert list(ahead) == list(range(100))


def test_an_error_of_the_iterator_is_raised_to_the_reader() -> None:
    def failing() -> Iterator[int]:
        yield 1
        raise ValueError("the database went away")

    with ReadAhead(failing()) as ahead, pytest.raises(ValueError, match="went away"):
        list(ahead)


def test_leaving_early_stops_the_thread_and_closes_the_iterator() -> None:
    closed = threading.Event()

    def endless() -> Iterator[int]:
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.set()

    with pytest.raises(RuntimeError), ReadAhead(endless(), depth=2) as ahead:
        for n in ahead:
            if n == 5:
                raise RuntimeError("the reader failed")
    assert closed.is_set()
    assert not any(thread.name == "read-ahead" for thread in threading.enumerate())
