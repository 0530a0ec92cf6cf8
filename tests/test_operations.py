"""Operating a deployment from the command line (interface.md, bookkeeping.md "Replay and
rebuild"): replay, rebuild, events list/show, ledger and loyalty, `send --sample`, and their
one-line failures. Real PostgreSQL throughout; real receiver and worker processes where the
point is what they do beside the command; the command always run as a subprocess, as an
operator runs it."""

from __future__ import annotations

import json
import random
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from models.db import notification_store
from models.db.eventlog import insert_new
from models.db.tables import events, handler_runs, notifications
from models.journal import Transaction
from models.journal import balances as fold_balances
from models.ledger import (
    post_card_transaction,
    post_redemption,
    post_reward_redemption,
    post_rollback,
)
from models.loyalty import fold_cards, movement_of, snapshot_flags
from models.voucherify import (
    CardTransactionEvent,
    RedemptionRollbackSucceeded,
    RedemptionSucceeded,
    RewardRedemptionCompleted,
    parse_payload,
)
from receiver.signature import HEADER, sign
from tests.conftest import EventLog
from tests.support import stores
from tests.support.payloads import (
    dumps,
    parsed,
    reward_redemption,
)
from tests.support.processes import SECRET, Receiver, Worker, base_env, voucherhook, worker_env
from tests.support.processing import balances, cards, nonzero, received
from tests.support.services import free_port, wait_for
from tests.support.sinks import HttpSink, SmtpSink
from tests.unit import recorded
from tests.unit.recorded import REDEMPTION, REWARD_REDEMPTION, ROLLBACK, Json
from workers.handlers.base import Config
from workers.processing import Processor, RetryPolicy
from workers.rebuild import digest
from workers.templates import BUILT_IN, environment

KEY = SECRET.encode()
SEED_CARD = "v_p7NP2qmQaMXsNHzb9ujPVjqgDJzJ2ccQ"
CAMPAIGN = "camp_kwMyXFKquedx8FzXNpVPN7QU"
# Processing in-process, as a worker does, with notifications off: the ledger and the cards
# are what these tests compare.
QUIET = Config(currency="USD", templates=environment(None), email=False, webhook=False)


# Running things ------------------------------------------------------------------------------


def cli(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        voucherhook(*args), env=env, capture_output=True, text=True, timeout=timeout
    )


def cli_json(env: dict[str, str], *args: str) -> Any:
    result = cli(env, *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def cli_many(
    env: dict[str, str], commands: dict[str, tuple[str, ...]]
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Several commands at once (each is mostly interpreter start-up): name -> its result."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(cli, env, *args) for name, args in commands.items()}
        return {name: future.result() for name, future in futures.items()}


def post_signed(client: httpx.Client, url: str, event_type: str, payload: Json) -> httpx.Response:
    """A raw payload, signed, to the receiver's URL for its type."""
    body = dumps(payload)
    return client.post(f"{url}/{event_type}", content=body, headers={HEADER: sign(body, KEY)})


def store_all(engine: Engine, items: list[tuple[str, Json]]) -> list[str]:
    """Store raw payloads as the receiver does, in this order of receipt; their ids."""
    start = datetime.now(UTC)
    rows = []
    for n, (event_type, payload) in enumerate(items):
        rows.append(received(dumps(payload), event_type, start + timedelta(microseconds=n)))
    for first in range(0, len(rows), 1000):
        with engine.begin() as conn:
            insert_new(conn, rows[first : first + 1000])
    return [row.id for row in rows]


def process_live(engine: Engine, ids: list[str], batch: int = 100) -> None:
    """Process in receipt order as worker tasks do, batch by batch; the rollbacks an original
    releases are processed next, as the task publishing them would have them."""
    processor = Processor(engine, QUIET, RetryPolicy())
    for first in range(0, len(ids), batch):
        todo = ids[first : first + batch]
        while todo:
            follow = processor.process(todo)
            assert follow.retries == []
            todo = follow.released


def body(engine: Engine, event_id: str) -> str:
    with engine.connect() as conn:
        stored = conn.scalar(select(events.c.body).where(events.c.id == event_id))
    assert stored is not None, f"{event_id} is not stored"
    return bytes(stored).decode()


def statuses(engine: Engine) -> dict[str, str]:
    return EventLog(engine).statuses()


def live_digest(engine: Engine) -> str:
    with engine.connect() as conn:
        return digest(conn)


def sent_notifications(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(select(notifications).order_by(notifications.c.seq))
        return [
            (r.seq, r.event_id, r.channel, r.recipient, r.status, r.attempts, r.sent_at)
            for r in rows
        ]


def run_rows(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(select(handler_runs).order_by("event_id", "handler"))
        return [(r.event_id, r.handler, r.status, r.attempts) for r in rows]


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    assert result.stderr.startswith("voucherhook: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr


# A log of every kind of event, and the state the pure rules give for it ----------------------


CARD_TRANSACTION = "voucher.loyalty_card.transaction.created"
GIFT_TRANSACTION = "voucher.gift.transaction.created"


def at(rng: random.Random) -> str:
    moment = datetime(2024, 5, 13, tzinfo=UTC) + timedelta(seconds=rng.randrange(0, 30 * 86400))
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def a_stack(tag: str) -> list[Json]:
    """`recorded.stack()` with ids of its own: children first, then the parent."""
    parent, children = recorded.stack()
    text = json.dumps([*children, parent])
    text = text.replace("r_stack_", f"r_stk{tag}_").replace(recorded.STACK_ORDER, f"ord_stk{tag}")
    data: list[Json] = json.loads(text)
    return data


def event_log(blocks: int, seed: int = 7, tag: str = "") -> list[tuple[str, Json]]:
    """`24 * blocks` events: discount, gift and loyalty card redemptions, reward redemptions on
    five cards, card transactions (an accrual, an expiry, gift credit added, and the points a
    card paid told again as their transaction), rollbacks (one of an earlier redemption, order
    cancelled or not, and on odd blocks one that arrives before its original) and, on even
    blocks, a stack."""
    rng = random.Random(seed)
    log: list[tuple[str, Json]] = []

    def discount(block: int, k: int) -> Json:
        return recorded.redemption(
            f"r_{tag}b{block}_{k}",
            order_id=f"ord_{tag}b{block}_{k}",
            amount=1000 + rng.randrange(0, 9000),
            applied=rng.randrange(0, 1000),
            campaign_id=f"camp_{rng.randrange(5)}",
        )

    for block in range(blocks):
        originals = [discount(block, k) for k in range(10)]
        log += [(REDEMPTION, data) for data in originals]
        for k in range(2):
            log.append(
                (
                    REDEMPTION,
                    recorded.redemption(
                        f"r_{tag}b{block}_gift{k}",
                        order_id=f"ord_{tag}b{block}_gift{k}",
                        amount=5000,
                        applied=rng.randrange(1, 3000),
                        kind="gift",
                        voucher_id=f"v_gift_{rng.randrange(7)}",
                    ),
                )
            )
        for k in range(2):
            log.append(
                (
                    REDEMPTION,
                    recorded.redemption(
                        f"r_{tag}b{block}_card{k}",
                        order_id=f"ord_{tag}b{block}_card{k}",
                        kind="loyalty",
                        voucher_id=f"v_card_{rng.randrange(5)}",
                        points=rng.randrange(1, 300),
                        created_at=at(rng),
                    ),
                )
            )
        for k in range(2):
            log.append(
                (
                    REWARD_REDEMPTION,
                    reward_redemption(
                        f"rewr_{tag}b{block}_{k}",
                        f"v_card_{rng.randrange(5)}",
                        balance=rng.randrange(0, 5000),
                        points=rng.randrange(1, 200),
                        at=at(rng),
                    ),
                )
            )
        # Card transactions: an accrual, an expiry and a gift card's credit added; the points
        # a card paid above told again as their POINTS_REDEMPTION (one movement, once).
        card = f"v_card_{block % 5}"
        log += [
            (
                CARD_TRANSACTION,
                recorded.card_transaction(
                    f"vtx_{tag}b{block}_{kind}",
                    card,
                    kind,
                    change,
                    rng.randrange(0, 5000),
                    created_at=at(rng),
                ),
            )
            for kind, change in (("POINTS_ACCRUAL", 120), ("POINTS_EXPIRATION", -15))
        ]
        log.append(
            (
                GIFT_TRANSACTION,
                recorded.card_transaction(
                    f"vtx_{tag}b{block}_gift",
                    f"v_gift_{block % 7}",
                    "CREDITS_ADDITION",
                    2500,
                    rng.randrange(2500, 9000),
                    created_at=at(rng),
                ),
            )
        )
        paid = next(
            d for t, d in log if (d.get("redemption") or {}).get("id") == f"r_{tag}b{block}_card0"
        )
        log.append(
            (
                CARD_TRANSACTION,
                recorded.card_transaction(
                    f"vtx_{tag}b{block}_paid",
                    paid["voucher"]["id"],
                    "POINTS_REDEMPTION",
                    -paid["redemption"]["amount"],
                    paid["voucher"]["loyalty_card"]["balance"],
                    created_at=paid["created_at"],
                    redemption=paid["redemption"]["id"],
                ),
            )
        )
        status = "CANCELED" if block % 2 else "PAID"
        log.append(
            (ROLLBACK, recorded.rollback(originals[0], f"rr_{tag}b{block}_0", order_status=status))
        )
        if block % 2 == 0:
            log += [(REDEMPTION, data) for data in a_stack(f"{tag}{block}")]
        else:
            # The rollback of a redemption of the next block, received before it (held, then
            # released); in the last block, of one received earlier.
            if block + 1 < blocks:
                name = f"{tag}b{block + 1}_1"
                original = recorded.redemption(f"r_{name}", order_id=f"ord_{name}")
            else:
                original = originals[1]
            log.append((ROLLBACK, recorded.rollback(original, f"rr_{tag}b{block}_1")))
            log += [(REDEMPTION, discount(block, k)) for k in (10, 11)]
    return log


def expected_balances(log: list[tuple[str, Json]]) -> dict[tuple[str, str], int]:
    """The ledger the pure rules give: every transaction once, by key."""
    booked: dict[str, Transaction] = {}
    redemptions: dict[str, tuple[Transaction, ...]] = {}
    rollbacks = []
    for event_type, data in log:
        if event_type == REDEMPTION:
            posted = post_redemption(parsed(RedemptionSucceeded, data), "USD")
            redemptions[data["redemption"]["id"]] = posted
        elif event_type == REWARD_REDEMPTION:
            posted = post_reward_redemption(parsed(RewardRedemptionCompleted, data))
        elif event_type in (CARD_TRANSACTION, GIFT_TRANSACTION):
            posted = post_card_transaction(parsed(CardTransactionEvent, data), "USD")
        else:
            rollbacks.append(parsed(RedemptionRollbackSucceeded, data))
            continue
        for transaction in posted:
            booked.setdefault(transaction.key, transaction)
    for rollback in rollbacks:
        for transaction in post_rollback(rollback, redemptions[rollback.original_id]):
            booked.setdefault(transaction.key, transaction)
    return nonzero(fold_balances(booked.values()))


def expected_cards(log: list[tuple[str, Json]]) -> dict[str, tuple[int | None, int, int]]:
    reports = []
    for n, (event_type, data) in enumerate(log):
        if event_type in (REWARD_REDEMPTION, REDEMPTION, CARD_TRANSACTION, GIFT_TRANSACTION):
            payload = parse_payload(event_type, data)
            seen = movement_of(event_type, payload, data, f"e{n}")
            if seen is not None:
                reports.append((seen, snapshot_flags(payload, seen)))
    return {
        card_id: (state.balance, state.points_spent, state.events)
        for card_id, state in fold_cards(reports).items()
    }


def stored_cards(engine: Engine) -> dict[str, tuple[int | None, int, int]]:
    return {c.card_id: (c.balance, c.points_spent, c.events) for c in cards(engine)}


# Replay ----------------------------------------------------------------------------------------


def test_replaying_processed_events_changes_nothing_and_sends_nothing_again(
    postgres_url: str,
    redis_url: str,
    queue: str,
    db: Engine,
    smtp: SmtpSink,
    webhook_sink: HttpSink,
) -> None:
    original = recorded.redemption("r_replay_1", order_id="ord_replay_1")
    deliveries = [
        (REDEMPTION, recorded.seed_redemption()),
        (REWARD_REDEMPTION, recorded.seed_reward_redemption()),
        *((REDEMPTION, data) for data in a_stack("replay")),
        (REDEMPTION, original),
        (ROLLBACK, recorded.rollback(original, "rr_replay_1", order_status="CANCELED")),
        (REDEMPTION, recorded.redemption("r_replay_card", kind="loyalty", points=40,
                                         voucher_id=SEED_CARD, order_id="ord_replay_card")),
    ]  # fmt: skip
    env = worker_env(
        postgres_url, redis_url, queue, SMTP_URL=smtp.url, NOTIFY_WEBHOOK_URL=webhook_sink.url
    )
    receiver, worker = Receiver(env, "--no-worker"), Worker(env)
    try:
        with httpx.Client(timeout=30) as client:
            codes = [post_signed(client, receiver.webhook_url, t, d).status_code
                     for t, d in deliveries]  # fmt: skip
        wait_for(
            lambda: (
                set(statuses(db).values()) == {"processed"} and len(statuses(db)) == len(deliveries)
            ),
            90,
            what="every event processed",
        )
        wait_for(
            lambda: {row[4] for row in sent_notifications(db)} == {"sent"},
            60,
            what="every notification sent",
        )
        before = (live_digest(db), sent_notifications(db), run_rows(db), statuses(db))
        mails, posts = len(smtp.messages), len(webhook_sink.requests)

        replayed = cli(env, "replay", "--since", "2000-01-01", "--notify")
        time.sleep(1)  # what a wrong re-send would have published has reached the sinks
        after = (live_digest(db), sent_notifications(db), run_rows(db), statuses(db))
    finally:
        receiver.stop()
        worker.stop()

    assert codes == [202] * len(deliveries)
    assert replayed.returncode == 0, replayed.stderr
    n = len(deliveries)
    assert replayed.stdout.startswith(
        f"selected {n}, re-run 0, unchanged {n}, failed 0, skipped 0 "
        "(quarantined or no handler); notifications sent 0"
    ), replayed.stdout
    assert after == before
    assert (len(smtp.messages), len(webhook_sink.requests)) == (mails, posts)
    assert mails > 0 and posts > 0


def test_a_delivery_left_sending_by_a_dead_worker_is_listed_released_and_sent_once_by_replay(
    postgres_url: str, redis_url: str, db: Engine, smtp: SmtpSink
) -> None:
    """A worker claims an email (it is `sending`, committed) and dies before sending it. The
    operator finds it, releases it, and a replay with --notify sends it, once."""
    [event_id] = store_all(db, [(REDEMPTION, recorded.seed_redemption())])
    config = Config(currency="USD", templates=environment(None), email=True, webhook=False)
    follow = Processor(db, config, RetryPolicy()).process([event_id])
    assert len(follow.notifications) == 1
    [stuck] = follow.notifications
    with db.begin() as conn:
        assert notification_store.claim(conn, stuck) is not None  # then the worker died
    env = base_env(postgres_url, redis_url, SMTP_URL=smtp.url)

    listed = cli_json(env, "notifications", "list", "--status", "sending", "--json")
    assert [(n["id"], n["event_id"], n["channel"], n["status"], n["attempts"]) for n in listed] == [
        (stuck, event_id, "email", "sending", 1)
    ]
    assert cli_json(env, "notifications", "list", "--status", "pending", "--json") == []
    table = cli(env, "notifications", "list")
    assert table.returncode == 0 and "sending" in table.stdout and event_id in table.stdout

    refused = cli(env, "notifications", "release", str(stuck), str(stuck + 1000))
    assert refused.returncode == 1
    assert refused.stderr.startswith("voucherhook: released nothing: ")
    assert f"{stuck + 1000} does not exist" in refused.stderr
    assert cli_json(env, "notifications", "list", "--json")[0]["status"] == "sending"

    released = cli(env, "notifications", "release", str(stuck))
    assert released.returncode == 0, released.stderr
    assert f"voucherhook replay --notify --event-id {event_id}" in released.stdout
    again = cli(env, "notifications", "release", str(stuck))
    assert again.returncode == 1 and f"{stuck} is failed" in again.stderr
    assert smtp.messages == []

    replayed = cli(env, "replay", "--notify", "--event-id", event_id)
    assert replayed.returncode == 0, replayed.stderr
    [note] = cli_json(env, "notifications", "list", "--event-id", event_id, "--json")
    assert (note["status"], note["attempts"], note["error"]) == ("sent", 2, None)
    assert len(smtp.messages) == 1
    assert cli(env, "replay", "--notify", "--event-id", event_id).returncode == 0
    assert len(smtp.messages) == 1


BROKEN = "Redemption {{ redemption_id }}: discount {{ savings }}.\n"  # `saved`, misspelt


def test_events_failed_by_a_broken_template_complete_when_replayed_after_the_fix(
    postgres_url: str,
    redis_url: str,
    queue: str,
    db: Engine,
    smtp: SmtpSink,
    webhook_sink: HttpSink,
    tmp_path: Path,
) -> None:
    template = tmp_path / "webhook" / f"{REDEMPTION}.j2"
    template.parent.mkdir()
    template.write_text(BROKEN)
    redemptions = [
        recorded.redemption(f"r_fix_{n}", order_id=f"ord_fix_{n}", applied=100 * n)
        for n in range(1, 4)
    ]
    env = worker_env(
        postgres_url,
        redis_url,
        queue,
        SMTP_URL=smtp.url,
        NOTIFY_WEBHOOK_URL=webhook_sink.url,
        VOUCHERHOOK_TEMPLATES_DIR=str(tmp_path),
        # A template error is not a payload error: without this it is retried a while first.
        VOUCHERHOOK_MAX_ATTEMPTS="1",
    )
    receiver, worker = Receiver(env, "--no-worker"), Worker(env)
    try:
        with httpx.Client(timeout=30) as client:
            ids = [
                post_signed(client, receiver.webhook_url, REDEMPTION, d).json()["event_id"]
                for d in redemptions
            ]
        wait_for(
            lambda: [statuses(db).get(i) for i in ids] == ["failed"] * 3,
            90,
            what="the three events failed",
        )
        failed = {i: EventLog(db).get(i) for i in ids}
        shown = cli(env, "events", "show", ids[0])
        booked = (balances(db), live_digest(db))

        template.write_text((BUILT_IN / "webhook" / f"{REDEMPTION}.j2").read_text())
        replayed = cli(env, "replay", "--status", "failed")
        after = statuses(db)
        again = cli(env, "replay", "--status", "failed")
    finally:
        receiver.stop()
        worker.stop()

    for row in failed.values():
        assert row is not None
        assert row["error"] == "notifications: 'savings' is undefined"
    assert shown.returncode == 0, shown.stderr
    assert "notifications: failed after 1 attempt(s) — notifications: 'savings' is undefined" in (
        shown.stdout
    )
    assert "jinja2.exceptions.UndefinedError: 'savings' is undefined" in shown.stdout  # traceback
    assert booked[0][("sales", "USD")] == -3 * 7000  # the ledger never waited for the template

    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout.startswith(
        "selected 3, re-run 3, unchanged 0, failed 0, skipped 0 (quarantined or no handler); "
        "notifications sent 6"
    ), replayed.stdout
    assert [after[i] for i in ids] == ["processed"] * 3
    assert (balances(db), live_digest(db)) == booked
    assert sorted(m["To"] for m in smtp.messages) == ["jane@jane.io"] * 3
    texts = sorted(request["text"] for request in webhook_sink.requests)
    assert [t.split(" of ")[0] for t in texts] == [f"Redemption r_fix_{n}" for n in range(1, 4)]
    assert max(webhook_sink.keys.values()) == 1
    assert again.stdout == "no events match: nothing to replay\n"


# Rebuild ---------------------------------------------------------------------------------------


def test_rebuilding_12000_events_gives_the_live_state_and_the_pure_rules_balances(
    postgres_url: str, redis_url: str, db: Engine
) -> None:
    log = event_log(500)
    assert len(log) == 12_000
    ids = store_all(db, log)
    process_live(db, ids)
    assert set(statuses(db).values()) == {"processed"}
    live = live_digest(db)
    assert nonzero(balances(db)) == expected_balances(log)
    assert stored_cards(db) == expected_cards(log)

    rebuilt = cli_json(base_env(postgres_url, redis_url), "rebuild", "--json")

    assert rebuilt["events"] == 12_000
    assert rebuilt["unchanged"] is True
    assert rebuilt["digest_before"] == rebuilt["digest"] == live
    assert live_digest(db) == live
    assert nonzero(balances(db)) == expected_balances(log)
    assert stored_cards(db) == expected_cards(log)


def test_a_rebuild_puts_back_a_ledger_that_drifted_from_the_log(
    postgres_url: str, redis_url: str, db: Engine
) -> None:
    log = event_log(2, tag="drift")
    process_live(db, store_all(db, log))
    live = live_digest(db)
    with db.begin() as conn:  # a person "fixed" the books by hand
        stores.clear_ledger(conn)

    rebuilt = cli_json(base_env(postgres_url, redis_url), "rebuild", "--json")

    assert (rebuilt["unchanged"], rebuilt["digest"]) == (False, live)
    assert rebuilt["digest_before"] != live
    assert nonzero(balances(db)) == expected_balances(log)


def test_rebuilding_while_deliveries_keep_arriving_loses_none_of_them(
    postgres_url: str, redis_url: str, queue: str, db: Engine
) -> None:
    seeded = event_log(100, tag="seed")  # 2000 events: enough for a rebuild to take a while
    process_live(db, store_all(db, seeded))
    env = worker_env(postgres_url, redis_url, queue)
    receiver, worker = Receiver(env, "--no-worker"), Worker(env, "--concurrency", "2")
    stop = threading.Event()
    delivered: list[tuple[float, str, Json, int]] = []
    arriving = event_log(20, seed=11, tag="live")  # 400 events

    def keep_delivering() -> None:
        with httpx.Client(timeout=30) as client:
            for event_type, data in arriving:
                if stop.is_set():
                    return
                response = post_signed(client, receiver.webhook_url, event_type, data)
                delivered.append((time.monotonic(), event_type, data, response.status_code))
                time.sleep(0.02)

    sender = threading.Thread(target=keep_delivering, daemon=True)
    windows = []
    try:
        sender.start()
        wait_for(lambda: len(delivered) >= 20, 30, what="deliveries under way")
        for _ in range(2):
            started = time.monotonic()
            result = cli(env, "rebuild")
            windows.append((started, time.monotonic()))
            assert result.returncode == 0, result.stderr
        sender.join(120)
        stop.set()
        count = len(delivered)
        wait_for(
            lambda: (
                len(statuses(db)) == len(seeded) + count
                and set(statuses(db).values()) == {"processed"}
            ),
            180,
            interval=0.5,
            what="every delivered event processed",
        )
        live = live_digest(db)
        final = cli_json(env, "rebuild", "--json")
    finally:
        stop.set()
        receiver.stop()
        worker.stop()

    assert not sender.is_alive()
    assert [code for *_, code in delivered] == [202] * len(delivered)
    during = [t for t, *_ in delivered if any(a <= t <= b for a, b in windows)]
    assert during, "no delivery arrived while a rebuild ran: the test proved nothing"
    arrived = seeded + [(event_type, data) for _, event_type, data, _ in delivered]
    assert nonzero(balances(db)) == expected_balances(arrived)
    assert stored_cards(db) == expected_cards(arrived)
    assert final["unchanged"] is True
    assert final["digest"] == final["digest_before"] == live
    assert final["events"] == len(arrived)


# What the commands show ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shown(engine: Engine, postgres_url: str, redis_url: str) -> dict[str, Any]:
    """A redemption, a reward redemption and a failed event, processed; then every showing
    command run once on them (at once: they only read)."""
    EventLog(engine).clear()
    bad = recorded.redemption("r_shown_bad", order_id="ord_shown_bad")
    # A child of a stack that names neither voucher nor tier: the ledger cannot book it.
    bad["voucher"] = bad["promotion_tier"] = None
    bad["redemption"]["redemption"] = "r_shown_parent"
    ids = store_all(
        engine,
        [
            (REDEMPTION, recorded.seed_redemption()),
            (REWARD_REDEMPTION, recorded.seed_reward_redemption()),
            (REDEMPTION, bad),
        ],
    )
    process_live(engine, ids)
    good, reward, failed = ids
    env = base_env(postgres_url, redis_url)
    commands = {
        "list json": ("events", "list", "--json"),
        "list failed json": ("events", "list", "--status", "failed", "--json"),
        "list": ("events", "list"),
        "show json": ("events", "show", good, "--json"),
        "show failed json": ("events", "show", failed, "--json"),
        "balances json": ("ledger", "balances", "--json"),
        "balances": ("ledger", "balances"),
        "loyalty json": ("loyalty", SEED_CARD, "--json"),
        "loyalty": ("loyalty", SEED_CARD),
        "dry run": ("replay", "--status", "failed", "--dry-run"),
    }
    results = cli_many(env, commands)
    for name, result in results.items():
        assert result.returncode == 0, f"{name}: {result.stderr}"
    return {
        "ids": {"good": good, "reward": reward, "failed": failed},
        "out": {name: result.stdout for name, result in results.items()},
        "balances": balances(engine),
        "statuses": statuses(engine),
        "bodies": {i: body(engine, i) for i in ids},
    }


def test_events_list_json_is_an_array_of_id_type_status_and_received_at(
    shown: dict[str, Any],
) -> None:
    listed = json.loads(shown["out"]["list json"])
    assert isinstance(listed, list)
    assert {e["id"]: e["status"] for e in listed} == shown["statuses"]
    for e in listed:
        assert {"id", "type", "status", "received_at"} <= e.keys()
        assert e["status"] in ("pending", "processed", "failed", "ignored", "quarantined")
        assert datetime.fromisoformat(e["received_at"]).tzinfo is not None
    assert {e["id"]: e["type"] for e in listed}[shown["ids"]["reward"]] == REWARD_REDEMPTION


def test_events_list_filters_by_status(shown: dict[str, Any]) -> None:
    listed = json.loads(shown["out"]["list failed json"])
    assert [(e["id"], e["status"]) for e in listed] == [(shown["ids"]["failed"], "failed")]


def test_events_list_piped_is_a_header_and_a_tab_separated_line_per_event(
    shown: dict[str, Any],
) -> None:
    header, *lines = shown["out"]["list"].splitlines()
    assert header.split("\t") == ["received_at", "id", "type", "status", "attempts", "error"]
    rows = {line.split("\t")[1]: line.split("\t") for line in lines}
    assert {event_id: row[3] for event_id, row in rows.items()} == shown["statuses"]
    assert rows[shown["ids"]["reward"]][2] == REWARD_REDEMPTION
    assert all(len(row) == 6 for row in rows.values())
    assert "names a parent" in rows[shown["ids"]["failed"]][5]


def test_events_show_json_has_the_body_attempts_and_handlers(shown: dict[str, Any]) -> None:
    good = shown["ids"]["good"]
    event = json.loads(shown["out"]["show json"])
    assert {"id", "type", "status", "received_at", "body", "attempts", "error"} <= event.keys()
    assert (event["id"], event["type"], event["status"], event["error"]) == (
        good,
        REDEMPTION,
        "processed",
        None,
    )
    assert event["body"] == shown["bodies"][good]
    assert {h["handler"]: h["status"] for h in event["handlers"]} == {
        "ledger": "done",
        "loyalty": "done",
        "notifications": "done",
    }


def test_events_show_json_of_a_failed_event_has_its_error_and_traceback(
    shown: dict[str, Any],
) -> None:
    event = json.loads(shown["out"]["show failed json"])
    assert event["status"] == "failed"
    assert "names a parent, but the redemption names neither a voucher nor a" in event["error"]
    assert {h["handler"] for h in event["handlers"]} == {"ledger", "loyalty", "notifications"}
    for handler in event["handlers"]:
        assert handler["status"] == "failed"
        assert "Traceback" in handler["traceback"]


def test_ledger_balances_json_is_account_asset_and_an_integer_balance(
    shown: dict[str, Any],
) -> None:
    rows = json.loads(shown["out"]["balances json"])
    assert all(set(row) == {"account", "asset", "balance"} for row in rows)
    assert all(type(row["balance"]) is int for row in rows)
    assert {(r["account"], r["asset"]): r["balance"] for r in rows} == shown["balances"]
    assert shown["balances"][("sales", "USD")] == -7000


def test_ledger_balances_show_money_in_its_currency_and_points_as_points(
    shown: dict[str, Any],
) -> None:
    header, *lines = shown["out"]["balances"].splitlines()
    assert header == "account\tbalance"
    shown_balances = dict(line.split("\t") for line in lines)
    assert shown_balances["sales"] == "-70.00 USD"
    assert shown_balances[f"loyalty:card:{SEED_CARD}"] == "-100 points"


def test_loyalty_json_has_the_card_its_customer_balance_and_points_spent(
    shown: dict[str, Any],
) -> None:
    card = json.loads(shown["out"]["loyalty json"])
    assert (card["card_id"], card["customer_id"], card["balance"], card["points_spent"]) == (
        SEED_CARD,
        "cust_2myfc5acSBgoMV72R5tyTBc8",
        70,
        100,
    )
    assert datetime.fromisoformat(card["as_of"]) == datetime(2024, 5, 13, 12, 26, 6, 250000, UTC)
    assert "card_id" in shown["out"]["loyalty"] and SEED_CARD in shown["out"]["loyalty"]


def test_a_dry_run_says_what_would_run_and_changes_nothing(shown: dict[str, Any]) -> None:
    table = shown["out"]["dry run"]
    assert "1 event(s) selected (dry run: nothing changed)" in table
    assert "would run" in table
    assert "ledger, loyalty, notifications" in table
    assert shown["statuses"][shown["ids"]["failed"]] == "failed"


# Failures: one line, a non-zero exit -----------------------------------------------------------

FAILURES: dict[str, tuple[tuple[str, ...], str]] = {
    "events show of an unknown id": (
        ("events", "show", "evt_nope"),
        "voucherhook: no event evt_nope: `voucherhook events list` shows the stored ids",
    ),
    "replay of an unknown id": (
        ("replay", "--event-id", "evt_nope"),
        "voucherhook: no event evt_nope: `voucherhook events list` shows ids",
    ),
    "a bad --since": (
        ("events", "list", "--since", "yesterday"),
        "voucherhook: argument --since: 'yesterday' is not an ISO 8601 date or time",
    ),
    "a bad --until": (
        ("replay", "--until", "2024-13-45"),
        "voucherhook: argument --until: '2024-13-45' is not an ISO 8601 date or time",
    ),
    "an unknown --status": (
        ("replay", "--status", "bogus"),
        "voucherhook: argument --status: invalid choice: 'bogus'",
    ),
    "replay with no selector": (
        ("replay", "--dry-run"),
        "voucherhook: choose the events to replay: --event-id ID, --type T, --since/--until "
        "or --status S",
    ),
    "an unknown loyalty card": (("loyalty", "v_nope"), "voucherhook: no loyalty card v_nope"),
    "an unknown sample": (
        ("send", "--sample", "nope", "--url", "http://127.0.0.1:9/"),
        "voucherhook: argument --sample: unknown sample 'nope': the samples are "
        "redemption.succeeded, customer.reward_redemptions.completed, "
        "redemption.rollback.succeeded",
    ),
    "send with neither file nor sample": (
        ("send", "--url", "http://127.0.0.1:9/"),
        "voucherhook: send needs FILEs or --sample NAME",
    ),
    "send with both files and a sample": (
        ("send", "a.json", "--sample", "redemption.succeeded"),
        "voucherhook: send FILEs or --sample NAME, not both",
    ),
}
NO_DATABASE = ("events list", "events show", "replay", "rebuild")
NO_DATABASE_ARGS = {
    "events list": ("events", "list"),
    "events show": ("events", "show", "evt_x"),
    "replay": ("replay", "--status", "failed"),
    "rebuild": ("rebuild",),
}


@pytest.fixture(scope="module")
def failures(postgres_url: str, redis_url: str) -> dict[str, subprocess.CompletedProcess[str]]:
    found = cli_many(
        base_env(postgres_url, redis_url), {name: args for name, (args, _) in FAILURES.items()}
    )
    nowhere = f"postgresql://app:hunter2@127.0.0.1:{free_port()}/voucherhook"
    found.update(
        cli_many(
            base_env(nowhere, redis_url),
            {f"no database: {name}": NO_DATABASE_ARGS[name] for name in NO_DATABASE},
        )
    )
    return found


@pytest.mark.parametrize("case", list(FAILURES))
def test_a_failure_is_one_clear_line_and_a_non_zero_exit(
    failures: dict[str, subprocess.CompletedProcess[str]], case: str
) -> None:
    error = one_line_error(failures[case])
    assert error.startswith(FAILURES[case][1]), error
    assert failures[case].stdout == ""


@pytest.mark.parametrize("command", NO_DATABASE)
def test_no_database_is_one_line_naming_it_with_the_password_hidden(
    failures: dict[str, subprocess.CompletedProcess[str]], command: str
) -> None:
    result = failures[f"no database: {command}"]
    error = one_line_error(result)
    assert result.returncode == 1
    assert error.startswith("voucherhook: database postgresql://app:***@127.0.0.1:")
    assert "unavailable" in error and "hunter2" not in error


# send --sample ---------------------------------------------------------------------------------


def sends(result: subprocess.CompletedProcess[str]) -> list[tuple[int, dict[str, Any]]]:
    assert result.returncode == 0, result.stderr
    answers = []
    for line in result.stdout.splitlines():
        code, _, body = line.partition(" ")
        answers.append((int(code), json.loads(body)))
    return answers


def test_send_sample_makes_a_new_event_each_time_that_the_workers_book(
    postgres_url: str, redis_url: str, queue: str, db: Engine
) -> None:
    env = worker_env(postgres_url, redis_url, queue)
    receiver, worker = Receiver(env, "--no-worker"), Worker(env)
    url = receiver.webhook_url
    try:
        results = cli_many(
            env,
            {
                "first": ("send", "--sample", REDEMPTION, "--url", url),
                "second": ("send", "--sample", REDEMPTION, "--url", url),
                "raw": ("send", "--sample", REDEMPTION, "--url", url, "--raw"),
                "reward": ("send", "--sample", REWARD_REDEMPTION, "--url", url),
                "rollback": ("send", "--sample", ROLLBACK, "--url", url),
            },
        )
        answers = {name: sends(result) for name, result in results.items()}
        ids = [body["event_id"] for found in answers.values() for _, body in found]
        wait_for(
            lambda: [statuses(db).get(i) for i in ids] == ["processed"] * len(ids),
            90,
            what="every sample processed",
        )
        with db.connect() as conn:
            types = dict(conn.execute(select(events.c.id, events.c.type)).all())
    finally:
        receiver.stop()
        worker.stop()

    assert all(
        (code, body["status"]) == (202, "accepted")
        for found in answers.values()
        for code, body in found
    )
    assert len(answers["rollback"]) == 2  # the redemption, then its rollback
    assert len(set(ids)) == len(ids) == 6
    assert answers["raw"][0][1]["event_id"].startswith(f"{REDEMPTION}:r_")
    assert sorted(types[i] for i in ids) == sorted([REDEMPTION] * 4 + [REWARD_REDEMPTION, ROLLBACK])
    # Three redemptions booked; the fourth rolled back with its order cancelled: nothing left.
    booked = balances(db)
    orders = {k: v for k, v in booked.items() if k[0].startswith("order:") and v}
    assert list(orders.values()) == [6000] * 3
    assert booked[("sales", "USD")] == -3 * 7000
    assert booked[(f"discount:{CAMPAIGN}", "USD")] == 3 * 1000
    assert booked[(f"loyalty:card:{SEED_CARD}", "POINTS")] == -100
