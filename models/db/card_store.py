"""All SQL about loyalty cards: load a card under a row lock, save its new state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from models.db.insert import insert
from models.db.tables import loyalty_cards, loyalty_movements
from models.loyalty import CardState


def first_sighting(
    conn: Connection, source_id: str, card_id: str, event_id: str, points: int
) -> bool:
    """True the first time a Voucherify object (rewr_…, r_…) is seen acting on a card, whichever
    delivery reports it; False for the same object reported again."""
    inserted = conn.scalar(
        insert(conn, loyalty_movements)
        .values(source_id=source_id, card_id=card_id, event_id=event_id, points_taken=points)
        .on_conflict_do_nothing()
        .returning(loyalty_movements.c.source_id)
    )
    return inserted is not None


def load_for_update(conn: Connection, card_id: str) -> CardState | None:
    """The card's state, its row locked until commit: concurrent workers take turns."""
    row = conn.execute(
        select(loyalty_cards).where(loyalty_cards.c.card_id == card_id).with_for_update()
    ).first()
    return state_of(row) if row else None


def get(conn: Connection, card_id: str) -> CardState | None:
    row = conn.execute(select(loyalty_cards).where(loyalty_cards.c.card_id == card_id)).first()
    return state_of(row) if row else None


def _values(state: CardState, at: datetime) -> dict[str, Any]:
    return {
        "customer_id": state.customer_id,
        "balance": state.balance,
        "as_of": state.as_of,
        "balance_source": state.balance_source,
        "points_spent": state.points_spent,
        "events": state.events,
        "flags": list(state.flags),
        "updated_at": at,
    }


def insert_new(conn: Connection, state: CardState, at: datetime) -> bool:
    """Create the card; False when a concurrent transaction created it first (PostgreSQL
    waits for that one to commit, so the caller can then load and lock the row)."""
    inserted = conn.scalar(
        insert(conn, loyalty_cards)
        .values(card_id=state.card_id, **_values(state, at))
        .on_conflict_do_nothing()
        .returning(loyalty_cards.c.card_id)
    )
    return inserted is not None


def save(conn: Connection, state: CardState, at: datetime) -> None:
    conn.execute(
        update(loyalty_cards)
        .where(loyalty_cards.c.card_id == state.card_id)
        .values(**_values(state, at))
    )


def state_of(row: Any) -> CardState:
    """A `loyalty_cards` row (all its columns) as the card's state."""
    return CardState(
        card_id=row.card_id,
        customer_id=row.customer_id,
        balance=int(row.balance),
        as_of=row.as_of,
        points_spent=int(row.points_spent),
        events=int(row.events),
        flags=tuple(row.flags or ()),
        balance_source=row.balance_source,
    )
