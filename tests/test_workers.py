"""Real Celery worker processes over Redis and PostgreSQL, with an SMTP server and an HTTP
endpoint on loopback: the numbers, exactly once, through kills and failures."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import text

from models.journal import balances as fold_balances
from models.ledger import post_redemption
from models.loyalty import fold_cards, movement_of
from models.voucherify import RedemptionSucceeded, RewardRedemptionCompleted
from receiver.signature import HEADER, sign
from tests.conftest import EventLog
from tests.support.payloads import (
    REDEMPTION,
    REWARD_REDEMPTION,
    dumps,
    envelope,
    example,
    example_bytes,
    parsed,
    reward_redemption,
)
from tests.support.processes import SECRET, Receiver, Worker, voucherhook, worker_env
from tests.support.services import wait_for
from tests.support.sinks import HttpSink, SmtpSink
from tests.unit.recorded import redemption
from workers.notification_channels import WebhookSender

KEY = SECRET.encode()
CARD = "v_p7NP2qmQaMXsNHzb9ujPVjqgDJzJ2ccQ"


def deliver_all(url: str, bodies: list[bytes], concurrency: int = 16) -> list[int]:
    async def run() -> list[int]:
        limit = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(timeout=30) as client:

            async def one(body: bytes) -> int:
                async with limit:
                    response = await client.post(
                        url, content=body, headers={HEADER: sign(body, KEY)}
                    )
                    return response.status_code

            return await asyncio.gather(*(one(body) for body in bodies))

    return asyncio.run(run())


def all_processed(pg_log: EventLog, count: int) -> bool:
    statuses = pg_log.statuses()
    return len(statuses) == count and all(s == "processed" for s in statuses.values())


def left_over(pg_log: EventLog) -> str:
    """The events not processed yet, for a failure's message: how many of each status, and
    the first few with their error, dispatch time and lease."""
    from sqlalchemy import select

    from models.db.tables import events

    with pg_log.engine.connect() as conn:
        rows = conn.execute(
            select(
                events.c.id,
                events.c.status,
                events.c.error,
                events.c.dispatched_at,
                events.c.lease_until,
                events.c.leased_by,
            )
            .where(events.c.status != "processed")
            .order_by(events.c.seq)
        ).all()
    counts = Counter(row.status for row in rows)
    first = "; ".join(
        f"{r.id} {r.status} dispatched {r.dispatched_at} lease {r.lease_until} by {r.leased_by}"
        f" error {r.error}"
        for r in rows[:5]
    )
    return f"{len(rows)} left ({dict(counts)}) at {datetime.now(UTC)}: {first}"


def cli_json(env: dict[str, str], *args: str) -> object:
    result = subprocess.run(voucherhook(*args), env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_seed_events_give_the_specified_ledger_card_and_notifications(
    postgres_url: str,
    redis_url: str,
    queue: str,
    pg_log: EventLog,
    webhook_sink: HttpSink,
    smtp: SmtpSink,
) -> None:
    env = worker_env(
        postgres_url, redis_url, queue, SMTP_URL=smtp.url, NOTIFY_WEBHOOK_URL=webhook_sink.url
    )
    receiver, worker = Receiver(env, "--no-worker"), Worker(env)
    try:
        codes = deliver_all(receiver.webhook_url, [dumps(envelope(REDEMPTION))])
        raw = example_bytes(REWARD_REDEMPTION)
        reward = httpx.post(
            f"{receiver.webhook_url}/{REWARD_REDEMPTION}",
            content=raw,
            headers={HEADER: sign(raw, KEY)},
        )
        wait_for(lambda: all_processed(pg_log, 2), 60, what="both events processed")
        wait_for(
            lambda: len(smtp.messages) == 1 and len(webhook_sink.requests) == 2,
            30,
            what="notifications",
        )
        ledger = cli_json(env, "ledger", "balances", "--json")
        card = cli_json(env, "loyalty", CARD, "--json")
    finally:
        receiver.stop()
        worker.stop()

    assert codes[0] == 202 and reward.status_code == 202
    assert {(row["account"], row["asset"]): row["balance"] for row in ledger} == {  # type: ignore[union-attr]
        ("discount:camp_kwMyXFKquedx8FzXNpVPN7QU", "USD"): 1000,
        ("order:ord_3VYCHwdV0YOOch2nm1RsTKNI", "USD"): 6000,
        ("sales", "USD"): -7000,
        ("loyalty:payments", "POINTS"): 100,
        (f"loyalty:card:{CARD}", "POINTS"): -100,
    }
    assert isinstance(card, dict)
    assert (card["card_id"], card["customer_id"], card["balance"], card["points_spent"]) == (
        CARD,
        "cust_2myfc5acSBgoMV72R5tyTBc8",
        70,
        100,
    )
    assert card["as_of"].startswith("2024-05-13T12:26:06.25")
    # Jane has an email address; the reward's customer has none.
    (mail,) = smtp.messages
    assert mail["To"] == "jane@jane.io"
    assert "10.00 USD" in mail["Subject"]
    texts = sorted(request["text"] for request in webhook_sink.requests)
    assert any("rew_UtRGHxt98jwCzodkskxQ7KLp" in t or "100 points" in t for t in texts)
    assert max(webhook_sink.keys.values()) == 1


def test_smtp_refusing_then_accepting_delivers_the_email_once_without_holding_the_ledger(
    postgres_url: str, redis_url: str, queue: str, pg_log: EventLog
) -> None:
    smtp = SmtpSink(refuse=2)
    smtp.start()
    env = worker_env(postgres_url, redis_url, queue, SMTP_URL=smtp.url)
    receiver, worker = Receiver(env, "--no-worker"), Worker(env)
    try:
        deliver_all(receiver.webhook_url, [dumps(envelope(REDEMPTION))])
        wait_for(lambda: all_processed(pg_log, 1), 60, what="the event processed")
        booked_before_mail = not smtp.messages
        ledger = cli_json(env, "ledger", "balances", "--account", "sales", "--json")
        wait_for(lambda: len(smtp.messages) == 1, 60, what="the email after two refusals")
        # Give a wrongly repeated send the time to show up.
        wait_for(lambda: smtp.refused == 2, 5)
    finally:
        receiver.stop()
        worker.stop()
        smtp.stop()

    assert booked_before_mail
    assert ledger == [{"account": "sales", "asset": "USD", "balance": -7000}]
    assert smtp.refused == 2
    assert len(smtp.messages) == 1
    with pg_log.engine.connect() as conn:
        from sqlalchemy import select

        from models.db.tables import notifications

        row = conn.execute(select(notifications.c.status, notifications.c.attempts)).one()
    assert tuple(row) == ("sent", 3)


def test_worker_killed_with_sigkill_mid_run_of_1000_events_loses_and_doubles_nothing(
    postgres_url: str, redis_url: str, queue: str, pg_log: EventLog, webhook_sink: HttpSink
) -> None:
    events = [
        redemption(f"r_kill_{i}", order_id=f"ord_kill_{i}", amount=1000 + i, applied=i % 300)
        for i in range(1000)
    ]
    env = worker_env(postgres_url, redis_url, queue, NOTIFY_WEBHOOK_URL=webhook_sink.url)
    receiver = Receiver(env, "--no-worker")
    worker = Worker(env, "--concurrency", "2")
    try:
        codes = deliver_all(f"{receiver.webhook_url}/{REDEMPTION}", [dumps(e) for e in events])

        def some_processed() -> bool:
            done = sum(s == "processed" for s in pg_log.statuses().values())
            return done >= 50

        wait_for(some_processed, 120, interval=0.05, what="part of the run processed")
        worker.kill()
        killed_at = sum(s == "processed" for s in pg_log.statuses().values())
        worker = Worker(env, "--concurrency", "2")
        try:
            wait_for(lambda: all_processed(pg_log, 1000), 240, interval=0.5)
        except AssertionError:
            raise AssertionError(f"every event processed, but: {left_over(pg_log)}") from None
        wait_for(lambda: _notifications_settled(pg_log), 60, what="notifications settled")
        # A warm shutdown: the sends under way end and are recorded.
        worker.shutdown()
    finally:
        receiver.stop()
        worker.stop()

    assert codes == [202] * 1000
    assert killed_at < 1000, "the kill came after the run: it proved nothing"
    expected = fold_balances(
        t for e in events for t in post_redemption(parsed(RedemptionSucceeded, e), "USD")
    )
    with pg_log.engine.connect() as conn:
        from models.db import ledger_store

        booked = {(a, s): b for a, s, b in ledger_store.balances(conn)}
    assert booked == {key: value for key, value in expected.items() if value}
    # Sent at most once each: a send cut by the kill stays "sending", never repeated.
    assert max(webhook_sink.keys.values()) == 1
    statuses = _notification_statuses(pg_log)
    assert statuses.get("sent", 0) + statuses.get("sending", 0) == 1000
    # At most the window each of the two killed pool processes held claimed.
    assert statuses.get("sending", 0) <= 2 * WebhookSender.window
    received = sum(webhook_sink.keys.values())
    assert statuses.get("sent", 0) <= received <= 1000


REFUSE_BUDGET = """
CREATE FUNCTION refuse_budget() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the budget is refused (a fault of the test)'; END $$;
CREATE TRIGGER refuse_budget BEFORE UPDATE ON notification_budget
FOR EACH ROW EXECUTE FUNCTION refuse_budget();
"""
ALLOW_BUDGET = """
DROP TRIGGER IF EXISTS refuse_budget ON notification_budget;
DROP FUNCTION IF EXISTS refuse_budget();
"""


def test_a_send_task_failing_with_deliveries_claimed_records_them_and_leaves_none_sending(
    postgres_url: str, redis_url: str, queue: str, pg_log: EventLog
) -> None:
    """While the worker's task has posts under way (the sink answers the fifth), the database
    starts refusing the channel's budget: the task's next transaction fails. The posts under
    way end and are recorded, those claimed and not begun go back to `pending`: nothing is
    left `sending`, and once the database accepts again every message arrives, once."""
    count = 60
    refused = threading.Event()

    def refuse_from_the_fifth(received: int) -> None:
        if received == 5:
            with pg_log.engine.begin() as conn:
                conn.execute(text(REFUSE_BUDGET))
            refused.set()

    sink = HttpSink(on_post=refuse_from_the_fifth)
    sink.start()
    env = worker_env(postgres_url, redis_url, queue, NOTIFY_WEBHOOK_URL=sink.url)
    events = [redemption(f"r_refused_{i}", order_id=f"ord_refused_{i}") for i in range(count)]
    receiver = Receiver(env, "--no-worker")
    worker = Worker(env, "--concurrency", "1")
    try:
        deliver_all(f"{receiver.webhook_url}/{REDEMPTION}", [dumps(e) for e in events])
        wait_for(refused.is_set, 120, what="the fifth post")
        wait_for(lambda: "the budget is refused" in worker.output(), 60, what="the task failed")
        while_refused = _notification_statuses(pg_log)
        received_then = sum(sink.keys.values())
        with pg_log.engine.begin() as conn:
            conn.execute(text(ALLOW_BUDGET))
        wait_for(lambda: all_processed(pg_log, count), 120, what="every event processed")
        wait_for(
            lambda: _notification_statuses(pg_log) == {"sent": count}, 60, what="every one sent"
        )
    finally:
        with pg_log.engine.begin() as conn:
            conn.execute(text(ALLOW_BUDGET))
        receiver.stop()
        worker.stop()
        sink.stop()

    assert "sending" not in while_refused
    assert while_refused.get("sent", 0) == received_then
    assert sorted(sink.keys.values()) == [1] * count


def test_two_worker_processes_on_the_same_cards_keep_balances_correct(
    postgres_url: str, redis_url: str, queue: str, pg_log: EventLog
) -> None:
    rng = random.Random(7)
    start = datetime(2024, 5, 13, 12, 0, tzinfo=UTC)
    cards = [f"v_card_{n}" for n in range(4)]
    events = [
        reward_redemption(
            f"rewr_race_{i}",
            rng.choice(cards),
            balance=rng.randrange(0, 5000),
            points=rng.randrange(1, 200),
            at=(start + timedelta(seconds=rng.randrange(0, 86400)))
            .isoformat()
            .replace("+00:00", "Z"),
        )
        for i in range(300)
    ]
    env = worker_env(postgres_url, redis_url, queue)
    receiver = Receiver(env, "--no-worker")
    workers = [Worker(env, "--concurrency", "2"), Worker(env, "--concurrency", "2")]
    try:
        deliver_all(f"{receiver.webhook_url}/{REWARD_REDEMPTION}", [dumps(e) for e in events])
        wait_for(
            lambda: all_processed(pg_log, 300), 180, interval=0.5, what="every event processed"
        )
        states = {card: cli_json(env, "loyalty", card, "--json") for card in cards}
    finally:
        receiver.stop()
        for worker in workers:
            worker.stop()

    expected = fold_cards(
        (card, ())
        for n, e in enumerate(events)
        if (
            card := movement_of(REWARD_REDEMPTION, parsed(RewardRedemptionCompleted, e), e, f"e{n}")
        )
    )
    for card, state in states.items():
        assert isinstance(state, dict)
        want = expected[card]
        assert (state["balance"], state["points_spent"], state["events"]) == (
            want.balance,
            want.points_spent,
            want.events,
        ), card
        assert datetime.fromisoformat(state["as_of"]) == want.as_of


def _notification_statuses(pg_log: EventLog) -> dict[str, int]:
    from sqlalchemy import func, select

    from models.db.tables import notifications

    with pg_log.engine.connect() as conn:
        rows = conn.execute(
            select(notifications.c.status, func.count()).group_by(notifications.c.status)
        )
        return {status: int(count) for status, count in rows}


def _notifications_settled(pg_log: EventLog) -> bool:
    statuses = _notification_statuses(pg_log)
    return statuses.get("pending", 0) == 0 and sum(statuses.values()) == 1000


_ = example  # the recorded payloads stay importable from here for readers
