"""All SQL about what the ledger remembers of redemptions: a note for each one it saw (so a
rollback knows its original is there, and a stack parent can be checked against its children)
and the rollbacks held until their original arrives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, select, text

from models.tables import ledger_holds, ledger_redemptions
from models.upsert import insert


def hold(conn: Connection, original_id: str, event_id: str) -> None:
    conn.execute(
        insert(conn, ledger_holds)
        .values(original_id=original_id, event_id=event_id)
        .on_conflict_do_nothing()
    )


def release(conn: Connection, original_id: str) -> list[str]:
    """The events held for `original_id`, no longer held."""
    held = list(
        conn.scalars(
            select(ledger_holds.c.event_id).where(ledger_holds.c.original_id == original_id)
        )
    )
    if held:
        conn.execute(delete(ledger_holds).where(ledger_holds.c.original_id == original_id))
    return held


def lock_redemption(conn: Connection, redemption_id: str) -> None:
    """Serialise, until commit, everything that concerns one redemption's presence: a
    rollback checking for its original and the original being noted cannot interleave (else
    the rollback could hold itself after the original looked for holds). SQLite runs one
    writer at a time and needs no lock."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"redemption:{redemption_id}"},
        )


@dataclass(frozen=True)
class Redemption:
    """What the ledger notes of every redemption it saw, even one that posted nothing."""

    redemption_id: str
    role: str  # plain | child | parent
    parent_id: str | None
    order_id: str | None
    applied: int
    event_id: str

    def row(self) -> dict[str, Any]:
        return {
            "redemption_id": self.redemption_id,
            "role": self.role,
            "parent_id": self.parent_id,
            "order_id": self.order_id,
            "applied_amount": self.applied,
            "event_id": self.event_id,
        }


def note_redemption(conn: Connection, note: Redemption) -> list[str]:
    """Note a redemption the ledger saw; return the rollbacks that were held for it, no
    longer held (one round trip on PostgreSQL)."""
    noting = insert(conn, ledger_redemptions).values(**note.row()).on_conflict_do_nothing()
    if conn.dialect.name != "postgresql":
        conn.execute(noting)
        return release(conn, note.redemption_id)
    noted = noting.cte("noted")
    released = (
        delete(ledger_holds)
        .where(ledger_holds.c.original_id == note.redemption_id)
        .returning(ledger_holds.c.event_id)
        .add_cte(noted)
    )
    return list(conn.scalars(released))


def redemption_seen(conn: Connection, redemption_id: str) -> bool:
    found = conn.scalar(
        select(ledger_redemptions.c.redemption_id).where(
            ledger_redemptions.c.redemption_id == redemption_id
        )
    )
    return found is not None


def stack(conn: Connection, parent_id: str) -> tuple[int | None, int, int]:
    """(the parent's applied amount if seen, the children's applied sum, children seen)."""
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
    return (None if parent is None else int(parent)), int(children_sum), int(children)
