"""All SQL about the event log and its outbox columns, in one place.

Every function takes a connection: the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, Select, and_, bindparam, func, or_, select, update

from models.db.batch_sql import is_pending, lease_pending
from models.db.insert import insert
from models.db.tables import event_counts, events, handler_runs
from models.statuses import EventStatus


@dataclass(frozen=True)
class NewEvent:
    id: str
    type: str | None
    status: EventStatus
    received_at: datetime
    body: bytes
    headers: dict[str, str]
    remote_addr: str | None
    delivery_id: str | None
    error: str | None
    dispatched_at: datetime | None = None

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "status": self.status,
            "received_at": self.received_at,
            "body": self.body,
            "headers": self.headers,
            "remote_addr": self.remote_addr,
            "delivery_id": self.delivery_id,
            "error": self.error,
            "dispatched_at": self.dispatched_at,
        }


def insert_new_statement(dialect_name: str) -> Any:
    """INSERT … ON CONFLICT (id) DO NOTHING RETURNING id, executed with one row per event.

    The ids returned are the new ones. Each id must appear once per execution. Against a
    concurrent insert of the same id, PostgreSQL waits for the other transaction, so a
    duplicate is only reported once the original is committed.
    """
    stmt = insert(dialect_name, events)
    return stmt.on_conflict_do_nothing(index_elements=["id"]).returning(events.c.id)


# The same insert for PostgreSQL's own driver (asyncpg), one execution per batch: the rows
# travel as one array per column. One statement text whatever the batch size, so it is
# prepared once per connection; run outside an explicit transaction it is its own
# transaction, committed (durably) before the server answers. Rows keep the batch's order.
INSERT_NEW_UNNEST = f"""
INSERT INTO {events.name}
    (id, type, status, received_at, body, headers, remote_addr, delivery_id, error,
     dispatched_at)
SELECT id, type, status, received_at, body, headers::json, remote_addr, delivery_id, error,
       dispatched_at
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::bytea[], $6::text[],
            $7::text[], $8::text[], $9::text[], $10::timestamptz[])
     WITH ORDINALITY AS batch (id, type, status, received_at, body, headers, remote_addr,
                               delivery_id, error, dispatched_at, position)
ORDER BY position
ON CONFLICT (id) DO NOTHING
RETURNING id
"""


# Bodies are a few KB of JSON, so PostgreSQL compresses each one as it stores it: with pglz
# unless the session says otherwise. lz4 (PostgreSQL 14 and later, when built with it, as the
# common packages are) costs the server about a third less CPU per stored event, and reads back
# the same bytes. Set on the receiver's writer connections; a server that refuses it keeps pglz.
PREFER_LZ4 = "SET default_toast_compression = lz4"


def insert_new_columns(batch: Sequence[NewEvent]) -> tuple[list[Any], ...]:
    """The arguments of INSERT_NEW_UNNEST: one list per column, in the statement's order."""
    return (
        [e.id for e in batch],
        [e.type for e in batch],
        [e.status for e in batch],
        [e.received_at for e in batch],
        [e.body for e in batch],
        [orjson.dumps(e.headers).decode() for e in batch],
        [e.remote_addr for e in batch],
        [e.delivery_id for e in batch],
        [e.error for e in batch],
        [e.dispatched_at for e in batch],
    )


def insert_new(conn: Connection, batch: Sequence[NewEvent]) -> set[str]:
    """Insert the events whose identity is not stored yet; return the ids that were new."""
    if not batch:
        return set()
    result = conn.execute(insert_new_statement(conn.dialect.name), [e.row() for e in batch])
    return {row[0] for row in result}


def mark_dispatched(conn: Connection, ids: Iterable[str], at: datetime) -> None:
    """Handed to the broker (again) at `at`; no worker holds them until one takes the message."""
    ids = list(ids)
    if ids:
        conn.execute(
            update(events)
            .where(events.c.id.in_(ids))
            .values(dispatched_at=at, lease_until=None, leased_by=None)
        )


def lease(conn: Connection, ids: Sequence[str], until: datetime, holder: str) -> int:
    """A live worker, `holder`, holds these events until `until` (it took their message, or
    still runs it): the pending ones are leased, or their lease renewed; answers how many.

    Rows locked by another transaction (a batch settling them, a sweep) are skipped, so a
    renewal never waits for, nor deadlocks with, the work it covers.
    """
    return lease_pending(
        conn, events, events.c.id, ids, {"lease_until": until, "leased_by": holder}
    )


def unmark_dispatched(conn: Connection, ids: Iterable[str]) -> None:
    """The broker did not take them after all: leave them to the sweep."""
    ids = list(ids)
    if ids:
        conn.execute(
            update(events)
            .where(events.c.id.in_(ids), is_pending(events))
            .values(dispatched_at=None)
        )


def leased(conn: Connection, ids: Sequence[str], now: datetime) -> set[str]:
    """Those of these events a live worker holds: pending, with a lease that has not run out."""
    if not ids:
        return set()
    stmt = select(events.c.id).where(
        events.c.id.in_(list(ids)), is_pending(events), events.c.lease_until >= now
    )
    return set(conn.scalars(stmt))


def claim_due(
    conn: Connection, now: datetime, *, after: float, redispatch_after: float, limit: int
) -> list[str]:
    """Pending events to hand to the broker (again):

    - held by a worker whose lease ran out: the worker died (or lost the database) while it
      held their message;
    - held by none, and never handed to the broker `after` seconds after receipt;
    - held by none, and handed to it `redispatch_after` seconds ago: the message must have
      been lost (a broker restarted without persistence, a publish cut by a crash).

    An event with a live lease is never taken: a slow batch stays with its worker.
    Rows are locked until the caller commits, and locked rows are skipped, so several
    sweepers share the work instead of publishing the same events together.
    """
    stmt = claim_due_statement(now, after=after, redispatch_after=redispatch_after, limit=limit)
    return list(conn.scalars(stmt))


def claim_due_statement(
    now: datetime, *, after: float, redispatch_after: float, limit: int
) -> Select[Any]:
    """The query of `claim_due`."""
    unheld = events.c.lease_until.is_(None)
    return (
        select(events.c.id)
        .where(events.c.status == "pending")
        .where(
            or_(
                events.c.lease_until < now,
                and_(
                    unheld,
                    events.c.dispatched_at.is_(None),
                    events.c.received_at < now - timedelta(seconds=after),
                ),
                and_(unheld, events.c.dispatched_at < now - timedelta(seconds=redispatch_after)),
            )
        )
        .order_by(events.c.received_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


def unqueued(
    conn: Connection, now: datetime, *, expiry: float, redispatch_after: float, limit: int
) -> list[str]:
    """Pending events handed to the broker between `redispatch_after` and `expiry` seconds ago
    that no worker has run or holds: each is waiting in the queue, or its message was lost on
    the way to a worker (`workers.orphans.LostMessages` tells which). Oldest received first."""
    return list(conn.scalars(unqueued_statement(now, expiry, redispatch_after).limit(limit)))


def claim_unqueued(
    conn: Connection, ids: Sequence[str], now: datetime, *, expiry: float, redispatch_after: float
) -> list[str]:
    """Those of `ids` still `unqueued`, locked until the caller commits; rows another sweeper
    locked are skipped (it dispatches them)."""
    if not ids:
        return []
    stmt = unqueued_statement(now, expiry, redispatch_after).where(events.c.id.in_(list(ids)))
    return list(conn.scalars(stmt.with_for_update(skip_locked=True)))


def unqueued_statement(now: datetime, expiry: float, redispatch_after: float) -> Select[Any]:
    """The query of `unqueued`. Older ones are the outbox sweep's (`claim_due`)."""
    return (
        select(events.c.id)
        .where(
            events.c.status == "pending",
            events.c.lease_until.is_(None),
            events.c.attempts == 0,
            events.c.dispatched_at < now - timedelta(seconds=expiry),
            events.c.dispatched_at >= now - timedelta(seconds=redispatch_after),
        )
        .order_by(events.c.received_at)
    )


def load(conn: Connection, ids: Sequence[str]) -> list[Any]:
    rows = conn.execute(select(events).where(events.c.id.in_(ids)).order_by(events.c.seq))
    return list(rows)


def set_status(
    conn: Connection, event_id: str, status: str, at: datetime, error: str | None = None
) -> None:
    set_statuses(conn, [(event_id, status, error)], at)


def set_statuses(
    conn: Connection,
    outcomes: list[tuple[str, str, str | None]],
    at: datetime,
    leases: Mapping[str, datetime] | None = None,
) -> None:
    """Record (event id, status, error) for many events in one statement. Their leases end,
    except those given in `leases` (an event left pending until a retry that is published
    after the commit: if that publish is lost, the sweep takes it when the lease runs out)."""
    if not outcomes:
        return
    conn.execute(
        update(events)
        .where(events.c.id == bindparam("b_id"))
        .values(
            status=bindparam("b_status"),
            error=bindparam("b_error"),
            attempts=events.c.attempts + 1,
            processed_at=bindparam("b_processed_at"),
            dispatched_at=func.coalesce(events.c.dispatched_at, at),
            # Settled: a retry, a held rollback's release, is leased by whoever takes it.
            lease_until=bindparam("b_lease"),
            leased_by=None,
        ),
        [
            {
                "b_id": event_id,
                "b_status": status,
                "b_error": error,
                "b_processed_at": at if status == "processed" else None,
                "b_lease": (leases or {}).get(event_id),
            }
            for event_id, status, error in outcomes
        ],
    )


def counts(conn: Connection) -> list[tuple[str | None, str, int]]:
    """(type, status, count) over the whole log, read from the counts the triggers keep: a
    few rows however long the log is."""
    return [(row[0] or None, row[1], int(row[2])) for row in conn.execute(counts_statement())]


def counts_statement() -> Select[Any]:
    """The query of `counts`."""
    total = func.sum(event_counts.c.n)
    return (
        select(event_counts.c.type, event_counts.c.status, total)
        .group_by(event_counts.c.type, event_counts.c.status)
        .having(total != 0)
    )


UNDISPATCHED_COUNTED = 10_000
"""Never-dispatched events are counted up to this many, so a scrape stays cheap in a crisis."""


def backlog(conn: Connection, now: datetime) -> tuple[int, int, float]:
    """(pending events, of which never dispatched (at most UNDISPATCHED_COUNTED), age in
    seconds of the oldest pending one that is not held). Bounded: counts from event_counts, a
    limited scan of the outbox index, and its first rows."""
    pending, undispatched, oldest = backlog_statements()
    waiting = conn.execute(pending).scalar_one()
    never = conn.execute(undispatched).scalar_one()
    first = conn.execute(oldest).scalar()
    age = (now - first).total_seconds() if first is not None else 0.0
    return int(waiting), int(never), max(age, 0.0)


def backlog_statements() -> tuple[Select[Any], Select[Any], Select[Any]]:
    """The queries of `backlog`: pending events, never dispatched ones, the oldest pending.

    A held rollback is pending by design until its original arrives, which may be never: it
    is counted apart (`run_store.held_count`), not as the oldest pending, which would
    otherwise stay old for good and hide a backlog that does not move. The outbox index is
    read in receipt order, so the scan stops at the first pending event not held."""
    pending = select(func.coalesce(func.sum(event_counts.c.n), 0)).where(
        event_counts.c.status == "pending"
    )
    waiting = (
        select(events.c.seq)
        .where(events.c.status == "pending", events.c.dispatched_at.is_(None))
        .limit(UNDISPATCHED_COUNTED)
        .subquery()
    )
    undispatched = select(func.count()).select_from(waiting)
    held = (
        select(handler_runs.c.event_id)
        .where(handler_runs.c.event_id == events.c.id, handler_runs.c.status == "held")
        .exists()
    )
    oldest = (
        select(events.c.received_at)
        .where(events.c.status == "pending", ~held)
        .order_by(events.c.received_at)
        .limit(1)
    )
    return pending, undispatched, oldest


def last_received(conn: Connection) -> datetime | None:
    """When the newest stored event arrived (None: none ever did)."""
    found: datetime | None = conn.execute(last_received_statement()).scalar()
    return found


def last_received_statement() -> Select[Any]:
    """The query of `last_received`: the end of the receipt-time index."""
    return select(events.c.received_at).order_by(events.c.received_at.desc()).limit(1)


def select_events(
    conn: Connection,
    *,
    ids: Sequence[str] = (),
    event_type: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
    newest_first: bool = False,
) -> list[Any]:
    """Events matching every filter given (ids, type, status, received since/until)."""
    stmt = select_events_statement(
        ids=ids,
        event_type=event_type,
        status=status,
        since=since,
        until=until,
        limit=limit,
        newest_first=newest_first,
    )
    return list(conn.execute(stmt))


LISTED_COLUMNS = (
    events.c.seq,
    events.c.id,
    events.c.type,
    events.c.status,
    events.c.received_at,
    events.c.attempts,
    events.c.error,
)
"""An event as lists show it (`events list`, the console's events page): all but its body."""


def select_events_statement(
    *,
    ids: Sequence[str] = (),
    event_type: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
    newest_first: bool = False,
) -> Select[Any]:
    """The query of `select_events`."""
    stmt = select(*LISTED_COLUMNS)
    if ids:
        stmt = stmt.where(events.c.id.in_(list(ids)))
    if event_type:
        stmt = stmt.where(events.c.type == event_type)
    if status:
        stmt = stmt.where(events.c.status == status)
    if since:
        stmt = stmt.where(events.c.received_at >= since)
    if until:
        stmt = stmt.where(events.c.received_at < until)
    stmt = stmt.order_by(events.c.seq.desc() if newest_first else events.c.seq)
    if limit:
        stmt = stmt.limit(limit)
    return stmt


def get(conn: Connection, event_id: str) -> Any | None:
    return conn.execute(select(events).where(events.c.id == event_id)).first()


def reopen(conn: Connection, ids: Sequence[str]) -> None:
    """Make events processable again (a replay): failed or ignored ones become pending."""
    if ids:
        conn.execute(
            update(events)
            .where(events.c.id.in_(list(ids)))
            .where(events.c.status.in_(("failed", "ignored", "pending")))
            .values(status="pending")
        )


def retype(conn: Connection, event_id: str, event_type: str, status: EventStatus) -> bool:
    """Give a quarantined event the type a person chose; False when it is not quarantined
    (any more). Left undispatched, so the sweep hands it to the workers."""
    done = conn.execute(
        update(events)
        .where(events.c.id == event_id, events.c.status == "quarantined")
        .values(type=event_type, status=status, error=None, dispatched_at=None)
    )
    return done.rowcount == 1


def ids_in_order(conn: Connection, ids: Sequence[str]) -> list[str]:
    """These event ids in receipt order."""
    return list(
        conn.scalars(select(events.c.id).where(events.c.id.in_(list(ids))).order_by(events.c.seq))
    )
