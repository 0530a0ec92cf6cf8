"""Prometheus metrics of the receiver: what each web process counts, and the registry a
scrape reads, with the state read from the database (`receiver.state_metrics`)."""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from collections.abc import Iterable

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


class DeliveryCounts:
    """The deliveries' outcomes and answer times, gathered on the event loop as plain numbers
    and added to the metrics at most `every` seconds later (and before a scrape).

    In multiprocess mode each increment of a metric is a write to a file under a lock, about
    3 µs: three per delivery would add a tenth to the CPU a delivery costs the event loop
    (docs/performance.md). Gathered, they cost one write per outcome and bucket per second. A
    web process killed outright loses its last second of counts."""

    def __init__(self, metrics: ReceiverMetrics, every: float = 1.0) -> None:
        self._metrics = metrics
        self._every = every
        self._outcomes: dict[str, int] = {}
        self._seconds: list[float] = []
        self._flush_at: asyncio.TimerHandle | None = None

    def count(self, outcome: str, seconds: float) -> None:
        self._outcomes[outcome] = self._outcomes.get(outcome, 0) + 1
        self._seconds.append(seconds)
        if self._flush_at is None:
            self._flush_at = asyncio.get_running_loop().call_later(self._every, self.flush)

    def flush(self) -> None:
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        outcomes, self._outcomes = self._outcomes, {}
        seconds, self._seconds = self._seconds, []
        for outcome, count in outcomes.items():
            self._metrics.deliveries.labels(outcome).inc(count)
        observe_many(self._metrics.receive_seconds, seconds)


def observe_many(histogram: Histogram, amounts: Iterable[float]) -> None:
    """`histogram.observe(amount)` for each amount, in one write per bucket touched and one for
    the sum, instead of two per amount. Reaches into the histogram (its bounds, bucket values
    and sum), as prometheus-client has no call for it; tests/unit/test_observe_many.py checks
    that the result is what `observe` gives."""
    bounds: list[float] = histogram._upper_bounds
    counts = [0] * len(bounds)
    total = 0.0
    for amount in amounts:
        counts[bisect_left(bounds, amount)] += 1
        total += amount
    if not any(counts):
        return
    histogram._sum.inc(total)
    for bucket, count in zip(histogram._buckets, counts, strict=True):
        if count:
            bucket.inc(count)
