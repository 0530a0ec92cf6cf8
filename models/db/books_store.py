"""All SQL about the books as whole tables (the ledger's and the cards'): what a rebuild reads
and replaces.

A rebuild computes every row these tables must hold. Each table is a `Part`: rows by key,
with the values compared. The rebuild reads each part once, in bulk, and replaces only the
rows that differ: a row it computed exactly as it is stored (booking and update times aside)
stays untouched, so rebuilding books that are right writes nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, select

from models.changes import Key, Values
from models.db import bulk_io as bulk
from models.db.tables import (
    card_movements,
    ledger_holds,
    ledger_postings,
    ledger_redemptions,
    ledger_transactions,
    loyalty_cards,
)


@dataclass(frozen=True)
class Part:
    """One table of the books as a rebuild reads and writes it."""

    table: Table
    key: tuple[str, ...]
    values: tuple[str, ...]
    """The columns compared, in the order of a row's values."""
    stamp: str | None = None
    """A time column written with new rows (when the rebuild wrote them), never compared."""
    sequence: bool = False
    """Several rows per key, in order (a transaction's postings): compared as one sequence."""

    def read(self, conn: Connection, size: int = 5000) -> Iterator[list[tuple[Key, Values]]]:
        """Every stored row as (key, values), in lists of up to `size`."""
        columns = [self.table.c[name] for name in (*self.key, *self.values)]
        stmt = select(*columns)
        if self.sequence:
            stmt = stmt.order_by(self.table.c.seq)
        width = len(self.key)
        for rows in bulk.stream(conn, stmt, size):
            if width == 1:
                yield [(row[0], row[1:]) for row in rows]
            else:
                yield [(row[:width], row[width:]) for row in rows]

    def replace(
        self,
        conn: Connection,
        stale: Collection[Key],
        fresh: Mapping[Key, Values | Sequence[Values]],
        at: datetime,
    ) -> int:
        """Delete the rows of the `stale` keys, then insert the `fresh` rows; the rows deleted
        and inserted."""
        keys = [key if len(self.key) > 1 else (key,) for key in stale]
        deleted = bulk.delete_keys(conn, self.table, self.key, keys)
        rows = [
            self._row(key, values, at)
            for key, computed in fresh.items()
            for values in (computed if self.sequence else (computed,))
        ]
        bulk.insert_rows(conn, self.table, rows)
        return deleted + len(rows)

    def _row(self, key: Key, values: Values, at: datetime) -> dict[str, Any]:
        row = dict(zip(self.key, key if len(self.key) > 1 else (key,), strict=True))
        row.update(zip(self.values, values, strict=True))
        if self.stamp:
            row[self.stamp] = at
        return row


TRANSACTIONS = Part(ledger_transactions, ("key",), ("event_id", "digest", "memo"), "booked_at")
POSTINGS = Part(
    ledger_postings, ("transaction_key",), ("account", "asset", "amount"), sequence=True
)
REDEMPTIONS = Part(
    ledger_redemptions,
    ("redemption_id",),
    ("role", "parent_id", "order_id", "applied_amount", "event_id"),
)
HOLDS = Part(ledger_holds, ("original_id", "event_id"), ())
MOVEMENTS = Part(
    card_movements,
    ("card_id", "key"),
    (
        "kind",
        "type",
        "change",
        "balance_after",
        "at",
        "envelope_at",
        "rank",
        "customer_id",
        "event_id",
    ),
)
CARDS = Part(
    loyalty_cards,
    ("card_id",),
    ("customer_id", "balance", "as_of", "balance_source", "points_spent", "events", "flags"),
    "updated_at",
)

PARTS = (TRANSACTIONS, POSTINGS, REDEMPTIONS, HOLDS, MOVEMENTS, CARDS)
"""In the order they are written: postings after the transactions they belong to."""
