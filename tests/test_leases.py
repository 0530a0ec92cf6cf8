"""What the sweep takes, by lease, on PostgreSQL and SQLite, at the default settings: an event
or a notification whose lease ran out at once, one a live worker holds never, one no worker
holds only after VOUCHERHOOK_REDISPATCH_AFTER (300 s); and the heartbeat that leases what a
worker holds. The processes themselves are in tests/test_recovery.py."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from celery.signals import task_received
from sqlalchemy import Engine, delete, insert, select

from models.db import eventlog, notification_budget, notification_store
from models.db.engine import make_engine
from models.db.tables import events, notifications
from models.db.tables import notification_budget as budget_table
from tests.support.processing import POLICY, FlakyLoyalty, make_processor, process, store
from tests.unit import recorded
from tests.unit.recorded import REDEMPTION, REWARD_REDEMPTION, ROLLBACK
from workers.celery_app import PROCESS_EVENTS
from workers.handlers import BY_NAME
from workers.leases import Heartbeat
from workers.settings import Settings

DEFAULTS = Settings.model_fields
AFTER = float(DEFAULTS["sweep_after"].default)
REDISPATCH_AFTER = float(DEFAULTS["redispatch_after"].default)
EXPIRY = float(DEFAULTS["lease_expiry"].default)
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(delete(notifications))
        conn.execute(delete(events))
    yield engine
    engine.dispose()


def add_event(
    engine: Engine,
    event_id: str,
    *,
    dispatched: float | None,
    lease: float | None = None,
    status: str = "pending",
) -> None:
    """An event received an hour ago, handed to the broker `dispatched` seconds ago (None:
    never), leased until `lease` seconds from now (None: not leased)."""
    with engine.begin() as conn:
        conn.execute(
            insert(events).values(
                id=event_id,
                type="redemption.succeeded",
                status=status,
                received_at=NOW - timedelta(hours=1),
                body=b"{}",
                headers={},
                dispatched_at=None if dispatched is None else NOW - timedelta(seconds=dispatched),
                lease_until=None if lease is None else NOW + timedelta(seconds=lease),
                leased_by=None if lease is None else "host:1",
            )
        )


def due(engine: Engine) -> list[str]:
    with engine.begin() as conn:
        return sorted(
            eventlog.claim_due(conn, NOW, after=AFTER, redispatch_after=REDISPATCH_AFTER, limit=100)
        )


def test_an_event_whose_lease_ran_out_is_taken_at_once_however_recently_dispatched(
    engine: Engine,
) -> None:
    add_event(engine, "e_dead", dispatched=1, lease=-0.1)
    add_event(engine, "e_live", dispatched=1, lease=0.1)
    assert due(engine) == ["e_dead"]


def test_an_event_a_live_worker_holds_is_never_taken_however_long_ago_it_was_dispatched(
    engine: Engine,
) -> None:
    add_event(engine, "e_slow", dispatched=24 * 3600, lease=1)
    add_event(engine, "e_slow_never_dispatched", dispatched=None, lease=1)
    assert due(engine) == []


def test_an_event_no_worker_holds_is_taken_after_the_default_redispatch_delay_not_before(
    engine: Engine,
) -> None:
    add_event(engine, "e_queued", dispatched=REDISPATCH_AFTER - 1)
    add_event(engine, "e_lost", dispatched=REDISPATCH_AFTER + 1)
    add_event(engine, "e_never_dispatched", dispatched=None)
    add_event(engine, "e_done", dispatched=REDISPATCH_AFTER + 1, lease=-1, status="processed")
    assert due(engine) == ["e_lost", "e_never_dispatched"]


def test_dispatching_again_and_settling_end_the_lease(engine: Engine) -> None:
    add_event(engine, "e_swept", dispatched=60, lease=-1)
    add_event(engine, "e_settled", dispatched=60, lease=5)
    with engine.begin() as conn:
        eventlog.mark_dispatched(conn, ["e_swept"], NOW)
        eventlog.set_statuses(conn, [("e_settled", "pending", "ledger: held")], NOW)
        rows = conn.execute(select(events.c.lease_until, events.c.leased_by)).all()
    assert [tuple(row) for row in rows] == [(None, None), (None, None)]
    # Not leased, dispatched just now: left alone until a worker takes it or it is lost.
    assert due(engine) == []


def test_a_lease_covers_pending_events_only_and_names_its_holder(engine: Engine) -> None:
    add_event(engine, "e_pending", dispatched=1)
    add_event(engine, "e_processed", dispatched=1, status="processed")
    until = NOW + timedelta(seconds=EXPIRY)
    with engine.begin() as conn:
        leased = eventlog.lease(conn, ["e_pending", "e_processed", "e_unknown"], until, "h:7")
        rows = dict(
            (row.id, (row.lease_until, row.leased_by))
            for row in conn.execute(select(events.c.id, events.c.lease_until, events.c.leased_by))
        )
        live = eventlog.leased(conn, ["e_pending", "e_processed"], NOW)
    assert leased == 1
    assert rows == {"e_pending": (until, "h:7"), "e_processed": (None, None)}
    assert live == {"e_pending"}


def add_notification(engine: Engine, *, due_ago: float, lease: float | None) -> int:
    with engine.begin() as conn:
        return int(
            conn.execute(
                insert(notifications)
                .values(
                    event_id="e1",
                    source_id=f"r_{due_ago}_{lease}",
                    channel="webhook",
                    recipient="NOTIFY_WEBHOOK_URL",
                    status="pending",
                    body="hello",
                    created_at=NOW - timedelta(seconds=due_ago),
                    due_at=NOW - timedelta(seconds=due_ago),
                    lease_until=None if lease is None else NOW + timedelta(seconds=lease),
                )
                .returning(notifications.c.seq)
            ).scalar_one()
        )


def test_a_notification_is_queued_again_when_its_lease_ran_out_or_its_message_was_lost(
    engine: Engine,
) -> None:
    dead = add_notification(engine, due_ago=2, lease=-0.1)
    live = add_notification(engine, due_ago=24 * 3600, lease=1)
    queued = add_notification(engine, due_ago=REDISPATCH_AFTER - 1, lease=None)
    lost = add_notification(engine, due_ago=REDISPATCH_AFTER + 1, lease=None)
    older_than = NOW - timedelta(seconds=REDISPATCH_AFTER)
    with engine.begin() as conn:
        taken = notification_store.stale(conn, NOW, older_than)
        leases = dict(conn.execute(select(notifications.c.seq, notifications.c.lease_until)).all())
    assert sorted(taken) == sorted([dead, lost])
    assert leases[dead] is None  # whoever takes the new message leases it
    assert leases[live] is not None and queued not in taken


def test_a_channel_whose_send_task_is_overdue_by_a_lease_gets_one_from_one_sweep(
    engine: Engine,
) -> None:
    late = NOW - timedelta(seconds=EXPIRY)
    with engine.begin() as conn:
        conn.execute(delete(budget_table))
    add_notification(engine, due_ago=EXPIRY - 1, lease=None)  # due, not yet for a lease's length
    add_notification(engine, due_ago=EXPIRY + 5, lease=60)  # held by a live worker
    with engine.begin() as conn:
        assert notification_budget.unwoken(conn, late) == []
    add_notification(engine, due_ago=EXPIRY + 5, lease=None)  # waiting on a task that is gone
    with engine.begin() as conn:
        assert notification_budget.unwoken(conn, late) == ["webhook"]
        assert notification_budget.replace_wake(conn, "webhook", late, NOW)  # publish one
    with engine.begin() as conn:
        assert notification_budget.unwoken(conn, late) == []
        assert not notification_budget.replace_wake(conn, "webhook", late, NOW)  # not twice
    # A task scheduled for the next slot is waited for, until it is overdue by a lease's length.
    with engine.begin() as conn:
        assert notification_budget.schedule_wake(conn, "webhook", NOW + timedelta(seconds=30), NOW)
    after = NOW + timedelta(seconds=30 + EXPIRY - 1)
    with engine.begin() as conn:
        assert notification_budget.unwoken(conn, after - timedelta(seconds=EXPIRY)) == []
    overdue = NOW + timedelta(seconds=30 + EXPIRY + 1)
    with engine.begin() as conn:
        assert notification_budget.unwoken(conn, overdue - timedelta(seconds=EXPIRY)) == ["webhook"]


def test_the_heartbeat_leases_what_its_worker_holds_until_the_expiry(engine: Engine) -> None:
    add_event(engine, "e_held", dispatched=1)
    add_event(engine, "e_other", dispatched=1)
    note = add_notification(engine, due_ago=1, lease=None)
    heartbeat = Heartbeat(engine, EXPIRY, held=lambda: (["e_held"], [note]))
    try:
        before = datetime.now(UTC)
        assert heartbeat.beat() == (1, 1)
        after = datetime.now(UTC)
    finally:
        heartbeat.stop()
    with engine.connect() as conn:
        leases = dict(conn.execute(select(events.c.id, events.c.lease_until)).all())
        note_lease = conn.scalar(
            select(notifications.c.lease_until).where(notifications.c.seq == note)
        )
    assert leases["e_other"] is None
    expiry = timedelta(seconds=EXPIRY)
    assert before + expiry <= leases["e_held"] <= after + expiry
    assert note_lease == leases["e_held"]
    assert heartbeat.interval == EXPIRY / 3


# What a batch publishes after its commit --------------------------------------------------------
# A worker can die, or the broker refuse the publish, between a batch's commit and the publish of
# what follows it. What it would have published is leased in the batch's transaction, so the
# sweep takes it once the lease runs out; these tests process a batch and never publish.


def sweep_at(engine: Engine, at: datetime) -> list[str]:
    with engine.begin() as conn:
        return eventlog.claim_due(
            conn, at, after=AFTER, redispatch_after=REDISPATCH_AFTER, limit=100
        )


def test_a_retry_never_published_is_taken_by_the_sweep_once_its_countdown_and_lease_ran_out(
    db: Engine,
) -> None:
    processor = make_processor(db, {**BY_NAME, "loyalty": FlakyLoyalty()})
    event_id = store(db, REWARD_REDEMPTION, recorded.seed_reward_redemption())
    with db.begin() as conn:
        eventlog.mark_dispatched(conn, [event_id], datetime.now(UTC))
    before = datetime.now(UTC)

    follow = processor.process([event_id])  # the retry it asks for is never published

    [retry] = follow.retries
    hold = timedelta(seconds=retry.countdown + POLICY.follow_up_lease)
    assert sweep_at(db, before + hold - timedelta(seconds=0.5)) == []
    assert sweep_at(db, datetime.now(UTC) + hold + timedelta(seconds=0.5)) == [event_id]


def test_a_released_rollback_never_published_is_taken_by_the_sweep_once_its_lease_ran_out(
    db: Engine,
) -> None:
    rollback = store(db, ROLLBACK, recorded.rollback(recorded.seed_redemption(), "rr_lease_1"))
    process(db, rollback)  # held for its original: pending, no message anywhere
    original = store(db, REDEMPTION, recorded.seed_redemption())
    with db.begin() as conn:
        eventlog.mark_dispatched(conn, [rollback, original], datetime.now(UTC))
    before = datetime.now(UTC)

    follow = make_processor(db).process([original])  # its release is never published

    assert follow.released == [rollback]
    lease = timedelta(seconds=POLICY.follow_up_lease)
    assert sweep_at(db, before + lease - timedelta(seconds=0.5)) == []
    assert sweep_at(db, datetime.now(UTC) + lease + timedelta(seconds=0.5)) == [rollback]


def test_notifications_whose_send_was_never_published_are_queued_once_their_lease_ran_out(
    db: Engine,
) -> None:
    event_id = store(db, REDEMPTION, recorded.seed_redemption())
    before = datetime.now(UTC)

    follow = make_processor(db).process([event_id])  # the send task is never published

    assert follow.notifications
    lease = timedelta(seconds=POLICY.follow_up_lease)
    long_ago = before - timedelta(seconds=REDISPATCH_AFTER)
    with db.begin() as conn:
        assert (
            notification_store.stale(conn, before + lease - timedelta(seconds=0.5), long_ago) == []
        )
    with db.begin() as conn:
        late = datetime.now(UTC) + lease + timedelta(seconds=0.5)
        assert sorted(notification_store.stale(conn, late, long_ago)) == follow.notifications


@dataclass
class Request:
    """What the heartbeat reads of a Celery request: its task, its arguments, and whether its
    message was acknowledged."""

    name: str
    args: tuple[object, ...]
    acknowledged: bool = False


def test_the_heartbeat_renews_a_retry_waiting_for_its_countdown_until_it_is_acknowledged(
    engine: Engine,
) -> None:
    add_event(engine, "e_waiting", dispatched=1)
    # Celery lists a request waiting for its countdown nowhere: only the signal tells.
    heartbeat = Heartbeat(engine, EXPIRY, held=lambda: ([], []))
    waiting = Request(PROCESS_EVENTS, (["e_waiting"],))
    try:
        task_received.send(sender=None, request=waiting)
        assert heartbeat.beat() == (1, 0)
        assert heartbeat.beat() == (1, 0)  # renewed at every beat while it waits
        waiting.acknowledged = True
        assert heartbeat.beat() == (0, 0)
    finally:
        heartbeat.stop()


def test_an_arrival_leases_its_own_ids_and_leaves_the_renewals_to_the_beat(
    engine: Engine,
) -> None:
    """Each message's events are written once when it arrives, not once per arrival of any
    message while they are held: the renewal of everything held is the periodic beat's."""
    add_event(engine, "e_held_before", dispatched=1)
    add_event(engine, "e_arriving", dispatched=1)
    heartbeat = Heartbeat(engine, EXPIRY, held=lambda: (["e_held_before"], []))
    try:
        assert heartbeat.beat() == (1, 0)
        task_received.send(sender=None, request=Request(PROCESS_EVENTS, (["e_arriving"],)))
        assert heartbeat.lease_arrived() == (1, 0)
        assert heartbeat.lease_arrived() == (0, 0)  # nothing arrived since
        assert heartbeat.beat() == (2, 0)  # the beat renews both
    finally:
        heartbeat.stop()
