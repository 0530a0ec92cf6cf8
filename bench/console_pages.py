"""What the operator console's pages ask of the database, for `bench.size`: each page's
queries through the functions the pages call (`workers/console/`), uncached (the overview's
ten-second cache would hide the cost)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from models.console import EventFilter, Window
from models.db import console_books, console_queries
from tests.support import large_log
from workers.console.app import Console
from workers.settings import Settings


def console_operations(
    engine: Engine, settings: Settings, base: datetime, size: int
) -> dict[str, Callable[[], Any]]:
    console = Console(settings, engine)
    # The log's last event was received an hour before the log was filled: "now" is then.
    last = large_log.received_at(base, size)

    def now() -> datetime:
        return last + (datetime.now(UTC) - started)

    started = datetime.now(UTC)
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

    def whole(width: int, buckets: int) -> Callable[[], Any]:
        def run() -> Any:
            with engine.connect() as conn:
                return console_queries.activity(conn, Window(now(), width, buckets))

        return run

    return {
        # A chart's whole window is counted at most every RECOUNT seconds per web process.
        "console: activity, 3 h per minute (whole)": whole(60, 180),
        "console: activity, 7 days per hour (whole)": whole(3600, 168),
        # Every refresh (at most every 10 s) in between: the new buckets and the counters.
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
