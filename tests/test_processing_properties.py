"""The projections are functions of the event log (bookkeeping.md): whatever the arrival order,
however often each event arrives and however the deliveries are batched into tasks, the
ledger, the loyalty cards and the planned notifications end up as when every event is
processed once, in order. Real PostgreSQL, the real Processor; the test plays the broker."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from models.db.tables import events, ledger_holds, notifications
from tests.conftest import EventLog
from tests.support.processing import (
    balances,
    cards,
    count,
    ledger_keys,
    make_processor,
    store,
)
from tests.unit import recorded
from tests.unit.recorded import REDEMPTION, REWARD_REDEMPTION, ROLLBACK, Json

CARD = "v_p7NP2qmQaMXsNHzb9ujPVjqgDJzJ2ccQ"


def reward_redemption(rewr_id: str, at: str, *, balance: int, redeemed: int, cost: int) -> Json:
    """The seed reward redemption as another one from the same card, with consistent figures
    (the card has 270 points: balance = 270 - redeemed)."""
    data = recorded.seed_reward_redemption()
    data["reward_redemption"].update(id=rewr_id, created_at=at, source_id=f"r_{rewr_id}")
    data["voucher"]["loyalty_card"]["balance"] = balance
    data["voucher"]["redemption"]["redeemed_points"] = redeemed
    data["reward_assignment"]["parameters"]["loyalty"]["points"] = cost
    return data


def population() -> list[tuple[str, Json]]:
    """Plain redemptions of distinct orders (a discount, a gift card, a loyalty card paying
    from the rewards' card), a stack of two children and their parent, reward redemptions
    from one card reporting different balances at different times (two at the same instant),
    and a rollback of a cancelled order: canonical order first, rollback after its original."""
    parent, (child_1, child_2) = recorded.stack()
    discount = recorded.redemption("r_plain_a", order_id="ord_a", amount=5000, applied=500)
    return [
        (REDEMPTION, discount),
        (
            REDEMPTION,
            recorded.redemption(
                "r_plain_b", order_id="ord_b", amount=3000, applied=300,
                kind="gift", voucher_id="v_gift_b",
            ),
        ),
        (
            REDEMPTION,
            recorded.redemption(
                "r_plain_c", order_id="ord_c", amount=4000, applied=400,
                kind="loyalty", voucher_id=CARD, points=40,
            ),
        ),
        (REDEMPTION, child_1),
        (REDEMPTION, child_2),
        (REDEMPTION, parent),
        (
            REWARD_REDEMPTION,
            reward_redemption("rewr_early", "2024-05-13T11:00:00.000Z",
                              balance=170, redeemed=100, cost=100),
        ),
        (REWARD_REDEMPTION, recorded.seed_reward_redemption()),
        (
            REWARD_REDEMPTION,
            reward_redemption("rewr_late_a", "2024-05-14T09:00:00.000Z",
                              balance=20, redeemed=250, cost=50),
        ),
        (
            REWARD_REDEMPTION,
            reward_redemption("rewr_late_b", "2024-05-14T09:00:00.000Z",
                              balance=25, redeemed=245, cost=5),
        ),
        (ROLLBACK, recorded.rollback(discount, "rr_plain_a", order_status="CANCELED")),
    ]  # fmt: skip


POPULATION = population()

CardRow = tuple[str, int, datetime, int, int, tuple[str, ...]]


@dataclass(frozen=True)
class State:
    balances: dict[tuple[str, str], int]
    keys: frozenset[str]
    cards: dict[str, CardRow]
    notifications: frozenset[tuple[str, str, str]]
    statuses: dict[str, str]
    holds: int


def state(engine: Engine) -> State:
    with engine.connect() as conn:
        planned = frozenset(
            (row.event_id, row.channel, row.recipient)
            for row in conn.execute(select(notifications))
        )
        statuses = {row.id: row.status for row in conn.execute(select(events))}
    return State(
        balances(engine),
        frozenset(ledger_keys(engine)),
        {
            card.card_id: (
                card.customer_id,
                card.balance,
                card.as_of,
                card.points_spent,
                card.events,
                card.flags,
            )
            for card in cards(engine)
        },
        planned,
        statuses,
        count(engine, ledger_holds),
    )


def deliver(engine: Engine, batches: list[list[int]]) -> None:
    """Each batch arrives (stored, duplicates deduplicated by identity) and is processed as
    one task; released rollbacks are processed at once, as the task would publish them."""
    processor = make_processor(engine)
    for batch in batches:
        ids = [store(engine, *POPULATION[index]) for index in batch]
        follow = processor.process(ids)
        assert follow.retries == []
        while follow.released:
            follow = processor.process(follow.released)
            assert follow.retries == []


@pytest.fixture(scope="module")
def canonical(engine: Engine) -> State:
    EventLog(engine).clear()
    deliver(engine, [[index] for index in range(len(POPULATION))])
    found = state(engine)
    assert set(found.statuses.values()) == {"processed"}
    return found


@st.composite
def arrivals(draw: st.DrawFn) -> list[list[int]]:
    """Every event 1-3 times, shuffled, cut into batches (tasks) at random points."""
    copies = draw(st.lists(st.integers(1, 3), min_size=len(POPULATION), max_size=len(POPULATION)))
    sequence = draw(st.permutations([index for index, n in enumerate(copies) for _ in range(n)]))
    cuts = draw(st.lists(st.booleans(), min_size=len(sequence), max_size=len(sequence)))
    batches: list[list[int]] = [[]]
    for index, cut in zip(sequence, cuts, strict=True):
        batches[-1].append(index)
        if cut:
            batches.append([])
    return [batch for batch in batches if batch]


def test_the_canonical_fold_books_what_the_rules_say(canonical: State) -> None:
    # Guards the property below against comparing two equally wrong states.
    assert canonical.balances[("sales", "USD")] == -(3000 + 4000 + 10000)  # ord_a cancelled
    assert canonical.balances[("order:ord_a", "USD")] == 0
    assert canonical.balances[("discount:camp_stack_A", "USD")] == 1000
    assert canonical.balances[("discount:camp_stack_B", "USD")] == 500
    assert canonical.balances[(f"loyalty:card:{CARD}", "POINTS")] == -(40 + 100 + 100 + 50 + 5)
    customer, balance, as_of, spent, seen, flags = canonical.cards[CARD]
    # The newest report wins; at one instant the source id decides (rewr_late_b > rewr_late_a).
    assert (balance, as_of.isoformat(), spent, seen, flags) == (
        25, "2024-05-14T09:00:00+00:00", 295, 5, ()
    )  # fmt: skip
    assert customer == "cust_2myfc5acSBgoMV72R5tyTBc8"
    assert canonical.holds == 0


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batches=arrivals())
def test_any_arrival_order_duplicates_and_batching_give_the_canonical_state(
    engine: Engine, canonical: State, batches: list[list[int]]
) -> None:
    EventLog(engine).clear()

    deliver(engine, batches)

    assert state(engine) == canonical
