"""Reconciliation's SQL: what the books hold of the objects Voucherify's API lists, each
list's high-water mark, and the record of each run.

An object is found stored under the identity its raw webhook gets (`events.id`), or, when it
came in an envelope (identified by the envelope's event id), through what the books keyed by
the object: a redemption's `ledger_redemptions` row, a rollback's ledger transactions
(`rollback:rr_…`), a card transaction's movement (`card_movements`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, insert, or_, select, update

from models.db.tables import (
    card_checks,
    card_movements,
    events,
    ledger_redemptions,
    ledger_transactions,
    reconcile_marks,
    reconcile_runs,
)
from models.reconcile import Stored

CHUNK = 500
"""Ids per `IN (…)`: well below SQLite's limit on parameters."""


def _chunks(items: Sequence[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), CHUNK):
        yield list(items[start : start + CHUNK])


def stored_events(conn: Connection, identities: Sequence[str]) -> set[str]:
    """Which of these event ids are stored."""
    found: set[str] = set()
    for chunk in _chunks(sorted(set(identities))):
        found.update(conn.scalars(select(events.c.id).where(events.c.id.in_(chunk))))
    return found


def booked_redemptions(conn: Connection, ids: Sequence[str]) -> dict[str, Stored]:
    """The redemptions the ledger noted: their event and (order id, applied amount)."""
    r = ledger_redemptions
    found = {}
    for chunk in _chunks(sorted(set(ids))):
        rows = conn.execute(
            select(r.c.redemption_id, r.c.event_id, r.c.order_id, r.c.applied_amount).where(
                r.c.redemption_id.in_(chunk)
            )
        )
        for row in rows:
            found[row.redemption_id] = Stored(row.event_id, (row.order_id, row.applied_amount))
    return found


def booked_rollbacks(conn: Connection, ids: Sequence[str]) -> dict[str, Stored]:
    """The rollbacks the ledger booked (`rollback:rr_…` and its `:points`): their event."""
    t = ledger_transactions
    found: dict[str, Stored] = {}
    for chunk in _chunks(sorted(set(ids))):
        keys = [f"rollback:{rollback}" for rollback in chunk]
        rows = conn.execute(
            select(t.c.key, t.c.event_id).where(
                or_(t.c.key.in_(keys), *(t.c.key.like(f"{key}:%") for key in keys))
            )
        )
        for row in rows:
            rollback = row.key.split(":")[1]
            found.setdefault(rollback, Stored(row.event_id, None))
    return found


def booked_movements(
    conn: Connection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], Stored]:
    """The card movements stored for these (card id, movement key): their event and (change,
    balance after)."""
    m = card_movements
    found = {}
    pairs = sorted(set(keys))
    for start in range(0, len(pairs), CHUNK):
        chunk = pairs[start : start + CHUNK]
        rows = conn.execute(
            select(m.c.card_id, m.c.key, m.c.event_id, m.c.change, m.c.balance_after).where(
                m.c.card_id.in_(sorted({card for card, _key in chunk})),
                m.c.key.in_(sorted({key for _card, key in chunk})),
            )
        )
        wanted = set(chunk)
        for row in rows:
            if (row.card_id, row.key) in wanted:
                found[row.card_id, row.key] = Stored(row.event_id, (row.change, row.balance_after))
    return found


def mark(conn: Connection, source: str) -> str | None:
    """Where `source` was read up to, if ever."""
    value = conn.scalar(select(reconcile_marks.c.mark).where(reconcile_marks.c.source == source))
    return str(value) if value is not None else None


def set_mark(conn: Connection, source: str, value: str, at: datetime) -> None:
    conn.execute(delete(reconcile_marks).where(reconcile_marks.c.source == source))
    conn.execute(insert(reconcile_marks).values(source=source, mark=value, updated_at=at))


@dataclass(frozen=True)
class Run:
    seq: int
    started_at: datetime
    finished_at: datetime | None
    since: datetime
    until: datetime
    here: int
    missing: int
    differing: int
    drifting: int
    requests: int
    error: str | None
    silent_since: datetime | None


def start_run(conn: Connection, since: datetime, until: datetime, at: datetime) -> int:
    inserted = insert(reconcile_runs).values(started_at=at, since=since, until=until)
    return int(conn.execute(inserted.returning(reconcile_runs.c.seq)).scalar_one())


def finish_run(
    conn: Connection,
    seq: int,
    at: datetime,
    *,
    here: int,
    missing: int,
    differing: int,
    drifting: int,
    requests: int,
    error: str | None,
    silent_since: datetime | None,
) -> None:
    conn.execute(
        update(reconcile_runs)
        .where(reconcile_runs.c.seq == seq)
        .values(
            finished_at=at,
            here=here,
            missing=missing,
            differing=differing,
            drifting=drifting,
            requests=requests,
            error=error,
            silent_since=silent_since,
        )
    )


def last_run(conn: Connection) -> Run | None:
    """The latest finished run."""
    r = reconcile_runs
    stmt = select(r).where(r.c.finished_at.is_not(None)).order_by(r.c.seq.desc()).limit(1)
    row = conn.execute(stmt).first()
    return Run(*row) if row is not None else None


@dataclass(frozen=True)
class CardCheck:
    card_id: str
    kind: str
    reported: int
    ledger: int
    checked_at: datetime

    @property
    def drift(self) -> int:
        """Voucherify's balance minus the ledger's: 0 when they agree."""
        return self.reported - self.ledger


def put_check(conn: Connection, check: CardCheck) -> None:
    conn.execute(delete(card_checks).where(card_checks.c.card_id == check.card_id))
    conn.execute(
        insert(card_checks).values(
            card_id=check.card_id,
            kind=check.kind,
            reported=check.reported,
            ledger=check.ledger,
            checked_at=check.checked_at,
        )
    )


def check_of(conn: Connection, card_id: str) -> CardCheck | None:
    """The card's last check against Voucherify's API, if any."""
    row = conn.execute(select(card_checks).where(card_checks.c.card_id == card_id)).first()
    return CardCheck(*row) if row is not None else None


def drifting(conn: Connection) -> list[CardCheck]:
    """The cards whose last check found Voucherify and the ledger apart."""
    c = card_checks
    rows = conn.execute(select(c).where(c.c.reported != c.c.ledger).order_by(c.c.card_id))
    return [CardCheck(*row) for row in rows]
