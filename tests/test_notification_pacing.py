"""Each channel's rate limit, at its defaults, for the whole deployment: real workers (two of
them, two pool processes each) over Redis and PostgreSQL send to a real HTTP endpoint and SMTP
server on loopback, which note when each message arrived. A message over the limit waits its
turn; none is dropped, failed or sent twice."""

from __future__ import annotations

from sqlalchemy import Engine, func, select

from models.db.tables import notifications
from tests.support.processes import Worker, base_env
from tests.support.processing import store
from tests.support.services import wait_for
from tests.support.sinks import HttpSink, SmtpSink
from tests.unit.recorded import REDEMPTION, redemption
from workers.celery_app import make_celery, publisher
from workers.settings import Settings

EVENTS = 6


def spaced(arrivals: list[float], interval: float) -> list[tuple[int, int, float]]:
    """The pairs of messages that arrived closer than the limit allows: for messages i < j,
    j - i - 1 intervals at least (one interval of slack for a send that left late after its
    slot while the next left on time)."""
    times = sorted(arrivals)
    return [
        (i, j, times[j] - times[i])
        for i in range(len(times))
        for j in range(i + 1, len(times))
        if times[j] - times[i] < (j - i - 1) * interval - 0.02
    ]


def statuses(engine: Engine) -> dict[tuple[str, str, int], int]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                notifications.c.channel,
                notifications.c.status,
                notifications.c.attempts,
                func.count(),
            ).group_by(notifications.c.channel, notifications.c.status, notifications.c.attempts)
        )
        return {(channel, status, attempts): n for channel, status, attempts, n in rows}


def test_the_default_limits_hold_across_two_workers_and_every_message_arrives_once(
    postgres_url: str,
    redis_url: str,
    queue: str,
    db: Engine,
    webhook_sink: HttpSink,
    smtp: SmtpSink,
) -> None:
    """Every event published in a message of its own, so that both workers' four pool
    processes take send tasks at once: a budget per process would let their first messages
    arrive together."""
    env = base_env(
        postgres_url,
        redis_url,
        VOUCHERHOOK_QUEUE=queue,
        NOTIFY_WEBHOOK_URL=webhook_sink.url,
        SMTP_URL=smtp.url,
    )
    ids = [
        store(db, REDEMPTION, redemption(f"r_pace_{i}", order_id=f"ord_pace_{i}"))
        for i in range(EVENTS)
    ]
    workers = [Worker(env, "--concurrency", "2") for _ in range(2)]
    app = make_celery(Settings.model_validate({k: v for k, v in env.items() if k in KEYS}))
    try:
        publish = publisher(app, queue)
        for event_id in ids:
            publish([event_id])
        wait_for(
            lambda: len(webhook_sink.requests) >= EVENTS and len(smtp.messages) >= EVENTS,
            120,
            what=f"{EVENTS} webhook messages and {EVENTS} emails",
        )
        wait_for(
            lambda: statuses(db) == {("email", "sent", 1): EVENTS, ("webhook", "sent", 1): EVENTS},
            30,
            what="every delivery recorded sent, at its first attempt",
        )
    finally:
        app.close()
        for worker in workers:
            worker.stop()

    assert len(webhook_sink.requests) == len(smtp.messages) == EVENTS
    assert set(webhook_sink.keys.values()) == {1}
    assert len({m["Message-ID"] for m in smtp.messages}) == EVENTS
    assert spaced(webhook_sink.arrivals, 1.0) == []
    assert spaced(smtp.arrivals, 0.1) == []
    # The webhook messages were spread over the time the limit asks for, not sent together.
    webhook = sorted(webhook_sink.arrivals)
    assert webhook[-1] - webhook[0] >= (EVENTS - 2) * 1.0


KEYS = ("DATABASE_URL", "REDIS_URL", "VOUCHERIFY_WEBHOOK_SECRET", "VOUCHERHOOK_QUEUE")
