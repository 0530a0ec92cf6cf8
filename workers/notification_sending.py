"""Sending planned notifications, each at most once, with retries left to the caller."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import structlog
from sqlalchemy import Connection, Engine

from models.db import notification_store
from workers.notification_channels import Sender, Undeliverable
from workers.processing import RetryPolicy

log = structlog.get_logger(__name__)

Result = Literal["sent", "skipped", "retry", "failed"]


@dataclass(frozen=True)
class Delivered:
    notification_id: int
    result: Result
    countdown: float = 0.0
    """Seconds before the retry, for "retry"."""
    error: str | None = None


def deliver_all(
    engine: Engine, senders: Mapping[str, Sender], ids: Sequence[int], policy: RetryPolicy
) -> list[Delivered]:
    """Send each unless it was taken already, one after the other; answer what became of each.

    At most once: a delivery is marked `sending` and committed before the send, so neither a
    duplicate task nor a worker killed mid-send can send it twice. A send whose outcome is
    unknown (the worker died during it) stays `sending` for a person to check. The outcome of
    a send is committed with the claim of the next one: one transaction per notification.
    """
    done: list[Delivered] = []
    for notification_id in ids:
        with engine.begin() as conn:
            if done:
                _record(conn, done[-1])
            row = notification_store.claim(conn, notification_id)
        done.append(_send(senders, row, policy) if row else Delivered(notification_id, "skipped"))
    if done:
        with engine.begin() as conn:
            _record(conn, done[-1])
    return done


def _send(senders: Mapping[str, Sender], row: Any, policy: RetryPolicy) -> Delivered:
    final = row.attempts >= policy.max_attempts
    sender = senders.get(row.channel)
    try:
        if sender is None:
            final = True
            raise LookupError(f"channel {row.channel} is not configured")
        sender.send(row.recipient, row.subject, row.body, f"{row.source_id}:{row.channel}")
    except Exception as exc:
        # A sender's errors name neither the recipient nor the webhook's URL.
        error = f"{type(exc).__name__}: {exc}"[:1000]
        final = final or isinstance(exc, Undeliverable)
        log.warning(
            "notification_failed",
            notification=row.seq,
            channel=row.channel,
            attempts=row.attempts,
            final=final,
            error=error,
        )
        if final:
            return Delivered(row.seq, "failed", error=error)
        return Delivered(row.seq, "retry", policy.countdown(row.attempts), error)
    return Delivered(row.seq, "sent")


def _record(conn: Connection, done: Delivered) -> None:
    now = datetime.now(UTC)
    if done.result == "sent":
        notification_store.mark_sent(conn, done.notification_id, now)
    elif done.result in ("retry", "failed"):
        retry_at = now + timedelta(seconds=done.countdown) if done.result == "retry" else None
        notification_store.mark_failed(
            conn, done.notification_id, done.error or "", retry_at=retry_at
        )
