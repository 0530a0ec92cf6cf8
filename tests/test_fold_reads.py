"""What a rebuild's main process reads back from the fold's tables stays small as the fold
grows: a question about a few redemptions reads their rows through an index, never every row
folded so far, and a table it fills batch after batch holds one batch. (A stack in every
thousand events once read all the notes and bookings folded before it, and each batch of card
movements read every batch's before it: a rebuild of one million events took four times as
long as its length implies.)

Counted by the database itself: on PostgreSQL, `pg_stat_xact_user_tables` and the tables'
sizes, for the fold's temporary tables, in the rebuild's own transaction; on SQLite, which
compares the books with the fold row by row, the steps of its virtual machine.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection, Engine, func, insert, select, text

from models.cards import Movement
from models.db import fold_store, schema
from models.db.books_store import REDEMPTIONS, TRANSACTIONS
from models.db.engine import make_engine
from models.db.tables import ledger_redemptions, ledger_transactions
from models.folded import Booking, Entry, Note
from models.ledger import StackCheck
from workers.rebuild_ledger import LedgerRows
from workers.rebuild_shard import Staged, place

FOLDED = 20_000
"""Redemptions folded before the question, each noted and booked."""


def reads(conn: Connection) -> dict[str, tuple[int, int]]:
    """Rows read from each fold table in this transaction: (sequentially, through an index)."""
    found = conn.execute(
        text(
            "SELECT relname, coalesce(seq_tup_read, 0), coalesce(idx_tup_fetch, 0) "
            "FROM pg_stat_xact_user_tables WHERE relname LIKE 'fold%'"
        )
    )
    return {name: (seq, idx) for name, seq, idx in found}


def folded(conn: Connection) -> None:
    """The fold's tables, with `FOLDED` redemptions noted and booked, then a stack (two
    children noted before their parent)."""
    notes = [Note(place(n), f"r{n}", "plain", None, f"o{n}", 100, f"e{n}") for n in range(FOLDED)]
    notes += [
        Note(place(FOLDED), "r_child_1", "child", "r_parent", "o_stack", 300, "e_c1"),
        Note(place(FOLDED + 1), "r_child_2", "child", "r_parent", "o_stack", 200, "e_c2"),
        Note(place(FOLDED + 2), "r_parent", "parent", None, "o_stack", 500, "e_p"),
    ]
    bookings = [
        Booking(place(n), f"redemption:r{n}:discount", f"r{n}", f"e{n}", "d", "m")
        for n in range(FOLDED)
    ]
    entries = [
        Entry(place(n), pos, account, "EUR", amount)
        for n in range(FOLDED)
        for pos, account, amount in ((1, "discounts", 100), (2, "receivables", -100))
    ]
    fold_store.create(conn)
    fold_store.add_bookings(conn, bookings, entries, notes)


def read_since(before: dict[str, tuple[int, int]], conn: Connection) -> dict[str, tuple[int, int]]:
    return {
        name: (s - before[name][0], i - before[name][1]) for name, (s, i) in reads(conn).items()
    }


def test_a_stack_reads_its_own_notes_only_and_no_booking(engine: Engine) -> None:
    """During the fold (the bookings have no index yet)."""
    with engine.connect() as conn, conn.begin() as transaction:
        folded(conn)
        before = reads(conn)
        check = LedgerRows(conn, Staged()).stack("r_parent", place(FOLDED + 3))
        read = read_since(before, conn)
        transaction.rollback()

    assert check == StackCheck("r_parent", expected=500, booked=500, children=2)
    assert read["fold_notes"][0] == 0, f"the stack read every note folded: {read}"
    assert 0 < read["fold_notes"][1] <= 10, read
    assert read["fold_transactions"] == (0, 0) and read["fold_postings"] == (0, 0), read


def test_a_rollback_reads_its_originals_rows_only(engine: Engine) -> None:
    """Once the rest is folded (`workers.rebuild_later`, the bookings indexed)."""
    with engine.connect() as conn, conn.begin() as transaction:
        folded(conn)
        fold_store.index_bookings(conn)
        before = reads(conn)
        rows = LedgerRows(conn, Staged())
        seen = rows.seen("r7", place(FOLDED))
        found = rows.transactions_of_redemption("r7", "o7", place(FOLDED))
        read = read_since(before, conn)
        transaction.rollback()

    assert seen
    assert [t.key for t in found] == ["redemption:r7:discount"]
    assert all(seq == 0 for seq, _idx in read.values()), f"read sequentially: {read}"
    assert sum(idx for _seq, idx in read.values()) <= 10, read


def test_batches_of_card_movements_leave_one_batch_in_the_staging_table(engine: Engine) -> None:
    """Each batch's reports go through `fold_movements_new` into `fold_movements`: emptied
    after each, it never holds more than the batch (rows deleted but left in the table would
    be read again by every later batch)."""
    batches, per_batch, cards = 200, 100, 50
    at = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.connect() as conn, conn.begin() as transaction:
        fold_store.create(conn)
        for batch in range(batches):
            rows = [
                fold_store.movement_row(
                    Movement(
                        f"card_{n % cards}", "loyalty", f"k{batch}_{n}", "POINTS_ACCRUAL", 10,
                        10 * (batch + 1), at + timedelta(seconds=batch), None, 2, "c", f"e{n}",
                    )
                )
                for n in range(per_batch)
            ]  # fmt: skip
            fold_store.put_movements(conn, rows)
        kept = conn.scalar(select(func.count()).select_from(fold_store.FOLD_MOVEMENTS))
        staged = conn.scalar(text("SELECT pg_relation_size('fold_movements_new')"))
        transaction.rollback()

    assert kept == batches * per_batch
    assert staged is not None and staged <= 8192 * 4, (
        f"fold_movements_new takes {staged} bytes after {batches} batches: it keeps them all"
    )


def compare_steps(rows: int, tmp: Path) -> int:
    """SQLite's virtual machine steps (in thousands) to compare `rows` transactions and as
    many redemptions, folded and stored alike, once the rollbacks' indexes exist."""
    engine = make_engine(f"sqlite:///{tmp}/books_{rows}.db")
    schema.upgrade(engine)
    now = datetime.now(UTC)
    steps = 0

    def step() -> int:
        nonlocal steps
        steps += 1
        return 0

    with engine.begin() as conn:
        conn.execute(
            insert(ledger_transactions),
            [{"key": f"k{n}", "event_id": f"e{n}", "digest": "d", "memo": "m", "booked_at": now}
             for n in range(rows)],
        )  # fmt: skip
        conn.execute(
            insert(ledger_redemptions),
            [{"redemption_id": f"r{n}", "role": "plain", "parent_id": None, "order_id": f"o{n}",
              "applied_amount": 1, "event_id": f"e{n}"} for n in range(rows)],
        )  # fmt: skip
        fold_store.create(conn)
        bookings = [Booking(place(n), f"k{n}", None, f"e{n}", "d", "m") for n in range(rows)]
        notes = [Note(place(n), f"r{n}", "plain", None, f"o{n}", 1, f"e{n}") for n in range(rows)]
        fold_store.add_bookings(conn, bookings, [], notes)
        fold_store.index_bookings(conn)
        assert fold_store.settle(conn) is None
        raw = conn.connection.dbapi_connection
        assert isinstance(raw, sqlite3.Connection)
        raw.set_progress_handler(step, 1000)
        written = [
            p.replace_with(conn, fold_store.computed(p), now) for p in (TRANSACTIONS, REDEMPTIONS)
        ]
        raw.set_progress_handler(None, 0)
        fold_store.drop(conn)
    engine.dispose()
    assert written == [0, 0]
    return steps


def test_sqlite_compares_the_books_in_time_linear_in_their_size(tmp_path: Path) -> None:
    """On SQLite the books are compared with what was folded row by row: each stored row is
    looked up in the fold's tables through an index, not by reading them whole."""
    small, large = compare_steps(2_000, tmp_path), compare_steps(8_000, tmp_path)
    assert large < 8 * small, f"4x the rows took {large / small:.1f}x the steps"
