"""What the lost-message sweep (`workers.orphans.LostMessages`) dispatches again, against a real
Redis and PostgreSQL at the default delays: events whose message is neither in the queue nor
taken and unacknowledged, at two sweeps in a row; never one a message still carries, one a
worker holds or has run, nor one dispatched too recently or too long ago (the outbox sweep's).
A whole worker doing it is in tests/test_recovery.py."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from celery import Celery
from sqlalchemy import Engine, select, update

from models.db.tables import events
from tests.support.processing import store
from tests.unit.recorded import REDEMPTION, redemption
from workers.celery_app import PROCESS_EVENTS, make_celery, publisher
from workers.orphans import LostMessages
from workers.settings import Settings

DEFAULTS = Settings.model_fields
EXPIRY = float(DEFAULTS["lease_expiry"].default)
REDISPATCH_AFTER = float(DEFAULTS["redispatch_after"].default)


@pytest.fixture
def app(postgres_url: str, redis_url: str, queue: str) -> Iterator[Celery]:
    settings = Settings.model_validate(
        {
            "DATABASE_URL": postgres_url,
            "REDIS_URL": redis_url,
            "VOUCHERIFY_WEBHOOK_SECRET": "lost-messages-test-secret-0123456789",
            "VOUCHERHOOK_QUEUE": queue,
        }
    )
    app = make_celery(settings)
    yield app
    app.close()


@pytest.fixture
def lost(app: Celery, db: Engine, queue: str) -> LostMessages:
    return LostMessages(
        app,
        db,
        publisher(app, queue),
        queue,
        expiry=EXPIRY,
        redispatch_after=REDISPATCH_AFTER,
    )


def add(db: Engine, name: str, *, dispatched: float | None, **row: Any) -> str:
    """A pending event handed to the broker `dispatched` seconds ago (None: never)."""
    event_id = store(db, REDEMPTION, redemption(f"r_{name}", order_id=f"ord_{name}"))
    at = None if dispatched is None else datetime.now(UTC) - timedelta(seconds=dispatched)
    with db.begin() as conn:
        conn.execute(update(events).where(events.c.id == event_id).values(dispatched_at=at, **row))
    return event_id


def queued(redis_url: str, queue: str) -> list[list[str]]:
    """The event ids of each `process_events` message waiting in the queue, oldest first,
    read here from Celery's message format (JSON, base64 body of `[args, kwargs, embed]`),
    not with the decoder under test."""
    client = redis.Redis.from_url(redis_url)
    found = []
    for raw in reversed(client.lrange(queue, 0, -1)):
        message = json.loads(raw)
        if message["headers"]["task"] == PROCESS_EVENTS:
            args = json.loads(base64.b64decode(message["body"]))[0]
            found.append(sorted(args[0]))
    return found


def dispatched_at(db: Engine, event_id: str) -> datetime | None:
    with db.connect() as conn:
        return conn.scalar(select(events.c.dispatched_at).where(events.c.id == event_id))


def test_events_whose_message_is_gone_are_dispatched_again_at_the_second_sweep(
    db: Engine, app: Celery, queue: str, redis_url: str, lost: LostMessages
) -> None:
    ids = sorted(add(db, f"lost_{i}", dispatched=EXPIRY + 5) for i in range(3))
    publisher(app, queue)(ids)
    assert redis.Redis.from_url(redis_url).rpop(queue)  # taken along by a dead worker

    assert lost() == 0  # once missing: maybe a live worker is taking it at this moment
    assert queued(redis_url, queue) == []
    assert lost() == 3
    assert queued(redis_url, queue) == [ids]
    at = dispatched_at(db, ids[0])
    assert at is not None and at > datetime.now(UTC) - timedelta(seconds=5)
    assert lost() == 0  # dispatched just now: no longer a candidate
    assert lost() == 0


def test_events_a_message_carries_in_the_queue_or_unacknowledged_are_left_alone(
    db: Engine, app: Celery, queue: str, redis_url: str, lost: LostMessages
) -> None:
    waiting = sorted(add(db, f"waiting_{i}", dispatched=EXPIRY + 5) for i in range(2))
    taken = sorted(add(db, f"taken_{i}", dispatched=EXPIRY + 5) for i in range(2))
    publish = publisher(app, queue)
    publish(taken)
    publish(waiting)
    with app.connection_for_write() as connection:
        channel: Any = connection.default_channel
        message = channel.basic_get(queue, no_ack=False)  # taken by a worker, not acknowledged
        assert message is not None and sorted(message.payload[0][0]) == taken
        for _ in range(3):
            assert lost() == 0
        assert queued(redis_url, queue) == [waiting]
        channel.basic_ack(message.delivery_tag)


def test_a_suspect_met_again_in_a_message_is_not_dispatched(
    db: Engine, app: Celery, queue: str, redis_url: str, lost: LostMessages
) -> None:
    ids = [add(db, "reappears", dispatched=EXPIRY + 5)]
    assert lost() == 0  # missing once
    publisher(app, queue)(ids)  # it was in flight after all
    assert lost() == 0
    assert queued(redis_url, queue) == [ids]


def test_events_held_run_too_recent_or_too_old_are_not_taken(
    db: Engine, queue: str, redis_url: str, lost: LostMessages
) -> None:
    now = datetime.now(UTC)
    add(db, "held", dispatched=EXPIRY + 5, lease_until=now + timedelta(seconds=10), leased_by="h:1")
    add(db, "run", dispatched=EXPIRY + 5, attempts=1)  # e.g. a rollback holding for its original
    add(db, "recent", dispatched=EXPIRY - 5)
    add(db, "old", dispatched=REDISPATCH_AFTER + 5)  # the outbox sweep's
    add(db, "never", dispatched=None)  # the outbox sweep's too
    for _ in range(3):
        assert lost() == 0
    assert queued(redis_url, queue) == []
