"""Personal data out of what is stored (README, "Personal data and retention"): `purge` and
`forget-customer` on real PostgreSQL, against a log processed as the workers process it. The
books (ledger, cards, rebuild's digest) stay exactly as they were; the personal strings are
gone from every table; what is still being worked on is left alone."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update

from models.db import notification_store, schema
from models.db.engine import make_engine
from models.db.eventlog import NewEvent, insert_new
from models.db.tables import events, metadata, notifications
from models.identity import identify
from models.redaction import REDACTED, REDACTED_BODY, is_redacted
from tests.conftest import EventLog
from tests.support.payloads import FIXTURES, dumps
from tests.support.processes import Worker, base_env, worker_env
from tests.support.processing import balances, count, make_processor
from tests.support.services import wait_for
from tests.test_operations import (
    cli,
    event_log,
    live_digest,
    one_line_error,
    stored_cards,
)
from tests.unit import recorded
from tests.unit.recorded import REDEMPTION, Json
from workers.handlers.base import Config
from workers.notification_sending import UNLIMITED
from workers.processing import RetryPolicy
from workers.rebuild import rebuild
from workers.replay import replay
from workers.retention import CANCELLED, forget_customer, purge, purge_expired
from workers.sweep import Periodic
from workers.templates import environment

JANE = "cust_1g637SqVZnkdPNdAIZ7Ra879"
"""The seed redemption's customer: most of the log's redemptions are hers."""
JANE_STRINGS = ("jane@jane.io", "Jane Doe", "test_customer_id_2")
SEED = "redemption.succeeded:r_0e2500291ae016adea"
JOHN_STRINGS = ("John Demo", "130524-01")
"""The seed reward redemption's customer (no email): every reward redemption of the log."""
OLD = datetime(2024, 3, 1, tzinfo=UTC)
CUTOFF = datetime(2024, 6, 1, tzinfo=UTC)
RECENT = datetime(2024, 9, 1, tzinfo=UTC)
CLIENT = {"content-type": "application/json", "user-agent": "Voucherify-Webhooks/1.0",
          "x-forwarded-for": "198.51.100.7"}  # fmt: skip
ADDRESS = "198.51.100.7"


@dataclass(frozen=True)
class Someone:
    """A customer of their own, for the events a purge must leave or a window keeps."""

    id: str
    name: str
    email: str

    def redemption(self, r_id: str, **options: Any) -> Json:
        """A redemption of the seed's shape, every trace of its customer theirs instead."""
        data = recorded.redemption(r_id, order_id=f"ord_{r_id}", **options)
        text = json.dumps(data).replace(JANE, self.id).replace("jane@jane.io", self.email)
        text = text.replace("Jane Doe", self.name).replace("test_customer_id_2", f"{self.id}-src")
        found: Json = json.loads(text)
        return found


PAT = Someone("cust_pat_pending", "Pat Pending", "pat@pending.example")
FAY = Someone("cust_fay_failed", "Fay Failed", "fay@failed.example")
RITA = Someone("cust_rita_recent", "Rita Recent", "rita@recent.example")
QUINN = "Quinn Quarantine quinn@quarantine.example cust_quinn"


@dataclass(frozen=True)
class Log:
    engine: Engine
    pending: str
    failed: str
    quarantined: str
    ignored: str
    recent: str
    unsent: int
    """A notification of a processed event, still pending."""


def put(engine: Engine, event_type: str | None, body: bytes, status: str | None = None) -> str:
    """Store one delivery as the receiver does; its id."""
    found = identify(body, event_type)
    event = NewEvent(
        id=found.event_id,
        type=found.event_type,
        status=status or found.status,
        received_at=OLD,
        body=body,
        headers=CLIENT,
        remote_addr=ADDRESS,
        delivery_id=found.delivery_id,
        error=found.reason,
    )
    with engine.begin() as conn:
        insert_new(conn, [event])
    return found.event_id


def process(engine: Engine, ids: list[str]) -> None:
    """As worker tasks do, notifications planned; released rollbacks next."""
    processor = make_processor(engine)
    for first in range(0, len(ids), 100):
        todo = ids[first : first + 100]
        while todo:
            todo = processor.process(todo).released


def finish_notifications(engine: Engine, keep_pending: int) -> None:
    """Every planned delivery sent, but one failed and `keep_pending` left waiting."""
    with engine.begin() as conn:
        seqs = list(conn.scalars(select(notifications.c.seq).order_by(notifications.c.seq)))
        for n, seq in enumerate(seqs):
            if seq == keep_pending:
                continue
            assert notification_store.claim(conn, seq) is not None
            if n == 1:
                notification_store.mark_failed(conn, seq, "550 no such user", retry_at=None)
            else:
                notification_store.mark_sent(conn, seq, OLD)


@pytest.fixture
def log(db: Engine) -> Iterator[Log]:
    """A processed log naming Jane, John and a stack's shopper, all received before CUTOFF, with
    their notifications; and beside it events a purge must leave."""
    ids = [put(db, event_type, dumps(data)) for event_type, data in event_log(2, tag="ret")]
    ids.append(put(db, REDEMPTION, dumps(recorded.seed_redemption())))
    failed_data = FAY.redemption("r_ret_failed")
    failed_data["order"]["amount"] = "seventy"  # the rules refuse it: failed
    failed = put(db, REDEMPTION, dumps(failed_data))
    recent = put(db, REDEMPTION, dumps(RITA.redemption("r_ret_recent")))
    with db.begin() as conn:
        conn.execute(update(events).where(events.c.id == recent).values(received_at=RECENT))
    # A type without handlers: an envelope names its own type (a raw body of this shape
    # would be read as customer.rewarded.loyalty_points, and quarantined under another URL).
    rewarded = json.loads((FIXTURES / "customer.rewarded.loyalty_points.json").read_text())
    wrapped = recorded.envelope("customer.rewarded", rewarded)
    wrapped["event"]["id"] = "ev_ret_rewarded"
    ignored = put(db, None, dumps(wrapped))
    process(db, [*ids, failed, recent, ignored])
    pending = put(db, REDEMPTION, dumps(PAT.redemption("r_ret_pending")))
    quarantined = put(db, None, QUINN.encode())
    with db.connect() as conn:
        first = conn.scalar(
            select(notifications.c.seq).where(
                notifications.c.channel == "email", notifications.c.event_id == SEED
            )
        )
    assert first is not None
    finish_notifications(db, keep_pending=first)
    statuses = EventLog(db).statuses()
    assert (statuses[pending], statuses[failed], statuses[quarantined]) == (
        "pending",
        "failed",
        "quarantined",
    )
    assert statuses[ignored] == "ignored"
    yield Log(db, pending, failed, quarantined, ignored, recent, first)


# What a test compares -------------------------------------------------------------------------


def books(engine: Engine) -> tuple[object, ...]:
    """Rebuild's digest of the books, every account's balance, every card's figures."""
    return live_digest(engine), sorted(balances(engine).items()), stored_cards(engine)


def found_in(engine: Engine, needle: str) -> list[str]:
    """`table.column` of every cell (text, JSON or bytes) that contains `needle`."""
    where = []
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                for column, value in row._mapping.items():
                    if needle.casefold() in _text(value).casefold():
                        where.append(f"{table.name}.{column}")
    return sorted(set(where))


def _text(value: object) -> str:
    if isinstance(value, bytes | memoryview):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, dict | list):
        return json.dumps(value)
    return "" if value is None else str(value)


def everything(engine: Engine) -> dict[str, list[tuple[str, ...]]]:
    """Every row of every table, comparable."""
    with engine.connect() as conn:
        return {
            table.name: sorted(
                tuple(_text(value) for value in row) for row in conn.execute(select(table))
            )
            for table in metadata.sorted_tables
        }


def row(engine: Engine, event_id: str) -> dict[str, Any]:
    found = EventLog(engine).get(event_id)
    assert found is not None
    return found


def notes_of(engine: Engine, event_id: str) -> list[Any]:
    with engine.connect() as conn:
        return notification_store.for_event(conn, event_id)


# Purge ---------------------------------------------------------------------------------------


def test_purge_redacts_old_events_and_their_notifications_and_the_books_stay_exact(
    log: Log,
) -> None:
    engine = log.engine
    kept = books(engine)
    untouched = {event_id: row(engine, event_id) for event_id in (log.pending, log.failed,
                 log.quarantined, log.recent)}  # fmt: skip

    done = purge(engine, CUTOFF)

    assert done.events > 40 and done.notifications > 20
    assert books(engine) == kept
    rebuilt = rebuild(engine, Config("USD", environment(None), False, False))
    assert (rebuilt.before, rebuilt.after, rebuilt.written) == (kept[0], kept[0], 0)
    for personal in (*JOHN_STRINGS, "Stack Shopper", "stack@example.com", "Jack Webhook"):
        assert found_in(engine, personal) == [], personal
    for personal in JANE_STRINGS:  # but in the one delivery to her not sent yet
        assert set(found_in(engine, personal)) <= {"notifications.recipient",
                                                   "notifications.body"}, personal  # fmt: skip
    for client in ("Voucherify-Webhooks", ADDRESS):  # the events left keep their client
        assert set(found_in(engine, client)) == {"events.headers", "events.remote_addr"} - (
            {"events.remote_addr"} if client != ADDRESS else set()
        )
    for event_id, before in untouched.items():
        assert row(engine, event_id) == before, event_id
    for personal in (PAT.email, FAY.email, "Quinn Quarantine"):
        assert found_in(engine, personal) == ["events.body"], personal
    assert "events.body" in found_in(engine, RITA.email)
    assert done.left_alone == {"pending": 1, "failed": 1, "quarantined": 1}
    assert done.unsent == 1


def test_a_purged_event_keeps_its_ids_amounts_and_times_and_loses_its_client(log: Log) -> None:
    engine = log.engine
    seed = SEED
    before = json.loads(row(engine, seed)["body"])

    purge(engine, CUTOFF)

    after = row(engine, seed)
    body = json.loads(after["body"])
    assert is_redacted(body)
    assert body["customer"] == {k: (v if k in ("id", "object") else None)
                                for k, v in before["customer"].items()}  # fmt: skip
    assert body["order"] == {**before["order"], "metadata": None}
    assert body["redemption"]["id"] == before["redemption"]["id"]
    assert body["created_at"] == before["created_at"]
    assert (after["headers"], after["remote_addr"]) == ({"content-type": "application/json"}, None)
    assert after["redacted_at"] is not None
    webhooks = [note for note in notes_of(engine, seed) if note.channel == "webhook"]
    assert webhooks and all(note.body == REDACTED for note in webhooks)
    sent = notes_of(engine, "redemption.succeeded:r_retb0_1")
    assert {(n.channel, n.recipient.startswith("[redacted #"), n.body) for n in sent} == {
        ("email", True, REDACTED),
        ("webhook", False, REDACTED),
    }


def test_a_purge_leaves_pending_failed_quarantined_and_recent_events_untouched(log: Log) -> None:
    engine = log.engine
    before = {e: row(engine, e) for e in (log.pending, log.failed, log.quarantined, log.recent)}

    purge(engine, CUTOFF)

    assert {e: row(engine, e) for e in before} == before
    assert all(found["redacted_at"] is None for found in before.values())


def test_a_dry_run_changes_nothing_and_counts_what_the_purge_then_changes(log: Log) -> None:
    engine = log.engine
    before = everything(engine)

    planned = purge(engine, CUTOFF, dry_run=True)

    assert everything(engine) == before
    done = purge(engine, CUTOFF)
    assert (planned.events, planned.notifications) == (done.events, done.notifications)
    assert planned.dry_run and not done.dry_run


def test_a_second_purge_changes_nothing(log: Log) -> None:
    engine = log.engine
    purge(engine, CUTOFF)
    after = everything(engine)

    again = purge(engine, CUTOFF)

    assert (again.events, again.notifications) == (0, 0)
    assert everything(engine) == after


def test_a_notification_not_sent_yet_is_redacted_by_the_first_purge_after_it_is(
    log: Log,
) -> None:
    engine = log.engine
    purge(engine, CUTOFF)
    with engine.connect() as conn:
        waiting = conn.execute(select(notifications).where(notifications.c.seq == log.unsent)).one()
    assert (waiting.status, waiting.body != REDACTED) == ("pending", True)

    with engine.begin() as conn:
        assert notification_store.claim(conn, log.unsent) is not None
        notification_store.mark_sent(conn, log.unsent, datetime.now(UTC))
    done = purge(engine, CUTOFF)

    assert (done.events, done.notifications) == (0, 1)
    for personal in JANE_STRINGS:
        assert found_in(engine, personal) == [], personal


def test_replaying_purged_events_books_nothing_and_sends_nothing(log: Log) -> None:
    """Not even with --notify a delivery that failed for good: it has no address left."""
    engine = log.engine
    with engine.begin() as conn:
        assert notification_store.claim(conn, log.unsent) is not None
        notification_store.mark_sent(conn, log.unsent, datetime.now(UTC))
    purge(engine, CUTOFF)
    kept, notes = books(engine), everything(engine)["notifications"]
    with engine.connect() as conn:
        purged = list(conn.scalars(select(events.c.id).where(events.c.redacted_at.is_not(None))))
    sent: list[tuple[str, str]] = []

    summary = replay(
        engine,
        make_processor(engine),
        purged,
        senders={"email": Recorder(sent), "webhook": Recorder(sent)},
        policy=RetryPolicy(max_attempts=1),
        pacing=UNLIMITED,
        notify=True,
    )

    with engine.connect() as conn:
        failed = conn.scalar(select(func.count()).where(notifications.c.status == "failed"))
    assert failed == 1
    assert (summary.rerun, summary.failed, summary.notifications_sent) == (0, 0, 0)
    assert books(engine) == kept
    assert everything(engine)["notifications"] == notes
    assert sent == []


@dataclass
class Recorder:
    sent: list[tuple[str, str]]

    def send(self, recipient: str, subject: str, body: str, key: str) -> None:
        self.sent.append((recipient, body))

    def close(self) -> None:
        pass


def test_the_rolling_window_purges_what_is_older_than_its_days(log: Log) -> None:
    engine = log.engine
    now = CUTOFF + timedelta(days=30)

    assert purge_expired(engine, 0, now=now) == 0
    assert row(engine, log.ignored)["redacted_at"] is None
    assert purge_expired(engine, 30, now=now) > 0
    assert row(engine, log.ignored)["redacted_at"] is not None
    assert row(engine, log.recent)["redacted_at"] is None


def test_the_window_runs_soon_after_start_then_at_most_once_per_period() -> None:
    """As a worker runs it: first after `first_after` (the sweep interval), then every hour;
    a failed run counts as a run."""
    runs: list[float] = []

    def step() -> int:
        runs.append(time.monotonic())
        raise RuntimeError("the database is down")

    started = time.monotonic()
    window = Periodic("retention-purge", 3600, step, first_after=0.05)
    window.start()
    try:
        wait_for(lambda: runs, 5, what="the first run")
        time.sleep(0.3)
    finally:
        window.stop()

    assert len(runs) == 1 and runs[0] - started >= 0.05


def test_a_periodic_job_without_first_after_first_runs_after_its_interval() -> None:
    runs: list[float] = []

    def step() -> int:
        runs.append(time.monotonic())
        return 1

    started = time.monotonic()
    job = Periodic("job", 0.2, step)
    job.start()
    try:
        wait_for(lambda: len(runs) >= 2, 5, what="two runs")
    finally:
        job.stop()

    assert runs[0] - started >= 0.2 and runs[1] - runs[0] >= 0.2


# Forget a customer -----------------------------------------------------------------------------


def test_forget_customer_erases_them_everywhere_and_the_books_stay_exact(log: Log) -> None:
    engine = log.engine
    waiting = recorded.redemption("r_ret_jane_waiting", order_id="ord_ret_jane_waiting")
    jane_pending = put(engine, REDEMPTION, dumps(waiting))
    odd = put(engine, None, f"id={JANE}&email=jane@jane.io".encode())
    kept = books(engine)

    done = forget_customer(engine, JANE)

    assert books(engine) == kept
    rebuilt = rebuild(engine, Config("USD", environment(None), False, False))
    assert (rebuilt.before, rebuilt.after, rebuilt.written) == (kept[0], kept[0], 0)
    for personal in JANE_STRINGS:
        assert found_in(engine, personal) == [], personal
    # Nobody else is touched: John's reward redemptions never name Jane.
    for personal in (*JOHN_STRINGS, PAT.email, FAY.email, "Quinn Quarantine"):
        assert found_in(engine, personal), personal
    actions = {event.id: (event.status, event.action) for event in done.events}
    assert actions[jane_pending] == ("pending", "redacted")
    assert actions[odd] == ("quarantined", "replaced")
    assert row(engine, odd)["body"] == REDACTED_BODY
    assert row(engine, jane_pending)["redacted_at"] is not None
    assert log.pending not in actions and log.quarantined not in actions
    cancelled = [note for note in done.notifications if note.status == "pending"]
    assert [note.id for note in cancelled] == [log.unsent]
    with engine.connect() as conn:
        unsent = conn.execute(select(notifications).where(notifications.c.seq == log.unsent)).one()
    assert (unsent.status, unsent.error, unsent.body) == ("failed", CANCELLED, REDACTED)
    assert done.cards  # loyalty cards she holds are kept, ids only


def test_a_forgotten_customer_s_pending_event_is_booked_as_before_and_notifies_nothing(
    log: Log,
) -> None:
    engine = log.engine
    data = recorded.redemption("r_ret_jane_later", order_id="ord_ret_jane_later", amount=4321)
    waiting = put(engine, REDEMPTION, dumps(data))

    forget_customer(engine, JANE)
    process(engine, [waiting])

    assert row(engine, waiting)["status"] == "processed"
    assert balances(engine)[("order:ord_ret_jane_later", "USD")] == 4321 - 1000
    assert notes_of(engine, waiting) == []


def test_a_delivery_being_sent_when_its_customer_is_forgotten_is_never_sent_again(
    log: Log,
) -> None:
    """A worker claimed it before forget-customer redacted it; its send then fails retryably:
    it fails for good instead of waiting to send `[redacted]`."""
    engine = log.engine
    with engine.begin() as conn:
        assert notification_store.claim(conn, log.unsent) is not None

    forget_customer(engine, JANE)
    with engine.begin() as conn:
        retry_at = datetime.now(UTC)
        notification_store.mark_failed(conn, log.unsent, "421 try again later", retry_at=retry_at)
        again = notification_store.claim(conn, log.unsent)
        retried = notification_store.retry_failed(conn, [SEED], retry_at)

    with engine.connect() as conn:
        note = conn.execute(select(notifications).where(notifications.c.seq == log.unsent)).one()
    assert (note.status, note.body) == ("failed", REDACTED)
    assert again is None and log.unsent not in retried


def test_forget_customer_dry_run_changes_nothing_and_a_second_run_finds_it_all_done(
    log: Log,
) -> None:
    engine = log.engine
    before = everything(engine)

    planned = forget_customer(engine, JANE, dry_run=True)

    assert everything(engine) == before
    done = forget_customer(engine, JANE)
    assert [(e.id, e.action) for e in planned.events] == [(e.id, e.action) for e in done.events]
    assert [n.id for n in planned.notifications] == [n.id for n in done.notifications]
    after = everything(engine)
    again = forget_customer(engine, JANE)
    assert everything(engine) == after
    assert again.changed == [] and again.notifications == []
    assert {e.action for e in again.events} == {"already redacted"}


def test_forget_customer_after_a_purge_finds_what_the_purge_left(log: Log) -> None:
    engine = log.engine
    jane_failed = recorded.redemption("r_ret_jane_failed", order_id="ord_ret_jane_failed")
    jane_failed["order"]["amount"] = "seventy"
    failed = put(engine, REDEMPTION, dumps(jane_failed))
    process(engine, [failed])
    purge(engine, CUTOFF)
    assert "events.body" in found_in(engine, "jane@jane.io")

    done = forget_customer(engine, JANE)

    assert [e.id for e in done.changed] == [failed]
    assert [n.id for n in done.notifications] == [log.unsent]
    assert found_in(engine, "jane@jane.io") == []


# The command line --------------------------------------------------------------------------


def test_purge_and_forget_customer_from_the_command_line(log: Log, postgres_url: str) -> None:
    env = base_env(postgres_url, None)
    kept = books(log.engine)

    dry = cli(env, "purge", "--before", "2024-06-01", "--dry-run", "--json")
    real = cli(env, "purge", "--before", "2024-06-01")
    forgot = cli(env, "forget-customer", JANE, "--json")
    text = cli(env, "forget-customer", JANE)

    assert dry.returncode == 0, dry.stderr
    planned = json.loads(dry.stdout)
    assert planned["dry_run"] is True and planned["events"] > 40
    assert planned["left_alone"] == {"pending": 1, "failed": 1, "quarantined": 1}
    assert real.returncode == 0, real.stderr
    assert real.stdout.startswith(f"redacted {planned['events']} event(s) received before ")
    assert "left alone: 1 pending, 1 failed, 1 quarantined" in real.stdout
    assert forgot.returncode == 0, forgot.stderr
    erased = json.loads(forgot.stdout)
    assert erased["customer_id"] == JANE and erased["loyalty_cards_kept"]
    assert {e["action"] for e in erased["events"]} == {"already redacted"}
    assert [n["action"] for n in erased["notifications"]] == ["cancelled and redacted"]
    assert "0 event(s) naming" in text.stdout and "already redacted" in text.stdout
    assert books(log.engine) == kept


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("purge", "--before", "last tuesday"), "'last tuesday' is not an ISO 8601 date or time"),
        (("purge",), "the following arguments are required: --before"),
        (("purge", "--before", "2999-01-01"), "is in the future"),
        (("forget-customer", "jane@jane.io"), "is an email address, not a customer id"),
        (("forget-customer", " "), "is not a customer id"),
    ],
)
def test_a_wrong_argument_is_one_line_saying_what_to_give(
    args: tuple[str, ...], says: str, postgres_url: str
) -> None:
    result = cli(base_env(postgres_url, None), *args)

    assert says in one_line_error(result)


def test_purge_and_forget_customer_on_the_embedded_sqlite_file(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'voucherhook.db'}")
    schema.upgrade(engine)
    try:
        ids = [put(engine, t, dumps(data)) for t, data in event_log(1, tag="lite")]
        waiting = recorded.redemption("r_lite_waiting", order_id="ord_lite_waiting")
        odd = put(engine, None, f"id={JANE}".encode())
        process(engine, ids)
        finish_notifications(engine, keep_pending=-1)
        pending = put(engine, REDEMPTION, dumps(waiting))
        kept = books(engine)

        purged = purge(engine, CUTOFF)
        forgotten = forget_customer(engine, JANE)

        assert (purged.events, purged.notifications) == (len(ids), count(engine, notifications))
        assert purged.left_alone == {"pending": 1, "quarantined": 1}
        actions = {event.id: event.action for event in forgotten.changed}
        assert actions == {pending: "redacted", odd: "replaced"}
        assert books(engine) == kept
        assert rebuild(engine, Config("USD", environment(None), False, False)).written == 0
        for personal in (*JANE_STRINGS, *JOHN_STRINGS):
            assert found_in(engine, personal) == [], personal
    finally:
        engine.dispose()


def test_a_worker_applies_voucherhook_retention_days(
    log: Log, postgres_url: str, redis_url: str, queue: str
) -> None:
    env = worker_env(postgres_url, redis_url, queue, VOUCHERHOOK_RETENTION_DAYS="30")
    with log.engine.begin() as conn:
        today = update(events).where(events.c.id == log.recent)
        conn.execute(today.values(received_at=datetime.now(UTC)))
    worker = Worker(env, "--pool", "solo")
    try:
        wait_for(
            lambda: row(log.engine, log.ignored)["redacted_at"] is not None,
            60,
            what=f"the worker's retention purge\n{worker.output()}",
        )
    finally:
        worker.stop()

    assert found_in(log.engine, "Jack Webhook") == []
    assert row(log.engine, log.recent)["redacted_at"] is None
    # The books are still what the (partly redacted) log folds to.
    assert rebuild(log.engine, Config("USD", environment(None), False, False)).written == 0
