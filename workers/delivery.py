"""Sending one planned notification, at most once, with retries left to the caller."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal

import structlog
from sqlalchemy import Engine

from models import notification_store
from workers.processing import RetryPolicy
from workers.senders import Sender

log = structlog.get_logger(__name__)

Result = Literal["sent", "skipped", "retry", "failed"]


def deliver(
    engine: Engine, senders: Mapping[str, Sender], notification_id: int, policy: RetryPolicy
) -> tuple[Result, float]:
    """Send it unless it was sent; answer the result and, for "retry", the countdown.

    The row stays locked while sending, so a duplicate task waits and then finds it sent. A
    crash between the send and the commit can still send twice; the stable Message-ID or
    Idempotency-Key lets the receiving side drop that rare copy.
    """
    with engine.begin() as conn:
        row = notification_store.claim(conn, notification_id)
        if row is None:
            return "skipped", 0.0
        final = row.attempts + 1 >= policy.max_attempts
        sender = senders.get(row.channel)
        if sender is None:
            notification_store.mark_failed(
                conn, notification_id, f"channel {row.channel} is not configured", final=True
            )
            return "failed", 0.0
        key = f"{row.event_id}:{row.channel}:{row.recipient}"
        try:
            sender.send(row.recipient, row.subject, row.body, key)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:1000]
            attempts = notification_store.mark_failed(conn, notification_id, error, final=final)
            log.warning(
                "notification_failed",
                notification=notification_id,
                channel=row.channel,
                attempts=attempts,
                final=final,
                error=error,
            )
            return ("failed", 0.0) if final else ("retry", policy.countdown(attempts))
        notification_store.mark_sent(conn, notification_id, datetime.now(UTC))
        return "sent", 0.0
