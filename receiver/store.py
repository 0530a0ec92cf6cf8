"""Durable storing of deliveries, with commits shared across concurrent requests.

One writer thread takes every event waiting to be stored, inserts them in one transaction and
commits once; each request is answered when the commit that holds its event is done. Under
load many requests share one commit (group commit); alone, a request waits for its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from sqlalchemy import Engine

from models import eventlog
from models.eventlog import NewEvent

log = structlog.get_logger(__name__)


class StoreUnavailable(Exception):
    """The database could not commit the event in time; the delivery must be retried."""


@dataclass
class _Pending:
    event: NewEvent
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[bool] = field(repr=False)


class EventWriter:
    def __init__(
        self,
        engine: Engine,
        on_committed: Callable[[list[str]], None],
        *,
        max_batch: int = 500,
    ) -> None:
        self._engine = engine
        self._on_committed = on_committed
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="event-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    async def store(self, event: NewEvent, timeout: float) -> bool:
        """Commit `event`; True when it is new, False when its identity was stored already."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._queue.put(_Pending(event, loop, future))
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            # It may still commit later: a retried delivery then finds it as a duplicate.
            raise StoreUnavailable(f"no commit within {timeout:g}s") from None

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stopping = False
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._write(batch)
            if stopping:
                return

    def _write(self, batch: list[_Pending]) -> None:
        unique: dict[str, NewEvent] = {}
        for pending in batch:
            unique.setdefault(pending.event.id, pending.event)
        try:
            with self._engine.begin() as conn:
                new_ids = eventlog.insert_new(conn, list(unique.values()))
        except Exception as exc:
            log.warning("store_failed", error=str(exc).splitlines()[0], events=len(unique))
            failure = StoreUnavailable(type(exc).__name__)
            for pending in batch:
                _settle(pending, failure)
            return
        answered: set[str] = set()
        for pending in batch:
            event_id = pending.event.id
            # Only the first request for an id in the batch gets "new"; the rest are duplicates.
            _settle(pending, event_id in new_ids and event_id not in answered)
            answered.add(event_id)
        to_dispatch = [eid for eid in new_ids if unique[eid].status == "pending"]
        if to_dispatch:
            self._on_committed(to_dispatch)


def _settle(pending: _Pending, outcome: bool | Exception) -> None:
    def apply() -> None:
        if pending.future.done():
            return
        if isinstance(outcome, Exception):
            pending.future.set_exception(outcome)
        else:
            pending.future.set_result(outcome)

    # A closed loop means nobody is waiting for the answer any more.
    with contextlib.suppress(RuntimeError):
        pending.loop.call_soon_threadsafe(apply)
