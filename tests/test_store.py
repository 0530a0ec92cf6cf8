"""The receiver's group-commit writer against the real databases: dedup under concurrency, the
order rows are stored in, and recovery from connections the server dropped."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy import select, text

from models.db.engine import make_async_engine, make_engine
from models.db.eventlog import NewEvent
from models.db.tables import events
from receiver.store import EventWriter, StoreUnavailable


def event(event_id: str) -> NewEvent:
    now = datetime.now(UTC)
    return NewEvent(
        id=event_id,
        type="redemption.succeeded",
        status="pending",
        received_at=now,
        body=b'{"id": "%s"}' % event_id.encode(),
        headers={"content-type": "application/json"},
        remote_addr="127.0.0.1",
        delivery_id=None,
        error=None,
        dispatched_at=now,
    )


def stored_ids(database_url: str, ids: list[str]) -> list[str]:
    """The given ids as stored, in receipt (seq) order."""
    engine = make_engine(database_url)
    with engine.connect() as conn:
        query = select(events.c.id).where(events.c.id.in_(ids)).order_by(events.c.seq)
        stored = list(conn.scalars(query))
    engine.dispose()
    return stored


async def store_all(database_url: str, batch: list[NewEvent]) -> tuple[list[bool], list[str]]:
    dispatched: list[str] = []
    writer = EventWriter(make_async_engine(database_url), dispatched.extend)
    await writer.start()
    try:
        results = await asyncio.gather(*(writer.store(e, 10) for e in batch))
    finally:
        await writer.stop()
    return list(results), dispatched


def test_concurrent_duplicates_store_one_row_and_one_new_answer(database_url: str) -> None:
    twin = f"evt_{uuid.uuid4().hex}"
    others = [f"evt_{uuid.uuid4().hex}" for _ in range(20)]
    batch = [event(twin) for _ in range(50)] + [event(i) for i in others]

    results, dispatched = asyncio.run(store_all(database_url, batch))

    assert results[:50].count(True) == 1
    assert all(results[50:])
    assert sorted(dispatched) == sorted([twin, *others])
    assert stored_ids(database_url, [twin]) == [twin]


def test_rows_keep_the_order_events_were_queued_in(database_url: str) -> None:
    ids = [f"evt_{n:03d}_{uuid.uuid4().hex}" for n in range(100)]

    asyncio.run(store_all(database_url, [event(i) for i in ids]))

    assert stored_ids(database_url, ids) == ids


def test_a_connection_the_server_dropped_is_replaced(postgres_url: str) -> None:
    first, second = f"evt_{uuid.uuid4().hex}", f"evt_{uuid.uuid4().hex}"

    async def scenario() -> list[bool]:
        writer = EventWriter(make_async_engine(postgres_url), lambda _ids: None, writers=1)
        await writer.start()
        try:
            before = await writer.store(event(first), 10)
            admin = make_engine(postgres_url)
            with admin.begin() as conn:  # what a server restart does to idle connections
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
            admin.dispose()
            after = await writer.store(event(second), 10)
        finally:
            await writer.stop()
        return [before, after]

    assert asyncio.run(scenario()) == [True, True]
    assert stored_ids(postgres_url, [first, second]) == [first, second]


def test_a_row_the_database_refuses_fails_alone_not_its_batch(postgres_url: str) -> None:
    """A NUL in a text column is refused by PostgreSQL: only that delivery is turned away."""
    from receiver.store import StoreUnavailable

    good = [event(f"evt_{uuid.uuid4().hex}") for _ in range(30)]
    bad = replace(event(f"evt_{uuid.uuid4().hex}"), type="redemption\x00succeeded")

    async def run() -> list[bool | BaseException]:
        writer = EventWriter(make_async_engine(postgres_url), lambda _ids: None)
        await writer.start()
        try:
            return await asyncio.gather(
                *(writer.store(e, 10) for e in [*good[:15], bad, *good[15:]]),
                return_exceptions=True,
            )
        finally:
            await writer.stop()

    results = asyncio.run(run())

    assert isinstance(results[15], StoreUnavailable)
    assert results[:15] + results[16:] == [True] * 30
    assert len(stored_ids(postgres_url, [e.id for e in good])) == 30


def test_during_a_database_stall_the_queue_is_bounded_and_expired_requests_are_dropped(
    postgres_url: str,
) -> None:
    """The database stops answering: the writers' batches hang, the queue fills to its bound,
    and every request past it is refused at once (503) instead of holding its body. Requests
    answered 503 while queued are not written when the database answers again; the writer
    then stores new deliveries as before."""
    from urllib.parse import urlsplit

    from tests.support.services import StallingProxy

    target = urlsplit(postgres_url)
    proxy = StallingProxy(target.hostname or "127.0.0.1", target.port or 5432)
    proxy.start()
    via_proxy = postgres_url.replace(target.netloc, f"postgres@127.0.0.1:{proxy.port}")
    ids = [f"evt_{uuid.uuid4().hex}" for _ in range(100)]

    async def scenario() -> tuple[list[BaseException | bool], bool]:
        writer = EventWriter(
            make_async_engine(via_proxy, timeout=3), lambda _ids: None, max_batch=10, max_queued=40
        )
        await writer.start()
        try:
            assert await writer.store(event(f"evt_{uuid.uuid4().hex}"), 10)  # connections open
            proxy.stall()
            outcomes = await asyncio.gather(
                *(writer.store(event(i), 1) for i in ids), return_exceptions=True
            )
            proxy.resume()
            await asyncio.sleep(6)  # the hung batches time out; the queue drains
            after = await writer.store(event(f"evt_{uuid.uuid4().hex}"), 10)
        finally:
            await writer.stop()
        return outcomes, after

    try:
        outcomes, after = asyncio.run(scenario())
    finally:
        proxy.close()

    refused_at_once = [o for o in outcomes if "too many deliveries waiting" in str(o)]
    assert len(refused_at_once) >= 40, outcomes
    assert all(isinstance(o, StoreUnavailable) for o in outcomes), outcomes
    # At most what the two writers had in hand when the database stalled may have committed.
    assert len(stored_ids(postgres_url, ids)) <= 20
    assert after is True


def test_bodies_are_stored_byte_for_byte_and_compressed_with_lz4(postgres_url: str) -> None:
    """The writer's connections ask for lz4, which costs the server less CPU than pglz; what
    is read back is the body as it arrived."""
    body = b'{"data": {"items": [%s]}}' % b", ".join(
        b'{"id": "item_%d", "name": "a line of an order"}' % n for n in range(120)
    )
    stored = replace(event(f"evt_{uuid.uuid4().hex}"), body=body)

    asyncio.run(store_all(postgres_url, [stored]))

    engine = make_engine(postgres_url)
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT body, pg_column_compression(body) FROM events WHERE id = :id"),
            {"id": stored.id},
        ).one()
    engine.dispose()
    assert bytes(row[0]) == body
    assert row[1] == "lz4"
