"""A rebuild folds the log a range at a time, in one process or several, keeping in memory only
what later events read: whatever the ranges and the processes, the books it writes are those
the whole log gives folded at once on books in memory (`workers.books.MemoryBooks`, as the
rebuild did before it streamed), and so is its digest. On PostgreSQL and on SQLite.

The logs: card histories drawn by Hypothesis (shuffled, one movement told by several events,
reports replaced by better ones at other times: the cards' windows at work), and a log of
every kind (rollbacks held for an original received later, stacks, gift and loyalty cards)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from models.db import eventlog
from models.db.digest import StateDigest
from models.db.engine import make_engine
from models.db.tables import handler_runs, ledger_transactions
from models.identity import identify
from models.routing import handlers_for
from models.voucherify import load_json, parse_payload
from tests.conftest import EventLog
from tests.support.card_histories import deliveries
from tests.support.processing import received
from tests.test_card_histories import histories
from tests.test_operations import QUIET, event_log
from tests.test_rebuild import Contents, contents
from workers import rebuild_books
from workers.books import MemoryBooks
from workers.handlers import BY_NAME
from workers.handlers.base import Job, LedgerConflict
from workers.rebuild import FOLDED, rebuild

Json = dict[str, Any]


@pytest.fixture(scope="module")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def store_done(engine: Engine, items: Sequence[tuple[str, Json]]) -> None:
    """Store bodies in this order of receipt, every run of their handlers done: what a rebuild
    folds, without processing them first."""
    start, now = datetime(2025, 1, 1, tzinfo=UTC), datetime.now(UTC)
    new, runs = [], []
    for n, (event_type, body) in enumerate(items):
        at = start + timedelta(microseconds=n)
        found = received(json.dumps(body).encode(), event_type, at, "processed")
        new.append(found)
        for handler in handlers_for(found.type):
            runs.append(
                {
                    "event_id": found.id,
                    "handler": handler,
                    "status": "done",
                    "updated_at": now,
                }
            )
    with engine.begin() as conn:
        eventlog.insert_new(conn, new)
        conn.execute(handler_runs.insert(), runs)


def fold_in_memory(items: Sequence[tuple[str, Json]]) -> MemoryBooks:
    """The whole log folded at once on books in memory, as the rebuild did before it streamed:
    in receipt order, a held rollback run once its original is folded."""
    books = MemoryBooks()
    held: dict[str, tuple[str, Job]] = {}
    now = datetime.now(UTC)
    for event_type, data in items:
        raw = json.dumps(data).encode()
        event_id = identify(raw, event_type).event_id
        body = load_json(raw)
        job = Job(books, event_id, event_type, parse_payload(event_type, body), body, now, QUIET)
        for name in handlers_for(event_type):
            if name in FOLDED and BY_NAME[name](job).status == "held":
                held[event_id] = (name, job)
        for released in job.released:
            if released in held:
                name, waiting = held.pop(released)
                BY_NAME[name](waiting)
    return books


def in_memory(books: MemoryBooks) -> tuple[Contents, str]:
    """The books' rows as `tests.test_rebuild.contents` reads them from a database, and their
    digest."""
    found: Contents = {}
    digest = StateDigest()
    for part, rows in books.rows().items():
        digest.add_computed(part, rows)
        listed = (
            [(key, *values) for key, sequence in rows.items() for values in sequence]
            if part.sequence
            else [
                (*(key if len(part.key) > 1 else (key,)), *values) for key, values in rows.items()
            ]
        )
        found[part.table.name] = Counter(tuple(_plain(v) for v in row) for row in listed)
    return found, digest.hexdigest()


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return tuple(value) if isinstance(value, list) else value


def assert_rebuilds_as_in_memory(
    engine: Engine, items: Sequence[tuple[str, Json]], processes: int, span: int
) -> None:
    expected, digest = in_memory(fold_in_memory(items))

    result = rebuild(engine, QUIET, processes=processes, span=span)

    assert contents(engine) == expected
    assert result.after == digest
    assert result.events == sum(1 for kind, _ in items if set(handlers_for(kind)) & set(FOLDED))
    again = rebuild(engine, QUIET, processes=processes, span=span)
    assert (again.before, again.after, again.written) == (digest, digest, 0)


def ways(engine: Engine) -> list[tuple[int, int]]:
    """(processes, span): a range per event, a few per range, all in one; on PostgreSQL also
    in two processes (on SQLite a rebuild folds in one unless told)."""
    found = [(1, 1), (1, 3), (1, 4096)]
    if engine.dialect.name == "postgresql":
        found += [(2, 1), (2, 5)]
    return found


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=histories(max_moves=10), data=st.data())
def test_card_histories_fold_in_ranges_as_in_memory(
    engine: Engine, history: Any, data: st.DataObject
) -> None:
    told = deliveries(history.moves, history.events)
    arrived = data.draw(st.permutations(told), label="arrival")
    processes, span = data.draw(st.sampled_from(ways(engine)), label="processes, span")
    # A card's window of 2 times, the fewest its newest movement reads, goes back to the
    # table for older times whenever a report kept leaves it.
    kept = data.draw(st.sampled_from([rebuild_books.KEPT_TIMES, 2]), label="kept times")
    EventLog(engine).clear()
    items = [(d.event_type, d.body) for d in arrived]
    store_done(engine, items)
    with mock.patch.object(rebuild_books, "KEPT_TIMES", kept):
        assert_rebuilds_as_in_memory(engine, items, processes, span)


@pytest.mark.parametrize("way", range(5))
def test_a_log_of_every_kind_folds_in_ranges_as_in_memory(engine: Engine, way: int) -> None:
    found = ways(engine)
    if way >= len(found):
        pytest.skip("two processes: PostgreSQL")
    EventLog(engine).clear()
    items = event_log(4, tag=f"rg{way}")
    store_done(engine, items)
    assert_rebuilds_as_in_memory(engine, items, *found[way])


def test_a_conflict_between_ranges_fails_the_rebuild_and_writes_nothing(engine: Engine) -> None:
    """Two redemptions of one order telling it with two amounts, both booked by their runs
    (as if the books had been edited): the order's gross cannot be booked twice."""
    EventLog(engine).clear()
    items = event_log(1, tag="cf")
    first = next(data for kind, data in items if data.get("order", {}).get("amount"))
    twin = json.loads(json.dumps(first))
    twin["redemption"]["id"] += "_twin"
    twin["order"]["amount"] += 1
    store_done(engine, [*items, ("redemption.succeeded", twin)])
    key = f"order:{first['order']['id']}:gross"

    for processes, span in ways(engine):
        with pytest.raises(LedgerConflict, match=f"key {key} is already booked"):
            rebuild(engine, QUIET, processes=processes, span=span)
        with engine.connect() as conn:
            assert conn.execute(select(ledger_transactions.c.key)).first() is None
