"""Sending planned notifications in batches, each at most once, paced by each channel's rate
limit; retries are scheduled by the caller.

A batch is claimed in one statement (each delivery marked `sending` and committed before it is
sent, so neither a duplicate task nor a worker killed mid-send sends one twice) and its
outcomes are committed with the claim of the next batch: a few transactions for a hundred
messages, over one SMTP connection and the webhook client's kept-alive one. A delivery whose
send outcome is unknown (the worker died during the batch) stays `sending` for a person to
check.

Each channel's rate limit is a budget in the database (`models.pacing`,
`models.db.notification_budget`) shared by every process: a message beyond it is never
refused, it waits for a later slot. A worker's task waits for slots a moment at most
(`HORIZON`) and sends for a few seconds at most (`TASK_SECONDS`), then asks for a task to be
scheduled when the next slot (or the next retry) is due, so that a slow channel never holds up
the processing of events.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

import structlog
from sqlalchemy import Connection, Engine

from models import pacing
from models.db import notification_budget, notification_store
from models.notifications import Channel
from workers.notification_channels import Sender, Undeliverable
from workers.processing import RetryPolicy

log = structlog.get_logger(__name__)

Result = Literal["sent", "skipped", "retry", "failed"]

CHUNK = 16
"""Deliveries claimed, sent and recorded together: one commit for them all, and as many left
`sending`, their outcome unknown, when the worker is killed in the middle."""
HORIZON = 0.25
"""Seconds a worker's task may wait for its channel's next slot."""
TASK_SECONDS = 5.0
"""Seconds a worker's task sends before it leaves the rest to a task scheduled at once."""
CHANNELS: tuple[str, ...] = get_args(Channel)


@dataclass(frozen=True)
class Pacing:
    """Messages per second each channel accepts, for the whole deployment."""

    rates: Mapping[str, float]

    def rate(self, channel: str) -> float:
        return self.rates.get(channel, math.inf)


UNLIMITED = Pacing({})


@dataclass(frozen=True)
class Delivered:
    notification_id: int
    result: Result
    countdown: float = 0.0
    """Seconds before the retry, for "retry"."""
    error: str | None = None


@dataclass
class Outcome:
    """What a worker's task did, and in how many seconds a task should run again (each once)."""

    done: list[Delivered] = field(default_factory=list)
    wakes: list[float] = field(default_factory=list)


def deliver_due(
    engine: Engine,
    senders: Mapping[str, Sender],
    policy: RetryPolicy,
    rates: Pacing,
    ids: Sequence[int] = (),
) -> Outcome:
    """A worker's send task: every configured channel's due deliveries, oldest due first, as
    its budget allows, for `TASK_SECONDS` at most. `ids` (the deliveries the task was
    published for) that wait on a channel not configured here fail for good."""
    outcome = Outcome()
    if ids:
        with engine.begin() as conn:
            _fail_unconfigured(conn, senders, ids)
    deadline = time.monotonic() + TASK_SECONDS
    for channel, sender in senders.items():
        try:
            wake = _drain(engine, channel, sender, policy, rates, outcome.done, deadline)
        finally:
            sender.close()
        if wake is not None:
            outcome.wakes.append(wake)
    return outcome


def deliver_all(
    engine: Engine,
    senders: Mapping[str, Sender],
    ids: Sequence[int],
    policy: RetryPolicy,
    rates: Pacing = UNLIMITED,
) -> list[Delivered]:
    """Send each of `ids` unless it was taken already (a replay): waiting, however long, for
    its channel's slots; answer what became of each, in the order of `ids`."""
    done: list[Delivered] = []
    with engine.begin() as conn:
        failed = _fail_unconfigured(conn, senders, ids)
    done.extend(Delivered(seq, "failed", error=error) for seq, error in failed)
    for channel, sender in senders.items():
        try:
            _drain(engine, channel, sender, policy, rates, done, None, ids=ids)
        finally:
            sender.close()
    taken = {d.notification_id: d for d in done}
    return [taken.get(seq) or Delivered(seq, "skipped") for seq in ids]


def _fail_unconfigured(
    conn: Connection, senders: Mapping[str, Sender], ids: Sequence[int]
) -> list[tuple[int, str]]:
    failed = []
    for channel in CHANNELS:
        if channel not in senders and ids:
            error = f"LookupError: channel {channel} is not configured"
            for seq in notification_store.fail_waiting(conn, ids, channel, error):
                log.warning(
                    "notification_failed", notification=seq, channel=channel, final=True,
                    error=error,
                )  # fmt: skip
                failed.append((seq, error))
    return failed


def _drain(
    engine: Engine,
    channel: str,
    sender: Sender,
    policy: RetryPolicy,
    rates: Pacing,
    done: list[Delivered],
    deadline: float | None,
    *,
    ids: Sequence[int] | None = None,
) -> float | None:
    """Send the channel's deliveries (due ones, or `ids`) batch after batch, appending to
    `done`; the seconds after which a task should take what is left, or None.

    With a `deadline` (a worker's task), only a slot within `HORIZON` is awaited; without one
    (a replay), every slot is."""
    rate = rates.rate(channel)
    horizon = HORIZON if deadline is not None else math.inf
    recorded = len(done)
    wake_at: datetime | None = None
    with _in_parallel(getattr(sender, "parallel", 1)) as pool:
        while True:
            with engine.begin() as conn:
                _record(conn, done[recorded:])
                recorded = len(done)
                now = _now()
                limited = math.isfinite(rate)
                budget = notification_budget.lock(conn, channel) if limited else None
                grant = pacing.grant(budget, now, rate, CHUNK, horizon)
                rows: list[Any] = []
                if grant.count:
                    rows = notification_store.claim_due(
                        conn, channel, grant.count, due_by=None if ids is not None else now, ids=ids
                    )
                if rows and limited:
                    notification_budget.spend(conn, channel, grant.next_at(len(rows)))
                more = bool(rows) and len(rows) == grant.count
                last = not more or (deadline is not None and time.monotonic() >= deadline)
                if last and not rows and deadline is not None:
                    wake_at = _schedule(conn, channel, grant, 0, now, more)
            slots = [grant.slot(index) if limited else None for index in range(len(rows))]
            done.extend(
                pool.map(
                    lambda job: _send(sender, job[0], job[1], policy), zip(rows, slots, strict=True)
                )
            )
            if last:
                break
    if rows:
        with engine.begin() as conn:
            _record(conn, done[recorded:])
            if deadline is not None:
                wake_at = _schedule(conn, channel, grant, len(rows), now, more)
    if wake_at is None:
        return None
    return max(0.0, (wake_at - _now()).total_seconds())


def _schedule(
    conn: Connection, channel: str, grant: pacing.Grant, taken: int, now: datetime, more: bool
) -> datetime | None:
    """When a task should come back for the channel, if none is scheduled already: see
    `_next_wake`; None when nothing waits or another task will come."""
    wake_at = _next_wake(conn, channel, grant, taken, now, more)
    if wake_at is None or not notification_budget.schedule_wake(conn, channel, wake_at, now):
        return None
    return wake_at


def _next_wake(
    conn: Connection,
    channel: str,
    grant: pacing.Grant,
    taken: int,
    now: datetime,
    more: bool,
) -> datetime | None:
    """When a task should come back for the channel: at its next slot when deliveries are
    left waiting for one (or for this task's time), at the next retry when one is due later;
    None when nothing waits. Deliveries planned meanwhile come with a task of their own."""
    next_slot = grant.next_at(taken)
    if more:  # out of time, with more due
        return next_slot
    if not grant.count:  # the budget is taken further than the horizon
        due = notification_store.next_due(conn, channel)
    else:  # everything due was taken: a retry due later (also one just recorded)?
        due = notification_store.next_due(conn, channel, after=now)
    if due is None:
        return None
    return max(due, next_slot)


def _wait_until(slot: datetime) -> None:
    ahead = (slot - _now()).total_seconds()
    if ahead > 0:
        time.sleep(ahead)


@contextmanager
def _in_parallel(count: int) -> Iterator[Any]:
    """Where a batch's sends run: `count` at once for a channel whose sender allows it (one
    request per connection, several connections), else one after the other."""
    if count <= 1:
        yield _Serial()
        return
    with ThreadPoolExecutor(count, thread_name_prefix="notify") as pool:
        yield pool


class _Serial:
    def map(self, fn: Any, jobs: Any) -> Iterator[Any]:
        return map(fn, jobs)


def _send(sender: Sender, row: Any, slot: datetime | None, policy: RetryPolicy) -> Delivered:
    """Send one delivery, at its slot or later, never before."""
    if slot is not None:
        _wait_until(slot)
    final = row.attempts >= policy.max_attempts
    try:
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


def _record(conn: Connection, outcomes: Sequence[Delivered]) -> None:
    now = _now()
    notification_store.mark_sent(
        conn, [d.notification_id for d in outcomes if d.result == "sent"], now
    )
    for done in outcomes:
        if done.result in ("retry", "failed"):
            retry_at = now + timedelta(seconds=done.countdown) if done.result == "retry" else None
            notification_store.mark_failed(
                conn, done.notification_id, done.error or "", retry_at=retry_at
            )


def _now() -> datetime:
    return datetime.now(UTC)
