"""The events pages: the filtered, paginated list, and one event with everything that
happened to it (what `voucherhook events list` and `events show` print)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from models.console import FilterError, pretty_body, read_cursor, read_filter
from models.db import console_queries, eventlog, ledger_store, notification_store, run_store
from models.routing import handlers_for
from models.statuses import EVENT_STATUSES
from workers.console.auth import Access
from workers.console.web import error, in_thread, page, render

if TYPE_CHECKING:
    from workers.console.app import Console

PAGE = 50


def routes(console: Console) -> list[BaseRoute]:
    async def listing(request: Request, access: Access) -> Response:
        params = request.query_params
        try:
            chosen = read_filter(params)
            before = read_cursor(params.get("before"), "before")
            after = read_cursor(params.get("after"), "after")
        except FilterError as exc:
            return error(request, access, 400, str(exc))
        found = await in_thread(_page, console, chosen, before, after)
        return render(
            request,
            "events.html",
            access,
            chosen=chosen,
            found=found,
            statuses=EVENT_STATUSES,
            scan=console_queries.SEARCH_SCAN,
        )

    async def one(request: Request, access: Access) -> Response:
        event_id = request.query_params.get("id", "")
        shown = await in_thread(_event, console, event_id) if 0 < len(event_id) <= 255 else None
        if shown is None:
            return error(
                request,
                access,
                404,
                f"no event {event_id!r}: find it on the events page (search by an order, a "
                "customer or a voucher code)",
            )
        return render(request, "event.html", access, **shown)

    return [
        Route("/events", page(console.auth, listing), methods=["GET"]),
        Route("/event", page(console.auth, one), methods=["GET"]),
    ]


def _page(
    console: Console, chosen: Any, before: int | None, after: int | None
) -> console_queries.EventsPage:
    with console.engine.connect() as conn:
        return console_queries.events_page(conn, chosen, before=before, after=after, limit=PAGE)


def _event(console: Console, event_id: str) -> dict[str, Any] | None:
    with console.engine.connect() as conn:
        row = eventlog.get(conn, event_id)
        if row is None:
            return None
        runs = run_store.for_event(conn, row.id)
        keys = ledger_store.keys_of_event(conn, row.id)
        transactions = ledger_store.transactions(conn, keys)
        sent = notification_store.for_event(conn, row.id)
    body, is_json = pretty_body(bytes(row.body))
    return {
        "event": row,
        "body": body,
        "body_is_json": is_json,
        "headers": sorted(dict(row.headers or {}).items()),
        "runs": runs,
        "expected": handlers_for(row.type) if row.type else (),
        "transactions": transactions,
        "notifications": sent,
    }
