"""All SQL about handler runs: one row per (event, handler), the mark of work done."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from models.tables import handler_runs


def _insert(conn: Connection) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(handler_runs)


def claim(conn: Connection, event_id: str, handler: str, at: datetime) -> bool:
    """Lock the run row of (event, handler), creating it; False when it is done already.

    A concurrent claim of the same pair waits for this transaction, then sees `done`.
    """
    conn.execute(
        _insert(conn)
        .values(event_id=event_id, handler=handler, status="running", updated_at=at)
        .on_conflict_do_nothing(index_elements=["event_id", "handler"])
    )
    status = conn.scalar(
        select(handler_runs.c.status)
        .where(handler_runs.c.event_id == event_id, handler_runs.c.handler == handler)
        .with_for_update()
    )
    return status != "done"


def finish(
    conn: Connection,
    event_id: str,
    handler: str,
    status: str,
    at: datetime,
    note: str | None = None,
) -> None:
    """Record the outcome in the handler's own transaction (`done` or `held`)."""
    conn.execute(
        update(handler_runs)
        .where(handler_runs.c.event_id == event_id, handler_runs.c.handler == handler)
        .values(
            status=status,
            attempts=handler_runs.c.attempts + 1,
            error=note,
            traceback=None,
            updated_at=at,
        )
    )


def record_failure(
    conn: Connection, event_id: str, handler: str, error: str, traceback: str, at: datetime
) -> int:
    """Record a failed attempt (outside the failed transaction); return the attempts so far."""
    conn.execute(
        _insert(conn)
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
