"""All SQL of a rebuild's fold that reads back what it wrote (`models.db.fold_store`): the
reports kept of card movements, a card's latest ones, the notes and bookings about some
redemptions (the answers are worked out from them by `models.folded`), and the rollbacks left
for the end."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import datetime
from itertools import islice

from sqlalchemy import Connection, Text, and_, bindparam, func, or_, select, tuple_
from sqlalchemy.dialects.postgresql import ARRAY

from models.cards import Movement
from models.db import bulk_io as bulk
from models.db.card_store import movement_of
from models.db.fold_store import (
    FOLD_LATER,
    FOLD_MOVEMENTS,
    FOLD_NOTES,
    FOLD_POSTINGS,
    FOLD_TRANSACTIONS,
)
from models.folded import Booking, Entry, Note

CHUNK = 5000
"""Keys per statement."""


def kept(conn: Connection, pairs: Collection[tuple[str, str]]) -> dict[tuple[str, str], Movement]:
    """The reports kept of these (card, key) movements, for those that have one."""
    m = FOLD_MOVEMENTS
    found: dict[tuple[str, str], Movement] = {}
    pending = iter(pairs)
    while chunk := list(islice(pending, CHUNK)):
        if conn.dialect.name == "postgresql":
            wanted = (
                func.unnest(
                    bindparam("cards", [c for c, _ in chunk], type_=ARRAY(Text)),
                    bindparam("keys", [k for _, k in chunk], type_=ARRAY(Text)),
                )
                .table_valued("card_id", "key")
                .render_derived(name="wanted")
            )
            same = and_(m.c.card_id == wanted.c.card_id, m.c.key == wanted.c.key)
            stmt = select(m).join(wanted, same)
        else:
            stmt = select(m).where(tuple_(m.c.card_id, m.c.key).in_(chunk))
        for row in conn.execute(stmt):
            found[row.card_id, row.key] = movement_of(row)
    return found


def latest(conn: Connection, card_id: str, times: int) -> tuple[list[Movement], bool]:
    """The card's kept reports at its `times` latest times, and whether they are all it has."""
    m = FOLD_MOVEMENTS
    found: list[datetime] = list(
        conn.scalars(
            select(m.c.at).where(m.c.card_id == card_id).distinct().order_by(m.c.at.desc())
            .limit(times + 1)
        )
    )  # fmt: skip
    if not found:
        return [], True
    floor = found[:times][-1]
    rows = conn.execute(select(m).where(m.c.card_id == card_id, m.c.at >= floor))
    return [movement_of(row) for row in rows], len(found) <= times


def notes_about(
    conn: Connection, redemptions: Collection[str], parents: Collection[str]
) -> list[Note]:
    """Every note of these redemptions, of these parents and of each redemption a note names
    as a child of one of them. Two lookups, each through its index: the children, then the
    notes (one statement with an OR of both reads every note)."""
    n = FOLD_NOTES
    named = sorted(set(parents))
    children: set[str] = set()
    for start in range(0, len(named), CHUNK):
        which = n.c.parent_id.in_(named[start : start + CHUNK])
        children.update(conn.scalars(select(n.c.redemption_id).where(which)))
    ids = sorted({*redemptions, *parents, *children})
    found: list[Note] = []
    for start in range(0, len(ids), CHUNK):
        rows = conn.execute(select(n).where(n.c.redemption_id.in_(ids[start : start + CHUNK])))
        found += [Note(*row) for row in rows]
    return found


def bookings_about(
    conn: Connection, redemptions: Collection[str], keys: Collection[str]
) -> tuple[list[Booking], list[Entry]]:
    """Every booking of these redemptions' own keys and of these keys, with its postings."""
    t, p = FOLD_TRANSACTIONS, FOLD_POSTINGS
    bookings: list[Booking] = []
    entries: list[Entry] = []
    ids, wanted = sorted(set(redemptions)), sorted(set(keys))
    for start in range(0, max(len(ids), len(wanted)), CHUNK):
        which = or_(
            t.c.redemption.in_(ids[start : start + CHUNK]),
            t.c.key.in_(wanted[start : start + CHUNK]),
        )
        found = [Booking(*row) for row in conn.execute(select(t).where(which))]
        bookings += found
        places = [booking.ord for booking in found]
        entries += [Entry(*row) for row in conn.execute(select(p).where(p.c.ord.in_(places)))]
    return bookings, entries


LATER_BATCH = 128
"""Rollbacks read back at a time: each is folded with its parsed body (tens of KB), so their
number, not the log's length, sets the memory of that last phase."""


def later(conn: Connection) -> Iterator[list[tuple[int, str, str, str, int | None]]]:
    """The rollbacks left for the end, an original's together in the order of the fold: (place,
    event id, handler, original, the place of the original's first note or None)."""
    r, n = FOLD_LATER, FOLD_NOTES
    noted = select(func.min(n.c.ord)).where(n.c.redemption_id == r.c.original).scalar_subquery()
    stmt = select(r.c.ord, r.c.event_id, r.c.handler, r.c.original, noted).order_by(
        r.c.original, r.c.ord
    )
    yield from bulk.stream(conn, stmt, LATER_BATCH)
