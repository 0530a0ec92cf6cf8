"""The counts a metrics scrape reads are kept by triggers: they equal a full GROUP BY after
inserts, duplicates, status changes, other updates and deletes, on PostgreSQL and SQLite."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from sqlalchemy import delete, func, select, update

from models.db import eventlog
from models.db.engine import make_engine
from models.db.eventlog import NewEvent
from models.db.tables import events
from tests.conftest import EventLog


def new(event_id: str, event_type: str | None, status: str = "pending") -> NewEvent:
    return NewEvent(
        id=event_id,
        type=event_type,
        status=status,
        received_at=datetime.now(UTC),
        body=b"{}",
        headers={},
        remote_addr=None,
        delivery_id=None,
        error=None,
    )


def grouped(event_log: EventLog) -> set[tuple[str | None, str, int]]:
    with event_log.engine.connect() as conn:
        stmt = select(events.c.type, events.c.status, func.count()).group_by(
            events.c.type, events.c.status
        )
        return {(t, s, int(n)) for t, s, n in conn.execute(stmt)}


def counted(event_log: EventLog) -> set[tuple[str | None, str, int]]:
    with event_log.engine.connect() as conn:
        return set(eventlog.counts(conn))


def test_counts_follow_every_kind_of_change(event_log: EventLog) -> None:
    event_log.clear()
    batch = [new(f"e{n}", "redemption.succeeded") for n in range(50)]
    batch += [new("q1", None, "quarantined"), new("i1", "voucher.updated", "ignored")]
    with event_log.engine.begin() as conn:
        assert len(eventlog.insert_new(conn, batch)) == 52
        assert eventlog.insert_new(conn, batch[:10]) == set()  # duplicates count nothing
    assert counted(event_log) == grouped(event_log)

    at = datetime.now(UTC)
    with event_log.engine.begin() as conn:
        eventlog.set_statuses(conn, [(f"e{n}", "processed", None) for n in range(30)], at)
        eventlog.set_statuses(conn, [("e30", "failed", "boom")], at)
        eventlog.mark_dispatched(conn, [f"e{n}" for n in range(31, 50)], at)
        conn.execute(update(events).where(events.c.id == "i1").values(type="voucher.created"))
    assert counted(event_log) == grouped(event_log)
    assert ("redemption.succeeded", "processed", 30) in counted(event_log)

    with event_log.engine.begin() as conn:
        conn.execute(delete(events).where(events.c.id.in_(["e0", "e1", "q1"])))
    assert counted(event_log) == grouped(event_log)
    event_log.clear()
    assert counted(event_log) == set()


def test_counts_stay_exact_under_concurrent_writers(event_log: EventLog) -> None:
    event_log.clear()
    engine = make_engine(str(event_log.engine.url.render_as_string(hide_password=False)))

    def writer(n: int) -> None:
        for round_ in range(20):
            ids = [f"w{n}-{round_}-{k}" for k in range(10)]
            with engine.begin() as conn:
                eventlog.insert_new(conn, [new(i, "redemption.succeeded") for i in ids])
            with engine.begin() as conn:
                eventlog.set_statuses(conn, [(i, "processed", None) for i in ids[:7]], at)

    at = datetime.now(UTC)
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine.dispose()
    assert (
        counted(event_log)
        == grouped(event_log)
        == {
            ("redemption.succeeded", "processed", 4 * 20 * 7),
            ("redemption.succeeded", "pending", 4 * 20 * 3),
        }
    )
