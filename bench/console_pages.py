"""What the operator console's pages ask of the database, for `bench.size`: each page's
queries through the functions the pages call (`workers/console/`), uncached (the overview's
ten-second cache would hide the cost)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from models.console import EventFilter
from models.db import console_books, console_queries
from tests.support import large_log
from workers.console.app import Console
from workers.settings import Settings


def console_operations(
    engine: Engine, settings: Settings, base: datetime, size: int
) -> dict[str, Callable[[], Any]]:
    console = Console(settings, engine)
    hour = large_log.received_at(base, size - 3600)
    middle = size // 2  # a page deep in the log: keyset, so no deeper than the first

    def page(chosen: EventFilter, **at: int) -> Callable[[], Any]:
        def run() -> Any:
            with engine.connect() as conn:
                return console_queries.events_page(conn, chosen, **at)

        return run

    def notes(status: str | None) -> Callable[[], Any]:
        def run() -> Any:
            with engine.connect() as conn:
                console_queries.delivery_counts(conn)
                return console_books.notifications_page(conn, status=status, before=None)

        return run

    return {
        "console: overview (charts, attention)": console._overview,
        "console: events (newest page)": page(EventFilter()),
        "console: events (a page in the middle)": page(EventFilter(), before=middle),
        "console: events ?status=failed": page(EventFilter(status="failed")),
        "console: events ?type ?since (hour)": page(
            EventFilter(type="redemption.succeeded", since=hour)
        ),
        # A term in no body: the search reads its whole bounded stretch (SEARCH_SCAN events).
        "console: events ?q (in no body)": page(EventFilter(q="no-such-voucher-code")),
        "console: events ?q (in every body)": page(EventFilter(q="redemption")),
        "console: notifications (counts, newest)": notes(None),
        "console: notifications ?status=failed": notes("failed"),
    }
