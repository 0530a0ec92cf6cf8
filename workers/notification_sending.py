"""Sending planned notifications, each at most once, paced by each channel's rate limit;
retries are scheduled by the caller.

A process holds claimed only a window of deliveries per channel (its sender's `window`: 32
webhook posts, sent over 8 kept-alive connections; 1 email, over one SMTP connection), each
marked `sending` and committed before it is sent, so neither a duplicate task nor a worker
killed mid-send sends one twice. Each time half the window has ended, one transaction records
those outcomes and claims as many more: the database's round trips (and the commit's flush)
are shared by half a window of sends. A kill leaves `sending` at most a window, for a person to
check, and a task that fails records what it sent and puts back what it had not begun.

Each channel's rate limit is a budget in the database (`models.pacing`,
`models.db.notification_budget`) shared by every process: a message beyond it is never
refused, it waits for a later slot. A worker's task waits for slots a moment at most
(`HORIZON`) and sends for a few seconds at most (`TASK_SECONDS`), then asks for a task to be
scheduled when the next slot (or the next retry) is due, so that a slow channel never holds up
the processing of events.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

import structlog
from sqlalchemy import Connection, Engine

from models import pacing
from models.db import notification_budget, notification_store
from models.notifications import Channel
from workers import metrics
from workers.notification_channels import Sender, Undeliverable
from workers.processing import RetryPolicy

log = structlog.get_logger(__name__)

Result = Literal["sent", "skipped", "retry", "failed"]

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
                metrics.NOTIFICATIONS.labels(channel, "failed").inc()
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
    """Send the channel's deliveries (due ones, or `ids`), appending to `done`; the seconds
    after which a task should take what is left, or None.

    At most the sender's `window` is claimed at once: each time half of it has ended, one
    transaction records those outcomes and claims as many again. A kill thus leaves `sending`
    at most a window, and a failure of this process (the database, a bug) lets the sends
    under way end, records them and puts back those not begun.

    Only deliveries whose slots are within `HORIZON` are claimed. With a `deadline` (a worker's
    task), the rest is left to a later task; without one (a replay), every slot is awaited."""
    rate = rates.rate(channel)
    window = max(1, int(getattr(sender, "window", 1)))
    # A commit costs more than a send to a fast endpoint: record half a window's at once.
    refill = max(1, window // 2)
    claim: _Claim | None = None
    claiming = True
    left = None if ids is None else list(ids)  # a replay tries each of its ids once
    pause = 0.0
    wake_at: datetime | None = None
    # One connection for the whole drain: a transaction every few sends, no checkout each.
    with _Sends(engine, sender, policy, window) as sends, engine.connect() as conn:
        while claiming or sends.in_flight:
            if not claiming:
                sends.wait()
            elif sends.in_flight > window - refill:
                sends.wait(refill - (window - sends.in_flight))
            elif pause:
                sends.wait(timeout=pause)
            finished = sends.finished()
            want = window - sends.in_flight if claiming else 0
            taken: _Claim | None = None
            with conn.begin():
                _record(conn, finished)
                if want:
                    claim = taken = _claim(conn, channel, rate, want, left)
                    # A replay waits for the next slot; a worker's task leaves it to another.
                    pause = claim.ahead - HORIZON if deadline is None else 0.0
                    claiming = (claim.more or pause > 0) and not _out_of_time(deadline)
                    if left is not None:
                        claimed = {row.seq for row in claim.rows}
                        left = [seq for seq in left if seq not in claimed]
                        claiming = claiming and bool(left)
                # Nothing more to send, nor any outcome to come: when to come back.
                ended = not claiming and not sends.in_flight and not (taken and taken.rows)
                if deadline is not None and claim and ended:
                    wake_at = _schedule(
                        conn, channel, claim.grant, claim.taken, claim.now, claim.more
                    )
            sends.recorded(finished)
            done.extend(finished)
            if taken:  # only once the claim is committed: never sent twice
                sends.start(taken.rows, taken.slots)
    if wake_at is None:
        return None
    return max(0.0, (wake_at - _now()).total_seconds())


@dataclass(frozen=True)
class _Claim:
    rows: list[Any]
    slots: list[datetime | None]
    grant: pacing.Grant
    now: datetime
    more: bool
    """As many were taken as the budget allowed: more may be due."""

    @property
    def ahead(self) -> float:
        """Seconds from the claim to the channel's first free slot."""
        return (self.grant.start - self.now).total_seconds()

    @property
    def taken(self) -> int:
        return len(self.rows)


def _claim(
    conn: Connection,
    channel: str,
    rate: float,
    wanted: int,
    ids: Sequence[int] | None,
) -> _Claim:
    """Take up to `wanted` deliveries due (or of `ids`) that the channel's budget has slots
    for within `HORIZON` seconds, and spend the slots.

    The deliveries are taken first and the budget last, so that its row, which every process
    sending on the channel locks, is held for one statement and the commit only; those taken
    beyond the slots the budget gives go back as they were, in the same transaction."""
    now = _now()
    # No more than a free budget could give: at the default limits, one or three.
    limit = int(min(wanted, pacing.most(rate, HORIZON)))
    taken = notification_store.claim_due(
        conn, channel, limit, due_by=None if ids is not None else now, ids=ids
    )
    if not math.isfinite(rate):
        grant = pacing.grant(None, now, rate, wanted, HORIZON)
        return _Claim(taken, [None] * len(taken), grant, now, len(taken) == limit)
    budget = notification_budget.lock(conn, channel)
    grant = pacing.grant(budget, now, rate, limit, HORIZON)
    rows, beyond = taken[: grant.count], taken[grant.count :]
    notification_store.put_back(conn, [row.seq for row in beyond])
    if rows:
        notification_budget.spend(conn, channel, grant.next_at(len(rows)))
    slots: list[datetime | None] = [grant.slot(index) for index in range(len(rows))]
    # As many taken as could be, or as the budget allowed: more may be due.
    more = bool(rows) and (len(taken) == limit or bool(beyond))
    return _Claim(rows, slots, grant, now, more)


def _out_of_time(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


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


class _Sends:
    """The `window` sends claimed, on the sender's `parallel` threads (one request per
    connection; one after the other for a sender that says nothing), each at its slot or
    later, never before.

    Until its outcome is recorded, a delivery is `sending` in the database. Should this
    process fail while some are (`__exit__` with an exception), those not begun are not begun
    at all, the others end, and every outcome known is recorded in a transaction of its own;
    those not begun go back to `pending` as they were."""

    def __init__(self, engine: Engine, sender: Sender, policy: RetryPolicy, window: int) -> None:
        self._engine = engine
        self._sender = sender
        self._policy = policy
        threads = max(1, min(window, int(getattr(sender, "parallel", 1))))
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="notify")
        self._stop = threading.Event()
        self._running: dict[futures.Future[Delivered | None], Any] = {}
        self._unrecorded: dict[int, Delivered] = {}
        self._unknown: list[int] = []

    @property
    def in_flight(self) -> int:
        """Claimed and not finished: counting those finished but not yet taken by `finished`."""
        return len(self._running)

    def start(self, rows: Sequence[Any], slots: Sequence[datetime | None]) -> None:
        for row, slot in zip(rows, slots, strict=True):
            future = self._pool.submit(self._send, row, slot)
            self._running[future] = row

    def wait(self, count: int = 1, *, timeout: float | None = None) -> None:
        """Until `count` of the sends under way have finished (all, when fewer are under way),
        or `timeout` seconds."""
        until = None if timeout is None else time.monotonic() + timeout
        while True:
            left = [f for f in self._running if not f.done()]
            if len(self._running) - len(left) >= min(count, len(self._running)):
                if not self._running and until is not None:
                    time.sleep(max(0.0, until - time.monotonic()))
                return
            rest = None if until is None else until - time.monotonic()
            if rest is not None and rest <= 0:
                return
            futures.wait(left, rest, return_when=futures.FIRST_COMPLETED)

    def finished(self) -> list[Delivered]:
        """The outcomes of the sends finished since the last call, to be recorded."""
        outcomes = []
        for future in [f for f in self._running if f.done()]:
            row = self._running.pop(future)
            if future.exception() is not None:
                self._unknown.append(row.seq)
            outcome = future.result()
            if outcome is None:  # not begun: only once stopping
                continue
            self._unrecorded[row.seq] = outcome
            outcomes.append(outcome)
        return outcomes

    def recorded(self, outcomes: Sequence[Delivered]) -> None:
        for outcome in outcomes:
            self._unrecorded.pop(outcome.notification_id, None)

    def _send(self, row: Any, slot: datetime | None) -> Delivered | None:
        if slot is not None:
            ahead = (slot - _now()).total_seconds()
            if ahead > 0:
                self._stop.wait(ahead)
        if self._stop.is_set():
            return None
        return _send(self._sender, row, self._policy)

    def __enter__(self) -> _Sends:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            self._pool.shutdown()
            return
        self._stop.set()
        self._pool.shutdown(wait=True)
        self._rescue()

    def _rescue(self) -> None:
        """After a failure with deliveries claimed: record what is known."""
        unknown, not_begun = list(self._unknown), []
        for future, row in self._running.items():
            error = future.exception()
            if error is not None:
                unknown.append(row.seq)
                continue
            outcome = future.result()
            if outcome is None:
                not_begun.append(row.seq)
            else:
                self._unrecorded[row.seq] = outcome
        outcomes = list(self._unrecorded.values())
        try:
            with self._engine.begin() as conn:
                _record(conn, outcomes)
                notification_store.put_back(conn, not_begun)
        except Exception as exc:
            log.error(
                "notification_outcomes_not_recorded",
                arrived=sorted(d.notification_id for d in outcomes if d.result == "sent"),
                not_sent=sorted(
                    [d.notification_id for d in outcomes if d.result != "sent"] + not_begun
                ),
                unknown=sorted(unknown),
                error=f"{type(exc).__name__}: {exc}"[:500],
                action="they stay `sending`: leave those that arrived, and give those not sent "
                "(and those unknown that did not arrive) to `voucherhook notifications release`",
            )
            return
        if unknown:
            log.error(
                "notifications_left_sending",
                unknown=sorted(unknown),
                action="check whether each arrived; give those that did not to "
                "`voucherhook notifications release`",
            )


def _send(sender: Sender, row: Any, policy: RetryPolicy) -> Delivered:
    """Send one delivery; what became of it, counted, and logged with its event's id."""
    started = time.perf_counter()
    with structlog.contextvars.bound_contextvars(event_id=row.event_id):
        done = _send_once(sender, row, policy)
        metrics.notification_done(row.channel, done.result, time.perf_counter() - started)
        if done.result == "sent":
            log.info("notification_sent", notification=row.seq, channel=row.channel)
    return done


def _send_once(sender: Sender, row: Any, policy: RetryPolicy) -> Delivered:
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
