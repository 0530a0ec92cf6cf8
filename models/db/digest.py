"""A short fingerprint of the books (ledger and cards), to compare two states at a glance.

It covers every account's balance, every transaction key with its postings' digest, and every
card's figures. Times of booking are left out: they differ between two foldings of one log,
the state does not. It is fed the rows of the books' parts (`models.db.books_store`) as they are
read, from the database or from books in memory: the same state gives the same fingerprint.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import UTC
from itertools import chain
from typing import Any

from models.changes import Key, Values
from models.db.books_store import CARDS, POSTINGS, TRANSACTIONS, Part

DIGESTED = (TRANSACTIONS, POSTINGS, CARDS)
"""The parts a digest is made of (it ignores the rows of any other)."""

_DIGEST = TRANSACTIONS.values.index("digest")
_FIGURES = ("customer_id", "balance", "as_of", "points_spent", "events", "flags")
_CARD = [CARDS.values.index(name) for name in _FIGURES]
_AS_OF = _FIGURES.index("as_of")


class StateDigest:
    def __init__(self) -> None:
        self._balances: dict[tuple[str, str], int] = {}
        self._transactions: list[tuple[str, str]] = []
        self._cards: list[list[Any]] = []
        self._sorted: dict[str, list[Any]] | None = None  # the figures sorted, once asked for

    def add(self, part: Part, rows: Iterable[tuple[Key, Values]]) -> None:
        """Rows of a part as stored, (key, values): one per posting."""
        self._sorted = None
        if part is POSTINGS:
            self._add_postings(values for _key, values in rows)
        elif part is TRANSACTIONS:
            self._transactions.extend((key, values[_DIGEST]) for key, values in rows)
        elif part is CARDS:
            for key, values in rows:
                figures = [values[n] for n in _CARD]
                figures[_AS_OF] = figures[_AS_OF].astimezone(UTC).isoformat()
                figures[-1] = list(figures[-1])
                self._cards.append([key, *figures])

    def add_computed(self, part: Part, computed: Mapping[Key, Any]) -> None:
        """Rows of a part as books in memory hold them: by key, the values of its row (of its
        rows, in order, for the postings)."""
        if part is POSTINGS:
            self._add_postings(chain.from_iterable(computed.values()))
        else:
            self.add(part, computed.items())

    def _add_postings(self, postings: Iterable[Values]) -> None:
        self._sorted, balances = None, self._balances
        for account, asset, amount in postings:
            balances[account, asset] = balances.get((account, asset), 0) + amount

    def hexdigest(self) -> str:
        """sha256 of the sorted figures."""
        return hashlib.sha256(json.dumps(self._content(), sort_keys=True).encode()).hexdigest()

    def __eq__(self, other: object) -> bool:
        """The same figures (then the same digest, without hashing them again)."""
        return isinstance(other, StateDigest) and self._content() == other._content()

    def _content(self) -> dict[str, list[Any]]:
        if self._sorted is None:
            self._sorted = {
                "balances": sorted((*account, total) for account, total in self._balances.items()),
                "transactions": sorted(self._transactions),
                "cards": sorted(self._cards),
            }
        return self._sorted
