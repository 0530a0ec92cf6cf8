"""All SQL about what the ledger remembers of redemptions: a note for each one it saw (so a
rollback knows its original is there, and a stack parent can be checked against its children)
and the rollbacks held until their original arrives.

Writes take many rows at once: a batch of events notes its redemptions in one statement.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, select, text

from models.db.batch_sql import among, as_json, insert_many
from models.db.tables import ledger_holds, ledger_redemptions
from models.ledger import Redemption, StackCheck


def hold(conn: Connection, holds: Sequence[tuple[str, str]]) -> None:
    """Hold rollbacks, as (original redemption id, rollback event id), for their original."""
    insert_many(
        conn,
        ledger_holds,
        [{"original_id": original, "event_id": event_id} for original, event_id in holds],
        conflict=(),
    )


def release(conn: Connection, original_ids: Collection[str]) -> list[str]:
    """The events held for these originals, no longer held."""
    if not original_ids:
        return []
    return list(
        conn.scalars(
            delete(ledger_holds)
            .where(among(conn, ledger_holds.c.original_id, original_ids))
            .returning(ledger_holds.c.event_id)
        )
    )


# Taken in lock id order: two transactions locking overlapping sets cannot deadlock. The sort
# happens in the subquery, before the volatile lock function sees a row.
LOCK_POSTGRESQL = text(
    """
    SELECT pg_advisory_xact_lock(lock_id) FROM (
        SELECT DISTINCT hashtextextended('redemption:' || id, 0) AS lock_id
        FROM json_array_elements_text(CAST(:ids AS json)) AS id
        ORDER BY lock_id
    ) AS sorted
    """
)


def lock_redemptions(conn: Connection, redemption_ids: Collection[str]) -> None:
    """Serialise, until commit, everything that concerns these redemptions' presence: a
    rollback checking for its original and the original being noted cannot interleave (else
    the rollback could hold itself after the original looked for holds). One statement for
    any number of ids. SQLite runs one writer at a time and needs no lock."""
    if redemption_ids and conn.dialect.name == "postgresql":
        conn.execute(LOCK_POSTGRESQL, {"ids": as_json(sorted(redemption_ids))})


def _row(note: Redemption) -> dict[str, Any]:
    """A note as its `ledger_redemptions` row."""
    return {
        "redemption_id": note.redemption_id,
        "role": note.role,
        "parent_id": note.parent_id,
        "order_id": note.order_id,
        "applied_amount": note.applied,
        "event_id": note.event_id,
    }


def note_redemptions(conn: Connection, notes: Sequence[Redemption]) -> list[str]:
    """Note redemptions the ledger saw (the first note of each stays); return the rollbacks
    that were held for them, no longer held. The caller holds their locks."""
    insert_many(conn, ledger_redemptions, [_row(note) for note in notes], conflict=())
    return release(conn, {note.redemption_id for note in notes})


def redemption_seen(conn: Connection, redemption_id: str) -> bool:
    found = conn.scalar(
        select(ledger_redemptions.c.redemption_id).where(
            ledger_redemptions.c.redemption_id == redemption_id
        )
    )
    return found is not None


def stack(conn: Connection, parent_id: str) -> StackCheck:
    """The parent's applied amount (if seen) against the children's applied sum and count."""
    parent = conn.scalar(
        select(ledger_redemptions.c.applied_amount).where(
            ledger_redemptions.c.redemption_id == parent_id
        )
    )
    children_sum, children = conn.execute(
        select(func.coalesce(func.sum(ledger_redemptions.c.applied_amount), 0), func.count()).where(
            ledger_redemptions.c.parent_id == parent_id
        )
    ).one()
    return StackCheck(
        parent_id,
        expected=None if parent is None else int(parent),
        booked=int(children_sum),
        children=int(children),
    )
