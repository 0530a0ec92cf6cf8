"""Leases: what a live worker holds, written in the database, so that what a dead one held is
dispatched again within seconds (see docs/reliability.md, "When a worker dies").

A worker's main process keeps the list of the task messages it took from the broker and has not
finished: running, waiting for a pool process (Celery's `worker.state.requests`), or waiting
for a retry's countdown (received, not acknowledged). A thread of that process leases their
events and notifications until now + VOUCHERHOOK_LEASE_EXPIRY as soon as a message arrives (that
message's ids only: renewing everything held at each arrival wrote each event's row several
times), and renews every lease it holds every third of that. A worker that dies (SIGKILL, out
of memory, its machine gone) renews nothing: its leases run out, and the sweep of any live
worker hands those events and notifications to the broker again. A slow batch of a live worker
is renewed however long it runs, so it is never taken from it.

The lease is one UPDATE per message taken (a message carries up to 100 ids) and one per
renewal, from a thread beside the consumer: the tasks themselves write nothing more.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from celery.signals import task_received
from celery.worker import state
from sqlalchemy import Engine

from models.db import eventlog, notification_store
from receiver.errors import first_line
from workers.celery_app import PROCESS_EVENTS, SEND_NOTIFICATIONS

log = structlog.get_logger(__name__)

Held = tuple[list[str], list[int]]
"""Event ids and notification ids."""


def held_by_this_worker() -> Held:
    """The ids in the task messages this worker process took and has not finished."""
    for _ in range(3):
        try:
            requests = list(state.requests.values())
            break
        except RuntimeError:  # changed during the copy by the consumer: copy again
            continue
    else:
        requests = []
    return _ids(requests)


def _ids(requests: Iterable[Any]) -> Held:
    event_ids: list[str] = []
    notification_ids: list[int] = []
    for request in requests:
        args = getattr(request, "args", None) or ()
        ids = args[0] if args and isinstance(args[0], list) else []
        if request.name == PROCESS_EVENTS:
            event_ids.extend(str(i) for i in ids)
        elif request.name == SEND_NOTIFICATIONS:
            notification_ids.extend(int(i) for i in ids)
    return event_ids, notification_ids


class Heartbeat:
    """Leases what `held` answers, at once when `wake()` is called (a message arrived) and
    every `expiry / 3` seconds; each lease runs until now + `expiry`."""

    def __init__(
        self, engine: Engine, expiry: float, held: Callable[[], Held] = held_by_this_worker
    ) -> None:
        self.holder = f"{socket.gethostname()}:{os.getpid()}"
        self._engine = engine
        self._expiry = expiry
        self._held = held
        self._wake = threading.Event()
        self._stop = threading.Event()
        # Requests received and not acknowledged yet. The signal comes before Celery lists a
        # request as held, and a retry waiting for its countdown is not listed until it is due:
        # both are held all the same.
        self._unacknowledged: list[Any] = []
        # Received since the last lease: leased at once, without renewing the rest.
        self._arrived: list[Any] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="lease-heartbeat", daemon=True)
        # Listening from now on: a message taken before `start` is leased at the first beat.
        task_received.connect(self._received, weak=False)

    @property
    def interval(self) -> float:
        return self._expiry / 3

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        task_received.disconnect(self._received)
        self._stop.set()
        self._wake.set()
        if self._thread.ident is not None:
            self._thread.join(10)

    def wake(self) -> None:
        self._wake.set()

    def _received(self, request: Any = None, **_: object) -> None:
        if request is not None:
            with self._lock:
                self._unacknowledged.append(request)
                self._arrived.append(request)
        self._wake.set()

    def beat(self) -> tuple[int, int]:
        """Lease everything held now; answers (events, notifications) leased."""
        with self._lock:
            self._unacknowledged = [
                r for r in self._unacknowledged if not getattr(r, "acknowledged", True)
            ]
            received = list(self._unacknowledged)
            self._arrived = []
        event_ids, notification_ids = self._held()
        new_events, new_notifications = _ids(received)
        return self._lease({*event_ids, *new_events}, {*notification_ids, *new_notifications})

    def lease_arrived(self) -> tuple[int, int]:
        """Lease what arrived since the last lease, and nothing else; answers as `beat`."""
        with self._lock:
            arrived, self._arrived = self._arrived, []
        event_ids, notification_ids = _ids(arrived)
        return self._lease(set(event_ids), set(notification_ids))

    def _lease(self, event_ids: set[str], notification_ids: set[int]) -> tuple[int, int]:
        if not event_ids and not notification_ids:
            return 0, 0
        until = datetime.now(UTC) + timedelta(seconds=self._expiry)
        with self._engine.begin() as conn:
            return (
                eventlog.lease(conn, sorted(event_ids), until, self.holder),
                notification_store.lease(conn, sorted(notification_ids), until),
            )

    def _run(self) -> None:
        renew_at = time.monotonic()
        while not self._stop.is_set():
            self._wake.wait(max(0.0, renew_at - time.monotonic()))
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                if time.monotonic() >= renew_at:
                    renew_at = time.monotonic() + self.interval
                    self.beat()
                else:
                    self.lease_arrived()
            except Exception as exc:
                # Tried again at the next beat; leases missed meanwhile may run out, and the
                # events be dispatched again: processing twice books once.
                log.warning("lease_failed", error=first_line(exc))
