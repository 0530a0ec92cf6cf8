"""All SQL about the ledger: keyed transactions, their postings, conflicts, holds and stacks."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Connection, delete, func, select, text

from models.db.batch_sql import among, insert_many
from models.db.insert import insert
from models.db.tables import (
    ledger_conflicts,
    ledger_holds,
    ledger_postings,
    ledger_transactions,
)
from models.journal import Posting, Transaction
from models.ledger import Booked


def digest(transaction: Transaction) -> str:
    """sha256 of `json.dumps` of the sorted (account, asset, amount) postings. The text is
    written here as `json.dumps` writes it (computed for every booking, it is a rebuild's
    hottest function), so digests stored before stay valid."""
    postings = sorted([(p.account, p.asset, p.amount) for p in transaction.postings])
    text = ", ".join([f"[{_json(a)}, {_json(s)}, {int.__repr__(n)}]" for a, s, n in postings])
    return hashlib.sha256(f"[{text}]".encode()).hexdigest()


_json = json.encoder.encode_basestring_ascii  # json.dumps's own string encoding


def book(
    conn: Connection, entries: Sequence[tuple[Transaction, str, datetime]]
) -> dict[str, Booked]:
    """Post transactions, as (transaction, event id, booked at) with distinct keys, once each
    under its key: three statements for any number. Answer, by key, whether it was booked now
    or before with the same postings, or is a conflict (the same key with other postings):
    nothing is written for a conflict here, the caller records it outside the failing
    transaction."""
    if not entries:
        return {}
    own = {transaction.key: digest(transaction) for transaction, _event_id, _at in entries}
    if len(own) != len(entries):
        raise ValueError("one booking cannot carry the same key twice")
    inserted = set(
        insert_many(
            conn,
            ledger_transactions,
            [
                {"key": t.key, "event_id": e, "digest": own[t.key], "memo": t.memo, "booked_at": a}
                for t, e, a in entries
            ],
            conflict=("key",),
            returning="key",
        )
    )
    insert_many(
        conn,
        ledger_postings,
        [
            {"transaction_key": t.key, "account": p.account, "asset": p.asset, "amount": p.amount}
            for t, _event_id, _at in entries
            if t.key in inserted
            for p in t.postings
        ],
    )
    verdicts: dict[str, Booked] = dict.fromkeys(inserted, "booked")
    before = [key for key in own if key not in inserted]
    if before:
        # Seen by a new statement: also a booking that committed while this one waited.
        stored: dict[str, str] = {
            key: stored_digest
            for key, stored_digest in conn.execute(
                select(ledger_transactions.c.key, ledger_transactions.c.digest).where(
                    among(conn, ledger_transactions.c.key, before)
                )
            )
        }
        verdicts.update(
            (key, "unchanged" if stored.get(key) == own[key] else "conflict") for key in before
        )
    return verdicts


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


def rebuild_guard(conn: Connection, *, exclusive: bool) -> None:
    """Until commit: a rebuild (exclusive) and the handlers that write the ledger or the cards
    (shared) exclude each other, so a rebuild never wipes an effect committed meanwhile.
    On SQLite the first write takes the database's single write lock instead."""
    if conn.dialect.name == "postgresql":
        lock = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        conn.execute(text(f"SELECT {lock}(hashtextextended('voucherhook:rebuild', 0))"))
    elif exclusive:
        conn.execute(delete(ledger_holds).where(ledger_holds.c.original_id.is_(None)))


def wait_for_locks_at_most(conn: Connection, timeout: str) -> None:
    """For the rest of this connection's transaction on PostgreSQL: a statement that waits
    longer than `timeout` (`'5s'`) for a lock fails instead (a reader beside a rebuild's own
    connection, whose waits PostgreSQL cannot tie together)."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            text("SELECT set_config('lock_timeout', :timeout, true)"), {"timeout": timeout}
        )


def balances(conn: Connection, prefix: str | None = None) -> list[tuple[str, str, int]]:
    """(account, asset, balance), sorted by account then asset."""
    stmt = select(
        ledger_postings.c.account, ledger_postings.c.asset, func.sum(ledger_postings.c.amount)
    ).group_by(ledger_postings.c.account, ledger_postings.c.asset)
    if prefix:
        stmt = stmt.where(ledger_postings.c.account.startswith(prefix, autoescape=True))
    rows = conn.execute(stmt.order_by(ledger_postings.c.account, ledger_postings.c.asset))
    return [(account, asset, int(total)) for account, asset, total in rows]
