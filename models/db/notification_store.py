"""All SQL about notifications: one row per (event, channel, recipient), sent at most once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    any_,
    case,
    func,
    or_,
    select,
    update,
)

from models.db.batch_sql import insert_many, lease_pending
from models.db.tables import notifications
from models.notifications import Message
from models.redaction import REDACTED


def not_redacted() -> ColumnElement[bool]:
    """A delivery that still has its text: purge and forget-customer replace it with
    `REDACTED`, and a redacted delivery is never sent (again)."""
    return notifications.c.body != REDACTED


def plan(
    conn: Connection,
    planned: Sequence[tuple[str, Message]],
    at: datetime,
    *,
    lease_until: datetime | None = None,
) -> list[int]:
    """Create the deliveries of messages, as (event id, message), in one statement; the ids of
    those created. A message about a Voucherify object that already has a delivery on that
    channel to that recipient (whichever delivery of it came first) creates none. Leased until
    `lease_until`: the send task is published after the commit, and if that is lost, the sweep
    queues them again once the lease runs out."""
    rows = [
        {
            "event_id": event_id,
            "source_id": message.source_id,
            "channel": message.channel,
            "recipient": message.recipient,
            "status": "pending",
            "subject": message.subject,
            "body": message.body,
            "created_at": at,
            "due_at": at,
            "lease_until": lease_until,
        }
        for event_id, message in planned
    ]
    inserted = insert_many(
        conn,
        notifications,
        rows,
        conflict=("source_id", "channel", "recipient"),
        returning="seq",
    )
    return sorted(int(seq) for seq in inserted)


def claim(conn: Connection, notification_id: int) -> Any | None:
    """Take a delivery that is waiting to go out, marking it `sending` and counting the
    attempt; its row as updated, or None when it is not waiting (sent, being sent, failed for
    good, or unknown).

    The caller commits this before sending: a crash during the send leaves it `sending`, never
    sent twice. A concurrent claim waits for the row lock and then finds it taken.
    """
    return conn.execute(
        update(notifications)
        .where(notifications.c.seq == notification_id)
        .where(notifications.c.status == "pending")
        .values(status="sending", attempts=notifications.c.attempts + 1, lease_until=None)
        .returning(*notifications.c)
    ).first()


def claim_due(
    conn: Connection,
    channel: str,
    limit: int,
    *,
    due_by: datetime | None = None,
    ids: Sequence[int] | None = None,
) -> list[Any]:
    """Take up to `limit` deliveries of `channel` waiting to go out, due by `due_by` (any when
    None) and among `ids` when given, those due first first: each marked `sending` with its
    attempt counted, as `claim` does; their rows as updated, in due order.

    Rows another transaction holds are skipped on PostgreSQL (SQLite has one writer). The ids
    are chosen once: on PostgreSQL by `= ANY(ARRAY(subquery))`, an InitPlan run once before
    the update, in the same round trip; elsewhere in a statement of their own. Inside the
    UPDATE, a `seq IN (… LIMIT … FOR UPDATE SKIP LOCKED)` subquery may run again for every
    row the update looks at (a nested loop, the plan PostgreSQL picks for a table it has no
    statistics of yet), each run skipping the rows the update has just taken and choosing the
    next ones, so that one claim took every delivery waiting."""
    if limit <= 0:
        return []
    chosen = due_statement(channel, limit, due_by=due_by, ids=ids)
    which: ColumnElement[bool]
    if conn.dialect.name == "postgresql":
        which = notifications.c.seq == any_(func.array(chosen.scalar_subquery()))
    else:
        seqs = list(conn.scalars(chosen))
        if not seqs:
            return []
        which = notifications.c.seq.in_(seqs)
    rows = conn.execute(
        update(notifications)
        .where(which)
        .where(notifications.c.status == "pending")
        .values(status="sending", attempts=notifications.c.attempts + 1, lease_until=None)
        .returning(*notifications.c)
    ).all()
    return sorted(rows, key=lambda row: (row.due_at, row.seq))


def due_statement(
    channel: str,
    limit: int,
    *,
    due_by: datetime | None = None,
    ids: Sequence[int] | None = None,
) -> Select[Any]:
    """The seqs `claim_due` takes, locked: read in the order of
    `ix_notifications_status_channel_due_at_seq`, the first `limit` and no more."""
    chosen = (
        select(notifications.c.seq)
        .where(notifications.c.status == "pending")
        .where(notifications.c.channel == channel)
        .order_by(notifications.c.due_at, notifications.c.seq)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if due_by is not None:
        chosen = chosen.where(notifications.c.due_at <= due_by)
    if ids is not None:
        chosen = chosen.where(notifications.c.seq.in_(ids))
    return chosen


def put_back(conn: Connection, ids: Sequence[int]) -> None:
    """Deliveries claimed and not sent after all (their worker failed before it began them):
    `pending` again as they were, their attempt not counted."""
    if ids:
        conn.execute(
            update(notifications)
            .where(notifications.c.seq.in_(ids))
            .where(notifications.c.status == "sending")
            .values(status="pending", attempts=notifications.c.attempts - 1)
        )


def next_due(conn: Connection, channel: str, *, after: datetime | None = None) -> datetime | None:
    """When the first delivery of `channel` still waiting is due (after `after` when given);
    None when none waits."""
    query = (
        select(func.min(notifications.c.due_at))
        .where(notifications.c.status == "pending")
        .where(notifications.c.channel == channel)
    )
    if after is not None:
        query = query.where(notifications.c.due_at > after)
    due: datetime | None = conn.scalar(query)
    return due


def fail_waiting(conn: Connection, ids: Sequence[int], channel: str, error: str) -> list[int]:
    """Deliveries of `ids` on `channel` still waiting, failed for good with `error` (their
    channel is not configured here), each attempt counted; their ids."""
    return sorted(
        conn.scalars(
            update(notifications)
            .where(notifications.c.seq.in_(ids))
            .where(notifications.c.channel == channel)
            .where(notifications.c.status == "pending")
            .values(status="failed", error=error, attempts=notifications.c.attempts + 1)
            .returning(notifications.c.seq)
        )
    )


def mark_sent(conn: Connection, notification_id: int | Sequence[int], at: datetime) -> None:
    """Sent at `at`: one delivery or several, in one statement."""
    ids = [notification_id] if isinstance(notification_id, int) else list(notification_id)
    if not ids:
        return
    conn.execute(
        update(notifications)
        .where(notifications.c.seq.in_(ids))
        .values(status="sent", sent_at=at, error=None)
    )


def mark_failed(
    conn: Connection, notification_id: int, error: str, *, retry_at: datetime | None
) -> None:
    """The send failed: back to `pending`, due again at `retry_at`, or (None) `failed` for
    good. A delivery redacted while it was being sent (forget-customer) fails for good: it has
    nothing left to send."""
    values: dict[str, Any] = {"status": "failed", "error": error}
    if retry_at is not None:
        values.update(status=case((not_redacted(), "pending"), else_="failed"), due_at=retry_at)
    conn.execute(update(notifications).where(notifications.c.seq == notification_id).values(values))


def retry_failed(conn: Connection, event_ids: list[str], at: datetime) -> list[int]:
    """Put failed deliveries of these events back to `pending` (a replay asked to notify);
    redacted ones (purge, forget-customer) have nothing left to send and stay as they are."""
    ids = list(
        conn.scalars(
            select(notifications.c.seq)
            .where(notifications.c.event_id.in_(event_ids))
            .where(notifications.c.status.in_(("failed", "pending")))
            .where(not_redacted())
        )
    )
    if ids:
        conn.execute(
            update(notifications)
            .where(notifications.c.seq.in_(ids))
            .values(status="pending", due_at=at)
        )
    return ids


def retry_deliveries(conn: Connection, ids: Sequence[int], at: datetime) -> list[int]:
    """Put these failed deliveries back to `pending`, due at `at` (a person re-sends them);
    those not failed, or redacted, stay as they are. The ids put back."""
    if not ids:
        return []
    return sorted(
        conn.scalars(
            update(notifications)
            .where(notifications.c.seq.in_(list(ids)))
            .where(notifications.c.status == "failed")
            .where(not_redacted())
            .values(status="pending", due_at=at)
            .returning(notifications.c.seq)
        )
    )


def lease(conn: Connection, ids: Sequence[int], until: datetime) -> int:
    """A live worker holds the send tasks of these deliveries until `until`: the pending ones
    are leased, or their lease renewed (rows locked elsewhere skipped); answers how many."""
    return lease_pending(conn, notifications, notifications.c.seq, ids, {"lease_until": until})


def leased(conn: Connection, ids: Sequence[int], now: datetime) -> set[int]:
    """Those of these deliveries a live worker holds: pending, with a lease not run out."""
    if not ids:
        return set()
    stmt = select(notifications.c.seq).where(
        notifications.c.seq.in_(list(ids)),
        notifications.c.status == "pending",
        notifications.c.lease_until >= now,
    )
    return {int(seq) for seq in conn.scalars(stmt)}


def unheld(conn: Connection, event_ids: Sequence[str], now: datetime) -> list[int]:
    """The deliveries of these events still waiting that no live worker holds: the send task
    of a batch cut between its commit and its publish (a rerun of the batch queues them)."""
    if not event_ids:
        return []
    stmt = (
        select(notifications.c.seq)
        .where(notifications.c.event_id.in_(list(event_ids)))
        .where(notifications.c.status == "pending")
        .where(or_(notifications.c.lease_until.is_(None), notifications.c.lease_until < now))
        .order_by(notifications.c.seq)
    )
    return [int(seq) for seq in conn.scalars(stmt)]


def stale(conn: Connection, now: datetime, older_than: datetime, limit: int = 500) -> list[int]:
    """Deliveries still waiting whose send message is gone: held by a worker whose lease ran
    out (it died), or held by none although due before `older_than` (the message was lost: a
    broker that restarted or was down when a retry was published). Their leases are cleared:
    the caller queues them again, and whoever takes that message leases them. Queuing one
    again never sends it twice: `claim` takes it once."""
    ids = list(conn.scalars(stale_statement(now, older_than, limit)))
    if ids:
        conn.execute(
            update(notifications).where(notifications.c.seq.in_(ids)).values(lease_until=None)
        )
    return ids


def stale_statement(now: datetime, older_than: datetime, limit: int = 500) -> Select[Any]:
    """The query of `stale`."""
    return (
        select(notifications.c.seq)
        .where(notifications.c.status == "pending")
        .where(
            or_(
                notifications.c.lease_until < now,
                and_(
                    notifications.c.lease_until.is_(None),
                    notifications.c.due_at < older_than,
                ),
            )
        )
        .order_by(notifications.c.seq)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


def listing(conn: Connection, *, status: str | None, event_id: str | None, limit: int) -> list[Any]:
    """Deliveries across events, newest first, for the command line."""
    return list(conn.execute(listing_statement(status=status, event_id=event_id, limit=limit)))


def listing_statement(*, status: str | None, event_id: str | None, limit: int) -> Select[Any]:
    """The query of `listing`."""
    query = select(notifications).order_by(notifications.c.seq.desc()).limit(limit)
    if status is not None:
        query = query.where(notifications.c.status == status)
    if event_id is not None:
        query = query.where(notifications.c.event_id == event_id)
    return query


def statuses(conn: Connection, ids: Sequence[int]) -> dict[int, str]:
    rows = conn.execute(
        select(notifications.c.seq, notifications.c.status).where(notifications.c.seq.in_(ids))
    )
    return {int(seq): status for seq, status in rows}


def release(conn: Connection, ids: Sequence[int], reason: str) -> list[Any]:
    """Deliveries left `sending` by a worker that died mid-send, which a person found were not
    received: `failed` with `reason`, so that a replay with --notify sends them again. Only
    `sending` ones change; their rows as updated."""
    return list(
        conn.execute(
            update(notifications)
            .where(notifications.c.seq.in_(ids))
            .where(notifications.c.status == "sending")
            .values(status="failed", error=reason)
            .returning(*notifications.c)
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
