"""Every hot query reads through an index: its cost stays flat as the log grows.

A log of realistic size (`LOG` events with their handler runs and notifications, made by
`tests.support.large_log`, then ANALYZEd) on PostgreSQL, and each hot query as the code builds
it (`events list` with each filter, replay's selection, the sweeps, the metrics, the
notifications list) planned by EXPLAIN with the values the code passes: no plan may read
`events`, `handler_runs` or `notifications` sequentially. `bench.size` measures the same
queries from 10k to 1M events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, select, text

from models.console import EventFilter, Window
from models.db import (
    batch_sql,
    console_books,
    console_queries,
    eventlog,
    figures,
    notification_store,
    run_store,
    schema,
)
from models.db.engine import make_engine
from models.db.tables import events
from tests.support import large_log
from tests.support.services import postgres_database
from workers.settings import Settings

LOG = 100_000
"""Events in the log: enough that reading a table whole costs far more than an index."""
LARGE = {"events", "handler_runs", "notifications"}
SWEEP_AFTER: float = Settings.model_fields["sweep_after"].default
REDISPATCH_AFTER: float = Settings.model_fields["redispatch_after"].default
EXPIRY: float = Settings.model_fields["lease_expiry"].default
"""The sweep's delays at default settings."""


@dataclass(frozen=True)
class Log:
    engine: Engine
    base: datetime

    def at(self, n: int) -> datetime:
        """When event n was received."""
        return large_log.received_at(self.base, n)


@pytest.fixture(scope="module")
def log() -> Iterator[Log]:
    with postgres_database() as url:
        engine = make_engine(url)
        schema.upgrade(engine)
        base = large_log.base_for(LOG)
        with engine.begin() as conn:
            large_log.fill(conn, base, 1, LOG)
            large_log.analyze(conn)
        yield Log(engine, base)
        engine.dispose()


Query = Callable[[Log], Any]
"""A hot query, as the code builds it, on the log."""


def _listed(**filters: Any) -> Query:
    """`events list`: newest first, 50 by default (workers.commands.events)."""
    return lambda log: eventlog.select_events_statement(
        **{k: f(log) if callable(f) else f for k, f in filters.items()},
        limit=50,
        newest_first=True,
    )


def _replayed(**filters: Any) -> Query:
    """`replay`'s selection (workers.commands.replay): every match, in receipt order."""
    return lambda log: eventlog.select_events_statement(
        **{k: f(log) if callable(f) else f for k, f in filters.items()}
    )


def _console(chosen: EventFilter | Callable[[Log], EventFilter], **page: int) -> Query:
    """The console's events page (workers.console.events): newest first, 50 (and one more),
    a search reading at most SEARCH_SCAN bodies."""
    return lambda log: console_queries.events_statement(
        chosen(log) if callable(chosen) else chosen, limit=51, **page
    )


def _hour_ago(log: Log) -> datetime:
    return log.at(LOG - 3600)


def _half_hour_ago(log: Log) -> datetime:
    return log.at(LOG - 1800)


def _day_ago(log: Log) -> datetime:
    return log.at(LOG - 86_400)


FAILED_IDS = [f"evt_{n}" for n in range(5, large_log.SPECIAL, 40)]
"""The failed events (tests.support.large_log): what `replay --status failed` chooses."""

HOT: dict[str, Query] = {
    "events list": _listed(),
    "events list --type (common)": _listed(event_type="redemption.succeeded"),
    "events list --type (rare)": _listed(event_type="redemption.rollback.succeeded"),
    "events list --type (never stored)": _listed(event_type="voucher.deleted"),
    "events list --status failed": _listed(status="failed"),
    "events list --status pending": _listed(status="pending"),
    "events list --status quarantined": _listed(status="quarantined"),
    "events list --status processed": _listed(status="processed"),
    "events list --since (an hour)": _listed(since=_hour_ago),
    "events list --since (a day)": _listed(since=_day_ago),
    "events list --type --status": _listed(event_type="redemption.succeeded", status="failed"),
    "events list --type --since": _listed(event_type="redemption.succeeded", since=_hour_ago),
    "events list --status --since": _listed(status="failed", since=_day_ago),
    "replay --status failed": _replayed(status="failed"),
    "replay --type --status failed": _replayed(event_type="redemption.succeeded", status="failed"),
    "replay --since --until": _replayed(since=_hour_ago, until=_half_hour_ago),
    "replay --type --since --until": _replayed(
        event_type="redemption.succeeded", since=_hour_ago, until=_half_hour_ago
    ),
    "replay --status failed --since": _replayed(status="failed", since=_day_ago),
    "replay --event-id": _replayed(ids=lambda _log: FAILED_IDS),
    "replay: the handler runs of the selection": lambda _log: run_store.statuses_statement(
        FAILED_IDS
    ),
    "sweep: events due": lambda _log: eventlog.claim_due_statement(
        datetime.now(UTC),
        after=SWEEP_AFTER,
        redispatch_after=REDISPATCH_AFTER,
        limit=1000,
    ),
    "sweep: events whose message may be lost": lambda _log: eventlog.unqueued_statement(
        datetime.now(UTC), EXPIRY, REDISPATCH_AFTER
    ).limit(1000),
    "sweep: stale notifications": lambda _log: notification_store.stale_statement(
        datetime.now(UTC), datetime.now(UTC) - timedelta(seconds=REDISPATCH_AFTER)
    ),
    "metrics: counts": lambda _log: eventlog.counts_statement(),
    "metrics: backlog": lambda _log: eventlog.backlog_statements()[0],
    "metrics: never dispatched": lambda _log: eventlog.backlog_statements()[1],
    "metrics: oldest pending": lambda _log: eventlog.backlog_statements()[2],
    "metrics: newest received": lambda _log: eventlog.last_received_statement(),
    "metrics: held rollbacks": lambda _log: run_store.held_count_statement(),
    "metrics: computed figures": lambda _log: figures.computed_statement(),
    "notifications list": lambda _log: notification_store.listing_statement(
        status=None, event_id=None, limit=50
    ),
    "notifications list --status failed": lambda _log: notification_store.listing_statement(
        status="failed", event_id=None, limit=50
    ),
    "notifications list --status pending": lambda _log: notification_store.listing_statement(
        status="pending", event_id=None, limit=50
    ),
    "notifications list --event-id": lambda _log: notification_store.listing_statement(
        status=None, event_id="evt_99000", limit=50
    ),
    "console: events": _console(EventFilter()),
    "console: events, an older page": _console(EventFilter(), before=LOG // 2),
    "console: events, a newer page": _console(EventFilter(), after=LOG // 2),
    "console: events ?status=failed, an older page": _console(
        EventFilter(status="failed"), before=LOG // 2
    ),
    "console: events ?type ?since": _console(
        lambda log: EventFilter(type="redemption.succeeded", since=_hour_ago(log))
    ),
    "console: events ?status ?since ?until": _console(
        lambda log: EventFilter(status="processed", since=_hour_ago(log), until=_half_hour_ago(log))
    ),
    "console: events ?q (a search)": _console(EventFilter(q="r_nowhere")),
    "console: events ?q ?status=failed": _console(EventFilter(q="r_nowhere", status="failed")),
    "console: events ?q, an older stretch": _console(EventFilter(q="r_nowhere"), before=LOG // 2),
    "console: activity, last 3 hours per minute": lambda log: console_queries.activity_statement(
        Window(log.at(LOG), 60, 180)
    ),
    "console: notifications ?status=failed, an older page": (
        lambda _log: console_books.notifications_statement(
            status="failed", before=LOG // 2, limit=50
        )
    ),
    "console: notifications, an older page": lambda _log: console_books.notifications_statement(
        status=None, before=LOG // 2, limit=50
    ),
}


def explain(conn: Connection, statement: Any, form: str = "JSON", *, analyze: bool = False) -> Any:
    """The plan of `statement` with the values it carries, as the driver sends them; with
    `analyze`, as it ran (the statement is executed: roll back what it writes)."""
    compiled = statement.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    options = f"ANALYZE, FORMAT {form}" if analyze else f"FORMAT {form}"
    found = conn.exec_driver_sql(f"EXPLAIN ({options}) {compiled.string}", compiled.params)
    return found.scalar_one() if form == "JSON" else "\n".join(row[0] for row in found)


def sequential_scans(plan: Any) -> set[str]:
    """The tables a plan (EXPLAIN's JSON) reads sequentially."""
    scans: set[str] = set()
    nodes = [plan[0]["Plan"]]
    while nodes:
        node = nodes.pop()
        if node["Node Type"] == "Seq Scan":
            scans.add(node["Relation Name"])
        nodes.extend(node.get("Plans", ()))
    return scans


@pytest.mark.parametrize("name", list(HOT))
def test_a_hot_query_reads_no_large_table_whole(log: Log, name: str) -> None:
    statement = HOT[name](log)
    with log.engine.connect() as conn:
        scanned = sequential_scans(explain(conn, statement)) & LARGE
        shown = explain(conn, statement, "TEXT") if scanned else ""
    assert not scanned, (
        f"{name} reads {', '.join(sorted(scanned))} sequentially on a log of {LOG} events: "
        f"its cost grows with the log. Give it an index (a new migration and the Index in "
        f"models/db/tables.py) or rewrite it. The plan:\n{shown}"
    )


def sorts(plan: Any) -> bool:
    nodes = [plan[0]["Plan"]]
    while nodes:
        node = nodes.pop()
        if node["Node Type"] in ("Sort", "Incremental Sort"):
            return True
        nodes.extend(node.get("Plans", ()))
    return False


@pytest.mark.parametrize("status", ["failed", "pending", "sent"])
def test_a_page_of_deliveries_in_one_status_reads_that_page_only(log: Log, status: str) -> None:
    """Failed deliveries pile up with the log (addresses that bounce): the newest page of them
    is read in index order, not found among them all and sorted."""
    statement = notification_store.listing_statement(status=status, event_id=None, limit=50)
    with log.engine.connect() as conn:
        plan = explain(conn, statement)
        shown = explain(conn, statement, "TEXT") if sorts(plan) else ""
    assert not sorts(plan), f"notifications list --status {status} sorts every match:\n{shown}"


def rows_read(plan: Any, table: str) -> int:
    """Rows an executed plan (EXPLAIN ANALYZE's JSON) read from `table`, kept or filtered out."""
    total = 0
    nodes = [plan[0]["Plan"]]
    while nodes:
        node = nodes.pop()
        if node.get("Relation Name") == table:
            kept = node["Actual Rows"] + node.get("Rows Removed by Filter", 0)
            total += kept * node["Actual Loops"]
        nodes.extend(node.get("Plans", ()))
    return total


@pytest.mark.parametrize("status", [None, "processed"])
def test_a_console_search_reads_a_bounded_stretch_of_the_log(log: Log, status: str | None) -> None:
    """A term found in no body: the search reads its stretch (`scan` events) and stops, instead
    of testing every body of the log while looking for a page of matches."""
    scan = 1000
    statement = console_queries.events_statement(
        EventFilter(q="in-no-body", status=status), limit=51, scan=scan
    )
    with log.engine.connect() as conn:
        plan = explain(conn, statement, analyze=True)
        shown = explain(conn, statement, "TEXT")
    read = rows_read(plan, "events")
    assert scan <= read <= 2 * scan, f"the search read {read} events of {LOG}:\n{shown}"


def test_a_send_claim_reads_the_deliveries_it_takes_only(log: Log) -> None:
    """A batch plans its deliveries at one moment: thousands waiting with the same `due_at`.
    A sender's claim (the first 16 due, by due_at then seq) reads those 16 in index order,
    instead of reading and sorting every delivery waiting at each claim."""
    waiting, take = 5000, 16
    now = datetime.now(UTC)
    with log.engine.connect() as conn, conn.begin() as transaction:
        conn.execute(
            text(
                "INSERT INTO notifications (event_id, source_id, channel, recipient, status, "
                "body, created_at, due_at) SELECT 'e_claim_' || n, 'r_claim_' || n, 'webhook', "
                "'https://hooks.example/x', 'pending', '{}', :now, :now "
                "FROM generate_series(1, :waiting) AS n"
            ),
            {"now": now, "waiting": waiting},
        )
        conn.execute(text("ANALYZE notifications"))
        statement = notification_store.due_statement("webhook", take, due_by=now)
        plan = explain(conn, statement, analyze=True)
        shown = explain(conn, statement, "TEXT")
        transaction.rollback()
    read = rows_read(plan, "notifications")
    assert read == take and not sorts(plan), (
        f"a claim of {take} read {read} of {waiting} deliveries waiting:\n{shown}"
    )


def test_a_lease_reads_the_events_it_leases_only(log: Log) -> None:
    """A backlog built up since the statistics were taken (they say few events are pending):
    a lease of a message's 100 events finds them by id, instead of reading every pending
    event through the outbox index and testing each against the ids."""
    backlog, ids = 5000, [f"evt_backlog_{n}" for n in range(2000, 2100)]
    with log.engine.connect() as conn, conn.begin() as transaction:
        conn.execute(
            text(
                "INSERT INTO events (id, type, status, received_at, body, headers) "
                "SELECT 'evt_backlog_' || n, 'redemption.succeeded', 'pending', now(), "
                "convert_to('{}', 'UTF8'), CAST('{}' AS json) FROM generate_series(1, :n) AS n"
            ),
            {"n": backlog},
        )
        statement = batch_sql.lease_statement(
            events, events.c.id, ids, {"lease_until": datetime.now(UTC), "leased_by": "w"}
        )
        plan = explain(conn, statement, analyze=True)
        shown = explain(conn, statement, "TEXT")
        transaction.rollback()
    read = rows_read(plan, "events")
    assert read <= 2 * len(ids), (
        f"a lease of {len(ids)} events read {read} rows with {backlog} pending:\n{shown}"
    )


def test_a_query_without_an_index_is_caught(log: Log) -> None:
    """The check above sees a sequential scan when there is one (nothing indexes the remote
    address)."""
    with log.engine.connect() as conn:
        plan = explain(conn, select(events.c.id).where(events.c.remote_addr == "203.0.113.7"))
    assert sequential_scans(plan) == {"events"}


def test_the_log_is_as_large_as_claimed(log: Log) -> None:
    with log.engine.connect() as conn:
        stored = conn.execute(text("SELECT reltuples FROM pg_class WHERE relname = 'events'"))
        assert stored.scalar_one() == pytest.approx(LOG, rel=0.05)
