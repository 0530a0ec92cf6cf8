"""Running the handlers of stored events: batched for speed, isolated on failure.

For a batch of events every handler runs over all of them in one transaction, which also
settles the events' statuses: their effects and their run rows commit together, once (a
handler writes through `SqlBooks`, which stages the batch's ledger writes into a few
statements, and its notifications are planned in one). If that transaction fails, each handler
runs over the batch in a transaction of its own, and if that fails too, event by event, so one
bad event never holds back the others, nor one failing handler the other handlers. What must
happen after the commit (send notifications, wake held rollbacks, retry later) is returned,
not done: the Celery layer publishes it.
"""

from __future__ import annotations

import os
import random
import socket
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Connection, Engine

from models.db import eventlog, ledger_store, notification_store, run_store
from models.routing import ORDER, handlers_for
from models.statuses import RunStatus
from models.voucherify import Payload, PayloadError, load_json, parse_payload
from workers import metrics
from workers.batch_report import committed
from workers.books import SqlBooks
from workers.handlers import BY_NAME
from workers.handlers.base import Config, Handle, Job, LedgerConflict, PermanentError

log = structlog.get_logger(__name__)

HOLDER = f"{socket.gethostname()}:{os.getpid()}"
"""Who leases what a batch will publish, in `events.leased_by` (for the operator's eyes)."""

# Handlers whose effects a rebuild recomputes: they must not write while one runs.
GUARDED = frozenset(handler.name for handler in ORDER if handler.guarded)


@dataclass(frozen=True)
class Retry:
    event_id: str
    countdown: float


@dataclass
class FollowUp:
    """What to publish once the batch is committed."""

    notifications: list[int] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    retries: list[Retry] = field(default_factory=list)
    runs: list[tuple[str, list[str], float]] = field(default_factory=list)
    """(handler, each event's outcome, seconds the batch took): counted once committed."""

    def add(self, other: FollowUp) -> None:
        self.notifications.extend(other.notifications)
        self.released.extend(other.released)
        self.retries.extend(other.retries)
        self.runs.extend(other.runs)


@dataclass(frozen=True)
class _Event:
    id: str
    type: str
    body: dict[str, Any]
    payload: Payload


@dataclass(frozen=True)
class _Failure:
    event_id: str
    handler: str
    error: BaseException
    trace: str


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff: float = 2.0
    backoff_max: float = 300.0
    follow_up_lease: float = 15.0
    """What a batch will publish after its commit (a retry, a released rollback, its
    notifications) is leased in the batch's transaction until then (plus a retry's countdown):
    if the publish is lost (the worker died between the two, or the broker refused it), the
    sweep takes those rows once the lease runs out, instead of after
    VOUCHERHOOK_REDISPATCH_AFTER. VOUCHERHOOK_LEASE_EXPIRY."""

    def countdown(self, attempts: int) -> float:
        # Exponential with full jitter, so retries of many events do not arrive together.
        ceiling = min(self.backoff_max, self.backoff * 2 ** max(attempts - 1, 0))
        return random.uniform(ceiling / 2, ceiling)


class Processor:
    def __init__(
        self,
        engine: Engine,
        config: Config,
        policy: RetryPolicy,
        handlers: Mapping[str, Handle] = BY_NAME,
    ) -> None:
        self._engine = engine
        self._config = config
        self._policy = policy
        self._handlers = handlers

    def process(self, ids: list[str]) -> FollowUp:
        follow = FollowUp()
        with self._engine.connect() as conn:
            loaded = eventlog.load(conn, ids)
            rows = [row for row in loaded if row.status == "pending"]
            done = [row.id for row in loaded if row.status != "pending"]
            if done:
                # A message run again (its worker died between the commit and the publish, or
                # it was dispatched twice): queue what that publish would have queued.
                follow.notifications = notification_store.unheld(conn, done, _now())
        events: list[_Event] = []
        failures: list[_Failure] = []
        received = {row.id: row.received_at for row in rows}
        for row in rows:
            if not handlers_for(row.type):
                with self._engine.begin() as conn:
                    eventlog.set_status(conn, row.id, "ignored", _now())
                log.info("event_ignored", event_id=row.id, type=row.type)
                continue
            try:
                body = load_json(row.body)
                events.append(_Event(row.id, row.type, body, parse_payload(row.type, body)))
            except PayloadError as exc:
                failures.extend(
                    _Failure(row.id, name, PermanentError(str(exc)), traceback.format_exc())
                    for name in handlers_for(row.type)
                )
        types = {row.id: row.type for row in rows}
        groups = [
            (handler.name, [event for event in events if handler.name in handlers_for(event.type)])
            for handler in ORDER
        ]
        groups = [(name, group) for name, group in groups if group]
        if events and not failures and self._run_together(groups, types, follow, received):
            return follow
        for name, group in groups:
            failures.extend(self._run_group(name, group, follow))
        failed: dict[str, list[str]] = {}
        for failure in failures:
            if self._record_failure(failure, follow):
                failed.setdefault(failure.event_id, []).append(
                    f"{failure.handler}: {failure.error}"
                )
        now = _now()
        leases = {
            retry.event_id: now + timedelta(seconds=retry.countdown + self._policy.follow_up_lease)
            for retry in follow.retries
        }
        with self._engine.begin() as conn:
            settled = self._settle(conn, types, failed, leases)
        committed(follow.runs, settled, received)
        return follow

    def _run_together(
        self,
        groups: list[tuple[str, list[_Event]]],
        types: dict[str, str],
        follow: FollowUp,
        received: dict[str, datetime],
    ) -> bool:
        """Every handler over its events, then the events' statuses, all in one transaction:
        one commit for the batch. False when it failed, and nothing of it was committed."""
        try:
            with self._engine.begin() as conn:
                done = [self._run_batch(conn, name, group) for name, group in groups]
                settled = self._settle(conn, types, {})
        except Exception:
            log.info(
                "batch_splitting", handlers=[name for name, _ in groups], event_ids=list(types)
            )
            return False
        for batch in done:
            follow.add(batch)
        committed(follow.runs, settled, received)
        return True

    def _run_group(self, name: str, group: list[_Event], follow: FollowUp) -> list[_Failure]:
        try:
            with self._engine.begin() as conn:
                done = self._run_batch(conn, name, group)
        except Exception:
            log.info("batch_isolating", handler=name, event_ids=[event.id for event in group])
        else:
            follow.add(done)
            return []
        failures = []
        for event in group:
            try:
                with self._engine.begin() as conn:
                    done = self._run_batch(conn, name, [event])
            except Exception as exc:
                failures.append(_Failure(event.id, name, exc, traceback.format_exc()))
            else:
                follow.add(done)
        return failures

    def _run_batch(self, conn: Connection, name: str, group: list[_Event]) -> FollowUp:
        """Run one handler over events in the caller's transaction, with their run rows;
        answer what to publish once it is committed."""
        now = _now()
        started = time.perf_counter()
        # Runs done before are skipped: a redelivered message changes nothing.
        todo = run_store.claim(conn, [event.id for event in group], name, now)
        if not todo:
            return FollowUp()
        if name in GUARDED:
            ledger_store.rebuild_guard(conn, exclusive=False)
        books = SqlBooks(conn)
        jobs: list[Job] = []
        outcomes: list[tuple[str, RunStatus, str | None]] = []
        for event in group:
            if event.id not in todo:
                continue
            job = Job(books, event.id, event.type, event.payload, event.body, now, self._config)
            # Every line logged while a handler runs names the event and the handler.
            with structlog.contextvars.bound_contextvars(event_id=event.id, handler=name):
                outcome = self._handlers[name](job)
            jobs.append(job)
            outcomes.append((event.id, outcome.status, outcome.note))
            todo.discard(event.id)  # the same event twice in a batch runs once
        books.flush()  # may raise LedgerConflict: the batch is then run event by event
        planned = [(job.event_id, message) for job in jobs for message in job.messages]
        run_store.finish(conn, name, outcomes, now)
        released = [*(event_id for job in jobs for event_id in job.released), *books.released]
        # Held until published (see RetryPolicy.follow_up_lease).
        until = now + timedelta(seconds=self._policy.follow_up_lease)
        eventlog.lease(conn, released, until, HOLDER)
        return FollowUp(
            notifications=notification_store.plan(conn, planned, now, lease_until=until),
            released=released,
            runs=[(name, [status for _, status, _ in outcomes], time.perf_counter() - started)],
        )

    def _record_failure(self, failure: _Failure, follow: FollowUp) -> bool:
        """Store the failed attempt; schedule a retry, or answer True when it is final."""
        now = _now()
        with self._engine.begin() as conn:
            attempts = run_store.record_failure(
                conn,
                failure.event_id,
                failure.handler,
                f"{failure.handler}: {failure.error}",
                failure.trace,
                now,
            )
            if isinstance(failure.error, LedgerConflict):
                ledger_store.record_conflict(conn, failure.error.transaction, failure.event_id, now)
        # A payload the rules cannot use stays unusable however often it is tried.
        permanent = isinstance(failure.error, (PermanentError, PayloadError))
        final = permanent or attempts >= self._policy.max_attempts
        metrics.HANDLER_RUNS.labels(failure.handler, "failed" if final else "retry").inc()
        if isinstance(failure.error, LedgerConflict):
            metrics.LEDGER_CONFLICTS.inc()
        if not final:
            metrics.RETRIES.labels("event").inc()
        log.warning(
            "handler_failed",
            event_id=failure.event_id,
            handler=failure.handler,
            attempts=attempts,
            final=final,
            error=str(failure.error)[:500],
        )
        if not final:
            follow.retries.append(Retry(failure.event_id, self._policy.countdown(attempts)))
        return final

    def _settle(
        self,
        conn: Connection,
        types: dict[str, str],
        failed: dict[str, list[str]],
        leases: Mapping[str, datetime] | None = None,
    ) -> list[tuple[str, str, str | None]]:
        """Processed when every handler is done; failed when one failed for good; else still
        pending (a handler held, or waiting for its retry, leased until the retry is due),
        with the reason as its error. Answers (event id, status, error) of each."""
        outcomes: list[tuple[str, str, str | None]] = []
        runs = run_store.statuses(conn, list(types))
        for event_id, event_type in types.items():
            names = handlers_for(event_type)
            if not names:
                continue
            if event_id in failed:
                outcomes.append((event_id, "failed", "; ".join(failed[event_id])))
            elif all(runs.get((event_id, name)) == "done" for name in names):
                outcomes.append((event_id, "processed", None))
            else:
                waiting = [
                    f"{name}: {runs.get((event_id, name)) or 'not run'}"
                    for name in names
                    if runs.get((event_id, name)) != "done"
                ]
                outcomes.append((event_id, "pending", "; ".join(waiting)))
        eventlog.set_statuses(conn, outcomes, _now(), leases)
        return outcomes


def _now() -> datetime:
    return datetime.now(UTC)
