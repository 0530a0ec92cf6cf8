"""All SQL about the ledger: keyed transactions, their postings, conflicts, holds and stacks."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from psycopg.types.json import Json
from sqlalchemy import JSON, Connection, Table, delete, func, select, text
from sqlalchemy.dialects import postgresql, sqlite

from models.journal import Posting, Transaction
from models.tables import (
    ledger_conflicts,
    ledger_holds,
    ledger_postings,
    ledger_redemptions,
    ledger_transactions,
)

Booked = Literal["booked", "unchanged", "conflict"]


def _dialect(conn: Connection) -> Any:
    return postgresql if conn.dialect.name == "postgresql" else sqlite


def digest(transaction: Transaction) -> str:
    postings = sorted((p.account, p.asset, p.amount) for p in transaction.postings)
    return hashlib.sha256(json.dumps(postings).encode()).hexdigest()


# PostgreSQL: the transaction and its postings in one round trip. The outer SELECT sees the
# statement's snapshot, so `booked` is the digest stored before (NULL when this one is new).
BOOK_POSTGRESQL = text(
    """
    WITH t AS (
        INSERT INTO ledger_transactions (key, event_id, digest, memo, booked_at)
        VALUES (:key, :event_id, :digest, :memo, :booked_at)
        ON CONFLICT (key) DO NOTHING
        RETURNING key
    ), p AS (
        INSERT INTO ledger_postings (transaction_key, account, asset, amount)
        SELECT t.key, x.account, x.asset, x.amount
        FROM t, unnest(CAST(:accounts AS text[]), CAST(:assets AS text[]),
                       CAST(:amounts AS bigint[])) WITH ORDINALITY AS x(account, asset, amount, n)
        ORDER BY x.n
    )
    SELECT (SELECT key FROM t) AS inserted,
           (SELECT digest FROM ledger_transactions WHERE key = :key) AS booked
    """
)


def book(conn: Connection, transaction: Transaction, event_id: str, at: datetime) -> Booked:
    """Post `transaction` once under its key. The same key with other postings is a conflict:
    nothing is written here, the caller records it (outside the failing transaction)."""
    own = digest(transaction)
    if conn.dialect.name == "postgresql":
        inserted, booked = conn.execute(
            BOOK_POSTGRESQL,
            {
                "key": transaction.key,
                "event_id": event_id,
                "digest": own,
                "memo": transaction.memo,
                "booked_at": at,
                "accounts": [p.account for p in transaction.postings],
                "assets": [p.asset for p in transaction.postings],
                "amounts": [p.amount for p in transaction.postings],
            },
        ).one()
        if inserted is not None:
            return "booked"
        if booked is None:  # a concurrent booking committed after this statement's snapshot
            booked = booked_digest(conn, transaction.key)
        return "unchanged" if booked == own else "conflict"
    inserted = conn.scalar(
        _dialect(conn)
        .insert(ledger_transactions)
        .values(
            key=transaction.key, event_id=event_id, digest=own, memo=transaction.memo, booked_at=at
        )
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(ledger_transactions.c.key)
    )
    if inserted is not None:
        conn.execute(
            ledger_postings.insert(),
            [
                {
                    "transaction_key": transaction.key,
                    "account": p.account,
                    "asset": p.asset,
                    "amount": p.amount,
                }
                for p in transaction.postings
            ],
        )
        return "booked"
    booked = conn.scalar(
        select(ledger_transactions.c.digest).where(ledger_transactions.c.key == transaction.key)
    )
    return "unchanged" if booked == own else "conflict"


def booked_digest(conn: Connection, key: str) -> str | None:
    return conn.scalar(select(ledger_transactions.c.digest).where(ledger_transactions.c.key == key))


def record_conflict(
    conn: Connection, transaction: Transaction, event_id: str, at: datetime
) -> None:
    conn.execute(
        _dialect(conn)
        .insert(ledger_conflicts)
        .values(
            key=transaction.key,
            event_id=event_id,
            booked_digest=booked_digest(conn, transaction.key) or "",
            digest=digest(transaction),
            postings=[[p.account, p.asset, p.amount] for p in transaction.postings],
            detected_at=at,
        )
        .on_conflict_do_nothing(index_elements=["key", "digest"])
    )


def transactions(conn: Connection, keys: Iterable[str]) -> list[Transaction]:
    """The stored transactions with these keys, in booking order."""
    keys = list(keys)
    rows = conn.execute(
        select(
            ledger_transactions.c.key,
            ledger_transactions.c.memo,
            ledger_postings.c.account,
            ledger_postings.c.asset,
            ledger_postings.c.amount,
        )
        .join(ledger_postings, ledger_postings.c.transaction_key == ledger_transactions.c.key)
        .where(ledger_transactions.c.key.in_(keys))
        .order_by(ledger_transactions.c.seq, ledger_postings.c.seq)
    )
    grouped: dict[str, tuple[str, list[Posting]]] = {}
    for key, memo, account, asset, amount in rows:
        grouped.setdefault(key, (memo, []))[1].append(Posting(account, asset, int(amount)))
    return [Transaction(key, tuple(postings), memo) for key, (memo, postings) in grouped.items()]


def keys_of_event(conn: Connection, event_id: str) -> list[str]:
    return list(
        conn.scalars(
            select(ledger_transactions.c.key)
            .where(ledger_transactions.c.event_id == event_id)
            .order_by(ledger_transactions.c.seq)
        )
    )


def hold(conn: Connection, original_id: str, event_id: str) -> None:
    conn.execute(
        _dialect(conn)
        .insert(ledger_holds)
        .values(original_id=original_id, event_id=event_id)
        .on_conflict_do_nothing()
    )


def release(conn: Connection, original_id: str) -> list[str]:
    """The events held for `original_id`, no longer held."""
    held = list(
        conn.scalars(
            select(ledger_holds.c.event_id).where(ledger_holds.c.original_id == original_id)
        )
    )
    if held:
        conn.execute(delete(ledger_holds).where(ledger_holds.c.original_id == original_id))
    return held


def lock_redemption(conn: Connection, redemption_id: str) -> None:
    """Serialise, until commit, everything that concerns one redemption's presence: a
    rollback checking for its original and the original being noted cannot interleave (else
    the rollback could hold itself after the original looked for holds). SQLite runs one
    writer at a time and needs no lock."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"redemption:{redemption_id}"},
        )


@dataclass(frozen=True)
class Redemption:
    """What the ledger notes of every redemption it saw, even one that posted nothing."""

    redemption_id: str
    role: str  # plain | child | parent
    parent_id: str | None
    order_id: str | None
    applied: int
    event_id: str

    def row(self) -> dict[str, Any]:
        return {
            "redemption_id": self.redemption_id,
            "role": self.role,
            "parent_id": self.parent_id,
            "order_id": self.order_id,
            "applied_amount": self.applied,
            "event_id": self.event_id,
        }


def note_redemption(conn: Connection, note: Redemption) -> list[str]:
    """Note a redemption the ledger saw; return the rollbacks that were held for it, no
    longer held (one round trip on PostgreSQL)."""
    insert = _dialect(conn).insert(ledger_redemptions).values(**note.row()).on_conflict_do_nothing()
    if conn.dialect.name != "postgresql":
        conn.execute(insert)
        return release(conn, note.redemption_id)
    noted = insert.cte("noted")
    released = (
        delete(ledger_holds)
        .where(ledger_holds.c.original_id == note.redemption_id)
        .returning(ledger_holds.c.event_id)
        .add_cte(noted)
    )
    return list(conn.scalars(released))


def redemption_seen(conn: Connection, redemption_id: str) -> bool:
    found = conn.scalar(
        select(ledger_redemptions.c.redemption_id).where(
            ledger_redemptions.c.redemption_id == redemption_id
        )
    )
    return found is not None


def transactions_of_redemption(
    conn: Connection, redemption_id: str, order_id: str | None
) -> list[Transaction]:
    """What was booked for a redemption (its own keys), and its order's gross."""
    keys = list(
        conn.scalars(
            select(ledger_transactions.c.key).where(
                ledger_transactions.c.key.startswith(
                    f"redemption:{redemption_id}:", autoescape=True
                )
            )
        )
    )
    if order_id:
        keys.append(f"order:{order_id}:gross")
    return transactions(conn, keys)


def stack(conn: Connection, parent_id: str) -> tuple[int | None, int, int]:
    """(the parent's applied amount if seen, the children's applied sum, children seen)."""
    parent = conn.scalar(
        select(ledger_redemptions.c.applied_amount).where(
            ledger_redemptions.c.redemption_id == parent_id
        )
    )
    children_sum, children = conn.execute(
        select(func.coalesce(func.sum(ledger_redemptions.c.applied_amount), 0), func.count()).where(
            ledger_redemptions.c.parent_id == parent_id
        )
    ).one()
    return (None if parent is None else int(parent)), int(children_sum), int(children)


def write_all(
    conn: Connection,
    booked: list[tuple[Transaction, str, str, datetime]],
    redemptions: list[Redemption],
    holds: list[tuple[str, str]],
) -> None:
    """Bulk insert of a whole ledger (a rebuild): (transaction, digest, event id, booked at)."""
    insert_rows(
        conn,
        ledger_transactions,
        [
            {"key": t.key, "event_id": event_id, "digest": own, "memo": t.memo, "booked_at": at}
            for t, own, event_id, at in booked
        ],
    )
    insert_rows(
        conn,
        ledger_postings,
        [
            {"transaction_key": t.key, "account": p.account, "asset": p.asset, "amount": p.amount}
            for t, _own, _event_id, _at in booked
            for p in t.postings
        ],
    )
    insert_rows(conn, ledger_redemptions, [r.row() for r in redemptions])
    insert_rows(conn, ledger_holds, [{"original_id": o, "event_id": e} for o, e in holds])


def insert_rows(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Many rows at once, in the caller's transaction: PostgreSQL's COPY, else executemany."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(table.insert(), rows)
        return
    columns = list(rows[0])
    json_columns = {c.name for c in table.columns if isinstance(c.type, JSON)}
    raw = conn.connection.driver_connection
    assert raw is not None
    with (
        raw.cursor() as cursor,
        cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row([Json(row[c]) if c in json_columns else row[c] for c in columns])


def digests(conn: Connection) -> list[tuple[str, str]]:
    """(key, digest) of every transaction, sorted: what a state digest is made of."""
    return [
        (key, own)
        for key, own in conn.execute(
            select(ledger_transactions.c.key, ledger_transactions.c.digest).order_by(
                ledger_transactions.c.key
            )
        )
    ]


def rebuild_guard(conn: Connection, *, exclusive: bool) -> None:
    """Until commit: a rebuild (exclusive) and the handlers that write the ledger or the cards
    (shared) exclude each other, so a rebuild never wipes an effect committed meanwhile.
    On SQLite the first write takes the database's single write lock instead."""
    if conn.dialect.name == "postgresql":
        lock = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        conn.execute(text(f"SELECT {lock}(hashtextextended('voucherhook:rebuild', 0))"))
    elif exclusive:
        conn.execute(delete(ledger_holds).where(ledger_holds.c.original_id.is_(None)))


def balances(conn: Connection, prefix: str | None = None) -> list[tuple[str, str, int]]:
    """(account, asset, balance), sorted by account then asset."""
    stmt = select(
        ledger_postings.c.account, ledger_postings.c.asset, func.sum(ledger_postings.c.amount)
    ).group_by(ledger_postings.c.account, ledger_postings.c.asset)
    if prefix:
        stmt = stmt.where(ledger_postings.c.account.startswith(prefix, autoescape=True))
    rows = conn.execute(stmt.order_by(ledger_postings.c.account, ledger_postings.c.asset))
    return [(account, asset, int(total)) for account, asset, total in rows]


def clear(conn: Connection) -> None:
    for table in (ledger_postings, ledger_transactions, ledger_holds, ledger_redemptions):
        conn.execute(delete(table))
