"""The Processor against real PostgreSQL (bookkeeping.md): stored events in, the ledger, the
loyalty cards, the planned notifications and the handler runs out. No Celery: a test calls
`Processor.process(ids)` as the worker task does and plays the broker itself."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine, update

from models.db import make_engine
from models.tables import events, handler_runs, ledger_holds, ledger_postings, notifications
from models.tables import ledger_conflicts, ledger_transactions
from tests.conftest import EventLog
from tests.support.processing import (
    POLICY,
    WEBHOOK_URL,
    balances,
    card,
    count,
    event,
    ledger_keys,
    make_processor,
    nonzero,
    runs,
    store,
)
from tests.support.processing import notifications as planned
from tests.unit import recorded
from tests.unit.recorded import REDEMPTION, REWARD_REDEMPTION, ROLLBACK, Json
from workers.handlers import BY_NAME, loyalty
from workers.handlers.base import Job, Outcome

ORDER = "ord_3VYCHwdV0YOOch2nm1RsTKNI"
CAMPAIGN = "camp_kwMyXFKquedx8FzXNpVPN7QU"
SEED_R = "r_0e2500291ae016adea"
REWARD = "rew_UtRGHxt98jwCzodkskxQ7KLp"
CARD = "v_p7NP2qmQaMXsNHzb9ujPVjqgDJzJ2ccQ"
HOLDER = "cust_2myfc5acSBgoMV72R5tyTBc8"
STACK_ORDER = recorded.STACK_ORDER


@pytest.fixture(scope="module")
def engine(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url)
    yield engine
    engine.dispose()


@pytest.fixture
def db(engine: Engine) -> Engine:
    """The engine, on a database emptied of every event and everything computed from them."""
    EventLog(engine).clear()
    return engine


def process(engine: Engine, *event_ids: str) -> None:
    make_processor(engine).process(list(event_ids))


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
    assert found == [("email", "jane@jane.io", "pending"), ("webhook", WEBHOOK_URL, "pending")]


def test_the_seed_reward_redemption_moves_100_points_from_the_card_to_the_reward(
    db: Engine, seed_reward: str
) -> None:
    assert balances(db) == {
        (f"loyalty:rewards:{REWARD}", "POINTS"): 100,
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
        ("webhook", WEBHOOK_URL)
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
    process(db, *ids)
    before, cards_before = snapshot(db), card(db, CARD)

    again = make_processor(db).process(ids)

    assert (again.notifications, again.released, again.retries) == ([], [], [])
    assert snapshot(db) == before
    assert card(db, CARD) == cards_before


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
        (f"loyalty:rewards:{REWARD}", "POINTS"): 100,
        (f"loyalty:card:{CARD}", "POINTS"): -100,
    }
    state = card(db, CARD)
    assert state is not None
    assert (state.balance, state.points_spent, state.events) == (70, 100, 1)
    assert {event(db, raw)["status"], event(db, enveloped)["status"]} == {"processed"}


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


# Rollbacks -----------------------------------------------------------------------------------


def seed_rollback(order_status: str) -> Json:
    return recorded.rollback(recorded.seed_redemption(), "rr_seed_1", order_status=order_status)


def test_a_rollback_before_its_original_is_held_and_books_nothing(db: Engine) -> None:
    rollback = store(db, ROLLBACK, seed_rollback("CANCELED"))

    follow = make_processor(db).process([rollback])

    assert event(db, rollback)["status"] == "pending"
    assert runs(db, rollback)["ledger"].status == "held"
    assert balances(db) == {}
    assert count(db, ledger_holds) == 1
    assert follow.retries == []  # waiting for the original, not for a retry


def test_the_original_redemption_releases_its_held_rollback(db: Engine) -> None:
    rollback = store(db, ROLLBACK, seed_rollback("CANCELED"))
    process(db, rollback)
    original = store(db, REDEMPTION, recorded.seed_redemption())

    follow = make_processor(db).process([original])

    assert follow.released == [rollback]
    assert count(db, ledger_holds) == 0


@pytest.mark.parametrize(
    ("order_status", "expected"),
    [
        ("CANCELED", {}),
        ("PAID", {(f"order:{ORDER}", "USD"): 7000, ("sales", "USD"): -7000}),
    ],
)
def test_a_released_rollback_books_the_exact_inverse_and_reverses_the_gross_only_if_cancelled(
    db: Engine, order_status: str, expected: dict[tuple[str, str], int]
) -> None:
    rollback = store(db, ROLLBACK, seed_rollback(order_status))
    process(db, rollback)
    original = store(db, REDEMPTION, recorded.seed_redemption())
    released = make_processor(db).process([original]).released

    make_processor(db).process(released)

    assert event(db, rollback)["status"] == "processed"
    assert nonzero(balances(db)) == expected
    assert f"rollback:rr_seed_1" in ledger_keys(db, rollback)
    reversal = f"order:{ORDER}:gross:reversal"
    assert (reversal in ledger_keys(db)) is (order_status == "CANCELED")


# Failures ------------------------------------------------------------------------------------


def without_order() -> Json:
    data = recorded.seed_redemption()
    data["order"] = None
    data["redemption"]["order"] = None
    return data


def test_a_redemption_without_an_order_fails_naming_the_field(db: Engine) -> None:
    event_id = store(db, REDEMPTION, without_order())

    follow = make_processor(db).process([event_id])

    stored = event(db, event_id)
    assert stored["status"] == "failed"
    assert "order" in str(stored["error"])
    assert follow.retries == []  # a payload cannot get better by waiting


def test_a_redemption_without_an_order_keeps_its_traceback_and_books_nothing(db: Engine) -> None:
    event_id = store(db, REDEMPTION, without_order())

    process(db, event_id)

    ledger = runs(db, event_id)["ledger"]
    assert ledger.status == "failed"
    assert "Traceback" in ledger.traceback
    assert "order" in ledger.error
    assert balances(db) == {}
    assert count(db, ledger_transactions) == 0


def conflicting_redemptions(db: Engine) -> tuple[str, str]:
    first = store(
        db, REDEMPTION, recorded.redemption("r_conflict_1", order_id="ord_c", amount=7000)
    )
    second = store(
        db, REDEMPTION, recorded.redemption("r_conflict_2", order_id="ord_c", amount=8000)
    )
    process(db, first)
    process(db, second)
    return first, second


def test_the_same_key_with_other_postings_fails_the_event_as_a_ledger_conflict(
    db: Engine,
) -> None:
    first, second = conflicting_redemptions(db)

    assert event(db, first)["status"] == "processed"
    assert event(db, second)["status"] == "failed"
    assert "ledger conflict" in str(event(db, second)["error"])
    assert "order:ord_c:gross" in str(event(db, second)["error"])


def test_a_ledger_conflict_is_recorded_and_the_event_books_nothing(db: Engine) -> None:
    _, second = conflicting_redemptions(db)

    with db.connect() as conn:
        rows = list(conn.execute(ledger_conflicts.select()))
    assert [(row.key, row.event_id) for row in rows] == [("order:ord_c:gross", second)]
    assert ledger_keys(db, second) == set()
    assert balances(db)[("sales", "USD")] == -7000


@dataclass
class FlakyLoyalty:
    """The loyalty handler behind a switch: a dependency that is down, then back."""

    down: bool = True
    calls: int = 0

    def __call__(self, job: Job) -> Outcome:
        self.calls += 1
        if self.down:
            raise RuntimeError("card lock timed out")
        return loyalty.handle(job)


def test_a_transient_handler_failure_is_retried_and_then_completes(db: Engine) -> None:
    flaky = FlakyLoyalty()
    processor = make_processor(db, {**BY_NAME, "loyalty": flaky})
    event_id = store(db, REWARD_REDEMPTION, recorded.seed_reward_redemption())

    first = processor.process([event_id])

    assert [retry.event_id for retry in first.retries] == [event_id]
    assert 0 < first.retries[0].countdown <= POLICY.backoff_max
    assert event(db, event_id)["status"] == "pending"
    assert runs(db, event_id)["loyalty"].status == "failed"
    assert card(db, CARD) is None

    flaky.down = False
    second = processor.process([event_id])

    assert second.retries == []
    assert event(db, event_id)["status"] == "processed"
    assert count(db, ledger_transactions) == 1
    assert balances(db)[(f"loyalty:card:{CARD}", "POINTS")] == -100
    state = card(db, CARD)
    assert state is not None
    assert state.points_spent == 100


def test_a_handler_that_fails_max_attempts_times_fails_the_event(db: Engine) -> None:
    processor = make_processor(db, {**BY_NAME, "loyalty": FlakyLoyalty()})
    event_id = store(db, REWARD_REDEMPTION, recorded.seed_reward_redemption())

    follows = [processor.process([event_id]) for _ in range(POLICY.max_attempts)]

    assert [len(follow.retries) for follow in follows] == [1] * (POLICY.max_attempts - 1) + [0]
    stored = event(db, event_id)
    assert stored["status"] == "failed"
    assert "card lock timed out" in str(stored["error"])
    assert runs(db, event_id)["loyalty"].attempts == POLICY.max_attempts
    # Only the failing handler is held back: the books were kept once.
    assert runs(db, event_id)["ledger"].status == "done"
    assert count(db, ledger_transactions) == 1
