"""What the workers count and time, for Prometheus.

Each process counts its own work; `voucherhook worker` runs its pool with
`PROMETHEUS_MULTIPROC_DIR` set (`workers.metric_files`), so every pool process writes its
counts to a file of its own and the worker's /metrics (`workers.metrics_server`) adds them up.
Counts start at 0 when the worker starts; Prometheus' `rate()` and `increase()` take restarts
in their stride. Every label combination exists from the start, at 0.

Counted only once what they count is committed, so a batch run again after a failed
transaction does not count twice.
"""

from __future__ import annotations

import collections
from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Histogram

from models.metric_labels import (
    HANDLER_NAMES,
    HANDLER_OUTCOMES,
    NOTIFICATION_OUTCOMES,
    RETRIED,
)
from models.notifications import Channel
from receiver.metrics import observe_many

REGISTRY = CollectorRegistry()
"""The metrics of this process alone (what a test in one process reads); a worker's /metrics
reads the files of all its processes instead."""

CHANNELS: tuple[Channel, ...] = get_args(Channel)

PROCESSING_LATENCY = Histogram(
    "voucherhook_processing_latency_seconds",
    "Seconds from an event's receipt to its being processed (every handler done)",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600, 21600),
    registry=REGISTRY,
)
HANDLER_SECONDS = Histogram(
    "voucherhook_handler_duration_seconds",
    "Seconds a handler took per event (a batch's time shared among its events)",
    ["handler"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
HANDLER_RUNS = Counter(
    "voucherhook_handler_runs",
    "A handler's runs on events, by outcome: done, held, retry (failed, to be tried again), "
    "failed (for good)",
    ["handler", "outcome"],
    registry=REGISTRY,
)
RETRIES = Counter(
    "voucherhook_retries",
    "Retries scheduled after a failed attempt, of an event's handler or of a notification",
    ["kind"],
    registry=REGISTRY,
)
REDISPATCHED = Counter(
    "voucherhook_redispatched",
    "Events and notifications the sweep handed to the broker again (never dispatched, message "
    "lost, or held by a worker that died)",
    ["kind"],
    registry=REGISTRY,
)
LEDGER_CONFLICTS = Counter(
    "voucherhook_ledger_conflicts",
    "Ledger transactions refused because their key was booked with other postings",
    registry=REGISTRY,
)
NOTIFICATIONS = Counter(
    "voucherhook_notifications",
    "Notification sends, by channel and outcome: sent, retry (refused, to be tried again), "
    "failed (for good)",
    ["channel", "outcome"],
    registry=REGISTRY,
)
NOTIFICATION_SECONDS = Histogram(
    "voucherhook_notification_send_seconds",
    "Seconds one notification took to send (an SMTP transaction, a webhook POST)",
    ["channel"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)

for _handler in HANDLER_NAMES:
    HANDLER_SECONDS.labels(_handler)
    for _outcome in HANDLER_OUTCOMES:
        HANDLER_RUNS.labels(_handler, _outcome)
for _kind in RETRIED:
    RETRIES.labels(_kind)
    REDISPATCHED.labels(_kind)
for _channel in CHANNELS:
    NOTIFICATION_SECONDS.labels(_channel)
    for _outcome in NOTIFICATION_OUTCOMES:
        NOTIFICATIONS.labels(_channel, _outcome)


def handler_ran(handler: str, outcomes: list[str], seconds: float) -> None:
    """A handler's batch committed: each event's outcome, and the batch's time shared. A few
    writes per batch, not a few per event (each is a write to a file: `observe_many`)."""
    if not outcomes:
        return
    for outcome, count in collections.Counter(outcomes).items():
        HANDLER_RUNS.labels(handler, outcome).inc(count)
    observe_many(HANDLER_SECONDS.labels(handler), [seconds / len(outcomes)] * len(outcomes))


def notification_done(channel: str, result: str, seconds: float) -> None:
    """One send ended: sent, retry or failed."""
    NOTIFICATIONS.labels(channel, result).inc()
    NOTIFICATION_SECONDS.labels(channel).observe(seconds)
    if result == "retry":
        RETRIES.labels("notification").inc()
