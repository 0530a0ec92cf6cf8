"""All SQL of a rebuild's fold: the scratch tables it fills as it folds the log, what it reads
back from them, and the rows of the books they settle into.

A rebuild keeps no books in memory. What the handlers compute goes to temporary tables of the
rebuild's transaction, in big batches (COPY on PostgreSQL), each row with its place in the
fold (`ord`: the event's receipt sequence, then the order within the event):

- `fold_transactions` and `fold_postings`: every booking of a key. The first one stands; a
  later one with other postings is a conflict (`settle` answers the first).
- `fold_notes`: every note of a redemption; the first of each stands.
- `fold_movements`: the report kept of each card movement, written over when a better one
  comes (the caller decides which is better).
- `fold_cards` and `fold_holds`: the loyalty cards, and the rollbacks still held, at the end.

What a handler reads back (a rollback's original, a stack's notes, a card's kept reports) is
read from them among the rows folded before the reader's place. `settle` then keeps the rows
that stand, and `computed` gives each part of the books the rows it must hold.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from itertools import islice
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    FromClause,
    Integer,
    MetaData,
    Table,
    Text,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY

from models.cards import Movement
from models.db import bulk_io as bulk
from models.db.books_store import CARDS, HOLDS, MOVEMENTS, POSTINGS, REDEMPTIONS, TRANSACTIONS, Part
from models.db.card_store import movement_of
from models.db.insert import insert
from models.db.ledger_store import digest
from models.journal import Posting, Transaction
from models.ledger import Redemption, StackCheck
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
SETTLED_TRANSACTIONS = _scratch(
    "fold_books_transactions",
    *_like(TRANSACTIONS, "key", key=True),
    *_like(TRANSACTIONS, *TRANSACTIONS.values),
    _ord(),
)
SETTLED_REDEMPTIONS = _scratch(
    "fold_books_redemptions",
    *_like(REDEMPTIONS, *REDEMPTIONS.key, key=True),
    *_like(REDEMPTIONS, *REDEMPTIONS.values),
    _ord(),
)

_LOOKUPS = (
    (FOLD_TRANSACTIONS, "redemption"),
    (FOLD_TRANSACTIONS, "key"),
    (FOLD_POSTINGS, "ord"),
    (FOLD_NOTES, "redemption_id"),
    (FOLD_NOTES, "parent_id"),
)
"""What the reads of rollbacks and stacks need: made when the first of them reads (most logs
have few), not kept up through every COPY before."""

LOOKUP_CHUNK = 5000
"""Keys per read of kept reports."""


WORK_MEM = "64MB"
"""What one sort or hash of the rebuild's statements may take on PostgreSQL before it spills
to disk (the default, 4MB, sends the big ones to disk)."""
SETTINGS = {"work_mem": WORK_MEM, "jit": "off"}
"""For the rebuild's transaction on PostgreSQL. Without JIT: the few big statements over the
scratch tables (never analysed, their sizes guessed high) would spend seconds compiling plans
that a scan and a hash join run in less."""


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


def booking_rows(ord: int, transaction: Transaction, event_id: str) -> tuple[Row, list[Row]]:
    """A booking as its `fold_transactions` row and its `fold_postings` rows."""
    key = transaction.key
    redemption = key.split(":", 2)[1] if key.startswith("redemption:") else None
    postings = [
        (ord, pos, p.account, p.asset, p.amount) for pos, p in enumerate(transaction.postings, 1)
    ]
    return (ord, key, redemption, event_id, digest(transaction), transaction.memo), postings


def note_row(ord: int, note: Redemption) -> Row:
    return (
        ord,
        note.redemption_id,
        note.role,
        note.parent_id,
        note.order_id,
        note.applied,
        note.event_id,
    )


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
    conn.execute(delete(_NEW_MOVEMENTS))


def put_cards(conn: Connection, cards: Iterable[CardState]) -> None:
    bulk.copy_rows(conn, FOLD_CARDS, [card_row(card) for card in cards])


def put_holds(conn: Connection, holds: Iterable[tuple[str, str]]) -> None:
    bulk.copy_rows(conn, FOLD_HOLDS, list(holds))


# --- reads ----------------------------------------------------------------------------------


def kept(conn: Connection, pairs: Collection[tuple[str, str]]) -> dict[tuple[str, str], Movement]:
    """The reports kept of these (card, key) movements, for those that have one."""
    found: dict[tuple[str, str], Movement] = {}
    pending = iter(pairs)
    while chunk := list(islice(pending, LOOKUP_CHUNK)):
        if conn.dialect.name == "postgresql":
            wanted = (
                func.unnest(
                    bindparam("cards", [c for c, _ in chunk], type_=ARRAY(Text)),
                    bindparam("keys", [k for _, k in chunk], type_=ARRAY(Text)),
                )
                .table_valued("card_id", "key")
                .render_derived(name="wanted")
            )
            stmt = select(FOLD_MOVEMENTS).join(
                wanted,
                and_(
                    FOLD_MOVEMENTS.c.card_id == wanted.c.card_id,
                    FOLD_MOVEMENTS.c.key == wanted.c.key,
                ),
            )
        else:
            key = tuple_(FOLD_MOVEMENTS.c.card_id, FOLD_MOVEMENTS.c.key)
            stmt = select(FOLD_MOVEMENTS).where(key.in_(chunk))
        for row in conn.execute(stmt):
            found[row.card_id, row.key] = movement_of(row)
    return found


def latest(conn: Connection, card_id: str, times: int) -> tuple[list[Movement], bool]:
    """The card's kept reports at its `times` latest times, and whether they are all it has."""
    m = FOLD_MOVEMENTS
    found: list[datetime] = list(
        conn.scalars(
            select(m.c.at).where(m.c.card_id == card_id).distinct().order_by(m.c.at.desc())
            .limit(times + 1)
        )
    )  # fmt: skip
    if not found:
        return [], True
    floor = found[:times][-1]
    rows = conn.execute(select(m).where(m.c.card_id == card_id, m.c.at >= floor))
    return [movement_of(row) for row in rows], len(found) <= times


def index_lookups(conn: Connection) -> None:
    """Make the indexes the reads below use (once a first one needs them)."""
    for table, column in _LOOKUPS:
        conn.execute(text(f"CREATE INDEX ix_{table.name}_{column} ON {table.name} ({column})"))


def seen(conn: Connection, redemption_id: str, before: int) -> bool:
    n = FOLD_NOTES
    found = conn.scalar(
        select(n.c.ord).where(n.c.redemption_id == redemption_id, n.c.ord < before).limit(1)
    )
    return found is not None


def transactions_of_redemption(
    conn: Connection, redemption_id: str, order_id: str | None, before: int
) -> list[Transaction]:
    """What stood, before `before`, of the redemption's own keys (in booking order), then of
    its order's gross."""
    t, p = FOLD_TRANSACTIONS, FOLD_POSTINGS
    gross = f"order:{order_id}:gross" if order_id else None
    which = (
        or_(t.c.redemption == redemption_id, t.c.key == gross)
        if gross
        else (t.c.redemption == redemption_id)
    )
    firsts = select(func.min(t.c.ord)).where(which, t.c.ord < before).group_by(t.c.key)
    rows = conn.execute(
        select(t.c.ord, t.c.key, t.c.memo, p.c.account, p.c.asset, p.c.amount)
        .join(p, p.c.ord == t.c.ord)
        .where(t.c.ord.in_(firsts))
        .order_by(t.c.ord, p.c.pos)
    )
    grouped: dict[int, tuple[str, str, list[Posting]]] = {}
    for ord, key, memo, account, asset, amount in rows:
        grouped.setdefault(ord, (key, memo, []))[2].append(Posting(account, asset, int(amount)))
    found = [Transaction(key, tuple(postings), memo) for key, memo, postings in grouped.values()]
    return sorted(found, key=lambda transaction: transaction.key == gross)


def stack(conn: Connection, parent_id: str, before: int) -> StackCheck:
    """The parent's first note against its children's first notes, before `before`."""
    n, other = FOLD_NOTES, FOLD_NOTES.alias("other")
    expected = conn.scalar(
        select(n.c.applied_amount)
        .where(n.c.redemption_id == parent_id, n.c.ord < before)
        .order_by(n.c.ord)
        .limit(1)
    )
    first = (
        select(func.min(other.c.ord))
        .where(other.c.redemption_id == n.c.redemption_id)
        .scalar_subquery()
    )
    booked, children = conn.execute(
        select(func.coalesce(func.sum(n.c.applied_amount), 0), func.count()).where(
            n.c.parent_id == parent_id, n.c.ord < before, n.c.ord == first
        )
    ).one()
    return StackCheck(
        parent_id,
        expected=None if expected is None else int(expected),
        booked=int(booked),
        children=int(children),
    )


# --- the end --------------------------------------------------------------------------------


def settle(conn: Connection) -> Transaction | None:
    """Keep the first booking of each key and the first note of each redemption; answer the
    first booking (in the fold) of a key already booked with other postings, if any."""
    t, n = FOLD_TRANSACTIONS, FOLD_NOTES
    settled = [c.name for c in SETTLED_TRANSACTIONS.columns]
    conn.execute(
        insert(conn, SETTLED_TRANSACTIONS).from_select(
            settled,
            select(*(t.c[name] for name in settled)).where(
                t.c.ord.in_(select(func.min(t.c.ord)).group_by(t.c.key))
            ),
        )
    )
    noted = [c.name for c in SETTLED_REDEMPTIONS.columns]
    conn.execute(
        insert(conn, SETTLED_REDEMPTIONS).from_select(
            noted,
            select(*(n.c[name] for name in noted)).where(
                n.c.ord.in_(select(func.min(n.c.ord)).group_by(n.c.redemption_id))
            ),
        )
    )
    s = SETTLED_TRANSACTIONS
    conflict = conn.execute(
        select(t.c.ord, t.c.key, t.c.memo)
        .join(s, s.c.key == t.c.key)
        .where(t.c.digest != s.c.digest)
        .order_by(t.c.ord)
        .limit(1)
    ).first()
    if conflict is None:
        return None
    p = FOLD_POSTINGS
    postings = conn.execute(
        select(p.c.account, p.c.asset, p.c.amount).where(p.c.ord == conflict.ord).order_by(p.c.pos)
    )
    return Transaction(
        conflict.key, tuple(Posting(a, s_, int(x)) for a, s_, x in postings), conflict.memo
    )


def computed(part: Part) -> FromClause:
    """The rows `part` must hold, with the part's column names (and `ord`, the order in which
    new rows are written, where it matters)."""
    if part is POSTINGS:
        s, p = SETTLED_TRANSACTIONS, FOLD_POSTINGS
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
        TRANSACTIONS: SETTLED_TRANSACTIONS,
        REDEMPTIONS: SETTLED_REDEMPTIONS,
        HOLDS: FOLD_HOLDS,
        MOVEMENTS: FOLD_MOVEMENTS,
        CARDS: FOLD_CARDS,
    }
    return tables[part]
