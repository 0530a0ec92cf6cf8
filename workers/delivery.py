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
    """Send it unless it was taken already; answer the result and, for "retry", the countdown.

    At most once: the delivery is marked `sending` and committed before the send, so neither a
    duplicate task nor a worker killed mid-send can send it twice. A send whose outcome is
    unknown (the worker died during it) stays `sending` for a person to check.
    """
    with engine.begin() as conn:
        row = notification_store.claim(conn, notification_id)
    if row is None:
        return "skipped", 0.0
    attempts = row.attempts + 1
    final = attempts >= policy.max_attempts
    sender = senders.get(row.channel)
    try:
        if sender is None:
            final = True
            raise LookupError(f"channel {row.channel} is not configured")
        sender.send(row.recipient, row.subject, row.body, f"{row.source_id}:{row.channel}")
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:1000]
        with engine.begin() as conn:
            notification_store.mark_failed(conn, notification_id, error, final=final)
        log.warning(
            "notification_failed",
            notification=notification_id,
            channel=row.channel,
            attempts=attempts,
            final=final,
            error=error,
        )
        return ("failed", 0.0) if final else ("retry", policy.countdown(attempts))
    with engine.begin() as conn:
        notification_store.mark_sent(conn, notification_id, datetime.now(UTC))
    return "sent", 0.0
