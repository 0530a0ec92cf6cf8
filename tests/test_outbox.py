"""Store first, process later: events reach real Celery workers through the outbox, and
nothing is lost while the broker is down or after the receiver died before publishing."""

from __future__ import annotations

import httpx
from sqlalchemy import update

from models.db.tables import events
from receiver.signature import HEADER, sign
from tests.conftest import EventLog
from tests.support.payloads import REDEMPTION, dumps, envelope
from tests.support.processes import SECRET, Receiver, Worker, base_env
from tests.support.services import RedisServer, wait_for

KEY = SECRET.encode()
FAST_SWEEP = {"VOUCHERHOOK_SWEEP_INTERVAL": "0.5", "VOUCHERHOOK_SWEEP_AFTER": "1"}


def deliver(url: str, event_type: str = REDEMPTION) -> str:
    data = None if event_type == REDEMPTION else {"voucher": {"id": "v_gift"}}
    body = dumps(envelope(event_type, data))
    response = httpx.post(url, content=body, headers={HEADER: sign(body, KEY)}, timeout=15)
    assert response.status_code == 202, response.text
    event_id: str = response.json()["event_id"]
    return event_id


def all_done(log: EventLog, ids: list[str]) -> bool:
    statuses = log.statuses()
    return all(statuses.get(event_id) in ("processed", "ignored") for event_id in ids)


def test_accepted_events_are_processed_by_a_real_worker(
    postgres_url: str, redis_url: str, queue: str, pg_log: EventLog
) -> None:
    env = base_env(postgres_url, redis_url, VOUCHERHOOK_QUEUE=queue, **FAST_SWEEP)
    receiver, worker = Receiver(env, "--no-worker"), Worker(env)
    try:
        handled = [deliver(receiver.webhook_url) for _ in range(5)]
        ignored = deliver(receiver.webhook_url, "voucher.published")
        wait_for(lambda: all_done(pg_log, handled), 60, what="the worker to process events")
    finally:
        receiver.stop()
        worker.stop()
    statuses = pg_log.statuses()
    assert {statuses[event_id] for event_id in handled} == {"processed"}
    assert statuses[ignored] == "ignored"
    assert all(pg_log.get(event_id)["attempts"] == 1 for event_id in handled)  # type: ignore[index]


def test_deliveries_are_accepted_while_redis_is_down_and_processed_once_it_is_back(
    postgres_url: str, redis_server: RedisServer, pg_log: EventLog
) -> None:
    env = base_env(postgres_url, redis_server.url, **FAST_SWEEP)
    receiver, worker = Receiver(env, "--no-worker"), Worker(env)
    try:
        before = [deliver(receiver.webhook_url) for _ in range(3)]
        wait_for(lambda: all_done(pg_log, before), 60, what="processing before the outage")

        redis_server.stop()
        during = [deliver(receiver.webhook_url) for _ in range(20)]
        # The broker refused them: their dispatched stamp is cleared for the sweep.
        wait_for(
            lambda: not any(pg_log.get(event_id)["dispatched_at"] for event_id in during),  # type: ignore[index]
            10,
            what="the dispatched stamps cleared",
        )
        assert {pg_log.statuses()[event_id] for event_id in during} == {"pending"}

        redis_server.start()
        wait_for(lambda: all_done(pg_log, during), 90, what="processing after Redis is back")
    finally:
        receiver.stop()
        worker.stop()
    statuses = pg_log.statuses()
    assert {statuses[event_id] for event_id in before + during} == {"processed"}


def test_an_event_committed_but_never_published_is_swept_to_the_worker(
    postgres_url: str, redis_url: str, queue: str, pg_log: EventLog
) -> None:
    """What a receiver killed between commit and publish leaves behind."""
    env = base_env(postgres_url, redis_url, VOUCHERHOOK_QUEUE=queue, **FAST_SWEEP)
    receiver = Receiver(env, "--no-worker")
    try:
        ids = [deliver(receiver.webhook_url) for _ in range(5)]
    finally:
        receiver.stop()
    # The receiver published them; undo that as if it had died first, and lose the messages.
    with pg_log.engine.begin() as conn:
        conn.execute(update(events).values(dispatched_at=None))
    import redis

    redis.Redis.from_url(redis_url).delete(queue)

    worker = Worker(env)
    try:
        wait_for(lambda: all_done(pg_log, ids), 60, what="the sweep to dispatch the events")
    finally:
        worker.stop()
    assert {pg_log.statuses()[event_id] for event_id in ids} == {"processed"}
