"""All SQL of a rebuild's fold that writes: the scratch tables it fills as it folds the log,
and the rows of the books they settle into (what it reads back: `models.db.fold_reads`).

A rebuild keeps no books in memory. What the handlers compute goes to temporary tables of the
rebuild's transaction, in big batches (COPY on PostgreSQL), each row with its place in the
fold (`ord`: the event's receipt sequence, then the order within the event):

- `fold_transactions` and `fold_postings`: every booking of a key. The first one stands; a
  later one with other postings is a conflict (`settle` answers the first).
- `fold_notes`: every note of a redemption; the first of each stands.
- `fold_movements`: the report kept of each card movement, written over when a better one
  comes (the caller decides which is better).
- `fold_later`: the rollbacks, folded once the rest is (`workers.rebuild_later`).
- `fold_cards` and `fold_holds`: the loyalty cards, and the rollbacks still held, at the end.

`settle` then keeps the rows that stand, and `computed` gives each part of the books the rows
it must hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Connection,
    FromClause,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    delete,
    func,
    select,
    text,
)

from models.cards import Movement
from models.db import bulk_io as bulk
from models.db.books_store import CARDS, HOLDS, MOVEMENTS, POSTINGS, REDEMPTIONS, TRANSACTIONS, Part
from models.db.insert import insert
from models.db.ledger_store import digest
from models.folded import Booking, Entry, Note, redemption_of
from models.journal import Posting, Transaction
from models.ledger import Redemption
from models.loyalty import CardState

_metadata = MetaData()


def _scratch(name: str, *columns: Column[Any]) -> Table:
    """A temporary table, gone with the rebuild's transaction on PostgreSQL (`drop` clears
    SQLite's)."""
    return Table(name, _metadata, *columns, prefixes=["TEMPORARY"], postgresql_on_commit="DROP")


def _like(part: Part, *names: str, key: bool = False) -> list[Column[Any]]:
    """Columns typed as the part's table's own, so that values compare as stored ones do."""
    return [
        Column(name, part.table.c[name].type, nullable=part.table.c[name].nullable, primary_key=key)
        for name in names
    ]


def _ord(*, key: bool = False) -> Column[Any]:
    return Column("ord", BigInteger, nullable=False, primary_key=key)


FOLD_TRANSACTIONS = _scratch(
    "fold_transactions",
    _ord(),
    Column("key", Text, nullable=False),
    # The redemption of a `redemption:{id}:…` key (what a rollback reads back), else null.
    Column("redemption", Text),
    *_like(TRANSACTIONS, "event_id", "digest", "memo"),
)
FOLD_POSTINGS = _scratch(
    "fold_postings",
    _ord(),
    Column("pos", Integer, nullable=False),
    *_like(POSTINGS, *POSTINGS.values),
)
FOLD_NOTES = _scratch(
    "fold_notes", _ord(), *_like(REDEMPTIONS, *REDEMPTIONS.key, *REDEMPTIONS.values)
)
_MOVEMENT_COLUMNS = (*MOVEMENTS.key, *MOVEMENTS.values)
FOLD_MOVEMENTS = _scratch(
    "fold_movements",
    *_like(MOVEMENTS, *MOVEMENTS.key, key=True),
    *_like(MOVEMENTS, *MOVEMENTS.values),
)
_NEW_MOVEMENTS = _scratch("fold_movements_new", *_like(MOVEMENTS, *_MOVEMENT_COLUMNS))
FOLD_CARDS = _scratch(
    "fold_cards", *_like(CARDS, *CARDS.key, key=True), *_like(CARDS, *CARDS.values)
)
FOLD_HOLDS = _scratch("fold_holds", *_like(HOLDS, *HOLDS.key, key=True))
FIRSTS = _scratch("fold_firsts", Column("grp", Text, primary_key=True), _ord())
"""While `settle` works on a table: each group of more than one row, with its first row's
place."""

FOLD_LATER = _scratch(
    "fold_later",
    _ord(key=True),
    *_like(REDEMPTIONS, "event_id"),
    Column("handler", Text, nullable=False),
    Column("original", Text, nullable=False),
)
Index("ix_fold_notes_redemption_id", FOLD_NOTES.c.redemption_id)
Index("ix_fold_notes_parent_id", FOLD_NOTES.c.parent_id)
_BOOKING_LOOKUPS = (
    (FOLD_TRANSACTIONS, "redemption"),
    (FOLD_TRANSACTIONS, "key"),
    (FOLD_POSTINGS, "ord"),
)
"""What the reads of the rollbacks' originals go through (`index_bookings`)."""


WORK_MEM = "64MB"
"""What one sort or hash of the rebuild's statements may take on PostgreSQL before it spills
to disk (the default, 4MB, sends the big ones to disk)."""
SETTINGS = {"work_mem": WORK_MEM, "jit": "off", "plan_cache_mode": "force_custom_plan"}
"""For the rebuild's transaction on PostgreSQL. Without JIT: the few big statements over the
scratch tables (millions of rows by the end) would spend seconds compiling plans that a scan
and a hash join run in less. A plan for each execution: the driver prepares a
statement run often, and a plan made for tables still small (a scan) would stay for tables
grown large."""


def create(conn: Connection) -> None:
    """Make the scratch tables, empty."""
    drop(conn)
    _metadata.create_all(conn, checkfirst=False)
    if conn.dialect.name == "postgresql":
        for name, value in SETTINGS.items():
            conn.execute(text(f"SET LOCAL {name} = '{value}'"))


def drop(conn: Connection) -> None:
    _metadata.drop_all(conn, checkfirst=True)


# --- rows -----------------------------------------------------------------------------------


Row = tuple[Any, ...]


def booking_rows(ord: int, transaction: Transaction, event_id: str) -> tuple[Booking, list[Entry]]:
    """A booking as its `fold_transactions` row and its `fold_postings` rows."""
    key = transaction.key
    entries = [
        Entry(ord, pos, p.account, p.asset, p.amount)
        for pos, p in enumerate(transaction.postings, 1)
    ]
    booking = Booking(ord, key, redemption_of(key), event_id, digest(transaction), transaction.memo)
    return booking, entries


def note_row(ord: int, note: Redemption) -> Note:
    return Note(
        ord, note.redemption_id, note.role, note.parent_id, note.order_id, note.applied,
        note.event_id,
    )  # fmt: skip


def movement_row(m: Movement) -> Row:
    return (m.card_id, m.key, m.kind, m.type, m.change, m.after, m.at, m.envelope_at, m.rank,
            m.customer_id, m.event_id)  # fmt: skip


def card_row(c: CardState) -> Row:
    return (c.card_id, c.customer_id, c.balance, c.as_of, c.balance_source, c.points_spent,
            c.events, list(c.flags))  # fmt: skip


# --- writes ---------------------------------------------------------------------------------


Rows = Sequence[Row] | bytes
"""Rows as tuples, or already in COPY's text format (`models.db.bulk_io.copy_text`)."""


def add_bookings(conn: Connection, transactions: Rows, postings: Rows, notes: Rows) -> None:
    for table, rows in ((FOLD_TRANSACTIONS, transactions), (FOLD_POSTINGS, postings),
                        (FOLD_NOTES, notes)):  # fmt: skip
        if isinstance(rows, bytes):
            bulk.copy_encoded(conn, table, rows)
        else:
            bulk.copy_rows(conn, table, rows)


def put_movements(conn: Connection, rows: Sequence[Row]) -> None:
    """Write the reports kept (one per card and key), over those kept before."""
    if not rows:
        return
    bulk.copy_rows(conn, _NEW_MOVEMENTS, rows)
    stmt = insert(conn, FOLD_MOVEMENTS).from_select(
        list(_MOVEMENT_COLUMNS),
        # SQLite reads `ON CONFLICT` after a bare SELECT as part of a join: a WHERE ends it.
        select(_NEW_MOVEMENTS).where(text("true")),
    )
    values = {name: stmt.excluded[name] for name in MOVEMENTS.values}
    conn.execute(stmt.on_conflict_do_update(index_elements=list(MOVEMENTS.key), set_=values))
    _empty(conn, _NEW_MOVEMENTS)


def _empty(conn: Connection, table: Table) -> None:
    """Empty a scratch table filled again and again. On PostgreSQL by TRUNCATE: a DELETE
    leaves the rows dead in the table (nothing vacuums a temporary one), and every later read
    of it reads them all again, a thousand batches' worth by the end of a long log."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"TRUNCATE {table.name}"))
    else:
        conn.execute(delete(table))


def put_cards(conn: Connection, cards: Iterable[CardState]) -> None:
    bulk.copy_rows(conn, FOLD_CARDS, [card_row(card) for card in cards])


def put_holds(conn: Connection, holds: Iterable[tuple[str, str]]) -> None:
    bulk.copy_rows(conn, FOLD_HOLDS, list(holds))


def add_later(conn: Connection, rows: Sequence[Row]) -> None:
    """Rollbacks to fold at the end: (place, event id, handler, original redemption id)."""
    bulk.copy_rows(conn, FOLD_LATER, rows)


def index_bookings(conn: Connection) -> None:
    """Make the indexes the reads of the rollbacks' originals go through: once, when the rest
    is folded (kept up through every COPY before, they would make it twice as slow)."""
    for table, column in _BOOKING_LOOKUPS:
        conn.execute(text(f"CREATE INDEX ix_{table.name}_{column} ON {table.name} ({column})"))


# --- the end --------------------------------------------------------------------------------


def settle(conn: Connection) -> Transaction | None:
    """Keep the first booking of each key and the first note of each redemption (the later
    ones are deleted: few, when any); answer the first booking (in the fold) of a key already
    booked with other postings, if any (then nothing is deleted)."""
    t = FOLD_TRANSACTIONS
    _analyze(conn, t, FOLD_POSTINGS, FOLD_NOTES, FOLD_MOVEMENTS, FOLD_CARDS, FOLD_HOLDS)
    _find_firsts(conn, t, t.c.key)
    first = t.alias("first")
    conflict = conn.execute(
        select(t.c.ord, t.c.key, t.c.memo)
        .join(FIRSTS, FIRSTS.c.grp == t.c.key)
        .join(first, first.c.ord == FIRSTS.c.ord)
        .where(t.c.digest != first.c.digest)
        .order_by(t.c.ord)
        .limit(1)
    ).first()
    if conflict is None:
        _delete_later(conn, t, t.c.key)
        _find_firsts(conn, FOLD_NOTES, FOLD_NOTES.c.redemption_id)
        _delete_later(conn, FOLD_NOTES, FOLD_NOTES.c.redemption_id)
        _index_firsts(conn)
        return None
    p = FOLD_POSTINGS
    postings = conn.execute(
        select(p.c.account, p.c.asset, p.c.amount).where(p.c.ord == conflict.ord).order_by(p.c.pos)
    )
    return Transaction(
        conflict.key, tuple(Posting(a, s_, int(x)) for a, s_, x in postings), conflict.memo
    )


def _index_firsts(conn: Connection) -> None:
    """On SQLite, where the books are compared with what was folded row by row
    (`Part.replace_with`), a unique index on the keys that now have one row each: every
    stored row is looked up through it (without, each lookup reads the table whole).
    PostgreSQL's hashed joins need none."""
    if conn.dialect.name != "postgresql":
        for table, column in ((FOLD_TRANSACTIONS, "key"), (FOLD_NOTES, "redemption_id")):
            name = f"ix_{table.name}_first"
            conn.execute(text(f"CREATE UNIQUE INDEX {name} ON {table.name} ({column})"))


def _analyze(conn: Connection, *tables: Table) -> None:
    """Give PostgreSQL the sizes of the scratch tables, once filled: it never analyses a
    temporary table itself, and the statements that end a rebuild join tables of millions of
    rows (guessing them ten times smaller, it sorts on disk where a hash would do)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"ANALYZE {', '.join(table.name for table in tables)}"))


def _find_firsts(conn: Connection, rows: Table, group: ColumnElement[Any]) -> None:
    """Into `FIRSTS`, each `group` of more than one row of `rows`, with its first place."""
    conn.execute(delete(FIRSTS))
    many = select(group, func.min(rows.c.ord)).group_by(group).having(func.count() > 1)
    conn.execute(insert(conn, FIRSTS).from_select(["grp", "ord"], many))


def _delete_later(conn: Connection, rows: Table, group: ColumnElement[Any]) -> None:
    """Delete the rows of `rows` after the first of their group (`_find_firsts`)."""
    conn.execute(
        delete(rows).where(group.in_(select(FIRSTS.c.grp)), rows.c.ord.not_in(select(FIRSTS.c.ord)))
    )


def computed(part: Part) -> FromClause:
    """The rows `part` must hold, with the part's column names (and `ord`, the order in which
    new rows are written, where it matters)."""
    if part is POSTINGS:
        s, p = FOLD_TRANSACTIONS, FOLD_POSTINGS
        return (
            select(
                s.c.key.label("transaction_key"),
                p.c.pos,
                p.c.account,
                p.c.asset,
                p.c.amount,
                p.c.ord,
            )
            .join(s, s.c.ord == p.c.ord)
            .subquery("computed_postings")
        )
    tables = {
        TRANSACTIONS: FOLD_TRANSACTIONS,
        REDEMPTIONS: FOLD_NOTES,
        HOLDS: FOLD_HOLDS,
        MOVEMENTS: FOLD_MOVEMENTS,
        CARDS: FOLD_CARDS,
    }
    return tables[part]
