"""Loyalty balances (bookkeeping.md, "Loyalty balances"): the newest movement by its own time
(then the chain, then the envelope's time; never an id) gives the balance, points spent add
up once per movement, and odd figures flag the card without rejecting anything."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.cards import RANK_REWARD, Movement, chain, gaps, newest
from models.loyalty import CardState, card_state, fold_cards, movement_of, snapshot_flags
from models.voucherify import PayloadError, RedemptionSucceeded, RewardRedemptionCompleted
from tests.support.payloads import parsed
from tests.unit.recorded import redemption, seed_redemption, seed_reward_redemption, stack

CARD = "v_p7NP2qmQaMXsNHzb9ujPVjqgDJzJ2ccQ"
HOLDER = "cust_2myfc5acSBgoMV72R5tyTBc8"
SEED_TIME = datetime(2024, 5, 13, 12, 26, 6, 250000, UTC)
SEED_KEY = "redemption:r_0ebe369389d0528f1f:points"


def seed_movement() -> Movement:
    body = seed_reward_redemption()
    found = movement_of(
        "customer.reward_redemptions.completed",
        parsed(RewardRedemptionCompleted, body),
        body,
        "e_seed",
    )
    assert found is not None
    return found


def move(after: int, at: datetime, key: str, change: int = 0, **kw: object) -> Movement:
    values: dict[str, object] = {
        "card_id": CARD,
        "kind": "loyalty",
        "key": key,
        "type": "POINTS_REDEMPTION" if change < 0 else "POINTS_ADDITION",
        "change": change,
        "after": after,
        "at": at,
        "envelope_at": None,
        "rank": RANK_REWARD,
        "customer_id": HOLDER,
        "event_id": f"e_{key}",
    }
    values.update(kw)
    return Movement(**values)  # type: ignore[arg-type]


def fold(*movements: Movement) -> CardState:
    return fold_cards((m, ()) for m in movements)[CARD]


def test_seed_reward_redemption_moves_the_card_as_its_redemption_taking_100_points() -> None:
    movement = seed_movement()
    assert (movement.card_id, movement.customer_id, movement.key) == (CARD, HOLDER, SEED_KEY)
    assert (movement.after, movement.change, movement.taken) == (70, -100, 100)
    assert movement.at == SEED_TIME


def test_a_first_movement_starts_the_card() -> None:
    movement = seed_movement()
    state = card_state(None, movement, first=True, latest=movement)
    assert state == CardState(
        card_id=CARD,
        customer_id=HOLDER,
        balance=70,
        as_of=SEED_TIME,
        points_spent=100,
        events=1,
        flags=(),
        balance_source=SEED_KEY,
    )


def test_a_newer_movement_replaces_the_balance() -> None:
    later = move(40, SEED_TIME + timedelta(minutes=5), "redemption:r_later:points", -30)
    state = fold(seed_movement(), later)
    assert (state.balance, state.as_of, state.points_spent, state.events) == (
        40,
        SEED_TIME + timedelta(minutes=5),
        130,
        2,
    )


def test_an_older_movement_arriving_late_never_overwrites_the_balance() -> None:
    seed = seed_movement()
    earlier = move(170, SEED_TIME - timedelta(days=1), "redemption:r_earlier:points", -50)
    state = card_state(None, seed, first=True, latest=seed)
    state = card_state(state, earlier, first=True, latest=newest([seed, earlier]) or seed)
    assert (state.balance, state.as_of) == (70, SEED_TIME)
    assert (state.points_spent, state.events) == (150, 2)  # still counted


def test_equal_times_are_settled_by_the_chain_not_by_ids() -> None:
    # The newer reward (balance 40) has the smaller id and arrives first; its balance before
    # (70) is the older one's balance after: it comes after it, whatever the ids.
    older = move(70, SEED_TIME, "redemption:r_zzz:points", -100)
    newer = move(40, SEED_TIME, "redemption:r_aaa:points", -30)
    assert fold(newer, older).balance == fold(older, newer).balance == 40
    swapped = move(40, SEED_TIME, "redemption:r_zzz_2:points", -30)
    assert fold(older, swapped).balance == 40


def test_equal_times_without_a_link_are_settled_by_the_envelope_time() -> None:
    one = move(10, SEED_TIME, "k1", 5, envelope_at=SEED_TIME + timedelta(seconds=2))
    two = move(20, SEED_TIME, "k2", 7, envelope_at=SEED_TIME + timedelta(seconds=1))
    assert fold(one, two).balance == fold(two, one).balance == 10


def test_inconsistent_figures_flag_the_card_without_rejecting_it() -> None:
    body = seed_reward_redemption()
    body["voucher"]["loyalty_card"]["points"] = 280
    payload = parsed(RewardRedemptionCompleted, body)
    movement = movement_of("customer.reward_redemptions.completed", payload, body, "e1")
    assert movement is not None
    assert snapshot_flags(payload, movement) == {
        f"{SEED_KEY}: balance 70 != points 280 - expired 0 - subtracted 0 - redeemed 200 = 80"
    }


def test_expired_and_subtracted_points_count_in_the_figures() -> None:
    body = seed_reward_redemption()
    card = body["voucher"]["loyalty_card"]
    card.update(points=300, expired_points=20, subtracted_points=10)
    payload = parsed(RewardRedemptionCompleted, body)
    movement = movement_of("customer.reward_redemptions.completed", payload, body, "e1")
    assert movement is not None
    assert snapshot_flags(payload, movement) == frozenset()


def test_a_negative_balance_flags_the_card() -> None:
    body = seed_reward_redemption()
    body["voucher"]["loyalty_card"].update(balance=-5, points=None)
    payload = parsed(RewardRedemptionCompleted, body)
    movement = movement_of("customer.reward_redemptions.completed", payload, body, "e1")
    assert movement is not None
    assert snapshot_flags(payload, movement) == {f"{SEED_KEY}: negative balance -5"}


def test_the_holder_follows_the_newest_movement() -> None:
    moved = move(70, SEED_TIME + timedelta(days=1), "k", 0, customer_id="cust_new")
    assert fold(seed_movement(), moved).customer_id == "cust_new"


def test_a_movement_of_another_card_is_refused() -> None:
    seed = seed_movement()
    state = card_state(None, seed, first=True, latest=seed)
    other = replace(seed, card_id="v_other")
    with pytest.raises(ValueError, match="not v_p7NP2qmQaMXsNHzb9ujPVjqgDJzJ2ccQ"):
        card_state(state, other, first=True, latest=other)


def test_a_loyalty_card_payment_takes_its_redemption_amount_in_points() -> None:
    data = redemption("r_pay", kind="loyalty", applied=800, points=80, voucher_id="v_card")
    movement = movement_of("redemption.succeeded", parsed(RedemptionSucceeded, data), data, "e")
    assert movement is not None
    assert (movement.card_id, movement.taken, movement.after, movement.key) == (
        "v_card",
        80,
        500,
        "redemption:r_pay:points",
    )
    assert movement.customer_id == "cust_1g637SqVZnkdPNdAIZ7Ra879"


def test_redemptions_of_a_discount_or_a_stack_parent_move_no_card() -> None:
    parent, _ = stack()
    for data in (seed_redemption(), parent):
        event = parsed(RedemptionSucceeded, data)
        assert movement_of("redemption.succeeded", event, data, "e") is None


def test_a_card_without_a_reported_balance_is_named() -> None:
    data = seed_reward_redemption()
    del data["voucher"]["loyalty_card"]["balance"]
    event = parsed(RewardRedemptionCompleted, data)
    with pytest.raises(PayloadError, match=r"^voucher\.loyalty_card\.balance: field required"):
        movement_of("customer.reward_redemptions.completed", event, data, "e")


def test_a_card_falls_back_to_the_customer_when_no_holder_is_named() -> None:
    data = seed_reward_redemption()
    data["holder"] = None
    del data["voucher"]["holder_id"]
    event = parsed(RewardRedemptionCompleted, data)
    movement = movement_of("customer.reward_redemptions.completed", event, data, "e")
    assert movement is not None
    assert movement.customer_id == HOLDER


movements = st.builds(
    move,
    after=st.integers(-10, 1000),
    at=st.sampled_from([SEED_TIME + timedelta(seconds=n) for n in range(3)]),
    key=st.sampled_from(["k1", "k2", "k3", "k4"]),
    change=st.integers(-100, 100),
    customer_id=st.sampled_from(["cust_a", "cust_b"]),
    rank=st.integers(0, 3),
)


@settings(deadline=None)
@given(st.lists(movements, max_size=12), st.data())
def test_any_order_of_movements_gives_the_same_cards(
    seen: list[Movement], data: st.DataObject
) -> None:
    reports = [(m, ()) for m in seen]
    assert fold_cards(data.draw(st.permutations(reports))) == fold_cards(reports)


def test_a_loop_at_one_instant_continues_from_the_balance_before_it() -> None:
    # +5 then -5 at one instant, the -5's envelope the earlier: each follows the other, so the
    # balance before the instant (0) says which came first.
    earn = move(5, SEED_TIME, "k_earn", 5, envelope_at=SEED_TIME + timedelta(seconds=2))
    spend = move(0, SEED_TIME, "k_spend", -5, envelope_at=SEED_TIME + timedelta(seconds=1))
    assert [m.key for m in chain([spend, earn])] == ["k_earn", "k_spend"]
    assert gaps([spend, earn]) == []
    assert fold(spend, earn).balance == 0
    # After a first movement to 10, +5 (10 -> 15) and -5 (15 -> 10) at one instant end at 10.
    first = move(10, SEED_TIME - timedelta(hours=1), "k_first", 10)
    up = move(15, SEED_TIME, "k_up", 5, envelope_at=SEED_TIME + timedelta(seconds=2))
    down = move(10, SEED_TIME, "k_down", -5, envelope_at=SEED_TIME + timedelta(seconds=1))
    assert fold(first, down, up).balance == 10
    assert gaps([first, down, up]) == []
