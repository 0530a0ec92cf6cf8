"""Prometheus metrics of the receiver, in a registry of its own per app."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from models.db import eventlog


class ReceiverMetrics:
    def __init__(self, engine: Engine) -> None:
        self.registry = CollectorRegistry()
        self.deliveries = Counter(
            "voucherhook_deliveries",
            "Webhook deliveries received, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.receive_seconds = Histogram(
            "voucherhook_receive_seconds",
            "Time from request start to answer, for deliveries",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.dispatch_failures = Counter(
            "voucherhook_dispatch_failures",
            "Events the receiver could not hand to the broker (the sweep retries them)",
            registry=self.registry,
        )
        self.registry.register(EventLogCollector(engine))


class EventLogCollector(Collector):
    """Figures read from the database at scrape time, so every process reports the same."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("voucherhook_database_up", "1 when the database answered")
        try:
            with self._engine.connect() as conn:
                counts = eventlog.counts(conn)
                pending, undispatched, oldest = eventlog.backlog(conn, datetime.now(UTC))
                latency = eventlog.processing_latency(conn)
        except Exception:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        by_status = GaugeMetricFamily(
            "voucherhook_events", "Stored events by type and status", labels=["type", "status"]
        )
        for event_type, status, count in counts:
            by_status.add_metric([event_type or "", status], count)
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
            "Age of the oldest pending event",
            value=oldest,
        )
        processing = GaugeMetricFamily(
            "voucherhook_processing_latency_seconds",
            "Receipt to processed, over the last 1000 processed events",
            labels=["quantile"],
        )
        for quantile, seconds in latency.items():
            processing.add_metric([quantile], seconds)
        yield processing
