"""All SQL about notifications: one row per (event, channel, recipient), sent at most once."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select, update

from models.tables import notifications
from models.upsert import insert


def plan(
    conn: Connection,
    event_id: str,
    source_id: str,
    channel: str,
    recipient: str,
    subject: str,
    body: str,
    at: datetime,
) -> int | None:
    """Create the delivery; its id, or None when one exists for this Voucherify object,
    channel and recipient (whichever delivery of it came first)."""
    inserted = conn.scalar(
        insert(conn, notifications)
        .values(
            event_id=event_id,
            source_id=source_id,
            channel=channel,
            recipient=recipient,
            status="pending",
            subject=subject,
            body=body,
            created_at=at,
        )
        .on_conflict_do_nothing(index_elements=["source_id", "channel", "recipient"])
        .returning(notifications.c.seq)
    )
    return None if inserted is None else int(inserted)


def claim(conn: Connection, notification_id: int) -> Any | None:
    """Take a delivery that is waiting to go out, marking it `sending`; None when it is not
    waiting (sent, being sent, failed for good, or unknown).

    The caller commits this before sending: a crash during the send leaves it `sending`, never
    sent twice. A concurrent claim waits for the row lock and then finds it taken.
    """
    row = conn.execute(
        select(notifications)
        .where(notifications.c.seq == notification_id)
        .where(notifications.c.status == "pending")
        .with_for_update()
    ).first()
    if row is not None:
        conn.execute(
            update(notifications)
            .where(notifications.c.seq == notification_id)
            .values(status="sending", attempts=notifications.c.attempts + 1)
        )
    return row


def mark_sent(conn: Connection, notification_id: int, at: datetime) -> None:
    conn.execute(
        update(notifications)
        .where(notifications.c.seq == notification_id)
        .values(status="sent", sent_at=at, error=None)
    )


def mark_failed(conn: Connection, notification_id: int, error: str, *, final: bool) -> None:
    """The send failed: back to `pending` for a retry, or `failed` for good."""
    conn.execute(
        update(notifications)
        .where(notifications.c.seq == notification_id)
        .values(status="failed" if final else "pending", error=error)
    )


def retry_failed(conn: Connection, event_ids: list[str]) -> list[int]:
    """Put failed deliveries of these events back to `pending` (a replay asked to notify)."""
    ids = list(
        conn.scalars(
            select(notifications.c.seq)
            .where(notifications.c.event_id.in_(event_ids))
            .where(notifications.c.status.in_(("failed", "pending")))
        )
    )
    if ids:
        conn.execute(
            update(notifications).where(notifications.c.seq.in_(ids)).values(status="pending")
        )
    return ids


def stale(conn: Connection, older_than: datetime, limit: int = 500) -> list[int]:
    """Deliveries planned long ago and never tried: their send task was lost (a broker that
    restarted). One that failed and waits for its retry is left to that retry's backoff."""
    return list(
        conn.scalars(
            select(notifications.c.seq)
            .where(notifications.c.status == "pending")
            .where(notifications.c.attempts == 0)
            .where(notifications.c.created_at < older_than)
            .order_by(notifications.c.seq)
            .limit(limit)
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
