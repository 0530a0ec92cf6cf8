"""All SQL about notifications: one row per (event, channel, recipient), sent at most once."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from models.tables import notifications


def _dialect(conn: Connection) -> Any:
    return postgresql if conn.dialect.name == "postgresql" else sqlite


def plan(
    conn: Connection,
    event_id: str,
    channel: str,
    recipient: str,
    subject: str,
    body: str,
    at: datetime,
) -> int | None:
    """Create the delivery; its id, or None when this (event, channel, recipient) exists."""
    inserted = conn.scalar(
        _dialect(conn)
        .insert(notifications)
        .values(
            event_id=event_id,
            channel=channel,
            recipient=recipient,
            status="pending",
            subject=subject,
            body=body,
            created_at=at,
        )
        .on_conflict_do_nothing(index_elements=["event_id", "channel", "recipient"])
        .returning(notifications.c.seq)
    )
    return None if inserted is None else int(inserted)


def claim(conn: Connection, notification_id: int) -> Any | None:
    """Lock a delivery that still has to go out; None when it was sent (or is unknown).

    The lock is held while sending, so a duplicate task waits and then finds it sent.
    """
    return conn.execute(
        select(notifications)
        .where(notifications.c.seq == notification_id)
        .where(notifications.c.status != "sent")
        .with_for_update()
    ).first()


def mark_sent(conn: Connection, notification_id: int, at: datetime) -> None:
    conn.execute(
        update(notifications)
        .where(notifications.c.seq == notification_id)
        .values(status="sent", sent_at=at, error=None, attempts=notifications.c.attempts + 1)
    )


def mark_failed(conn: Connection, notification_id: int, error: str, *, final: bool) -> int:
    """Record a failed attempt; return the attempts so far."""
    conn.execute(
        update(notifications)
        .where(notifications.c.seq == notification_id)
        .values(
            status="failed" if final else "pending",
            error=error,
            attempts=notifications.c.attempts + 1,
        )
    )
    return int(
        conn.scalar(select(notifications.c.attempts).where(notifications.c.seq == notification_id))
        or 0
    )


def stale(conn: Connection, older_than: datetime, limit: int = 500) -> list[int]:
    """Pending deliveries planned long ago: their send task never ran (lost message)."""
    return list(
        conn.scalars(
            select(notifications.c.seq)
            .where(notifications.c.status == "pending")
            .where(notifications.c.created_at < older_than)
            .order_by(notifications.c.seq)
            .limit(limit)
        )
    )


def undelivered(conn: Connection, event_ids: list[str]) -> list[int]:
    """Deliveries of these events that never went out (pending or failed)."""
    return list(
        conn.scalars(
            select(notifications.c.seq)
            .where(notifications.c.event_id.in_(event_ids))
            .where(notifications.c.status != "sent")
        )
    )


def for_event(conn: Connection, event_id: str) -> list[Any]:
    return list(
        conn.execute(
            select(notifications)
            .where(notifications.c.event_id == event_id)
            .order_by(notifications.c.seq)
        )
    )


def since(at: datetime, seconds: float) -> datetime:
    return at - timedelta(seconds=seconds)
