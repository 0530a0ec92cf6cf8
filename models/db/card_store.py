"""All SQL about cards: their movements, the loyalty cards' state, and what the ledger holds
for them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, or_, select, text, update

from models.cards import LATEST_TIMES, Movement
from models.db.insert import insert
from models.db.tables import card_movements, ledger_postings, loyalty_cards
from models.loyalty import CardState

GIFT_PREFIX = "giftcard:"
LOYALTY_PREFIX = "loyalty:card:"


def lock_card(conn: Connection, card_id: str) -> None:
    """Take the card for this transaction: concurrent workers moving one card take turns.
    PostgreSQL: a transaction-level advisory lock (a gift card has no row to lock); SQLite
    has one writer at a time already."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:card, 0))"), {"card": card_id}
        )


def movement(conn: Connection, card_id: str, key: str) -> Movement | None:
    row = conn.execute(
        select(card_movements).where(
            card_movements.c.card_id == card_id, card_movements.c.key == key
        )
    ).first()
    return movement_of(row) if row else None


def put_movement(conn: Connection, kept: Movement, *, new: bool) -> None:
    """Write the report kept of a movement: a new row, or in place of the one stored."""
    values = _movement_values(kept)
    if new:
        conn.execute(
            insert(conn, card_movements).values(card_id=kept.card_id, key=kept.key, **values)
        )
    else:
        conn.execute(
            update(card_movements)
            .where(card_movements.c.card_id == kept.card_id, card_movements.c.key == kept.key)
            .values(**values)
        )


def newest_movements(conn: Connection, card_id: str) -> list[Movement]:
    """The card's movements at its latest times (`models.cards.newest` picks among them)."""
    times = (
        select(card_movements.c.at)
        .where(card_movements.c.card_id == card_id)
        .distinct()
        .order_by(card_movements.c.at.desc())
        .limit(LATEST_TIMES)
        .subquery()
    )
    rows = conn.execute(
        select(card_movements).where(
            card_movements.c.card_id == card_id,
            card_movements.c.at >= select(func.min(times.c.at)).scalar_subquery(),
        )
    )
    return [movement_of(row) for row in rows]


def movements(conn: Connection, card_id: str) -> list[Movement]:
    rows = conn.execute(select(card_movements).where(card_movements.c.card_id == card_id))
    return [movement_of(row) for row in rows]


def all_movements(conn: Connection) -> Iterator[list[Movement]]:
    """Every movement, a card's together, card by card."""
    rows = conn.execute(select(card_movements).order_by(card_movements.c.card_id))
    card: list[Movement] = []
    for row in rows:
        if card and card[0].card_id != row.card_id:
            yield card
            card = []
        card.append(movement_of(row))
    if card:
        yield card


def ledger_balance(conn: Connection, kind: str, card_id: str) -> int:
    """The card as the ledger holds it: points on `loyalty:card:{id}`, credit as minus the
    liability `giftcard:{id}`."""
    account = f"{LOYALTY_PREFIX}{card_id}" if kind == "loyalty" else f"{GIFT_PREFIX}{card_id}"
    total = conn.scalar(
        select(func.coalesce(func.sum(ledger_postings.c.amount), 0)).where(
            ledger_postings.c.account == account
        )
    )
    points = int(total or 0)
    return points if kind == "loyalty" else -points


def ledger_balances(conn: Connection) -> dict[tuple[str, str], int]:
    """(kind, card id) -> the card as the ledger holds it, for every card account."""
    account = ledger_postings.c.account
    rows = conn.execute(
        select(account, func.sum(ledger_postings.c.amount))
        .where(or_(account.startswith(LOYALTY_PREFIX), account.startswith(GIFT_PREFIX)))
        .group_by(account)
    )
    found = {}
    for name, total in rows:
        if name.startswith(LOYALTY_PREFIX):
            found["loyalty", name.removeprefix(LOYALTY_PREFIX)] = int(total)
        else:
            found["gift", name.removeprefix(GIFT_PREFIX)] = -int(total)
    return found


def load_for_update(conn: Connection, card_id: str) -> CardState | None:
    """The loyalty card's state, its row locked until commit."""
    row = conn.execute(
        select(loyalty_cards).where(loyalty_cards.c.card_id == card_id).with_for_update()
    ).first()
    return state_of(row) if row else None


def get(conn: Connection, card_id: str) -> CardState | None:
    row = conn.execute(select(loyalty_cards).where(loyalty_cards.c.card_id == card_id)).first()
    return state_of(row) if row else None


def save(conn: Connection, state: CardState, at: datetime) -> None:
    """Write the loyalty card's state, creating its row the first time."""
    values = _values(state, at)
    stmt = insert(conn, loyalty_cards).values(card_id=state.card_id, **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=["card_id"], set_=values))


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


def _movement_values(m: Movement) -> dict[str, Any]:
    return {
        "kind": m.kind,
        "type": m.type,
        "change": m.change,
        "balance_after": m.after,
        "at": m.at,
        "envelope_at": m.envelope_at,
        "rank": m.rank,
        "customer_id": m.customer_id,
        "event_id": m.event_id,
    }


def movement_of(row: Any) -> Movement:
    """A `card_movements` row (all its columns) as the movement."""
    return Movement(
        card_id=row.card_id,
        kind=row.kind,
        key=row.key,
        type=row.type,
        change=int(row.change),
        after=int(row.balance_after),
        at=row.at,
        envelope_at=row.envelope_at,
        rank=int(row.rank),
        customer_id=row.customer_id,
        event_id=row.event_id,
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
