"""Durable storing of deliveries, with commits shared across concurrent requests.

Writer tasks on the event loop take every event waiting to be stored, insert them in one
transaction and commit once; each request is answered when the commit that holds its event is
done. Under load many requests share one commit (group commit); alone, a request waits for its
own. Two writers overlap, so one batch is inserted while the previous one commits. How a
batch is inserted is in receiver.inserts.

The queue is bounded: while the database stalls, a full queue turns new deliveries away at
once (503, Voucherify retries) instead of holding their bodies, and a request already answered
503 is dropped from the queue unwritten, so it holds no memory either.

A request waits on a bare future, not `wait_for(shield(…))`, and its deadline is one entry among
all the requests' (receiver.deadlines), not a timer of its own: per request that saves a task
wrapper, a timer and several callbacks, and the event loop is the receiver's bottleneck. An
expired request whose batch is already being written may still be committed: its retry then
finds it as a duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import asyncpg
import sqlalchemy.exc
import structlog
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from models.db.eventlog import NewEvent
from receiver.deadlines import Deadlines
from receiver.errors import first_line
from receiver.inserts import Inserter, inserter_for

log = structlog.get_logger(__name__)


class StoreUnavailable(Exception):
    """The database could not commit the event in time; the delivery must be retried."""


@dataclass
class _Pending:
    event: NewEvent
    future: asyncio.Future[bool] = field(repr=False)


class EventWriter:
    def __init__(
        self,
        engine: AsyncEngine,
        on_committed: Callable[[list[str]], None],
        *,
        max_batch: int = 500,
        writers: int = 2,
        max_queued: int = 2000,
    ) -> None:
        self._engine = engine
        self._on_committed = on_committed
        self._max_batch = max_batch
        self._writers = writers
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(max_queued)
        self._tasks: list[asyncio.Task[None]] = []
        self._deadlines: dict[float, Deadlines[asyncio.Future[bool]]] = {}

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(inserter_for(self._engine)), name=f"event-writer-{n}")
            for n in range(self._writers)
        ]

    async def stop(self) -> None:
        while not self._queue.empty():  # let what was accepted for storing be stored
            await asyncio.sleep(0.01)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._engine.dispose()

    async def store(self, event: NewEvent, timeout: float) -> bool:
        """Commit `event`; True when it is new, False when its identity was stored already."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Pending(event, future))
        except asyncio.QueueFull:
            raise StoreUnavailable("too many deliveries waiting to be stored") from None
        deadlines = self._deadlines.get(timeout)
        if deadlines is None:  # one per length of wait: the receiver uses one
            deadlines = self._deadlines[timeout] = Deadlines(timeout, partial(_expire, timeout))
        deadlines.add(future)
        try:
            return await future
        finally:
            deadlines.discard(future)

    async def _run(self, inserter: Inserter) -> None:
        try:
            while True:
                batch = [await self._queue.get()]
                while len(batch) < self._max_batch and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                # Requests already answered 503 are not written: their retry will be.
                batch = [pending for pending in batch if not pending.future.done()]
                if batch:
                    await self._write(inserter, batch)
        finally:
            await inserter.close()

    async def _write(self, inserter: Inserter, batch: list[_Pending]) -> None:
        unique: dict[str, NewEvent] = {}
        for pending in batch:
            unique.setdefault(pending.event.id, pending.event)
        try:
            new_ids = await inserter.insert(list(unique.values()))
        except Exception as exc:
            if is_refused_row(exc) and len(unique) > 1:
                # The database is up but refused a row: store the others one by one, so one
                # odd delivery never turns away the ones that shared its batch.
                for pending in batch:
                    await self._write(inserter, [pending])
                return
            log.warning("store_failed", error=first_line(exc), events=len(unique))
            failure = StoreUnavailable(type(exc).__name__)
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(failure)
            return
        answered: set[str] = set()
        for pending in batch:
            event_id = pending.event.id
            # Only the first request for an id in the batch gets "new"; the rest are duplicates.
            if not pending.future.done():
                pending.future.set_result(event_id in new_ids and event_id not in answered)
            answered.add(event_id)
        # One line per commit, not per delivery: a busy receiver's log stays small and cheap
        # (a quarantined delivery has a warning of its own).
        accepted = [e.id for e in unique.values() if e.id in new_ids and e.status != "quarantined"]
        if accepted:
            log.info("events_accepted", event_ids=accepted)
        to_dispatch = [eid for eid in new_ids if unique[eid].status == "pending"]
        if to_dispatch:
            self._on_committed(to_dispatch)


def is_refused_row(exc: BaseException) -> bool:
    """A data or constraint error: the server is reachable and refused what it was given."""
    if isinstance(exc, DBAPIError):
        exc = exc.orig or exc
    return isinstance(
        exc,
        (
            asyncpg.exceptions.DataError,
            asyncpg.exceptions.IntegrityConstraintViolationError,
            sqlalchemy.exc.DataError,
            sqlalchemy.exc.IntegrityError,
        ),
    )


def _expire(timeout: float, future: asyncio.Future[bool]) -> None:
    if not future.done():
        # It may still commit later: a retried delivery then finds it as a duplicate.
        future.set_exception(StoreUnavailable(f"no commit within {timeout:g}s"))
