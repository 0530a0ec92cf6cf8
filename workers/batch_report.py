"""What a committed batch of events did, told to the operators: each handler's runs counted,
and each event's new status counted (`workers.metrics`) and logged with its id (one line for
the batch's processed events, one per event failed or waiting), so that an event's way from
receipt to its last notification is one grep."""

from __future__ import annotations

from datetime import UTC, datetime

import structlog

from receiver.metrics import observe_many
from workers import metrics

log = structlog.get_logger(__name__)


def committed(
    runs: list[tuple[str, list[str], float]],
    settled: list[tuple[str, str, str | None]],
    received: dict[str, datetime],
) -> None:
    """`runs`: (handler, each event's outcome, seconds), emptied once counted; `settled`:
    (event id, status, error); `received`: each event's receipt time."""
    for handler, outcomes, seconds in runs:
        metrics.handler_ran(handler, outcomes, seconds)
    runs.clear()
    now = datetime.now(UTC)
    latencies = []
    processed = []
    for event_id, status, error in settled:
        if status == "processed":
            latencies.append(max((now - received[event_id]).total_seconds(), 0.0))
            processed.append(event_id)
        elif status == "failed":
            log.warning(
                "event_failed",
                event_id=event_id,
                error=(error or "")[:500],
                see=f"voucherhook events show {event_id}",
            )
        else:
            log.info("event_pending", event_id=event_id, waiting=error)
    if processed:
        log.info("events_processed", event_ids=processed)
    observe_many(metrics.PROCESSING_LATENCY, latencies)
