"""All SQL about the channels' rate limit budgets: one row per channel, shared by every process.

A sender locks its channel's row for the length of a short transaction (take the budget, claim
the deliveries it pays for, spend it), so two processes never hand out the same slots. The
lock is a no-op UPDATE: a row lock on PostgreSQL, the write lock on SQLite, the same call.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, Connection, exists, or_, select, update

from models.db.insert import insert
from models.db.tables import notification_budget as budget
from models.db.tables import notifications


def lock(conn: Connection, channel: str) -> datetime | None:
    """Lock the channel's budget until the transaction ends; the earliest time its next
    message may leave (None: at once)."""
    for _ in range(2):
        row = conn.execute(
            update(budget)
            .where(budget.c.channel == channel)
            .values(channel=budget.c.channel)
            .returning(budget.c.next_at)
        ).first()
        if row is not None:
            next_at: datetime | None = row.next_at
            return next_at
        conn.execute(insert(conn, budget).values(channel=channel).on_conflict_do_nothing())
    raise RuntimeError(f"the budget row of channel {channel} could not be created or locked")


def spend(conn: Connection, channel: str, next_at: datetime) -> None:
    """The channel's next message may leave at `next_at`, not before (the lock is held)."""
    conn.execute(update(budget).where(budget.c.channel == channel).values(next_at=next_at))


def schedule_wake(conn: Connection, channel: str, at: datetime, now: datetime) -> bool:
    """Note that a send task will run for the channel at `at`; False when one is scheduled
    already at or before `at` (and still to come), so the caller publishes none."""
    return _note_wake(conn, channel, at, budget.c.wake_at <= now, budget.c.wake_at > at)


def unwoken(conn: Connection, before: datetime) -> list[str]:
    """Channels with deliveries waiting since before `before`, held by no worker, and no send
    task scheduled for `before` or later: the task that was to come for them is gone (its
    worker died holding it, or the broker lost it), and the caller publishes another."""
    waiting = (
        select(notifications.c.channel)
        .distinct()
        .where(notifications.c.status == "pending")
        .where(notifications.c.lease_until.is_(None))
        .where(notifications.c.due_at < before)
        .where(
            ~exists().where(budget.c.channel == notifications.c.channel, budget.c.wake_at >= before)
        )
    )
    return sorted(conn.scalars(waiting))


def replace_wake(conn: Connection, channel: str, late: datetime, now: datetime) -> bool:
    """Note a send task for the channel at `now` unless one is noted for `late` or later;
    True when the caller is to publish it. The budget is locked (and created when missing)
    first, so of two workers' sweeps the second finds the task the first noted."""
    lock(conn, channel)
    return _note_wake(conn, channel, now, budget.c.wake_at < late)


def _note_wake(
    conn: Connection, channel: str, at: datetime, *replaceable: ColumnElement[bool]
) -> bool:
    """Note a send task for the channel at `at` when none is noted, or the one noted is
    `replaceable`; True when it was noted."""
    result = conn.execute(
        update(budget)
        .where(budget.c.channel == channel)
        .where(or_(budget.c.wake_at.is_(None), *replaceable))
        .values(wake_at=at)
    )
    return result.rowcount == 1
