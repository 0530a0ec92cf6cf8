"""A dead worker's events go to a live one within seconds, at default settings; a slow batch of
a live worker stays with it.

Every process runs with the settings a user gets (no timer shortened): leases of 15 s renewed
every 5 s, a sweep every 10 s (docs/reliability.md, "When a worker dies"). Real receiver and
worker processes, PostgreSQL, a Redis server of the test's own, notifications to a real HTTP
endpoint and SMTP server; each load test ends with the checker (nothing lost, nothing doubled).
"""

from __future__ import annotations

import os
import random
import signal
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import Engine, func, select, text

from models.db import ledger_store, schema
from models.db.engine import make_engine
from models.db.tables import events, handler_runs
from receiver.signature import sign
from tests.support.checker import check
from tests.support.payloads import REDEMPTION, dumps
from tests.support.processes import (
    SECRET,
    SINK_RATES,
    Fleet,
    Process,
    base_env,
    pool_children,
    post,
)
from tests.support.services import RedisServer, wait_for
from tests.support.sinks import Sinks
from tests.support.workload import Load, Workload
from tests.unit.recorded import redemption
from workers.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

QUEUE = "vh-recovery"
LOAD = Load(events=300, rate=30)
# The promise is 30 s (a lease of 15 s, then a sweep within 10 s); the test allows twice that.
RECOVERED_WITHIN = 60.0
# What Celery logs when a pool process dies while it runs a task (the task is requeued).
WORKER_LOST = "WorkerLostError"
EXITED = "exited with 'signal 9"
LEASE = float(Settings.model_fields["lease_expiry"].default)
SWEEP = float(Settings.model_fields["sweep_interval"].default)


def default_env(postgres_url: str, redis_url: str | None, sinks: Sinks) -> dict[str, str]:
    """What a user configures: where things are. Every timer at its default; only the
    notification rate limits are raised to what the loopback sinks take (at the default of
    one webhook a second, a load's notifications would take minutes to drain; the defaults
    are held by tests/test_notification_pacing.py)."""
    return base_env(postgres_url, redis_url, VOUCHERHOOK_QUEUE=QUEUE, **SINK_RATES, **sinks.env())


def pending_ids(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.scalars(select(events.c.id).where(events.c.status == "pending")))


def leased_by(engine: Engine, worker: Process) -> set[str]:
    """Pending events the worker's lease covers now."""
    holder = f"{socket.gethostname()}:{worker.pid}"
    now = datetime.now(UTC)
    with engine.connect() as conn:
        stmt = select(events.c.id).where(
            events.c.status == "pending", events.c.leased_by == holder, events.c.lease_until > now
        )
        return set(conn.scalars(stmt))


def still_pending(engine: Engine, ids: set[str]) -> int:
    with engine.connect() as conn:
        stmt = select(func.count()).where(events.c.id.in_(ids), events.c.status == "pending")
        return int(conn.scalar(stmt.select_from(events)) or 0)


def processed(engine: Engine) -> int:
    with engine.connect() as conn:
        stmt = select(func.count()).where(events.c.status.in_(("processed", "ignored")))
        return int(conn.scalar(stmt.select_from(events)) or 0)


def kill_while_holding(
    engine: Engine, workload: Workload, worker: Process, kill: Callable[[], None]
) -> tuple[set[str], set[str]]:
    """Once the load is being processed, at a moment `worker` holds events, run `kill`; answer
    the events pending then, and those the worker held."""
    wait_for(lambda: processed(engine) >= 60, 60, what="60 events processed")
    held: set[str] = set()
    pending: set[str] = set()

    def holding() -> bool:
        # The pending events first, then the worker's leases among them: an event it held a
        # moment ago may be settled already, and must not count as held at the kill.
        pending.clear()
        pending.update(pending_ids(engine))
        held.clear()
        held.update(leased_by(engine, worker) & pending)
        return bool(held)

    wait_for(holding, 30, interval=0.01, what="the worker holding events")
    kill()
    workload.fault(f"SIGKILL with {len(pending)} pending, {len(held)} held by the worker")
    return pending, held


def recovered(engine: Engine, held: set[str], since: float) -> float:
    """Seconds from `since` until every one of `held` is processed; fails past the promise."""
    wait_for(
        lambda: still_pending(engine, held) == 0,
        RECOVERED_WITHIN - (time.monotonic() - since),
        interval=0.25,
        what=f"the {len(held)} events pending at the kill processed",
    )
    return time.monotonic() - since


def test_a_killed_worker_s_events_are_processed_by_the_worker_already_running(
    postgres_url: str, db: Engine, redis_server: RedisServer, sinks: Sinks
) -> None:
    with Fleet(default_env(postgres_url, redis_server.url, sinks)) as fleet:
        fleet.receiver()
        doomed, survivor = fleet.worker(), fleet.worker()
        with Workload(fleet.webhook_urls, LOAD).start() as workload:
            held, _held_by_it = kill_while_holding(db, workload, doomed, lambda: fleet.kill(doomed))
            seconds = recovered(db, held, time.monotonic())
            print(f"\n{len(held)} pending at the kill, all processed {seconds:.1f} s after it")
            result = check(db, workload, webhook_sink=sinks.webhook, smtp_sink=sinks.smtp)
        assert survivor.process.poll() is None

    result.assert_ok(allow_unknown_sends=True)


def test_a_killed_worker_s_events_are_processed_after_a_restart_when_it_was_the_only_one(
    postgres_url: str, db: Engine, redis_server: RedisServer, sinks: Sinks
) -> None:
    restarted: list[float] = []

    with Fleet(default_env(postgres_url, redis_server.url, sinks)) as fleet:
        fleet.receiver()
        only = fleet.worker()

        def kill_and_restart() -> None:
            fleet.kill(only)
            fleet.worker()
            restarted.append(time.monotonic())

        with Workload(fleet.webhook_urls, LOAD).start() as workload:
            held, _held_by_it = kill_while_holding(db, workload, only, kill_and_restart)
            seconds = recovered(db, held, restarted[0])
            print(f"\n{len(held)} pending at the kill, all processed {seconds:.1f} s after restart")
            result = check(db, workload, webhook_sink=sinks.webhook, smtp_sink=sinks.smtp)

    result.assert_ok(allow_unknown_sends=True)


def test_a_killed_pool_process_s_events_are_processed_by_its_worker(
    postgres_url: str, db: Engine, redis_server: RedisServer, sinks: Sinks
) -> None:
    with Fleet(default_env(postgres_url, redis_server.url, sinks)) as fleet:
        fleet.receiver()
        worker = fleet.worker()
        lost: list[bool] = []
        killed_at: list[float] = []

        def kill_one_pool_process() -> None:
            before = worker.output().count(WORKER_LOST), worker.output().count(EXITED)
            killed_at.append(time.monotonic())
            os.kill(random.choice(pool_children(worker)), signal.SIGKILL)
            wait_for(lambda: worker.output().count(EXITED) > before[1], 10, what="the kill")
            time.sleep(0.5)
            lost.append(worker.output().count(WORKER_LOST) > before[0])

        with Workload(fleet.webhook_urls, LOAD).start() as workload:
            # The pool process killed may be the idle one: kill again until one held a task.
            for _ in range(6):
                held, _held_by_it = kill_while_holding(db, workload, worker, kill_one_pool_process)
                if lost[-1]:
                    break
            seconds = recovered(db, held, killed_at[-1])
            print(f"\n{len(held)} pending at the kill, all processed {seconds:.1f} s after it")
            result = check(db, workload, webhook_sink=sinks.webhook, smtp_sink=sinks.smtp)
        assert worker.process.poll() is None

    assert lost[-1], "no pool process killed was running a task: it proved nothing"
    result.assert_ok(allow_unknown_sends=True)


def test_the_embedded_broker_s_only_worker_killed_and_restarted_recovers_its_events(
    tmp_path: Path, sinks: Sinks
) -> None:
    """SQLite for the events and the broker, one worker process (solo pool), as `voucherhook
    serve` runs it by default."""
    database_url = f"sqlite:///{tmp_path / 'voucherhook.db'}"
    engine = make_engine(database_url)
    schema.upgrade(engine)
    restarted: list[float] = []
    try:
        with Fleet(default_env(database_url, None, sinks)) as fleet:
            fleet.receiver()
            only = fleet.worker()

            def kill_and_restart() -> None:
                fleet.kill(only)
                fleet.worker()
                restarted.append(time.monotonic())

            with Workload(fleet.webhook_urls, LOAD).start() as workload:
                held, _held_by_it = kill_while_holding(engine, workload, only, kill_and_restart)
                seconds = recovered(engine, held, restarted[0])
                print(f"\n{len(held)} pending at the kill, all processed {seconds:.1f} s after")
                result = check(engine, workload, webhook_sink=sinks.webhook, smtp_sink=sinks.smtp)
    finally:
        engine.dispose()

    result.assert_ok(allow_unknown_sends=True)


def dispatched(engine: Engine, ids: list[str]) -> bool:
    with engine.connect() as conn:
        stmt = select(func.count()).where(events.c.id.in_(ids), events.c.dispatched_at.is_not(None))
        return int(conn.scalar(stmt.select_from(events)) or 0) == len(ids)


def test_a_message_a_killed_worker_took_along_unread_is_dispatched_again(
    postgres_url: str, db: Engine, redis_server: RedisServer, sinks: Sinks
) -> None:
    """kombu's Redis transport keeps the answer of a BRPOP, a message Redis has already removed
    from the queue, unread while its worker has no free pool slot; a worker killed then takes
    the message along, and it is neither queued nor unacknowledged (docs/reliability.md). Here
    the messages are taken off the queue before any worker runs: their events are carried by
    no message anywhere, and must be processed within 60 s of their dispatch all the same."""
    with Fleet(default_env(postgres_url, redis_server.url, sinks)) as fleet:
        receiver = fleet.receiver()
        ids = []
        for i in range(5):
            body = dumps(redemption(f"r_unread_{i}", order_id=f"ord_unread_{i}"))
            answer = post(f"{receiver.webhook_url}/{REDEMPTION}", body, sign(body, SECRET.encode()))
            assert answer.status_code == 202
            ids.append(answer.json()["event_id"])
        wait_for(lambda: dispatched(db, ids), 10, what="the events handed to Redis")
        since = time.monotonic()
        client = redis.Redis.from_url(redis_server.url)
        taken = 0
        while client.rpop(QUEUE):
            taken += 1
        assert taken >= 1
        worker = fleet.worker()
        seconds = recovered(db, set(ids), since)
        print(f"\n{len(ids)} events of {taken} lost messages processed {seconds:.1f} s after")
        wait_for(lambda: "message lost" in worker.output(), 10, what="the worker's log line")

    with db.connect() as conn:
        attempts = conn.scalars(select(events.c.attempts).where(events.c.id.in_(ids))).all()
    assert attempts == [1] * len(ids)


# -- a slow batch ------------------------------------------------------------------------------


@contextmanager
def rebuild_guard_held(engine: Engine) -> Iterator[None]:
    """Hold the lock a `voucherhook rebuild` holds: every batch that books waits for it."""
    with engine.connect() as conn, conn.begin():
        ledger_store.rebuild_guard(conn, exclusive=True)
        yield


def waiting_for_the_guard(engine: Engine) -> int:
    """Database sessions of this database waiting for an advisory lock: batches blocked."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
    )
    with engine.connect() as conn:
        return int(conn.scalar(query) or 0)


def test_a_batch_slower_than_the_lease_stays_with_its_live_worker(
    postgres_url: str, db: Engine, redis_server: RedisServer, sinks: Sinks
) -> None:
    body = dumps(redemption("r_slow_1", order_id="ord_slow_1", amount=2500, applied=500))
    held_for = 2 * LEASE + SWEEP + 5  # two leases would have run out, and a sweep passed
    blocked: list[int] = []
    leases: list[tuple[datetime, datetime | None]] = []  # (when seen, the lease seen)
    with Fleet(default_env(postgres_url, redis_server.url, sinks)) as fleet:
        receiver = fleet.receiver()
        fleet.worker()
        fleet.worker()  # would take the batch if it were dispatched again
        with rebuild_guard_held(db):
            answer = post(f"{receiver.webhook_url}/{REDEMPTION}", body, sign(body, SECRET.encode()))
            assert answer.status_code == 202
            event_id = answer.json()["event_id"]
            wait_for(lambda: waiting_for_the_guard(db) == 1, 30, what="the batch blocked")
            dispatched = _row(db, event_id).dispatched_at
            until = time.monotonic() + held_for
            while time.monotonic() < until:
                blocked.append(waiting_for_the_guard(db))
                leases.append((datetime.now(UTC), _row(db, event_id).lease_until))
                time.sleep(1)
        wait_for(lambda: _row(db, event_id).status == "processed", 30, what="processed")
        wait_for(lambda: len(sinks.webhook.keys) == 1, 30, what="the notification sent")
        time.sleep(SWEEP)  # a sweep after the release changes nothing either
        row = _row(db, event_id)

    assert held_for > 2 * LEASE
    # One batch waited the whole time, and no second one ever joined it.
    assert set(blocked) == {1}, blocked
    # Its lease was renewed while it waited, and never ran out.
    assert all(lease is not None and lease > seen for seen, lease in leases), leases
    assert len({lease for _, lease in leases}) >= held_for / LEASE
    assert row.dispatched_at == dispatched, "the event was dispatched again"
    assert row.attempts == 1
    with db.connect() as conn:
        runs = conn.execute(
            select(handler_runs.c.handler, handler_runs.c.attempts).where(
                handler_runs.c.event_id == event_id
            )
        ).all()
    assert runs and all(attempts == 1 for _, attempts in runs), runs
    assert max(sinks.webhook.keys.values()) == 1


def _row(engine: Engine, event_id: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(events).where(events.c.id == event_id)).one()
