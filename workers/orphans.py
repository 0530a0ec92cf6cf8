"""Messages a dead worker took from Redis before it leased them: put back in the queue, or,
when Redis no longer has them, their events dispatched again.

A worker leases what a message carries within milliseconds of taking it (`workers.leases`). A
worker killed in that moment leaves the message in Redis's unacknowledged set, where Redis would
keep it for the visibility timeout (an hour), and its events unleased, where the sweep would
wait VOUCHERHOOK_REDISPATCH_AFTER for them. So the sweep of every worker also looks at the
messages taken more than VOUCHERHOOK_LEASE_EXPIRY ago and not acknowledged: one whose pending
events and notifications no live lease covers has no live holder (a live one would have leased
it), and is put back at the head of its queue, as Redis itself does after the timeout
(`restore_orphans`). A message whose work is done is put back too: running it again changes
nothing.

A message can also be in neither place. kombu's Redis transport keeps a `BRPOP` waiting while
its worker has no free pool slot, and the answer, a message Redis has already removed from the
queue, stays unread in the socket until a slot frees; a worker killed then takes it along.
`LostMessages` finds such events: pending, handed to Redis more than VOUCHERHOOK_LEASE_EXPIRY
ago, never run, held by none, and carried by no message in the queue nor in the unacknowledged
set, at two sweeps in a row (a message is briefly in neither while a live worker takes it).
They are dispatched again; should the first message turn up after all, running it twice books
it once.
"""

from __future__ import annotations

import json
import time
from base64 import b64decode
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import structlog
from celery import Celery
from kombu.serialization import loads
from sqlalchemy import Engine

from models.db import eventlog, notification_store
from receiver.outbox import Publish
from workers.celery_app import PROCESS_EVENTS, SEND_NOTIFICATIONS
from workers.sweep import publish_claimed

log = structlog.get_logger(__name__)

SCAN = 1000
"""Unacknowledged messages looked at per sweep, oldest first; events checked per sweep."""
PAGE = 500
"""Queued messages read from Redis at a time."""
QUEUE_READ_LIMIT = 50_000
"""Queued messages read at most per sweep: past that, no event is taken for lost this time."""


def restore_orphans(app: Celery, engine: Engine, queue: str, expiry: float) -> int:
    """Put back the unacknowledged messages of `queue` taken more than `expiry` seconds ago
    that no live worker holds; answers how many."""
    with app.connection_for_write() as connection:
        channel: Any = connection.default_channel
        client = channel.client
        tags = client.zrangebyscore(
            channel.unacked_index_key, 0, time.time() - expiry, start=0, num=SCAN
        )
        if not tags:
            return 0
        entries = zip(tags, client.hmget(channel.unacked_key, tags), strict=True)
        found = {tag: ids for tag, raw in entries if (ids := _unacked_ids(raw, queue))}
        if not found:
            return 0
        now = datetime.now(UTC)
        with engine.connect() as conn:
            events = eventlog.leased(conn, [i for e, _ in found.values() for i in e], now)
            notes = notification_store.leased(conn, [i for _, n in found.values() for i in n], now)
        restored = 0
        for tag, (event_ids, notification_ids) in found.items():
            if events.intersection(event_ids) or notes.intersection(notification_ids):
                continue  # a live worker holds it
            channel.qos.restore_by_tag(tag)
            restored += 1
        return restored


class LostMessages:
    """The sweep's second look, kept between sweeps by one worker: events whose message
    Redis no longer has (see the module's docstring), dispatched again."""

    def __init__(
        self,
        app: Celery,
        engine: Engine,
        publish: Publish,
        queue: str,
        *,
        expiry: float,
        redispatch_after: float,
    ) -> None:
        self._app = app
        self._engine = engine
        self._publish = publish
        self._queue = queue
        self._ages = {"expiry": expiry, "redispatch_after": redispatch_after}
        self._suspects: set[str] = set()

    def __call__(self) -> int:
        """One sweep; answers how many events were dispatched again."""
        with self._engine.connect() as conn:
            waiting = eventlog.unqueued(conn, datetime.now(UTC), limit=SCAN, **self._ages)
        if not waiting:
            self._suspects = set()
            return 0
        with self._app.connection_for_write() as connection:
            missing = set(waiting) - _carried(connection.default_channel, self._queue, waiting)
        lost, self._suspects = missing & self._suspects, missing - self._suspects
        if not lost:
            return 0
        with self._engine.begin() as conn:
            ids = eventlog.claim_unqueued(conn, sorted(lost), datetime.now(UTC), **self._ages)
            publish_claimed(conn, self._publish, ids)
        if ids:
            log.warning("events_redispatched", reason="message lost", event_ids=ids)
        return len(ids)


def _carried(channel: Any, queue: str, wanted: Iterable[str]) -> set[str]:
    """Those of `wanted` that a message of `queue` carries, waiting in the queue or taken and
    not acknowledged; all of them when the queue is too long to read (nothing is lost for
    sure then).

    The queue is read oldest first, a page at a time, then the unacknowledged set: a message
    taken meanwhile is met in one or the other (or in neither for a moment, which the caller's
    second look allows for)."""
    wanted = set(wanted)
    found: set[str] = set()
    client = channel.client
    read = 0
    for key in dict.fromkeys(channel._q_for_pri(queue, p) for p in channel.priority_steps):
        end = -1
        while page := client.lrange(key, end - PAGE + 1, end):
            for raw in page:
                found.update(wanted.intersection(_event_ids(_message_ids(_json(raw)))))
            if found >= wanted:
                return found
            read += len(page)
            if len(page) < PAGE:
                break
            if read >= QUEUE_READ_LIMIT:
                log.warning("lost_messages_check_skipped", queue=queue, queued_over=read)
                return wanted
            end -= PAGE
    for raw in client.hvals(channel.unacked_key):
        found.update(wanted.intersection(_event_ids(_unacked_ids(raw, queue))))
    return found


def _event_ids(ids: tuple[list[str], list[int]] | None) -> list[str]:
    return ids[0] if ids else []


def _json(raw: Any) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _unacked_ids(raw: Any, queue: str) -> tuple[list[str], list[int]] | None:
    """(event ids, notification ids) of an unacknowledged message of ours in `queue`."""
    if raw is None:  # acknowledged meanwhile
        return None
    try:
        payload, _exchange, routing_key = _json(raw)
    except (TypeError, ValueError):
        return None
    return _message_ids(payload) if routing_key == queue else None


def _message_ids(payload: Any) -> tuple[list[str], list[int]] | None:
    """(event ids, notification ids) a message of voucherhook's carries; None for another."""
    try:
        task = payload["headers"]["task"]
        body = payload["body"]
        if payload["properties"].get("body_encoding") == "base64":
            body = b64decode(body)
        content = (body, payload["content-type"], payload["content-encoding"])
        ids = list(loads(*content)[0][0])  # type: ignore[no-untyped-call]
        if task == PROCESS_EVENTS:
            return [str(i) for i in ids], []
        if task == SEND_NOTIFICATIONS:
            return [], [int(i) for i in ids]
    except Exception:  # whatever it is, it is not a message of ours
        pass
    return None
