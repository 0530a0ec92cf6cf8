"""All SQL about the ledger: keyed transactions, their postings, conflicts, holds and stacks."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from sqlalchemy import Connection, delete, func, select, text

from models.bulk import insert_rows
from models.journal import Posting, Transaction
from models.redemption_store import Redemption
from models.tables import (
    ledger_conflicts,
    ledger_holds,
    ledger_postings,
    ledger_redemptions,
    ledger_transactions,
)
from models.upsert import insert

Booked = Literal["booked", "unchanged", "conflict"]


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
        insert(conn, ledger_transactions)
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
        insert(conn, ledger_conflicts)
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
