"""The console's pages of the books: an account's postings, pages of cards and of deliveries,
each keyset-paginated through an index (`models/db/console_queries.py` has the events' and the
overview's)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Select, func, select

from models.db.tables import (
    card_movements,
    events,
    ledger_postings,
    ledger_transactions,
    notifications,
)


def account_postings(
    conn: Connection, account: str, *, before: int | None, limit: int = 50
) -> list[Any]:
    """An account's postings, newest first, older than `before`: each with its transaction's
    key, memo, event and booking time."""
    return list(conn.execute(account_postings_statement(account, before=before, limit=limit)))


def account_postings_statement(account: str, *, before: int | None, limit: int) -> Select[Any]:
    stmt = (
        select(
            ledger_postings.c.seq,
            ledger_postings.c.asset,
            ledger_postings.c.amount,
            ledger_postings.c.transaction_key,
            ledger_transactions.c.event_id,
            ledger_transactions.c.memo,
            ledger_transactions.c.booked_at,
        )
        .join(ledger_transactions, ledger_transactions.c.key == ledger_postings.c.transaction_key)
        .where(ledger_postings.c.account == account)
        .order_by(ledger_postings.c.seq.desc())
        .limit(limit)
    )
    if before is not None:
        stmt = stmt.where(ledger_postings.c.seq < before)
    return stmt


def account_balance(conn: Connection, account: str) -> list[tuple[str, int]]:
    """(asset, balance) of one account."""
    rows = conn.execute(
        select(ledger_postings.c.asset, func.sum(ledger_postings.c.amount))
        .where(ledger_postings.c.account == account)
        .group_by(ledger_postings.c.asset)
        .order_by(ledger_postings.c.asset)
    )
    return [(asset, int(total)) for asset, total in rows]


def notifications_page(
    conn: Connection, *, status: str | None, before: int | None, limit: int = 50
) -> list[Any]:
    """Deliveries newest first, in one status or all, older than `before`."""
    return list(conn.execute(notifications_statement(status=status, before=before, limit=limit)))


def notifications_statement(*, status: str | None, before: int | None, limit: int) -> Select[Any]:
    stmt = select(notifications).order_by(notifications.c.seq.desc()).limit(limit)
    if status is not None:
        stmt = stmt.where(notifications.c.status == status)
    if before is not None:
        stmt = stmt.where(notifications.c.seq < before)
    return stmt


def cards_page(conn: Connection, *, after: str | None, limit: int = 50) -> list[Any]:
    """Cards by id after `after`: (card_id, kind, movements, last movement's time). Read in
    the card movements' key order, one page of cards at a time."""
    return list(conn.execute(cards_statement(after=after, limit=limit)))


def cards_statement(*, after: str | None, limit: int) -> Select[Any]:
    """The query of `cards_page`."""
    stmt = (
        select(
            card_movements.c.card_id,
            func.min(card_movements.c.kind).label("kind"),
            func.count().label("movements"),
            func.max(card_movements.c.at).label("last_at"),
        )
        .group_by(card_movements.c.card_id)
        .order_by(card_movements.c.card_id)
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(card_movements.c.card_id > after)
    return stmt


def event_summaries(conn: Connection, ids: Sequence[str]) -> dict[str, Any]:
    """Type and status of these events, by id (to link movements and postings to them)."""
    if not ids:
        return {}
    rows = conn.execute(
        select(events.c.id, events.c.type, events.c.status).where(events.c.id.in_(list(ids)))
    )
    return {row.id: row for row in rows}
