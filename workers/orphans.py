"""Messages a dead worker took from Redis before it leased them, put back in the queue.

A worker leases what a message carries within milliseconds of taking it (`workers.leases`). A
worker killed in that moment leaves the message in Redis's unacknowledged set, where Redis would
keep it for the visibility timeout (an hour), and its events unleased, where the sweep would
wait VOUCHERHOOK_REDISPATCH_AFTER for them. So the sweep of every worker also looks at the
messages taken more than VOUCHERHOOK_LEASE_EXPIRY ago and not acknowledged: one whose pending
events and notifications no live lease covers has no live holder (a live one would have leased
it), and is put back at the head of its queue, as Redis itself does after the timeout.
A message whose work is done is put back too: running it again changes nothing.
"""

from __future__ import annotations

import json
import time
from base64 import b64decode
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from celery import Celery
from kombu.serialization import loads
from sqlalchemy import Engine

from models.db import eventlog, notification_store
from workers.celery_app import PROCESS_EVENTS, SEND_NOTIFICATIONS

SCAN = 1000
"""Unacknowledged messages looked at per sweep, oldest first."""


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
        found = dict(_ours(zip(tags, client.hmget(channel.unacked_key, tags), strict=True), queue))
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


def _ours(
    entries: Iterator[tuple[Any, Any]], queue: str
) -> Iterator[tuple[Any, tuple[list[str], list[int]]]]:
    """(delivery tag, (event ids, notification ids)) of this queue's voucherhook messages."""
    for tag, raw in entries:
        if raw is None:  # acknowledged meanwhile
            continue
        try:
            payload, _exchange, routing_key = json.loads(raw)
            if routing_key != queue:
                continue
            task = payload["headers"]["task"]
            body = payload["body"]
            if payload["properties"].get("body_encoding") == "base64":
                body = b64decode(body)
            content = (body, payload["content-type"], payload["content-encoding"])
            args = loads(*content)[0]  # type: ignore[no-untyped-call]
            ids = list(args[0])
        except Exception:  # whatever it is, it is not a message of ours
            continue
        if task == PROCESS_EVENTS:
            yield tag, ([str(i) for i in ids], [])
        elif task == SEND_NOTIFICATIONS:
            yield tag, ([], [int(i) for i in ids])
