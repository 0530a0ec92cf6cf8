"""SQL only the tests need, over the product's tables: every stored card, an emptied ledger."""

from __future__ import annotations

from sqlalchemy import Connection, delete, select

from models.db import card_store
from models.db.tables import (
    ledger_holds,
    ledger_postings,
    ledger_redemptions,
    ledger_transactions,
    loyalty_cards,
)
from models.loyalty import CardState


def all_cards(conn: Connection) -> list[CardState]:
    """Every stored card, by card id, read as the product reads one."""
    rows = conn.execute(select(loyalty_cards).order_by(loyalty_cards.c.card_id))
    return [card_store.state_of(row) for row in rows]


def clear_ledger(conn: Connection) -> None:
    """Delete the ledger's rows (the cards stay), as a person editing the books by hand might."""
    for table in (ledger_postings, ledger_transactions, ledger_holds, ledger_redemptions):
        conn.execute(delete(table))
