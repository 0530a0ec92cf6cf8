"""The Processor against real PostgreSQL (bookkeeping.md): stored events in, the ledger, the
loyalty cards, the planned notifications and the handler runs out. No Celery: a test calls
`Processor.process(ids)` as the worker task does and plays the broker itself. Rollbacks held
for their original, and failures: `test_processing_holds_and_failures.py`."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, update

from models.db import notification_store
from models.db.tables import (
    events,
    handler_runs,
    ledger_postings,
    notifications,
)
from models.notifications import WEBHOOK_RECIPIENT
from tests.support.processing import (
    balances,
    card,
    count,
    event,
    ledger_keys,
    make_processor,
    process,
    runs,
    store,
)
from tests.support.processing import notifications as planned
from tests.unit import recorded
from tests.unit.recorded import REDEMPTION, REWARD_REDEMPTION

ORDER = "ord_3VYCHwdV0YOOch2nm1RsTKNI"
CAMPAIGN = "camp_kwMyXFKquedx8FzXNpVPN7QU"
REWARD = "rew_UtRGHxt98jwCzodkskxQ7KLp"
CARD = "v_p7NP2qmQaMXsNHzb9ujPVjqgDJzJ2ccQ"
HOLDER = "cust_2myfc5acSBgoMV72R5tyTBc8"
STACK_ORDER = recorded.STACK_ORDER


# The seed examples ---------------------------------------------------------------------------


@pytest.fixture
def seed_redemption(db: Engine) -> str:
    event_id = store(db, REDEMPTION, recorded.seed_redemption())
    process(db, event_id)
    return event_id


@pytest.fixture
def seed_reward(db: Engine) -> str:
    event_id = store(db, REWARD_REDEMPTION, recorded.seed_reward_redemption())
    process(db, event_id)
    return event_id


def test_the_seed_redemption_books_the_order_gross_and_the_campaign_discount(
    db: Engine, seed_redemption: str
) -> None:
    assert balances(db) == {
        (f"order:{ORDER}", "USD"): 6000,
        ("sales", "USD"): -7000,
        (f"discount:{CAMPAIGN}", "USD"): 1000,
    }


def test_the_seed_redemption_is_processed_by_every_handler(
    db: Engine, seed_redemption: str
) -> None:
    assert event(db, seed_redemption)["status"] == "processed"
    assert {name: run.status for name, run in runs(db, seed_redemption).items()} == {
        "ledger": "done",
        "loyalty": "done",
        "notifications": "done",
    }


def test_the_seed_redemption_emails_the_customer_and_tells_operations(
    db: Engine, seed_redemption: str
) -> None:
    found = sorted((n.channel, n.recipient, n.status) for n in planned(db, seed_redemption))
    assert found == [
        ("email", "jane@jane.io", "pending"),
        ("webhook", WEBHOOK_RECIPIENT, "pending"),
    ]


def test_the_seed_reward_redemption_moves_100_points_from_the_card_to_the_reward(
    db: Engine, seed_reward: str
) -> None:
    assert balances(db) == {
        ("loyalty:payments", "POINTS"): 100,
        (f"loyalty:card:{CARD}", "POINTS"): -100,
    }


def test_the_seed_reward_redemption_keeps_the_reported_balance_and_the_points_spent(
    db: Engine, seed_reward: str
) -> None:
    state = card(db, CARD)
    assert state is not None
    assert (state.balance, state.points_spent, state.customer_id) == (70, 100, HOLDER)
    assert (state.events, state.flags) == (1, ())


def test_the_seed_reward_redemption_tells_operations_but_emails_nobody_without_an_address(
    db: Engine, seed_reward: str
) -> None:
    assert [(n.channel, n.recipient) for n in planned(db, seed_reward)] == [
        ("webhook", WEBHOOK_RECIPIENT)
    ]


# Exactly once -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    balances: dict[tuple[str, str], int]
    postings: int
    notifications: int
    runs: list[tuple[str, str, str, int]]
    events: list[tuple[str, str, int]]


def snapshot(engine: Engine) -> Snapshot:
    with engine.connect() as conn:
        run_rows = conn.execute(handler_runs.select().order_by("event_id", "handler"))
        event_rows = conn.execute(events.select().order_by(events.c.seq))
        return Snapshot(
            balances(engine),
            count(engine, ledger_postings),
            count(engine, notifications),
            [(r.event_id, r.handler, r.status, r.attempts) for r in run_rows],
            [(r.id, r.status, r.attempts) for r in event_rows],
        )


def test_processing_the_same_ids_again_changes_nothing(db: Engine) -> None:
    ids = [
        store(db, REDEMPTION, recorded.seed_redemption()),
        store(db, REWARD_REDEMPTION, recorded.seed_reward_redemption()),
    ]
    first = make_processor(db).process(ids)
    # Planned deliveries are held until their send task is published; here it never is, and
    # their lease runs out, as when a worker died between its commit and that publish.
    with db.begin() as conn:
        conn.execute(update(notifications).values(lease_until=None))
    before, cards_before = snapshot(db), card(db, CARD)

    again = make_processor(db).process(ids)

    # The deliveries the first run planned are still waiting (nothing sends them here): the
    # rerun queues them again.
    assert first.notifications
    assert (again.notifications, again.released, again.retries) == (first.notifications, [], [])
    assert snapshot(db) == before
    assert card(db, CARD) == cards_before


def test_a_rerun_queues_the_waiting_deliveries_no_live_worker_holds_and_only_those(
    db: Engine,
) -> None:
    ids = [
        store(db, REDEMPTION, recorded.seed_redemption()),
        store(db, REWARD_REDEMPTION, recorded.seed_reward_redemption()),
    ]
    planned = make_processor(db).process(ids).notifications
    assert len(planned) >= 2
    sent, held, *waiting = planned
    with db.begin() as conn:
        # The lease of the plan ran out: its send task was never published.
        conn.execute(update(notifications).values(lease_until=None))
        notification_store.claim(conn, sent)
        notification_store.mark_sent(conn, sent, datetime.now(UTC))
        notification_store.lease(conn, [held], datetime.now(UTC) + timedelta(seconds=15))

    again = make_processor(db).process(ids)

    assert again.notifications == waiting


def test_a_task_redelivered_after_its_effects_committed_but_before_settling_changes_nothing(
    db: Engine,
) -> None:
    # The worker died between the handlers' commits and the event's status: still pending.
    ids = [
        store(db, REDEMPTION, recorded.seed_redemption()),
        store(db, REWARD_REDEMPTION, recorded.seed_reward_redemption()),
    ]
    process(db, *ids)
    before, cards_before = snapshot(db), card(db, CARD)
    with db.begin() as conn:
        conn.execute(update(events).values(status="pending"))

    again = make_processor(db).process(ids)

    assert again.notifications == []
    after = snapshot(db)
    assert (after.balances, after.postings, after.notifications, after.runs) == (
        before.balances,
        before.postings,
        before.notifications,
        before.runs,
    )
    assert card(db, CARD) == cards_before
    assert {event(db, event_id)["status"] for event_id in ids} == {"processed"}


def test_one_reward_redemption_delivered_raw_and_in_an_envelope_is_counted_once(
    db: Engine,
) -> None:
    data = recorded.seed_reward_redemption()
    raw = store(db, REWARD_REDEMPTION, data)
    enveloped = store(db, REWARD_REDEMPTION, recorded.envelope(REWARD_REDEMPTION, data))
    assert raw != enveloped  # two identities, two rows

    process(db, raw)
    process(db, enveloped)

    assert balances(db) == {
        ("loyalty:payments", "POINTS"): 100,
        (f"loyalty:card:{CARD}", "POINTS"): -100,
    }
    state = card(db, CARD)
    assert state is not None
    assert (state.balance, state.points_spent, state.events) == (70, 100, 1)
    assert {event(db, raw)["status"], event(db, enveloped)["status"]} == {"processed"}


def test_one_redemption_delivered_raw_and_in_an_envelope_is_notified_once(db: Engine) -> None:
    data = recorded.seed_redemption()
    raw = store(db, REDEMPTION, data)
    enveloped = store(db, REDEMPTION, recorded.envelope(REDEMPTION, data))

    process(db, raw)
    process(db, enveloped)

    sent = [(n.channel, n.recipient) for n in planned(db, raw) + planned(db, enveloped)]
    assert sorted(sent) == [("email", "jane@jane.io"), ("webhook", WEBHOOK_RECIPIENT)]


# Stacks --------------------------------------------------------------------------------------

STACK_MEMBERS = ("child 1", "child 2", "parent")


def store_stack(engine: Engine) -> dict[str, str]:
    parent, (child_1, child_2) = recorded.stack()
    return {
        name: store(engine, REDEMPTION, data)
        for name, data in zip(STACK_MEMBERS, (child_1, child_2, parent), strict=True)
    }


@pytest.mark.parametrize("arrival", list(itertools.permutations(STACK_MEMBERS)), ids="-".join)
def test_a_stack_books_each_child_discount_once_in_any_arrival_order(
    db: Engine, arrival: tuple[str, ...]
) -> None:
    ids = store_stack(db)
    for name in arrival:
        process(db, ids[name])

    assert balances(db) == {
        (f"order:{STACK_ORDER}", "USD"): 10000 - 1000 - 500,
        ("sales", "USD"): -10000,
        ("discount:camp_stack_A", "USD"): 1000,
        ("discount:camp_stack_B", "USD"): 500,
    }
    assert ledger_keys(db) == {
        f"order:{STACK_ORDER}:gross",
        "redemption:r_stack_child_1:discount",
        "redemption:r_stack_child_2:discount",
    }
    # The parent posts nothing but the gross, and that only when it is the first to come.
    assert ledger_keys(db, ids["parent"]) <= {f"order:{STACK_ORDER}:gross"}
    assert {event(db, event_id)["status"] for event_id in ids.values()} == {"processed"}


@pytest.mark.parametrize("arrival", list(itertools.permutations(STACK_MEMBERS)), ids="-".join)
def test_the_last_stack_member_processed_notes_that_the_stack_matches(
    db: Engine, arrival: tuple[str, ...]
) -> None:
    ids = store_stack(db)
    for name in arrival:
        process(db, ids[name])

    note = runs(db, ids[arrival[-1]])["ledger"].error
    assert note == (
        f"stack {recorded.STACK_PARENT}: 2 children booked 1500, parent applied 1500: matches"
    )
