"""The books: ledger accounts and their postings, back to the events that booked them; cards,
each with its balance over time, its movements and its drift from what Voucherify reported
(what `voucherhook ledger balances`, `loyalty`, `giftcard` and `cards` print)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from models.amounts import minor_per_unit
from models.cards import chain, report
from models.charts import Series, line_chart
from models.console import FilterError, read_cursor
from models.db import card_store, console_books, ledger_store
from receiver.admin import Cached
from workers.console.auth import Access
from workers.console.web import error, in_thread, page, render

if TYPE_CHECKING:
    from workers.console.app import Console

PAGE = 50


def routes(console: Console) -> list[BaseRoute]:
    # Balances sum every posting (as `ledger balances` does): computed at most every 10 s.
    balances = Cached(lambda: _balances(console), ttl=10.0)

    async def ledger(request: Request, access: Access) -> Response:
        return render(request, "ledger.html", access, accounts=await balances.get())

    async def account(request: Request, access: Access) -> Response:
        name = request.query_params.get("name", "")
        try:
            before = read_cursor(request.query_params.get("before"), "before")
        except FilterError as exc:
            return error(request, access, 400, str(exc))
        if not 0 < len(name) <= 255:
            return error(request, access, 400, "name the account: ?name=sales")
        totals, postings = await in_thread(_account, console, name, before)
        return render(
            request,
            "account.html",
            access,
            name=name,
            totals=totals,
            postings=postings,
            older=postings[-1].seq if len(postings) == PAGE else None,
        )

    async def cards(request: Request, access: Access) -> Response:
        after = request.query_params.get("after") or None
        wanted = (request.query_params.get("id") or "").strip()
        if wanted:
            return await card_page(request, access, wanted)
        rows = await in_thread(_cards, console, after[:255] if after else None)
        return render(
            request,
            "cards.html",
            access,
            cards=rows,
            next_after=rows[-1].card_id if len(rows) == PAGE else None,
        )

    async def card_page(request: Request, access: Access, card_id: str) -> Response:
        shown = await in_thread(_card, console, card_id[:255])
        if shown is None:
            return error(
                request,
                access,
                404,
                f"no card {card_id!r}: no processed event moved it (card ids are voucher ids, v_…)",
            )
        return render(request, "card.html", access, **shown)

    async def card(request: Request, access: Access) -> Response:
        return await card_page(request, access, request.query_params.get("id", ""))

    return [
        Route("/ledger", page(console.auth, ledger), methods=["GET"]),
        Route("/ledger/account", page(console.auth, account), methods=["GET"]),
        Route("/cards", page(console.auth, cards), methods=["GET"]),
        Route("/card", page(console.auth, card), methods=["GET"]),
    ]


def _balances(console: Console) -> list[tuple[str, str, int]]:
    with console.engine.connect() as conn:
        return ledger_store.balances(conn)


def _account(
    console: Console, name: str, before: int | None
) -> tuple[list[tuple[str, int]], list[Any]]:
    with console.engine.connect() as conn:
        totals = console_books.account_balance(conn, name)
        postings = console_books.account_postings(conn, name, before=before, limit=PAGE)
    return totals, postings


def _cards(console: Console, after: str | None) -> list[Any]:
    with console.engine.connect() as conn:
        return console_books.cards_page(conn, after=after, limit=PAGE)


def _card(console: Console, card_id: str) -> dict[str, Any] | None:
    with console.engine.connect() as conn:
        moves = card_store.movements(conn, card_id)
        if not moves:
            return None
        kind = moves[0].kind
        state = card_store.get(conn, card_id) if kind == "loyalty" else None
        booked = card_store.ledger_balance(conn, kind, card_id)
        ordered = chain(m for m in moves if m.kind == kind)
        linked = console_books.event_summaries(conn, sorted({m.event_id for m in ordered}))
    books = report(card_id, kind, ordered, booked)
    return {
        "card_id": card_id,
        "kind": kind,
        "state": state,
        "books": books,
        "movements": list(reversed(ordered)),
        "events": linked,
        "chart": _chart(kind, ordered, console.currency),
        "unit": "points" if kind == "loyalty" else console.currency,
    }


def _chart(kind: str, ordered: list[Any], currency: str) -> str:
    """The reported balance after each movement, over time (steps: it holds until the next)."""
    start: datetime = ordered[0].at
    end: datetime = ordered[-1].at
    span = max((end - start).total_seconds(), 1.0)
    minor = 1 if kind == "loyalty" else minor_per_unit(currency)
    values = [((m.at - start).total_seconds(), m.after / minor) for m in ordered]
    unit = "points" if kind == "loyalty" else currency
    labels = [(0.0, start.strftime("%Y-%m-%d")), (span, end.strftime("%Y-%m-%d"))]
    return line_chart(
        [Series(f"balance ({unit})", values, "balance", step=True)],
        x_range=(0.0, span),
        x_labels=labels if span > 1 else labels[:1],
        title=f"the card's reported balance over time ({unit})",
    )
