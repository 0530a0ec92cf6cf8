"""The SQL of the operator console's overview and events: activity per minute, what needs
attention, pages of events with a bounded search over their bodies, keyset-paginated by the
events' sequence number through an index (`models/db/console_books.py` has the books' pages).

What the console shares with the command line (an event's runs, a card's movements, ledger
balances, releasing a delivery) stays in the concept's own module and is called from there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Integer,
    Select,
    bindparam,
    cast,
    func,
    or_,
    select,
    text,
)

from models.console import EventFilter, Window
from models.db.eventlog import LISTED_COLUMNS
from models.db.tables import (
    event_counts,
    events,
    ledger_conflicts,
    ledger_holds,
    notifications,
)
from models.statuses import NOTIFICATION_STATUSES

COUNTED = 10_000
"""Deliveries in one status are counted up to this many: a page stays cheap however many
were sent (shown as "10,000+")."""

SEARCH_SCAN = 20_000
"""Events whose bodies one search request reads at most: a search of a term found nowhere
costs a bounded read, and the page offers to search the next stretch."""


def activity(conn: Connection, window: Window) -> list[tuple[int, str, int]]:
    """(bucket number, status, events) of the events received in `window`, the bucket
    being seconds since the epoch // `window.width`. Reads the (received_at, status) index
    only."""
    stmt = activity_statement(window, conn.dialect.name)
    return [(int(b), s, int(n)) for b, s, n in conn.execute(stmt)]


def activity_statement(window: Window, dialect: str = "postgresql") -> Select[Any]:
    """The query of `activity`."""
    width = window.width
    if dialect == "postgresql":
        epoch: ColumnElement[Any] = func.extract("epoch", events.c.received_at)
        bucket: ColumnElement[Any] = cast(func.floor(epoch / width), BigInteger)
    else:
        epoch = cast(func.strftime("%s", events.c.received_at), Integer)
        bucket = epoch / width
    bucket = bucket.label("bucket")
    return (
        select(bucket, events.c.status, func.count())
        .where(events.c.received_at > window.start, events.c.received_at <= window.end)
        .group_by(bucket, events.c.status)
    )


@dataclass(frozen=True)
class Attention:
    """What needs a person: counts, each bounded, and the newest ledger conflicts."""

    failed_events: int
    quarantined_events: int
    pending_events: int
    oldest_pending: datetime | None
    deliveries: dict[str, int]
    """Deliveries by status, each counted up to COUNTED."""
    oldest_sending: datetime | None
    held_rollbacks: int
    conflicts: int
    newest_conflicts: list[Any]


def attention(conn: Connection) -> Attention:
    by_status = dict(
        conn.execute(
            select(event_counts.c.status, func.coalesce(func.sum(event_counts.c.n), 0)).group_by(
                event_counts.c.status
            )
        ).all()
    )
    oldest_pending = conn.scalar(
        select(func.min(events.c.received_at)).where(events.c.status == "pending")
    )
    oldest_sending = conn.scalar(
        select(func.min(notifications.c.created_at)).where(notifications.c.status == "sending")
    )
    return Attention(
        failed_events=int(by_status.get("failed", 0)),
        quarantined_events=int(by_status.get("quarantined", 0)),
        pending_events=int(by_status.get("pending", 0)),
        oldest_pending=oldest_pending,
        deliveries=delivery_counts(conn),
        oldest_sending=oldest_sending,
        held_rollbacks=int(conn.scalar(select(func.count()).select_from(ledger_holds)) or 0),
        conflicts=int(conn.scalar(select(func.count()).select_from(ledger_conflicts)) or 0),
        newest_conflicts=list(
            conn.execute(select(ledger_conflicts).order_by(ledger_conflicts.c.seq.desc()).limit(5))
        ),
    )


def delivery_counts(conn: Connection) -> dict[str, int]:
    """Deliveries by status, each counted up to COUNTED (read from the status index)."""
    found: dict[str, int] = {}
    for status in NOTIFICATION_STATUSES:
        some = (
            select(notifications.c.seq)
            .where(notifications.c.status == status)
            .limit(COUNTED)
            .subquery()
        )
        found[status] = int(conn.scalar(select(func.count()).select_from(some)) or 0)
    return found


@dataclass(frozen=True)
class EventsPage:
    rows: list[Any]
    """Newest first."""
    newer: int | None
    """`after` for the page of newer events; None on the newest page."""
    older: int | None
    """`before` for the page of older events; None on the oldest."""
    searched_to: int | None
    """A search that read SEARCH_SCAN events without filling the page: the sequence number
    it stopped at (`before` of the next stretch)."""


def events_page(
    conn: Connection,
    chosen: EventFilter,
    *,
    before: int | None = None,
    after: int | None = None,
    limit: int = 50,
    scan: int = SEARCH_SCAN,
) -> EventsPage:
    """A page of the events `chosen`, newest first: older than `before`, or else newer than
    `after` (the page above one), or else the newest."""
    forward = after is not None and before is None
    stmt = events_statement(
        chosen, before=before, after=after, limit=limit + 1, scan=scan, dialect=conn.dialect.name
    )
    rows = list(conn.execute(stmt))
    more = len(rows) > limit
    rows = rows[:limit]
    edge = None
    if chosen.q and not more:
        stretch = _stretch(chosen, before=before, after=after, scan=scan).subquery()
        last = func.max(stretch.c.seq) if forward else func.min(stretch.c.seq)
        read, reached = conn.execute(select(func.count(), last)).one()
        if read >= scan and reached is not None:
            edge = int(reached)  # the stretch was read whole: there is more to search
    if forward:
        rows.reverse()
        assert after is not None
        newer = rows[0].seq if more and rows else edge
        older = rows[-1].seq if rows else after + 1
    else:
        older = rows[-1].seq if more and rows else edge
        newer = None if before is None else (rows[0].seq if rows else before - 1)
    return EventsPage(rows=rows, newer=newer, older=older, searched_to=edge)


def events_statement(
    chosen: EventFilter,
    *,
    before: int | None = None,
    after: int | None = None,
    limit: int = 51,
    scan: int = SEARCH_SCAN,
    dialect: str = "postgresql",
) -> Select[Any]:
    """The query of `events_page` (`dialect` decides how a body is searched)."""
    forward = after is not None and before is None
    order = events.c.seq.asc() if forward else events.c.seq.desc()
    if not chosen.q:
        return (
            _filtered(select(*LISTED_COLUMNS), chosen, before, after).order_by(order).limit(limit)
        )
    # The stretch is a subquery with a LIMIT, which PostgreSQL never merges into the query
    # around it: the body test runs on those `scan` rows only, whatever the plan.
    stretch = (
        _filtered(select(*LISTED_COLUMNS, events.c.body), chosen, before, after)
        .order_by(order)
        .limit(scan)
        .subquery("stretch")
    )
    seq = stretch.c.seq
    return (
        select(*(stretch.c[column.name] for column in LISTED_COLUMNS))
        .where(or_(stretch.c.id == chosen.q, _body_holds(stretch, chosen.q.encode(), dialect)))
        .order_by(seq.asc() if forward else seq.desc())
        .limit(limit)
    )


def _stretch(
    chosen: EventFilter, *, before: int | None, after: int | None, scan: int
) -> Select[Any]:
    """The next `scan` events of the filter (but the search) in page order: what a search
    request reads."""
    forward = after is not None and before is None
    order = events.c.seq.asc() if forward else events.c.seq.desc()
    return _filtered(select(events.c.seq), chosen, before, after).order_by(order).limit(scan)


def _filtered(
    stmt: Select[Any], chosen: EventFilter, before: int | None, after: int | None
) -> Select[Any]:
    if chosen.type:
        stmt = stmt.where(events.c.type == chosen.type)
    if chosen.status:
        stmt = stmt.where(events.c.status == chosen.status)
    if chosen.since:
        stmt = stmt.where(events.c.received_at >= chosen.since)
    if chosen.until:
        stmt = stmt.where(events.c.received_at < chosen.until)
    if before is not None:
        stmt = stmt.where(events.c.seq < before)
    elif after is not None:
        stmt = stmt.where(events.c.seq > after)
    return stmt


def _body_holds(stretch: Any, needle: bytes, dialect: str) -> ColumnElement[bool]:
    """The stored bytes hold `needle`, byte for byte (a voucher code, an order id)."""
    if dialect == "postgresql":
        found = text("position(:needle IN stretch.body) > 0").bindparams(
            bindparam("needle", needle)
        )
        return found  # type: ignore[return-value]
    return func.instr(stretch.c.body, needle) > 0
