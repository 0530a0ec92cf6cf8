"""All SQL about handler runs: one row per (event, handler), the mark of work done."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, select, update

from models.tables import handler_runs
from models.upsert import insert


def claim(conn: Connection, event_ids: list[str], handler: str, at: datetime) -> set[str]:
    """Lock the run rows of these events for `handler`, creating them; return the ids whose
    run is not done yet (the others were done before: nothing to do).

    A concurrent claim of the same pair waits for this transaction, then sees `done`. Rows are
    locked in id order, so two batches sharing events cannot deadlock on them.
    """
    ids = sorted(set(event_ids))
    if not ids:
        return set()
    conn.execute(
        insert(conn, handler_runs).on_conflict_do_nothing(index_elements=["event_id", "handler"]),
        [{"event_id": i, "handler": handler, "status": "running", "updated_at": at} for i in ids],
    )
    rows = conn.execute(
        select(handler_runs.c.event_id, handler_runs.c.status)
        .where(handler_runs.c.event_id.in_(ids), handler_runs.c.handler == handler)
        .order_by(handler_runs.c.event_id)
        .with_for_update()
    )
    return {event_id for event_id, status in rows if status != "done"}


def finish(
    conn: Connection, handler: str, outcomes: Sequence[tuple[str, str, str | None]], at: datetime
) -> None:
    """Record (event id, status `done` or `held`, note) in the handler's own transaction."""
    if not outcomes:
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
    rows = conn.execute(
        select(handler_runs.c.event_id, handler_runs.c.handler, handler_runs.c.status).where(
            handler_runs.c.event_id.in_(event_ids)
        )
    )
    return {(row[0], row[1]): row[2] for row in rows}


def for_event(conn: Connection, event_id: str) -> list[Any]:
    return list(
        conn.execute(
            select(handler_runs)
            .where(handler_runs.c.event_id == event_id)
            .order_by(handler_runs.c.handler)
        )
    )


def forget(conn: Connection, handlers: tuple[str, ...]) -> None:
    """Drop the runs of these handlers (a rebuild runs them again from the log)."""
    conn.execute(delete(handler_runs).where(handler_runs.c.handler.in_(handlers)))


def reset_failed(conn: Connection, event_ids: list[str]) -> None:
    """Give failed runs of these events a fresh set of attempts (a replay after a fix)."""
    if event_ids:
        conn.execute(
            update(handler_runs)
            .where(handler_runs.c.event_id.in_(event_ids))
            .where(handler_runs.c.status == "failed")
            .values(attempts=0)
        )


def events_with(
    conn: Connection, handlers: tuple[str, ...], statuses: tuple[str, ...]
) -> list[str]:
    """Ids of events having a run of one of `handlers` in one of `statuses`, receipt order."""
    from models.tables import events

    stmt = (
        select(events.c.id)
        .where(
            events.c.id.in_(
                select(handler_runs.c.event_id)
                .where(handler_runs.c.handler.in_(handlers))
                .where(handler_runs.c.status.in_(statuses))
            )
        )
        .order_by(events.c.seq)
    )
    return list(conn.scalars(stmt))
