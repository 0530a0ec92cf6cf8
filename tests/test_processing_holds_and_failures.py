"""The Processor against real PostgreSQL, when an event cannot be booked yet or at all: a
rollback held for its original, a payload no rule can use, a ledger conflict, a handler that
fails for a while or for good. The test plays the broker: it processes what a task would
publish (released rollbacks, retries) itself."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine

from models.db import ledger_store
from models.db.tables import (
    ledger_conflicts,
    ledger_holds,
    ledger_transactions,
)
from tests.support.processing import (
    POLICY,
    FlakyLoyalty,
    balances,
    card,
    count,
    event,
    ledger_keys,
    make_processor,
    nonzero,
    process,
    runs,
    store,
)
from tests.unit import recorded
from tests.unit.recorded import REDEMPTION, REWARD_REDEMPTION, ROLLBACK, Json
from workers.handlers import BY_NAME, ledger
from workers.handlers.base import Job, Outcome
from workers.processing import FollowUp

ORDER = "ord_3VYCHwdV0YOOch2nm1RsTKNI"
SEED_R = "r_0e2500291ae016adea"
CARD = "v_p7NP2qmQaMXsNHzb9ujPVjqgDJzJ2ccQ"


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
    with db.connect() as conn:
        discount, rolled_back = ledger_store.transactions(
            conn, [f"redemption:{SEED_R}:discount", "rollback:rr_seed_1"]
        )
    assert sorted(rolled_back.postings) == sorted(p.reversed() for p in discount.postings)
    assert "rollback:rr_seed_1" in ledger_keys(db, rollback)
    reversal = f"order:{ORDER}:gross:reversal"
    assert (reversal in ledger_keys(db)) is (order_status == "CANCELED")


def test_a_rollback_held_while_its_original_is_being_booked_is_still_released(
    db: Engine,
) -> None:
    rollback = store(db, ROLLBACK, seed_rollback("CANCELED"))
    original = store(db, REDEMPTION, recorded.seed_redemption())
    follows: list[FollowUp] = []
    other_worker = threading.Thread(
        target=lambda: follows.append(make_processor(db).process([original]))
    )

    def ledger_then_the_other_worker(job: Job) -> Outcome:
        outcome = ledger.handle(job)
        if job.event_id == rollback:
            # The rollback found no original and wrote its hold, uncommitted: now another
            # worker books the original (given a moment; a lock may rightly make it wait).
            other_worker.start()
            other_worker.join(timeout=2)
        return outcome

    racing = make_processor(db, {**BY_NAME, "ledger": ledger_then_the_other_worker})
    follows.append(racing.process([rollback]))
    other_worker.join(timeout=30)
    released = [event_id for follow in follows for event_id in follow.released]
    make_processor(db).process(released)

    assert event(db, original)["status"] == "processed"
    assert event(db, rollback)["status"] == "processed"
    assert nonzero(balances(db)) == {}


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


def test_a_loyalty_card_payment_without_its_balance_fails_at_once_naming_the_field(
    db: Engine,
) -> None:
    data = recorded.redemption("r_lc", order_id="ord_lc", kind="loyalty", voucher_id=CARD, points=4)
    data["voucher"]["loyalty_card"]["balance"] = None
    event_id = store(db, REDEMPTION, data)

    follow = make_processor(db).process([event_id])

    assert follow.retries == []
    stored = event(db, event_id)
    assert stored["status"] == "failed"
    assert "voucher.loyalty_card.balance" in str(stored["error"])


def test_a_discount_redemption_without_a_timestamp_needs_none_for_the_cards(db: Engine) -> None:
    data = recorded.seed_redemption()
    data["created_at"] = data["redemption"]["date"] = None
    event_id = store(db, REDEMPTION, data)

    follow = make_processor(db).process([event_id])

    assert follow.retries == []
    assert runs(db, event_id)["loyalty"].status == "done"
    assert event(db, event_id)["status"] == "processed"


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
