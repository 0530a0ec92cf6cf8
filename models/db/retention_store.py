"""All SQL of redaction (purge, forget-customer): which events and notifications hold personal
data, and writing their redacted copies. Pages are read by seq (keyset), so a run over a long
log holds one page in memory at a time.

Every function takes a connection: the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    LargeBinary,
    and_,
    bindparam,
    case,
    false,
    func,
    literal,
    or_,
    select,
    update,
)

from models.db.notification_store import not_redacted
from models.db.tables import events, loyalty_cards, notifications
from models.statuses import EventStatus, NotificationStatus

PURGED_STATUSES: tuple[EventStatus, ...] = ("processed", "ignored")
"""Events a purge redacts: done with. Pending, failed and quarantined ones are still being
worked on or wait for a person."""

FINISHED: tuple[NotificationStatus, ...] = ("sent", "failed")
"""Notifications a purge redacts: nothing will send them again."""


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    id: str
    status: str
    body: bytes
    headers: dict[str, Any]
    remote_addr: str | None
    error: str | None


@dataclass(frozen=True)
class EventUpdate:
    seq: int
    body: bytes
    headers: dict[str, Any]
    error: str | None


@dataclass(frozen=True)
class StoredNotification:
    seq: int
    event_id: str
    channel: str
    recipient: str
    status: str
    subject: str
    error: str | None


@dataclass(frozen=True)
class NotificationUpdate:
    seq: int
    recipient: str
    subject: str
    body: str
    error: str | None


# Purge -------------------------------------------------------------------------------------


def _expired(before: datetime) -> ColumnElement[bool]:
    return and_(
        events.c.status.in_(PURGED_STATUSES),
        events.c.received_at < before,
        events.c.redacted_at.is_(None),
    )


def count_expired(conn: Connection, before: datetime) -> int:
    """Events a purge up to `before` would redact."""
    return int(conn.scalar(select(func.count()).where(_expired(before))) or 0)


def expired_page(conn: Connection, before: datetime, after: int, limit: int) -> list[StoredEvent]:
    """The next events (seq > `after`) a purge redacts, locked; rows another purge holds are
    skipped (it redacts them)."""
    stmt = (
        _event_columns()
        .where(_expired(before), events.c.seq > after)
        .order_by(events.c.seq)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [_event(row) for row in conn.execute(stmt)]


def left_alone(conn: Connection, before: datetime) -> dict[str, int]:
    """Events received before `before`, not redacted, that a purge leaves: status -> count."""
    stmt = (
        select(events.c.status, func.count())
        .where(events.c.received_at < before, events.c.redacted_at.is_(None))
        .where(events.c.status.not_in(PURGED_STATUSES))
        .group_by(events.c.status)
    )
    return {status: int(n) for status, n in conn.execute(stmt)}


def _of_redacted_event(before: datetime) -> ColumnElement[bool]:
    """Of an event redacted, or that a purge up to `before` redacts (joined on events)."""
    return or_(events.c.redacted_at.is_not(None), _expired(before))


def _finished_of_redacted(before: datetime) -> ColumnElement[bool]:
    """Finished, not yet redacted notifications of events redacted or about to be."""
    return and_(notifications.c.status.in_(FINISHED), not_redacted(), _of_redacted_event(before))


def count_finished(conn: Connection, before: datetime) -> int:
    stmt = (
        select(func.count())
        .select_from(notifications.join(events, events.c.id == notifications.c.event_id))
        .where(_finished_of_redacted(before))
    )
    return int(conn.scalar(stmt) or 0)


def finished_page(
    conn: Connection, before: datetime, after: int, limit: int
) -> list[StoredNotification]:
    stmt = (
        _notification_columns()
        .select_from(notifications.join(events, events.c.id == notifications.c.event_id))
        .where(_finished_of_redacted(before), notifications.c.seq > after)
        .order_by(notifications.c.seq)
        .limit(limit)
        .with_for_update(skip_locked=True, of=notifications)
    )
    return [_notification(row) for row in conn.execute(stmt)]


def unfinished(conn: Connection, before: datetime) -> int:
    """Notifications still to be sent (pending, sending) of events a purge redacts."""
    stmt = (
        select(func.count())
        .select_from(notifications.join(events, events.c.id == notifications.c.event_id))
        .where(notifications.c.status.not_in(FINISHED), _of_redacted_event(before))
    )
    return int(conn.scalar(stmt) or 0)


# Forget a customer -------------------------------------------------------------------------


def mentioning_page(
    conn: Connection, terms: Sequence[str], after: int, limit: int
) -> list[StoredEvent]:
    """The next events (seq > `after`) whose raw body contains one of `terms` byte for byte: a
    superset of those that mention them (a longer id containing the term, text that is not a
    JSON string), so the caller checks each."""
    if not terms:
        return []
    found = or_(*(_contains(conn.dialect.name, term) for term in terms))
    stmt = _event_columns().where(found, events.c.seq > after).order_by(events.c.seq).limit(limit)
    return [_event(row) for row in conn.execute(stmt)]


def notifications_of(
    conn: Connection, event_ids: Iterable[str], recipients: Iterable[str]
) -> list[StoredNotification]:
    """Not yet redacted deliveries of these events, or to these addresses."""
    ids, addresses = list(event_ids), list(recipients)
    matched = or_(
        notifications.c.event_id.in_(ids) if ids else false(),
        notifications.c.recipient.in_(addresses) if addresses else false(),
    )
    stmt = _notification_columns().where(matched, not_redacted()).order_by(notifications.c.seq)
    return [_notification(row) for row in conn.execute(stmt)]


def cards_held_by(conn: Connection, customer_id: str) -> list[str]:
    return list(
        conn.scalars(
            select(loyalty_cards.c.card_id)
            .where(loyalty_cards.c.customer_id == customer_id)
            .order_by(loyalty_cards.c.card_id)
        )
    )


# Writing -----------------------------------------------------------------------------------


def write_events(
    conn: Connection,
    updates: Sequence[EventUpdate],
    at: datetime,
    *,
    only: tuple[EventStatus, ...] | None = None,
) -> int:
    """Store redacted copies and stamp `redacted_at`; with `only`, just events still in those
    statuses and not redacted meanwhile. The rows written."""
    if not updates:
        return 0
    stmt = update(events).where(events.c.seq == bindparam("b_seq"))
    if only is not None:
        # One statement executed per row: no IN list (it cannot be expanded per row).
        still = or_(*(events.c.status == status for status in only))
        stmt = stmt.where(still, events.c.redacted_at.is_(None))
    result = conn.execute(
        stmt.values(
            body=bindparam("b_body"),
            headers=bindparam("b_headers", type_=events.c.headers.type),
            error=bindparam("b_error"),
            remote_addr=None,
            redacted_at=at,
        ),
        [
            {"b_seq": u.seq, "b_body": u.body, "b_headers": u.headers, "b_error": u.error}
            for u in updates
        ],
    )
    return max(result.rowcount, 0)


def write_notifications(
    conn: Connection,
    updates: Sequence[NotificationUpdate],
    *,
    cancel: str | None = None,
) -> int:
    """Store redacted deliveries: just those still sent or failed; or, given a `cancel`
    reason, a pending one too, cancelled (`failed` with that reason), never to be sent."""
    if not updates:
        return 0
    stmt = update(notifications).where(notifications.c.seq == bindparam("b_seq"))
    values: dict[str, Any] = {
        "recipient": bindparam("b_recipient"),
        "subject": bindparam("b_subject"),
        "body": bindparam("b_body"),
        "error": bindparam("b_error"),
    }
    if cancel is None:
        stmt = stmt.where(or_(*(notifications.c.status == finished for finished in FINISHED)))
    else:
        pending = notifications.c.status == "pending"
        values["error"] = case((pending, cancel), else_=values["error"])
        values["status"] = case((pending, "failed"), else_=notifications.c.status)
    result = conn.execute(
        stmt.values(values),
        [
            {
                "b_seq": u.seq,
                "b_recipient": u.recipient,
                "b_subject": u.subject,
                "b_body": u.body,
                "b_error": u.error,
            }
            for u in updates
        ],
    )
    return max(result.rowcount, 0)


# Rows --------------------------------------------------------------------------------------


def _event_columns() -> Any:
    return select(
        events.c.seq,
        events.c.id,
        events.c.status,
        events.c.body,
        events.c.headers,
        events.c.remote_addr,
        events.c.error,
    )


def _event(row: Any) -> StoredEvent:
    return StoredEvent(
        seq=int(row.seq),
        id=row.id,
        status=row.status,
        body=bytes(row.body),
        headers=dict(row.headers or {}),
        remote_addr=row.remote_addr,
        error=row.error,
    )


def _notification_columns() -> Any:
    return select(
        notifications.c.seq,
        notifications.c.event_id,
        notifications.c.channel,
        notifications.c.recipient,
        notifications.c.status,
        notifications.c.subject,
        notifications.c.error,
    )


def _notification(row: Any) -> StoredNotification:
    return StoredNotification(
        seq=int(row.seq),
        event_id=row.event_id,
        channel=row.channel,
        recipient=row.recipient,
        status=row.status,
        subject=row.subject,
        error=row.error,
    )


def _contains(dialect: str, term: str) -> ColumnElement[bool]:
    """The raw body contains `term`'s UTF-8 bytes, exactly."""
    if dialect == "postgresql":
        # LIKE on bytea, whose default escape character is the backslash.
        escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = literal(f"%{escaped}%".encode(), LargeBinary)
        return events.c.body.op("LIKE", is_comparison=True)(pattern)
    return func.instr(events.c.body, literal(term.encode(), LargeBinary)) > 0
