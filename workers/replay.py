"""Replay: run the handlers of chosen stored events again.

Every effect is idempotent, so a replayed processed event changes nothing; a failed one gets a
fresh set of attempts and, after a fix, completes. Notifications planned for the first time
are sent as usual; deliveries that failed for good are sent again only when asked (`notify`),
and a sent one never is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine

from models.db import eventlog, notification_store, run_store
from models.routing import handlers_for
from workers.notification_channels import Sender
from workers.notification_sending import Pacing, deliver_all
from workers.processing import Processor, RetryPolicy

CHUNK = 100


@dataclass
class Summary:
    selected: int = 0
    rerun: int = 0
    unchanged: int = 0
    failed: int = 0
    skipped: int = 0
    notifications_sent: int = 0
    notifications_not_sent: int = 0
    """Refused (to be retried, or failed for good): logged as warnings, which `replay` does
    not show, so it counts them."""
    failures: dict[str, str] = field(default_factory=dict)


def pending_work(engine: Engine, ids: list[str]) -> dict[str, tuple[str, ...]]:
    """For each event, the handlers a replay would run (those not done); empty if none."""
    with engine.connect() as conn:
        runs = run_store.statuses(conn, ids)
        rows = eventlog.select_events(conn, ids=ids)
    return {
        row.id: tuple(name for name in handlers_for(row.type) if runs.get((row.id, name)) != "done")
        if row.status != "quarantined"
        else ()
        for row in rows
    }


def replay(
    engine: Engine,
    processor: Processor,
    ids: list[str],
    *,
    senders: Mapping[str, Sender],
    policy: RetryPolicy,
    pacing: Pacing,
    notify: bool = False,
    advance: Callable[[int], None] = lambda _n: None,
) -> Summary:
    """Replay `ids` in receipt order; `advance` is told how many events each step finished."""
    summary = Summary(selected=len(ids))
    with engine.connect() as conn:
        ordered = eventlog.ids_in_order(conn, ids)
    for start in range(0, len(ordered), CHUNK):
        chunk = ordered[start : start + CHUNK]
        work = pending_work(engine, chunk)
        runnable = [event_id for event_id in chunk if work.get(event_id)]
        with engine.begin() as conn:
            run_store.reset_failed(conn, runnable)
            eventlog.reopen(conn, runnable)
        to_send: list[int] = []
        batch = runnable
        while batch:  # a booked original can release rollbacks that waited for it
            follow = processor.process(batch)
            to_send.extend(follow.notifications)
            batch = [event_id for event_id in follow.released if event_id not in runnable]
        if notify:
            with engine.begin() as conn:
                to_send.extend(notification_store.retry_failed(conn, chunk, datetime.now(UTC)))
        sent = deliver_all(engine, senders, list(dict.fromkeys(to_send)), policy, pacing)
        summary.notifications_sent += sum(done.result == "sent" for done in sent)
        summary.notifications_not_sent += sum(done.result in ("failed", "retry") for done in sent)
        _count(engine, chunk, work, summary)
        advance(len(chunk))
    return summary


def _count(
    engine: Engine, chunk: list[str], work: dict[str, tuple[str, ...]], summary: Summary
) -> None:
    with engine.connect() as conn:
        rows = {row.id: row for row in eventlog.select_events(conn, ids=chunk)}
    for event_id in chunk:
        row = rows[event_id]
        if row.status == "quarantined" or not handlers_for(row.type):
            summary.skipped += 1
        elif not work.get(event_id):
            summary.unchanged += 1
        elif row.status == "processed":
            summary.rerun += 1
        else:
            summary.failed += 1
            summary.failures[event_id] = row.error or row.status
