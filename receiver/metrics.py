"""Prometheus metrics of the receiver: what each web process counts, and the registry a
scrape reads, with the state read from the database (`receiver.state_metrics`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, values
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import Engine

from receiver.state_metrics import DatabaseCollector

DELIVERY_OUTCOMES = (
    "accepted",
    "duplicate",
    "ignored",
    "quarantined",
    "unauthorized",
    "too_large",
    "timeout",
    "busy",
    "unavailable",
)
"""How a delivery was answered: each outcome is a series from the start, at 0, so that a
rate over it is defined before the first one happens."""


class ReceiverMetrics:
    """The counters of one web process, and `registry`, what its /metrics answers.

    With `metrics_dir` (prometheus-client's multiprocess mode: `PROMETHEUS_MULTIPROC_DIR`,
    set by `voucherhook serve` for every process it starts), each process keeps its counts in
    a file of its own there and a scrape adds up the files: whichever process of `serve
    --workers N` answers, it answers for all of them (and for a worker `serve` runs beside
    them), and a process that died still counts. Without it, the process counts alone.
    """

    def __init__(
        self, engine: Engine, *, metrics_dir: str | None = None, quiet_after: float | None = None
    ) -> None:
        if metrics_dir and not getattr(values.ValueClass, "_multiprocess", False):
            raise RuntimeError(
                "PROMETHEUS_MULTIPROC_DIR must be set before prometheus_client is imported"
            )
        self.registry = CollectorRegistry()
        live = None if metrics_dir else self.registry
        self.deliveries = Counter(
            "voucherhook_deliveries",
            "Webhook deliveries received, by how they were answered",
            ["outcome"],
            registry=live,
        )
        for outcome in DELIVERY_OUTCOMES:
            self.deliveries.labels(outcome)
        self.receive_seconds = Histogram(
            "voucherhook_receive_seconds",
            "Time from request start to answer, for deliveries",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=live,
        )
        self.dispatch_failures = Counter(
            "voucherhook_dispatch_failures",
            "Events the receiver could not hand to the broker (the sweep retries them)",
            registry=live,
        )
        if metrics_dir:
            MultiProcessCollector(self.registry, path=metrics_dir)  # type: ignore[no-untyped-call]
        self.registry.register(DatabaseCollector(engine, quiet_after))
