"""All SQL about the books as whole tables (the ledger's and the cards'): what a rebuild reads
and replaces.

A rebuild computes every row these tables must hold. Each table is a `Part`: rows by key,
with the values compared. Only the rows that differ are replaced: a row computed exactly as it
is stored (booking and update times aside) stays untouched, so rebuilding books that are right
writes nothing. `Part.replace_with` compares in the database, against a table (or query) of
the computed rows, set against set; `Part.read` and `Part.replace` do it from rows in memory.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    ColumnElement,
    Connection,
    Executable,
    FromClause,
    MetaData,
    String,
    Table,
    Text,
    and_,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    type_coerce,
    union,
)
from sqlalchemy.dialects.postgresql import JSONB

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

    def replace_with(self, conn: Connection, computed: FromClause, at: datetime) -> int:
        """Make the table hold exactly the rows of `computed` (the part's columns; `ord`, if it
        has one, orders the rows written, `pos` a key's rows for a sequence): delete the stored
        rows that differ, insert the computed ones missing. The rows deleted and inserted."""
        if self.sequence:
            return self._replace_sequences(conn, computed)
        if conn.dialect.name == "postgresql" and len(self.key) == 1:
            return self._replace_by_key(conn, computed, at)
        stored = self.table
        same_key = and_(*(computed.c[name] == stored.c[name] for name in self.key))
        same = and_(same_key, *(_same(conn, computed.c[n], stored.c[n]) for n in self.values))
        deleted = conn.execute(delete(stored).where(~exists().where(same))).rowcount
        columns = [*self.key, *self.values]
        fresh = select(*(computed.c[name] for name in columns)).where(~exists().where(same_key))
        if self.stamp:
            columns.append(self.stamp)
            fresh = fresh.add_columns(literal(at, stored.c[self.stamp].type))
        if "ord" in computed.c:
            fresh = fresh.order_by(computed.c.ord)
        inserted = _count(conn, insert(stored).from_select(columns, fresh))
        return int(deleted) + int(inserted)

    def _replace_by_key(self, conn: Connection, computed: FromClause, at: datetime) -> int:
        """`replace_with` on PostgreSQL, one key column: the keys whose rows differ found in
        one full join, hashed (two anti-joins, one to delete and one to insert, take about
        twice as long on millions of rows)."""
        keys = _joined_differing(conn, self.table, computed, list(self.key), self.values)
        return self._replace_keys(conn, computed, keys, at)

    def _replace_sequences(self, conn: Connection, computed: FromClause) -> int:
        """A key's rows go, and its computed ones come, when its stored sequence (by `seq`)
        differs from the computed one (by `pos`) in any row."""
        stored, (key,) = self.table, self.key
        rank = func.row_number().over(partition_by=stored.c[key], order_by=stored.c.seq)
        ours = select(stored.c[key], rank.label("pos"), *(stored.c[n] for n in self.values)).cte()
        theirs = select(
            computed.c[key], computed.c.pos, *(computed.c[n] for n in self.values)
        ).cte()
        keys = _differing(conn, ours, theirs, list(ours.c.keys()))
        return self._replace_keys(conn, computed, keys, None)

    def _replace_keys(
        self, conn: Connection, computed: FromClause, keys: Any, at: datetime | None
    ) -> int:
        """Delete the stored rows of `keys` (one key column) and insert the computed ones, in
        the fold's order; the rows deleted and inserted."""
        stored, (key,) = self.table, self.key
        differ = _DIFFER
        differ.drop(conn, checkfirst=True)
        differ.create(conn)
        conn.execute(insert(differ).from_select(["key"], keys))
        deleted = conn.execute(delete(stored).where(stored.c[key].in_(select(differ.c.key))))
        columns = [key, *self.values]
        fresh = select(*(computed.c[name] for name in columns)).where(
            computed.c[key].in_(select(differ.c.key))
        )
        if self.stamp and at is not None:
            columns.append(self.stamp)
            fresh = fresh.add_columns(literal(at, stored.c[self.stamp].type))
        order = [computed.c[name] for name in ("ord", "pos") if name in computed.c]
        inserted = _count(conn, insert(stored).from_select(columns, fresh.order_by(*order)))
        differ.drop(conn)
        return int(deleted.rowcount) + inserted

    def _row(self, key: Key, values: Values, at: datetime) -> dict[str, Any]:
        row = dict(zip(self.key, key if len(self.key) > 1 else (key,), strict=True))
        row.update(zip(self.values, values, strict=True))
        if self.stamp:
            row[self.stamp] = at
        return row


_DIFFER = Table(
    "books_differ",
    MetaData(),
    Column("key", String, primary_key=True),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DROP",
)
"""The keys whose rows differ, while their rows are replaced."""


def _differing(conn: Connection, ours: Any, theirs: Any, columns: list[str]) -> Any:
    """The keys (the first of `columns`) whose rows in `ours` and `theirs` differ in any of
    `columns`, or that one of them lacks; the others are the columns that tell rows of a key
    apart, then the values. On PostgreSQL one full join, hashed: two anti-joins would sort
    every row of each side twice, on disk when there are millions."""
    if conn.dialect.name != "postgresql":
        return union(_unmatched(ours, theirs, columns), _unmatched(theirs, ours, columns))
    return _joined_differing(conn, ours, theirs, columns[:2], columns[2:])


def _joined_differing(
    conn: Connection, ours: Any, theirs: Any, by: Sequence[str], values: Sequence[str]
) -> Any:
    """The keys (the first of `by`) of the rows of `ours` and `theirs`, matched by `by`, that
    one side lacks or whose `values` differ: one full join (PostgreSQL), hashed."""
    key = by[0]
    both = ours.join(theirs, and_(*(ours.c[n] == theirs.c[n] for n in by)), full=True)
    differ = or_(
        ours.c[key].is_(None),
        theirs.c[key].is_(None),
        *(~_same(conn, theirs.c[n], ours.c[n]) for n in values),
    )
    keys = select(func.coalesce(ours.c[key], theirs.c[key])).select_from(both).where(differ)
    return keys.distinct()


def _unmatched(rows: Any, others: Any, columns: list[str]) -> Any:
    """The keys of `rows` having a row that `others` lacks (every column equal)."""
    same = and_(*(others.c[name] == rows.c[name] for name in columns))
    return (
        select(rows.c[columns[0]])
        .select_from(rows.outerjoin(others, same))
        .where(others.c[columns[0]].is_(None))
    )


def _count(conn: Connection, statement: Executable) -> int:
    """The rows an INSERT … SELECT wrote (SQLAlchemy keeps an INSERT's count only if asked)."""
    return int(conn.execute(statement.execution_options(preserve_rowcount=True)).rowcount)


def _same(conn: Connection, computed: ColumnElement[Any], stored: ColumnElement[Any]) -> Any:
    """Computed and stored hold the same value (two nulls are the same)."""
    if isinstance(stored.type, JSON):
        # PostgreSQL's json has no equality; SQLite keeps the text SQLAlchemy wrote.
        if conn.dialect.name == "postgresql":
            return cast(computed, JSONB).is_not_distinct_from(cast(stored, JSONB))
        return type_coerce(computed, Text) == type_coerce(stored, Text)
    return computed.is_not_distinct_from(stored)


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
