"""The transactional outbox, the receiver's half: hand committed events to the broker.

An event row is committed with status `pending` and `dispatched_at` already stamped, because
the dispatcher publishes it right after the commit (stamping it in the insert costs nothing;
a second UPDATE per batch would halve the receiver's throughput). When the broker refuses,
the stamp is cleared and the sweep publishes the row after `VOUCHERHOOK_SWEEP_AFTER`; when the
process dies between commit and publish, the sweep takes the row after
`VOUCHERHOOK_REDISPATCH_AFTER`, as it does for a message the broker lost. A task may thus be
published twice; processing is idempotent, so that costs time and never correctness. The
sweep, a worker's job, is `workers.sweep`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

import structlog
from sqlalchemy import Engine

from models.db import eventlog
from receiver.errors import first_line

log = structlog.get_logger(__name__)

Publish = Callable[[list[str]], None]
"""Hands a batch of event ids to the broker; raises when the broker cannot take them."""

BATCH = 100
LINGER = 0.05
MAX_IDS = 1000


class Dispatcher:
    """Publishes freshly committed events from a background thread, off the request path."""

    def __init__(
        self,
        engine: Engine,
        publish: Publish,
        on_failure: Callable[[int], None] = lambda _count: None,
    ) -> None:
        self._engine = engine
        self._publish = publish
        self._on_failure = on_failure
        self._queue: queue.SimpleQueue[list[str] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="outbox-dispatch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def submit(self, ids: list[str]) -> None:
        self._queue.put(ids)

    def _publish_all(self, ids: list[str]) -> list[str]:
        """Publish in chunks; return the ids the broker did not take."""
        for start in range(0, len(ids), BATCH):
            chunk = ids[start : start + BATCH]
            try:
                self._publish(chunk)
            except Exception as exc:
                # Left to the sweep on purpose: it publishes them once the broker is back.
                for rest in range(start, len(ids), BATCH):
                    log.warning(
                        "dispatch_failed",
                        error=first_line(exc),
                        event_ids=ids[rest : rest + BATCH],
                    )
                return ids[start:]
            # An event's first line: stored (committed), and handed to the workers. One line
            # per message, so that a busy receiver logs a few lines a second, not one per event.
            log.info("events_dispatched", event_ids=chunk)
        return []

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            ids = list(first)
            stopping = False
            # Linger a moment so that one message carries many ids: a publish costs far more
            # CPU than an id, and processing (not the answer) waits for it.
            time.sleep(LINGER)
            while len(ids) < MAX_IDS:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                ids.extend(more)
            unpublished = self._publish_all(ids)
            if unpublished:
                self._on_failure(len(unpublished))
                try:
                    with self._engine.begin() as conn:
                        eventlog.unmark_dispatched(conn, unpublished)
                except Exception as exc:
                    # Still stamped: the sweep's VOUCHERHOOK_REDISPATCH_AFTER path takes them.
                    log.warning("unmark_failed", error=first_line(exc))
            if stopping:
                return
