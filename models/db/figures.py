"""All SQL about `figures`: numbers computed now and then over the whole books by one worker
at a time, and read by every metrics scrape."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, or_, select, update

from models.db.insert import insert
from models.db.tables import figures

CARDS_DRIFTING = "cards_drifting"
"""Loyalty and gift cards whose books disagree with what Voucherify reported
(`workers.books_check`)."""
CARDS_COUNT_MS = "cards_drifting_count_ms"
"""How long the last count of CARDS_DRIFTING took, in milliseconds."""


def ensure(conn: Connection, name: str) -> None:
    """The figure's row exists, uncomputed if it is new. In a transaction of its own, before
    `claim`: an INSERT meeting a row another transaction has just inserted waits for it."""
    exists = conn.execute(select(figures.c.name).where(figures.c.name == name)).first()
    if exists is None:
        conn.execute(
            insert(conn, figures)
            .values(name=name, value=0, computed_at=None)
            .on_conflict_do_nothing()
        )


def claim(conn: Connection, name: str, computed_before: datetime) -> bool:
    """Lock the figure `name` (its row: `ensure`) until the transaction ends, when it was last
    computed before `computed_before` (or never) and no other transaction holds it: True when
    the caller is to compute it now. Several workers thus compute it once between them."""
    found = conn.execute(
        select(figures.c.name)
        .where(figures.c.name == name)
        .where(or_(figures.c.computed_at.is_(None), figures.c.computed_at < computed_before))
        .with_for_update(skip_locked=True)
    ).first()
    return found is not None


def put(conn: Connection, name: str, value: int, at: datetime) -> None:
    conn.execute(update(figures).where(figures.c.name == name).values(value=value, computed_at=at))


def computed(conn: Connection) -> dict[str, tuple[int, datetime]]:
    """Every figure computed at least once: name -> (value, when)."""
    rows = conn.execute(computed_statement())
    return {row.name: (int(row.value), row.computed_at) for row in rows}


def computed_statement() -> Select[Any]:
    """The query of `computed`."""
    return select(figures.c.name, figures.c.value, figures.c.computed_at).where(
        figures.c.computed_at.is_not(None)
    )
