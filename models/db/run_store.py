"""All SQL about handler runs: one row per (event, handler), the mark of work done."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Select, bindparam, case, func, or_, select, text, update

from models.db import bulk_io as bulk
from models.db.batch_sql import among, as_json, insert_many, rows_from
from models.db.insert import insert
from models.db.tables import events, handler_runs
from models.statuses import RunStatus


def claim(conn: Connection, event_ids: list[str], handler: str, at: datetime) -> set[str]:
    """Lock the run rows of these events for `handler`, creating them; return the ids whose
    run is not done yet (the others were done before: nothing to do).

    A concurrent claim of the same pair waits for this transaction, then sees `done`. Rows are
    locked in id order, so two batches sharing events cannot deadlock on them.
    """
    ids = sorted(set(event_ids))
    if not ids:
        return set()
    insert_many(
        conn,
        handler_runs,
        [{"event_id": i, "handler": handler, "status": "running", "updated_at": at} for i in ids],
        conflict=("event_id", "handler"),
    )
    rows = conn.execute(
        select(handler_runs.c.event_id, handler_runs.c.status)
        .where(among(conn, handler_runs.c.event_id, ids), handler_runs.c.handler == handler)
        .order_by(handler_runs.c.event_id)
        .with_for_update()
    )
    return {event_id for event_id, status in rows if status != "done"}


# One statement for the whole batch, its rows read from one JSON parameter.
FINISH_POSTGRESQL = text(
    "UPDATE handler_runs SET status = x.status, attempts = attempts + 1, error = x.error, "
    "traceback = NULL, updated_at = :at "
    f"{rows_from(handler_runs, ('event_id', 'status', 'error'))} "
    "WHERE handler_runs.event_id = x.event_id AND handler_runs.handler = :handler"
)


def finish(
    conn: Connection,
    handler: str,
    outcomes: Sequence[tuple[str, RunStatus, str | None]],
    at: datetime,
) -> None:
    """Record (event id, status `done` or `held`, note) in the handler's own transaction."""
    if not outcomes:
        return
    if conn.dialect.name == "postgresql":
        rows = [{"event_id": e, "status": s, "error": n} for e, s, n in outcomes]
        conn.execute(FINISH_POSTGRESQL, {"rows": as_json(rows), "handler": handler, "at": at})
        return
    conn.execute(
        update(handler_runs)
        .where(
            handler_runs.c.event_id == bindparam("b_event_id"),
            handler_runs.c.handler == handler,
        )
        .values(
            status=bindparam("b_status"),
            attempts=handler_runs.c.attempts + 1,
            error=bindparam("b_note"),
            traceback=None,
            updated_at=at,
        ),
        [{"b_event_id": e, "b_status": s, "b_note": n} for e, s, n in outcomes],
    )


def record_failure(
    conn: Connection, event_id: str, handler: str, error: str, traceback: str, at: datetime
) -> int:
    """Record a failed attempt (outside the failed transaction); return the attempts so far."""
    conn.execute(
        insert(conn, handler_runs)
        .values(event_id=event_id, handler=handler, status="failed", updated_at=at)
        .on_conflict_do_nothing(index_elements=["event_id", "handler"])
    )
    where = (handler_runs.c.event_id == event_id, handler_runs.c.handler == handler)
    conn.execute(
        update(handler_runs)
        .where(*where)
        .where(handler_runs.c.status != "done")
        .values(
            status="failed",
            attempts=handler_runs.c.attempts + 1,
            error=error,
            traceback=traceback,
            updated_at=at,
        )
    )
    return int(conn.scalar(select(handler_runs.c.attempts).where(*where)) or 0)


def statuses(conn: Connection, event_ids: list[str]) -> dict[tuple[str, str], str]:
    rows = conn.execute(statuses_statement(event_ids))
    return {(row[0], row[1]): row[2] for row in rows}


def statuses_statement(event_ids: list[str]) -> Select[Any]:
    """The query of `statuses`: the runs of these events."""
    return select(handler_runs.c.event_id, handler_runs.c.handler, handler_runs.c.status).where(
        handler_runs.c.event_id.in_(event_ids)
    )


def held_count(conn: Connection) -> int:
    """Runs held: rollbacks waiting for their original redemption (a read of the status
    index, as long as the held ones are few, as they are)."""
    return int(conn.execute(held_count_statement()).scalar_one())


def held_count_statement() -> Select[Any]:
    """The query of `held_count`."""
    return select(func.count()).select_from(handler_runs).where(handler_runs.c.status == "held")


def for_event(conn: Connection, event_id: str) -> list[Any]:
    return list(
        conn.execute(
            select(handler_runs)
            .where(handler_runs.c.event_id == event_id)
            .order_by(handler_runs.c.handler)
        )
    )


def reset_failed(conn: Connection, event_ids: list[str]) -> None:
    """Give failed runs of these events a fresh set of attempts (a replay after a fix)."""
    if event_ids:
        conn.execute(
            update(handler_runs)
            .where(handler_runs.c.event_id.in_(event_ids))
            .where(handler_runs.c.status == "failed")
            .values(attempts=0)
        )


class EventRuns(NamedTuple):
    """A stored event and the handlers whose run of it is in a status asked about."""

    seq: int
    """Its place in the log (receipt order)."""
    id: str
    type: str
    body: bytes
    handlers: tuple[str, ...]


def events_with(
    conn: Connection,
    statuses: Mapping[str, tuple[str, ...]],
    *,
    page: int = 1000,
    after: int = 0,
    until: int | None = None,
) -> Iterator[list[EventRuns]]:
    """The events having a run of a handler of `statuses` in one of that handler's statuses,
    in receipt order, with their bodies: a page (one statement) at a time. Only those whose
    sequence is above `after`, and up to `until` when given.

    A page is the next events by receipt sequence, each with the status of its runs looked up
    by key: a plan that no table statistics can turn into a scan of every run per page, and
    no sort of the whole log delays the first page. Each page sees the runs as they are when
    it is read: a caller that needs one consistent answer keeps those runs from changing
    meanwhile (a rebuild holds the guard of their handlers)."""
    names = list(statuses)
    runs = [
        select(handler_runs.c.status)
        .where(handler_runs.c.event_id == events.c.id, handler_runs.c.handler == name)
        .scalar_subquery()
        for name in names
    ]
    wanted = or_(*(run.in_(statuses[name]) for name, run in zip(names, runs, strict=True)))
    query = (
        select(events.c.seq, events.c.id, events.c.type, case((wanted, events.c.body)), *runs)
        .where(events.c.seq > bindparam("after", 0))  # after the last seq read; seqs start at 1
        .order_by(events.c.seq)
        .limit(page)
    )
    if until is not None:
        query = query.where(events.c.seq <= until)
    named: dict[tuple[Any, ...], tuple[str, ...]] = {}  # by the statuses of an event's runs
    while rows := bulk.fetch(conn, query, after=after):
        found = []
        for row in rows:
            run_statuses = row[4:]
            handlers = named.get(run_statuses)
            if handlers is None:
                handlers = named[run_statuses] = _named(statuses, run_statuses)
            if handlers:
                found.append(EventRuns(row[0], row[1], row[2], row[3], handlers))
        yield found
        after = rows[-1][0]
        if len(rows) < page:
            return


def sequence_range(conn: Connection) -> tuple[int, int] | None:
    """The first and last sequence of the log (None: no event)."""
    first, last = conn.execute(select(func.min(events.c.seq), func.max(events.c.seq))).one()
    return None if first is None else (int(first), int(last))


def _named(statuses: Mapping[str, tuple[str, ...]], found: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple(
        name
        for (name, wanted), status in zip(statuses.items(), found, strict=True)
        if status in wanted
    )
