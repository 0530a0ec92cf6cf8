"""The state of the deployment as the database holds it, read at scrape time: the same in
every web process, whatever process did the work, and across restarts.

Every query is bounded whatever the size of the log (tests/test_query_plans.py): counts kept
by triggers, the first rows of an index, a figure a worker computed (`workers.books_check`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from models import metric_labels
from models.db import eventlog, figures, reconcile_store, run_store
from models.statuses import EVENT_STATUSES


class DatabaseCollector(Collector):
    def __init__(self, engine: Engine, quiet_after: float | None = None) -> None:
        self._engine = engine
        self._quiet_after = quiet_after

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self._quiet_after is not None:
            yield GaugeMetricFamily(
                "voucherhook_quiet_alert_after_seconds",
                "How long without a new event is unusual here (VOUCHERHOOK_QUIET_ALERT_AFTER), "
                "for the alert rule that compares it with voucherhook_last_received_timestamp_"
                "seconds",
                value=self._quiet_after,
            )
        up = GaugeMetricFamily("voucherhook_database_up", "1 when the database answered")
        now = datetime.now(UTC)
        try:
            with self._engine.connect() as conn:
                counts = metric_labels.fold_counts(eventlog.counts(conn))
                pending, undispatched, oldest = eventlog.backlog(conn, now)
                held = run_store.held_count(conn)
                newest = eventlog.last_received(conn)
                computed = figures.computed(conn)
                reconciled = reconcile_store.last_run(conn)
        except Exception:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        by_status = GaugeMetricFamily(
            "voucherhook_events",
            "Stored events by type (types without handlers as `other`) and status",
            labels=["type", "status"],
        )
        # Every status of every type that has events: a status that empties reads 0, and a
        # rule over `status="failed"` has a series before the first failure.
        seen = sorted({event_type for event_type, _status in counts})
        for event_type in seen:
            for status in EVENT_STATUSES:
                by_status.add_metric([event_type, status], counts.get((event_type, status), 0))
        yield by_status
        yield GaugeMetricFamily(
            "voucherhook_backlog_events", "Events stored but not processed yet", value=pending
        )
        yield GaugeMetricFamily(
            "voucherhook_undispatched_events",
            "Pending events never handed to the broker",
            value=undispatched,
        )
        yield GaugeMetricFamily(
            "voucherhook_oldest_pending_seconds",
            "Age of the oldest pending event that is not a held rollback (0: none)",
            value=oldest,
        )
        yield GaugeMetricFamily(
            "voucherhook_held_rollbacks",
            "Rollbacks waiting for their original redemption (ledger runs held)",
            value=held,
        )
        if newest is not None:
            yield GaugeMetricFamily(
                "voucherhook_last_received_timestamp_seconds",
                "When the newest stored event arrived (Unix time)",
                value=newest.timestamp(),
            )
        if figures.CARDS_DRIFTING in computed:
            drifting, at = computed[figures.CARDS_DRIFTING]
            yield GaugeMetricFamily(
                "voucherhook_cards_drifting",
                "Loyalty and gift cards whose ledger balance disagrees with Voucherify's, or "
                "whose history has a gap (as `voucherhook cards --drift` lists them)",
                value=drifting,
            )
            yield GaugeMetricFamily(
                "voucherhook_cards_checked_timestamp_seconds",
                "When voucherhook_cards_drifting was computed (Unix time)",
                value=at.timestamp(),
            )
        yield from _reconciled(reconciled)


def _reconciled(run: reconcile_store.Run | None) -> Iterator[GaugeMetricFamily]:
    """The last reconciliation with Voucherify's API (`voucherhook reconcile`); zeros before
    the first, so that the alert rules have their series."""
    counts = (run.here, run.missing, run.differing, run.drifting) if run else (0, 0, 0, 0)
    here, missing, differing, drifting = counts
    if run is not None and run.finished_at is not None:  # always, for a run `last_run` gives
        yield GaugeMetricFamily(
            "voucherhook_reconcile_last_run_timestamp_seconds",
            "When the last reconciliation with Voucherify's API ended (Unix time)",
            value=run.finished_at.timestamp(),
        )
    found = GaugeMetricFamily(
        "voucherhook_reconcile_objects",
        "What the last reconciliation found: objects Voucherify recorded that were already "
        "here, missing (then stored and booked) or differing (reported, not changed)",
        labels=["verdict"],
    )
    for verdict, count in (("here", here), ("missing", missing), ("differing", differing)):
        found.add_metric([verdict], count)
    yield found
    yield GaugeMetricFamily(
        "voucherhook_reconcile_cards_drifting",
        "Cards the last reconciliation checked whose balance in Voucherify differs from the "
        "ledger's",
        value=drifting,
    )
    yield GaugeMetricFamily(
        "voucherhook_reconcile_failed",
        "1 when the last reconciliation ended on an error (its log line says which)",
        value=1 if run is not None and run.error else 0,
    )
    yield GaugeMetricFamily(
        "voucherhook_webhook_silent",
        "1 when the last reconciliation found objects missing and no delivery for longer than "
        "VOUCHERHOOK_SILENCE_AFTER: the webhook is probably disabled (runbook §9)",
        value=1 if run is not None and run.silent_since else 0,
    )
