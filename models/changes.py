"""Which stored rows to replace: the rows read from a table against the rows computed for it.

Rows are (key, values). A stored row whose key was not computed, or was computed with other
values, is stale (to delete); a computed row not stored exactly so is fresh (to insert). Rows
computed exactly as they are stored are neither: they stay as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Key = Any
"""A row's key: the value of its key column, or a tuple of them for a key of several."""
Values = tuple[Any, ...]


@dataclass(frozen=True)
class Changes:
    stale: list[Key]
    fresh: list[Key]


class Rows:
    """One row per key."""

    def __init__(self, computed: Mapping[Key, Values]) -> None:
        self._computed = computed
        self._unseen = dict.fromkeys(computed)  # the computed keys not stored as computed yet
        self._stale: list[Key] = []

    def read(self, rows: Iterable[tuple[Key, Values]]) -> None:
        computed, unseen = self._computed, self._unseen
        for key, values in rows:
            if computed.get(key, None) == values:
                unseen.pop(key, None)
            else:
                self._stale.append(key)

    def changes(self) -> Changes:
        return Changes(self._stale, list(self._unseen))


class Sequences:
    """Rows in an order per key (a transaction's postings), read in that order: a key's rows
    are kept only when the stored sequence is exactly the computed one."""

    def __init__(self, computed: Mapping[Key, Sequence[Values]]) -> None:
        self._computed = computed
        self._read = dict.fromkeys(computed, 0)  # the rows read so far, by computed key
        self._differ: dict[Key, None] = {}  # in the order first found

    def read(self, rows: Iterable[tuple[Key, Values]]) -> None:
        computed, counts, differ = self._computed, self._read, self._differ
        for key, values in rows:
            n = counts.get(key)
            if n is None:  # a key not computed: its rows all go
                differ[key] = None
                continue
            counts[key] = n + 1
            expected = computed[key]
            if n >= len(expected) or expected[n] != values:
                differ[key] = None

    def changes(self) -> Changes:
        computed, counts, differ = self._computed, self._read, self._differ
        stale = [key for key in differ if key not in counts]
        stale += [
            key for key, n in counts.items() if n and (key in differ or n != len(computed[key]))
        ]
        gone = set(stale)
        fresh = [key for key, n in counts.items() if not n or key in gone]
        return Changes(stale, fresh)
