"""Proof under fire: a steady Voucherify-like load while faults are injected, then the checker.

Each test runs real receiver and worker processes on a Redis server of its own (and, for the
database fault, a PostgreSQL cluster of its own), with notifications going to a real HTTP
endpoint and a real SMTP server. The workload retries every non-2xx answer with backoff, as
Voucherify does. Each test ends with the checker (tests/support/checker.py): accepted = sent,
processed = accepted, nothing lost, nothing double-booked, every notification received once.
Each also checks that its fault really hit the system, so that it cannot pass vacuously.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import ColumnElement, Engine, func, select

from models.db.engine import make_engine
from models.db.tables import events, ledger_postings, loyalty_cards
from tests.support.checker import Result, check
from tests.support.processes import Fleet, base_env, pool_children, voucherhook, worker_env
from tests.support.services import (
    PostgresServer,
    RedisServer,
    StallingProxy,
    TcpProxy,
    wait_for,
)
from tests.support.sinks import HttpSink, Sinks, running_sinks
from tests.support.workload import Load, Workload

# Generous for a busy machine: each test normally takes 30-100 s.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]

QUEUE = "vh-faults"
LOAD = Load(events=600, rate=40)
WORKER = ("--concurrency", "2")
KILLS = 5


@pytest.fixture
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster of its own, migrated, that the test may stop and start."""
    server = PostgresServer()
    try:
        server.start()
        migrate = subprocess.run(
            voucherhook("migrate"),
            env=base_env(server.url, None),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert migrate.returncode == 0, migrate.stderr
        yield server
    finally:
        server.close()


@contextlib.contextmanager
def under_load(env: dict[str, str], load: Load = LOAD) -> Iterator[tuple[Fleet, Workload]]:
    """One receiver and one worker (2 pool processes) on `env`, with `load` being sent to
    them; the fleet's logs are printed if the block fails."""
    with Fleet(env) as fleet:
        fleet.receiver()
        fleet.worker(*WORKER)
        with Workload(fleet.webhook_urls, load).start() as workload:
            yield fleet, workload


# A broker that restarts empty or is cut off, a receiver killed between its commit and its
# publish, a database down while workers take messages (their tasks fail, and the messages are
# acknowledged) lose messages no worker holds: their events wait VOUCHERHOOK_REDISPATCH_AFTER
# (300 s by default: tests/test_leases.py shows the sweep takes them then, and not before), or
# about 35 s when never run (the lost-message sweep: tests/test_lost_messages.py). Shortened
# here for the tests of those faults only, to keep them short (the lost-message sweep is off
# when it is shorter than the lease); a dead worker's events are recovered at the default
# settings (tests/test_recovery.py).
LOST_MESSAGES = {"VOUCHERHOOK_REDISPATCH_AFTER": "8"}


def fault_env(database_url: str, redis_url: str, sinks: Sinks, **extra: str) -> dict[str, str]:
    """Fast sweeps and retries (`worker_env`), notifications on, 503 within 4 s."""
    return worker_env(
        database_url, redis_url, QUEUE, VOUCHERHOOK_STORE_TIMEOUT="4", **sinks.env(), **extra
    )


def finish(engine: Engine, workload: Workload, sinks: Sinks) -> Result:
    """The checker over this test's sinks; its summary is printed for the record."""
    result = check(engine, workload, webhook_sink=sinks.webhook, smtp_sink=sinks.smtp)
    print(f"\n{result.summary()}\nfaults: {'; '.join(result.faults) or 'none'}")
    return result


def count_events(engine: Engine, *where: ColumnElement[bool]) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(events).where(*where)) or 0)


def processed(engine: Engine) -> int:
    return count_events(engine, events.c.status == "processed")


def pending(engine: Engine) -> int:
    return count_events(engine, events.c.status == "pending")


def undispatched(engine: Engine) -> int:
    return count_events(engine, events.c.status == "pending", events.c.dispatched_at.is_(None))


# -- worker processes killed ---------------------------------------------------------------


@dataclass(frozen=True)
class Kill:
    what: str
    processed: int
    pending: int


def wait_for_progress(engine: Engine, count: int) -> None:
    done = processed(engine)
    wait_for(lambda: processed(engine) >= done + count, 60, what=f"{count} more processed")


def kill_a_worker(fleet: Fleet, engine: Engine, whole: bool) -> Kill:
    """SIGKILL the worker's whole process group (and start another), or one pool process
    (the worker's main process replaces it and re-queues its task)."""
    worker = fleet.workers[0]
    children = pool_children(worker)
    done, waiting = processed(engine), pending(engine)
    if whole or not children:
        fleet.kill(worker)
        fleet.worker(*WORKER)
        return Kill("worker process group", done, waiting)
    os.kill(random.choice(children), signal.SIGKILL)
    return Kill("one pool process", done, waiting)


def test_worker_processes_killed_with_sigkill_repeatedly_lose_and_double_nothing(
    postgres_url: str, db: Engine, redis_server: RedisServer, sinks: Sinks
) -> None:
    kills: list[Kill] = []
    env = fault_env(postgres_url, redis_server.url, sinks)
    with under_load(env, Load(events=800, rate=40)) as (fleet, workload):
        for n in range(KILLS):
            wait_for_progress(db, 10)  # kill only a worker that is working
            time.sleep(random.uniform(0.2, 1.0))
            kills.append(kill_a_worker(fleet, db, whole=n % 2 == 0))
            workload.fault(f"SIGKILL {kills[-1].what}")
        result = finish(db, workload, sinks)

    assert len(kills) == KILLS
    assert all(kill.pending > 0 for kill in kills), f"a kill came after the work: {kills}"
    # A send cut by a kill stays `sending` and is never repeated (README, Known limits).
    result.assert_ok(allow_unknown_sends=True)


# -- Redis ---------------------------------------------------------------------------------


def test_redis_restarted_under_load_loses_nothing(
    postgres_url: str, db: Engine, redis_server: RedisServer, sinks: Sinks
) -> None:
    env = fault_env(postgres_url, redis_server.url, sinks, **LOST_MESSAGES)
    with under_load(env) as (_, workload):
        workload.wait_for_accepted(300)
        redis_server.stop()
        workload.fault("Redis stopped (no persistence: its queues are lost)")
        wait_for(lambda: undispatched(db) > 0, 15, what="events accepted while Redis is down")
        time.sleep(3)
        redis_server.start()
        workload.fault("Redis started again, empty")
        result = finish(db, workload, sinks)
        result.assert_ok()  # inside the fleet: its logs are printed if this fails


def test_notifications_waiting_for_their_retry_survive_a_redis_restart(
    postgres_url: str, db: Engine, redis_server: RedisServer
) -> None:
    """The SMTP server refuses the first 40 emails, so their retries wait as countdown messages
    in Redis; Redis restarts empty and loses them. The sweep finds the deliveries past due and
    sends each once."""
    with running_sinks(refuse_emails=40) as sinks:
        env = fault_env(postgres_url, redis_server.url, sinks, **LOST_MESSAGES)
        env.update(VOUCHERHOOK_RETRY_BACKOFF="6", VOUCHERHOOK_RETRY_BACKOFF_MAX="10")
        with under_load(env, Load(events=200, rate=40)) as (_, workload):
            wait_for(lambda: sinks.smtp.refused >= 40, 60, what="40 emails refused")
            workload.fault("SMTP refused 40 emails: their retries wait in Redis")
            redis_server.stop()
            time.sleep(2)
            redis_server.start()
            workload.fault("Redis restarted empty: the retry messages are lost")
            result = finish(db, workload, sinks)
    result.assert_ok()
    assert sinks.smtp.refused == 40


@pytest.mark.timeout(600)
def test_redis_unreachable_for_a_minute_deliveries_are_accepted_then_swept(
    postgres_url: str, db: Engine, redis_server: RedisServer, sinks: Sinks
) -> None:
    proxy = TcpProxy("127.0.0.1", redis_server.port)
    proxy.start()
    load = Load(events=720, rate=10)
    try:
        # A publish cut in flight is a lost message too.
        env = fault_env(postgres_url, f"redis://127.0.0.1:{proxy.port}/0", sinks, **LOST_MESSAGES)
        with under_load(env, load) as (_, workload):
            workload.wait_for_accepted(50)
            proxy.cut()
            workload.fault("Redis unreachable: connections cut, new ones refused")
            accepted_before = workload.accepted_count()
            time.sleep(60)
            accepted_during = workload.accepted_count() - accepted_before
            left_undispatched = undispatched(db)
            proxy.restore()
            workload.fault("Redis reachable again after 60 s")
            result = finish(db, workload, sinks)
    finally:
        proxy.close()

    assert accepted_during >= 0.8 * 60 * load.rate, f"only {accepted_during} accepted"
    assert left_undispatched > 0, "the outage left nothing for the sweep: it proved nothing"
    assert set(result.answers) <= {"200", "202"}, f"not always 2xx: {result.answers}"
    result.assert_ok()


# -- PostgreSQL ----------------------------------------------------------------------------


def test_postgres_restarted_under_load_is_503_then_retried_and_nothing_is_lost(
    postgres_server: PostgresServer, redis_server: RedisServer, sinks: Sinks
) -> None:
    engine = make_engine(postgres_server.url)
    try:
        env = fault_env(postgres_server.url, redis_server.url, sinks, **LOST_MESSAGES)
        with under_load(env) as (_, workload):
            workload.wait_for_accepted(300)
            postgres_server.stop("immediate")
            workload.fault("PostgreSQL stopped (immediate shutdown, as in a crash)")
            wait_for(lambda: workload.answers()["503"] >= 10, 30, what="503 answers")
            time.sleep(3)
            postgres_server.start()
            workload.fault("PostgreSQL started again (crash recovery)")
            result = finish(engine, workload, sinks)
    finally:
        engine.dispose()

    answers = result.answers
    assert answers.get("503", 0) >= 10, answers
    assert not set(answers) - {"200", "202", "503"}, f"other answers than 2xx and 503: {answers}"
    result.assert_ok()


# -- the receiver killed between commit and publish ----------------------------------------


def stranded(engine: Engine, since: datetime) -> list[str]:
    """Events received since then, stamped as handed to the broker, still pending."""
    with engine.connect() as conn:
        return list(
            conn.scalars(
                select(events.c.id).where(
                    events.c.status == "pending",
                    events.c.dispatched_at.is_not(None),
                    events.c.received_at >= since,
                )
            )
        )


def dispatched_at(engine: Engine, ids: list[str]) -> dict[str, datetime]:
    with engine.connect() as conn:
        rows = conn.execute(select(events.c.id, events.c.dispatched_at).where(events.c.id.in_(ids)))
        return {event_id: at for event_id, at in rows}


def test_receiver_killed_between_commit_and_publish_its_events_are_swept(
    postgres_url: str, db: Engine, redis_server: RedisServer, sinks: Sinks
) -> None:
    # The first receiver reaches Redis through a proxy that will swallow its publishes.
    proxy = StallingProxy("127.0.0.1", redis_server.port)
    proxy.start()
    env = fault_env(postgres_url, redis_server.url, sinks, **LOST_MESSAGES)
    try:
        with Fleet(env) as fleet:
            first = fleet.receiver(env={**env, "REDIS_URL": f"redis://127.0.0.1:{proxy.port}/0"})
            fleet.worker(*WORKER)
            standby = fleet.receiver()  # where deliveries go once the first one is dead
            with Workload([first.webhook_url], LOAD).start() as workload:
                workload.wait_for_accepted(250)
                proxy.stall()
                since = datetime.now(UTC)  # what is received from now on cannot be published
                workload.fault("the receiver's publishes to Redis hang")
                wait_for(lambda: len(stranded(db, since)) >= 50, 10, what="committed events")
                fleet.kill(first)
                killed_at = datetime.now(UTC)
                left = stranded(db, since)
                workload.fault(f"receiver SIGKILLed with {len(left)} committed, unpublished")
                workload.retarget([standby.webhook_url])
                workload.fault("deliveries go to another receiver")
                result = finish(db, workload, sinks)
                recovered = dispatched_at(db, left)
    finally:
        proxy.close()

    assert len(left) >= 50
    assert proxy.dropped > 0, "no publish was swallowed: the receiver was not publishing"
    # Every one of them was handed to the broker again, by a sweep, after the kill.
    assert all(recovered[event_id] > killed_at for event_id in left)
    result.assert_ok()


# -- the same events twice, concurrently, out of order -------------------------------------


def stored_before_originals(engine: Engine, workload: Workload) -> int:
    """Rollbacks the receivers stored before the redemption they roll back."""
    with engine.connect() as conn:
        received = {
            row.id: row.received_at
            for row in conn.execute(select(events.c.id, events.c.received_at))
        }
    original_event = {e.redemption_id: e.event_id for e in workload.events if e.redemption_id}
    return sum(
        1
        for event in workload.events
        if event.original is not None
        and received[event.event_id] < received[original_event[event.original]]
    )


def test_the_same_events_delivered_twice_concurrently_and_out_of_order_count_once(
    postgres_url: str, db: Engine, redis_server: RedisServer, sinks: Sinks
) -> None:
    load = Load(events=500, rate=30, duplicate=True, shuffle=True)
    with Fleet(fault_env(postgres_url, redis_server.url, sinks)) as fleet:
        fleet.receiver()
        fleet.receiver()
        fleet.worker(*WORKER)
        fleet.worker(*WORKER)
        workload = Workload(fleet.webhook_urls, load)
        workload.fault("every event delivered twice at once, to two receivers, shuffled")
        with workload.start():
            result = finish(db, workload, sinks)
        early = stored_before_originals(db, workload)

    assert workload.rollbacks_before_originals() > 0
    assert early > 0, "no rollback arrived before its original: the order proved nothing"
    assert result.answers.get("200", 0) >= len(workload.events) // 2, result.answers
    result.assert_ok()


# -- the checker itself --------------------------------------------------------------------


def test_the_checker_sees_a_lost_event_a_double_booking_a_wrong_card_and_a_repeated_send(
    postgres_url: str, db: Engine, redis_server: RedisServer, sinks: Sinks
) -> None:
    """Without faults everything is right; then each kind of damage is counted, and fails."""
    env = fault_env(postgres_url, redis_server.url, sinks)
    with under_load(env, Load(events=80, rate=80)) as (_, workload):
        clean = check(db, workload, webhook_sink=sinks.webhook, smtp_sink=sinks.smtp, report=False)
    clean.assert_ok()

    damage(db, sinks.webhook)
    found = check(db, workload, webhook_sink=sinks.webhook, smtp_sink=sinks.smtp, report=False)
    figures = (found.lost, found.double_booked, found.cards_wrong, found.duplicate_notifications)
    assert figures == (1, 1, 1, 1), found.summary()
    with pytest.raises(AssertionError, match="double-booked"):
        found.assert_ok()


def damage(engine: Engine, webhook: HttpSink) -> None:
    """One event failed, one posting booked twice, one card off by a point, one webhook
    notification delivered again."""
    with engine.begin() as conn:
        conn.execute(
            events.update()
            .where(events.c.id == select(func.min(events.c.id)).scalar_subquery())
            .values(status="failed")
        )
        posting = conn.execute(select(ledger_postings).limit(1)).mappings().one()
        again = {column: value for column, value in posting.items() if column != "seq"}
        conn.execute(ledger_postings.insert().values(again))
        card = conn.scalar(select(loyalty_cards.c.card_id).limit(1))
        conn.execute(
            loyalty_cards.update()
            .where(loyalty_cards.c.card_id == card)
            .values(balance=loyalty_cards.c.balance + 1)
        )
    key = next(iter(webhook.keys))
    httpx.post(webhook.url, json={"text": "again"}, headers={"Idempotency-Key": key})
