"""The outbox sweep, a job of every worker: publish the pending events the receiver never
handed to the broker, whose message was lost (see `receiver.outbox` for the receiver's half),
or whose worker died (its lease ran out: `workers.leases`), and the small runner for periodic
jobs."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from sqlalchemy import Connection, Engine

from models.db import eventlog
from receiver.errors import first_line
from receiver.outbox import BATCH, Publish

log = structlog.get_logger(__name__)


def sweep(
    engine: Engine,
    publish: Publish,
    *,
    after: float,
    redispatch_after: float,
    limit: int = 1000,
) -> int:
    """Publish pending events the dispatcher never handed over, whose message was lost, or
    whose worker's lease ran out (`eventlog.claim_due`).

    Returns how many were published. Rows stay locked from selection to the dispatched stamp,
    so concurrent sweepers never publish the same rows at once.
    """
    total = 0
    while True:
        with engine.begin() as conn:
            ids = eventlog.claim_due(
                conn,
                datetime.now(UTC),
                after=after,
                redispatch_after=redispatch_after,
                limit=limit,
            )
            if not ids:
                return total
            publish_claimed(conn, publish, ids)
        for start in range(0, len(ids), BATCH):
            log.info("events_redispatched", event_ids=ids[start : start + BATCH])
        total += len(ids)
        if len(ids) < limit:
            return total


def publish_claimed(conn: Connection, publish: Publish, ids: list[str]) -> None:
    """Hand claimed events to the broker, `BATCH` per message, and stamp them dispatched in the
    caller's transaction, which keeps them locked until every publish went out."""
    for start in range(0, len(ids), BATCH):
        publish(ids[start : start + BATCH])
    eventlog.mark_dispatched(conn, ids, datetime.now(UTC))


class Periodic:
    """Runs `step` every `interval` seconds in a background thread, the first time after
    `first_after` seconds when given (a rare job that should still run soon after start); a
    failing step is logged and tried again at the next tick."""

    def __init__(
        self,
        name: str,
        interval: float,
        step: Callable[[], int],
        *,
        first_after: float | None = None,
    ) -> None:
        self._name = name
        self._interval = interval
        self._first_after = interval if first_after is None else first_after
        self._step = step
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Safe before `start()`: a worker stopped while it waits for its broker shuts down
        without ever having started its jobs."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(10)

    def _run(self) -> None:
        wait = self._first_after
        while not self._stop.wait(wait):
            wait = self._interval
            try:
                count = self._step()
            except Exception as exc:
                log.warning("periodic_failed", job=self._name, error=first_line(exc))
                continue
            if count:
                log.info("periodic_done", job=self._name, count=count)
