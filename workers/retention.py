"""Retention of personal data: purge what is old enough, forget one customer on request.

Both store redacted copies (`models.redaction`) in place of raw bodies and rendered
notifications, page by page (one transaction per page, keyset by seq), and stamp the events'
`redacted_at`. Neither touches what the books are folded from: ids, amounts, points, times and
statuses stay, so the ledger, the cards and `rebuild`'s digest are the same afterwards.

- **purge** redacts events that are done with (`processed`, `ignored`) received before a
  date, and the finished (sent, failed) notifications of redacted events. Pending, failed and
  quarantined events are left: they are still being worked on or wait for a person. A
  notification still to be sent is left too, and redacted by the first purge after it is.
- **forget_customer** redacts every event whose body names the customer, whatever its status
  (a body that is not JSON is replaced whole), and every one of their notifications; one not
  sent yet is cancelled (`failed`), so nothing is ever sent about them again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import Connection, Engine

from models.db import retention_store as store
from models.db.retention_store import (
    EventUpdate,
    NotificationUpdate,
    StoredEvent,
    StoredNotification,
)
from models.redaction import (
    RedactedBody,
    customer_values,
    email_terms,
    mentions,
    redact_body,
    redact_headers,
    redact_notification,
    scrub_text,
    search_terms,
)

PAGE = 500
"""Events (or notifications) read, redacted and written per transaction."""

CANCELLED = "not sent: the customer's personal data was erased (forget-customer)"
"""The error of a delivery that was still waiting when its customer was forgotten."""

RETENTION_EVERY = 3600.0
"""Seconds between two purges of the rolling window (VOUCHERHOOK_RETENTION_DAYS) by a worker."""

Advance = Callable[[int], None]


def _nothing(_n: int) -> None:
    pass


# Purge -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Purged:
    before: datetime
    events: int
    """Events redacted (or, in a dry run, that would be)."""
    notifications: int
    left_alone: dict[str, int]
    """Events received before `before` that a purge leaves, by status."""
    unsent: int
    """Notifications of redacted events still to be sent: a later purge redacts them."""
    dry_run: bool


def purge(
    engine: Engine,
    before: datetime,
    *,
    dry_run: bool = False,
    advance: Advance = _nothing,
    now: datetime | None = None,
) -> Purged:
    """Redact the processed and ignored events received before `before` and the finished
    notifications of redacted events, and say what was left; `advance` is told how many rows
    each page redacted."""
    with engine.connect() as conn:
        alone = store.left_alone(conn, before)
        unsent = store.unfinished(conn, before)
        if dry_run:
            planned_events = store.count_expired(conn, before)
            planned_notifications = store.count_finished(conn, before)
            return Purged(before, planned_events, planned_notifications, alone, unsent, True)
    redacted, notified = _redact_expired(engine, before, now or datetime.now(UTC), advance)
    return Purged(before, redacted, notified, alone, unsent, False)


def _redact_expired(
    engine: Engine, before: datetime, at: datetime, advance: Advance
) -> tuple[int, int]:
    """The events, then the notifications, redacted."""
    return (
        _purge_events(engine, before, at, advance),
        _purge_notifications(engine, before, advance),
    )


def _purge_events(engine: Engine, before: datetime, at: datetime, advance: Advance) -> int:
    written, after = 0, 0
    while True:
        with engine.begin() as conn:
            page = store.expired_page(conn, before, after, PAGE)
            if not page:
                return written
            updates = [_event_update(event) for event in page]
            written += store.write_events(conn, updates, at, only=store.PURGED_STATUSES)
        after = page[-1].seq
        advance(len(page))


def _purge_notifications(engine: Engine, before: datetime, advance: Advance) -> int:
    written, after = 0, 0
    while True:
        with engine.begin() as conn:
            page = store.finished_page(conn, before, after, PAGE)
            if not page:
                return written
            updates = [_notification_update(note) for note in page]
            written += store.write_notifications(conn, updates)
        after = page[-1].seq
        advance(len(page))


def purge_expired(engine: Engine, days: int, now: datetime | None = None) -> int:
    """The rolling window: purge what was received more than `days` ago (0: keep forever);
    the rows redacted. Nobody reads what a purge leaves here: it is not counted."""
    if days <= 0:
        return 0
    at = now or datetime.now(UTC)
    return sum(_redact_expired(engine, at - timedelta(days=days), at, _nothing))


# Forget a customer -------------------------------------------------------------------------


EventAction = Literal["redacted", "replaced", "already redacted"]


@dataclass(frozen=True)
class ForgottenEvent:
    id: str
    status: str
    action: EventAction
    """`replaced`: a body that is not JSON, replaced whole by a marker."""


@dataclass(frozen=True)
class ForgottenNotification:
    id: int
    event_id: str
    channel: str
    status: str
    """Its status before: a `pending` one is cancelled."""


@dataclass(frozen=True)
class Forgotten:
    customer_id: str
    events: list[ForgottenEvent] = field(default_factory=list)
    notifications: list[ForgottenNotification] = field(default_factory=list)
    cards: list[str] = field(default_factory=list)
    """Loyalty cards held by the customer: kept, they hold only ids and figures."""
    dry_run: bool = False

    @property
    def changed(self) -> list[ForgottenEvent]:
        return [event for event in self.events if event.action != "already redacted"]


def forget_customer(
    engine: Engine,
    customer_id: str,
    *,
    dry_run: bool = False,
    advance: Advance = _nothing,
    now: datetime | None = None,
) -> Forgotten:
    """Redact everything stored about one customer; `advance` is told how many events each
    page examined."""
    at = now or datetime.now(UTC)
    # Their email addresses may name them where their id does not (a notification, a body
    # whose customer object has no id): learn them from the bodies that name the id first.
    values = _customer_values(engine, customer_id, advance)
    terms = search_terms(customer_id, values)
    emails = email_terms(values)
    result = Forgotten(customer_id, dry_run=dry_run)
    seen: set[int] = set()
    after = 0
    while True:
        with _transaction(engine, dry_run) as conn:
            page = store.mentioning_page(conn, terms, after, PAGE)
            if not page:
                break
            named = [event for event in page if mentions(event.body, customer_id, emails)]
            _forget_events(conn, named, values, at, result)
            notes = store.notifications_of(conn, [event.id for event in named], ())
            _forget_notifications(conn, notes, values, result, seen)
        after = page[-1].seq
        advance(len(page))
    with _transaction(engine, dry_run) as conn:
        # Deliveries to their address about events that no longer name them.
        addressed = store.notifications_of(conn, (), emails)
        _forget_notifications(conn, addressed, values, result, seen)
        result.cards.extend(store.cards_held_by(conn, customer_id))
    return result


def _transaction(engine: Engine, dry_run: bool) -> AbstractContextManager[Connection]:
    """A transaction that commits, or for a dry run a connection that writes nothing."""
    return engine.connect() if dry_run else engine.begin()


def _customer_values(engine: Engine, customer_id: str, advance: Advance) -> frozenset[str]:
    values: set[str] = set()
    after = 0
    with engine.connect() as conn:
        while page := store.mentioning_page(conn, [customer_id], after, PAGE):
            for event in page:
                try:
                    values |= customer_values(json.loads(event.body), customer_id)
                except (ValueError, RecursionError):
                    continue  # not JSON: nothing to learn from it
            after = page[-1].seq
            advance(len(page))
    return frozenset(values)


def _forget_events(
    conn: Connection,
    named: list[StoredEvent],
    values: frozenset[str],
    at: datetime,
    result: Forgotten,
) -> None:
    updates = []
    for event in named:
        done = redact_body(event.body, values)
        update = _event_update(event, done, values)
        before = (event.body, event.headers, event.error, event.remote_addr)
        if (update.body, update.headers, update.error, None) == before:
            action: EventAction = "already redacted"
        else:
            action = "redacted" if done.json else "replaced"
            updates.append(update)
        result.events.append(ForgottenEvent(event.id, event.status, action))
    if not result.dry_run:
        store.write_events(conn, updates, at)


def _forget_notifications(
    conn: Connection,
    notes: list[StoredNotification],
    values: frozenset[str],
    result: Forgotten,
    seen: set[int],
) -> None:
    """Redact the deliveries this run has not redacted yet: `seen` holds the ids of those it
    has, and gains these."""
    fresh = [note for note in notes if note.seq not in seen]
    seen.update(note.seq for note in fresh)
    if not result.dry_run:
        store.write_notifications(
            conn,
            [_notification_update(note, values) for note in fresh],
            cancel=CANCELLED,
        )
    result.notifications.extend(
        ForgottenNotification(note.seq, note.event_id, note.channel, note.status) for note in fresh
    )


# Redacted rows -----------------------------------------------------------------------------


def _event_update(
    event: StoredEvent, done: RedactedBody | None = None, also: frozenset[str] = frozenset()
) -> EventUpdate:
    """The event's row redacted: its body (`done`, when already redacted with `also`), its
    headers, and its error message."""
    done = done or redact_body(event.body, also)
    return EventUpdate(
        seq=event.seq,
        body=done.body,
        headers=redact_headers(event.headers),
        error=scrub_text(event.error, done.removed | also),
    )


def _notification_update(note: StoredNotification, also: Iterable[str] = ()) -> NotificationUpdate:
    done = redact_notification(
        note.seq, note.channel, note.recipient, note.subject, note.error, also
    )
    return NotificationUpdate(note.seq, done.recipient, done.subject, done.body, done.error)
