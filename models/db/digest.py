"""A short fingerprint of the books (ledger and cards), to compare two states at a glance.

It covers every account's balance, every transaction key with its postings' digest, and every
card's figures. Times of booking are left out: they differ between two foldings of one log,
the state does not. The fingerprint is sha256 of the JSON of those figures, sorted.

`books_digest` computes it from the database as a stream, in memory bounded whatever the
books' size: the database sums and sorts, and each row is hashed as it arrives, written as
`json.dumps` writes it. `StateDigest` computes the very same from the rows of the books' parts
(`models.db.books_store`) held in memory (the two agree: tests/unit/test_digest.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import UTC
from itertools import chain
from typing import Any

from sqlalchemy import ColumnElement, Connection, func, select

from models.changes import Key, Values
from models.db import bulk_io as bulk
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


_text = json.encoder.encode_basestring_ascii  # json.dumps's own string encoding


def books_digest(conn: Connection) -> str:
    """The digest of the books in the database, read in sorted streams."""
    postings, transactions, cards = POSTINGS.table, TRANSACTIONS.table, CARDS.table
    account, asset = postings.c.account, postings.c.asset
    balances = (
        select(account, asset, func.sum(postings.c.amount))
        .group_by(account, asset)
        .order_by(_by_code_point(conn, account), _by_code_point(conn, asset))
    )
    keys = select(transactions.c.key, transactions.c.digest).order_by(
        _by_code_point(conn, transactions.c.key)
    )
    figures = select(cards.c.card_id, *(cards.c[name] for name in _FIGURES)).order_by(
        _by_code_point(conn, cards.c.card_id)
    )
    state = hashlib.sha256()
    state.update(b'{"balances": [')
    _add(state, bulk.stream(conn, balances), _balance)
    state.update(b'], "cards": [')
    _add(state, bulk.stream(conn, figures), _card)
    state.update(b'], "transactions": [')
    _add(state, bulk.stream(conn, keys), _transaction)
    state.update(b"]}")
    return state.hexdigest()


def _by_code_point(conn: Connection, column: ColumnElement[Any]) -> ColumnElement[Any]:
    """Ordered as Python orders strings: by code point, which is the byte order of UTF-8 (the
    "C" collation on PostgreSQL, SQLite's own)."""
    return column.collate("C") if conn.dialect.name == "postgresql" else column


def _add(state: Any, pages: Iterable[list[tuple[Any, ...]]], write: Any) -> None:
    separator = ""
    for rows in pages:
        state.update((separator + ", ".join([write(row) for row in rows])).encode())
        separator = ", "


def _balance(row: tuple[Any, ...]) -> str:
    account, asset, total = row
    return f"[{_text(account)}, {_text(asset)}, {int(total)}]"


def _transaction(row: tuple[Any, ...]) -> str:
    key, digest = row
    return f"[{_text(key)}, {_text(digest)}]"


def _card(row: tuple[Any, ...]) -> str:
    figures = list(row)
    figures[1 + _AS_OF] = figures[1 + _AS_OF].astimezone(UTC).isoformat()
    figures[-1] = list(figures[-1])
    return json.dumps(figures)
