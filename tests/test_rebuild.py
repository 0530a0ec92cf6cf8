"""A rebuild writes only the rows that differ from what the log implies, on PostgreSQL and on
the embedded SQLite file: books that are right stay untouched, rows edited by hand are put
back, and what it leaves is what a rebuild into empty books gives."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, Table, delete, insert, select, text, update

from models.db.books_store import PARTS
from models.db.engine import make_engine
from models.db.tables import (
    card_movements,
    ledger_holds,
    ledger_postings,
    ledger_redemptions,
    ledger_transactions,
    loyalty_cards,
)
from tests.conftest import EventLog
from tests.support import stores
from tests.test_operations import QUIET, event_log, live_digest, process_live, store_all
from workers.rebuild import rebuild

Contents = dict[str, Counter[tuple[object, ...]]]


@pytest.fixture
def books(database_url: str) -> Iterator[Engine]:
    """An emptied database holding a small log, processed live."""
    engine = make_engine(database_url)
    EventLog(engine).clear()
    process_live(engine, store_all(engine, event_log(4, tag="rb")))
    yield engine
    engine.dispose()


def contents(engine: Engine) -> Contents:
    """Every row of the books, without the columns a rebuild may set anew (sequence, times)."""
    found: Contents = {}
    with engine.connect() as conn:
        for part in PARTS:
            columns = [part.table.c[name] for name in (*part.key, *part.values)]
            found[part.table.name] = Counter(
                tuple(_utc(value) for value in row) for row in conn.execute(select(*columns))
            )
    return found


def _utc(value: object) -> object:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return tuple(value) if isinstance(value, list) else value


def first(engine: Engine, table: Table) -> dict[str, object]:
    with engine.connect() as conn:
        row = conn.execute(select(table).order_by(*table.primary_key.columns).limit(1)).first()
    assert row is not None, f"{table.name} is empty"
    return dict(row._mapping)


def test_rebuilding_books_that_are_right_writes_nothing(books: Engine) -> None:
    live, before = live_digest(books), contents(books)

    result = rebuild(books, QUIET)

    assert (result.before, result.after, result.written) == (live, live, 0)
    assert contents(books) == before


def test_rows_edited_by_hand_are_put_back_and_nothing_else_is_written(books: Engine) -> None:
    live, right = live_digest(books), contents(books)
    posting = first(books, ledger_postings)
    transaction = first(books, ledger_transactions)
    redemption = first(books, ledger_redemptions)
    card = first(books, loyalty_cards)
    with books.begin() as conn:  # a person "fixes" the books by hand
        conn.execute(
            update(ledger_postings)
            .where(ledger_postings.c.seq == posting["seq"])
            .values(amount=posting["amount"] + 1)
        )
        conn.execute(
            insert(ledger_postings).values(
                transaction_key="nowhere", account="sales", asset="USD", amount=5
            )
        )
        conn.execute(
            update(ledger_transactions)
            .where(ledger_transactions.c.key == transaction["key"])
            .values(event_id="someone", digest="0" * 64)
        )
        conn.execute(
            delete(ledger_redemptions).where(
                ledger_redemptions.c.redemption_id == redemption["redemption_id"]
            )
        )
        conn.execute(insert(ledger_holds).values(original_id="r_none", event_id="e_none"))
        conn.execute(
            insert(card_movements).values(
                card_id=card["card_id"],
                key="redemption:r_none:points",
                kind="loyalty",
                type="POINTS_REDEMPTION",
                change=-1,
                balance_after=1,
                at=datetime(2024, 1, 1, tzinfo=UTC),
                rank=2,
                customer_id="c",
                event_id="e_none",
            )
        )
        conn.execute(
            update(loyalty_cards)
            .where(loyalty_cards.c.card_id == card["card_id"])
            .values(balance=card["balance"] + 7, flags=["by hand"])
        )
    assert contents(books) != right

    result = rebuild(books, QUIET)

    assert result.before != live
    assert result.after == live == live_digest(books)
    assert contents(books) == right
    # A posting edited rewrites its transaction's postings; every other edit is a row
    # deleted, inserted, or both.
    postings = right["ledger_postings"]
    rewritten = sum(n for row, n in postings.items() if row[0] == posting["transaction_key"])
    assert result.written == 2 * rewritten + 1 + 2 + 1 + 1 + 1 + 2
    assert rebuild(books, QUIET).written == 0


def test_a_rebuild_into_empty_books_writes_them_all(books: Engine) -> None:
    live, right = live_digest(books), contents(books)
    with books.begin() as conn:
        stores.clear_ledger(conn)
        conn.execute(delete(card_movements))
        conn.execute(delete(loyalty_cards))

    result = rebuild(books, QUIET)

    assert (result.after, live_digest(books)) == (live, live)
    assert contents(books) == right
    assert result.written == sum(sum(rows.values()) for rows in right.values())


def test_a_lock_held_on_the_books_delays_the_rebuild_and_changes_nothing(books: Engine) -> None:
    """Someone holds a table of the books (a migration, say) past the rebuild's fold: the
    digest before, read on a connection of its own on PostgreSQL, gives up after
    `ASIDE_LOCK_TIMEOUT` and is read on the rebuild's connection, which waits for the lock."""
    if books.dialect.name != "postgresql":
        pytest.skip("the digest is read aside on PostgreSQL only")
    live, right = live_digest(books), contents(books)
    held = threading.Event()

    def hold() -> None:
        with books.begin() as conn:
            conn.execute(text("LOCK TABLE loyalty_cards IN ACCESS EXCLUSIVE MODE"))
            held.set()
            time.sleep(HELD)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    started = time.monotonic()
    result = rebuild(books, QUIET)
    took = time.monotonic() - started
    holder.join()

    assert took >= HELD - 1, f"the rebuild did not wait for the lock ({took:.1f} s)"
    assert (result.before, result.after, result.written) == (live, live, 0)
    assert contents(books) == right


HELD = 7.0
"""Longer than `workers.rebuild.ASIDE_LOCK_TIMEOUT` (5 s)."""
