"""Loyalty balances (bookkeeping.md, "Loyalty balances"): the newest report by source time
wins, points spent add up, and odd figures flag the card without rejecting anything."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.loyalty import (
    CardObservation,
    CardState,
    apply_observation,
    fold_observations,
    observe_redemption,
    observe_reward_redemption,
)
from models.voucherify import (
    PayloadError,
    RedemptionSucceeded,
    RewardRedemptionCompleted,
    source_timestamp,
)
from tests.support.payloads import parsed
from tests.unit.recorded import redemption, seed_redemption, seed_reward_redemption, stack

CARD = "v_p7NP2qmQaMXsNHzb9ujPVjqgDJzJ2ccQ"
HOLDER = "cust_2myfc5acSBgoMV72R5tyTBc8"
SEED_TIME = datetime(2024, 5, 13, 12, 26, 6, 250000, UTC)


def seed_observation() -> CardObservation:
    body = seed_reward_redemption()
    event = parsed(RewardRedemptionCompleted, body)
    return observe_reward_redemption(event, source_timestamp(body, event))


def report(balance: int, at: datetime, source: str, taken: int = 0) -> CardObservation:
    return CardObservation(CARD, HOLDER, balance, at, source, points_taken=taken)


def test_seed_reward_redemption_reports_the_card_after_taking_100_points() -> None:
    observation = seed_observation()
    assert (observation.card_id, observation.customer_id) == (CARD, HOLDER)
    assert (observation.balance, observation.points_taken) == (70, 100)
    assert observation.at == SEED_TIME
    assert observation.flags() == frozenset()  # 270 - 200 = 70


def test_a_first_observation_starts_the_card() -> None:
    state = apply_observation(None, seed_observation())
    assert state == CardState(
        card_id=CARD,
        customer_id=HOLDER,
        balance=70,
        as_of=SEED_TIME,
        points_spent=100,
        events=1,
        flags=(),
        balance_source="rewr_N5xhKgV5tJBmJxrtb5YB7V3q",
    )


def test_a_newer_report_replaces_the_balance() -> None:
    state = apply_observation(None, seed_observation())
    later = report(40, SEED_TIME + timedelta(minutes=5), "rewr_later", taken=30)
    state = apply_observation(state, later)
    assert (state.balance, state.as_of, state.points_spent, state.events) == (
        40,
        SEED_TIME + timedelta(minutes=5),
        130,
        2,
    )


def test_an_older_report_arriving_late_never_overwrites_the_balance() -> None:
    state = apply_observation(None, seed_observation())
    earlier = report(170, SEED_TIME - timedelta(days=1), "rewr_earlier", taken=50)
    state = apply_observation(state, earlier)
    assert (state.balance, state.as_of) == (70, SEED_TIME)
    assert (state.points_spent, state.events) == (150, 2)  # still counted


def test_reports_at_the_same_instant_settle_the_same_way_in_either_order() -> None:
    one, two = report(10, SEED_TIME, "r_a"), report(20, SEED_TIME, "r_b")
    assert apply_observation(apply_observation(None, one), two) == apply_observation(
        apply_observation(None, two), one
    )


def test_inconsistent_figures_flag_the_card_without_rejecting_it() -> None:
    observation = replace(seed_observation(), points=280)
    state = apply_observation(None, observation)
    assert state.balance == 70
    assert state.flagged
    assert state.flags == (
        "rewr_N5xhKgV5tJBmJxrtb5YB7V3q: balance 70 != points 280 - expired 0 - subtracted 0"
        " - redeemed 200 = 80",
    )


def test_expired_and_subtracted_points_count_in_the_figures() -> None:
    observation = replace(seed_observation(), points=300, expired_points=20, subtracted_points=10)
    assert observation.flags() == frozenset()


def test_figures_without_redeemed_points_are_not_checked() -> None:
    assert replace(seed_observation(), points=999, redeemed_points=None).flags() == frozenset()


def test_a_negative_balance_flags_the_card() -> None:
    state = apply_observation(None, report(-5, SEED_TIME, "r_neg", taken=10))
    assert state.balance == -5
    assert state.flags == ("r_neg: negative balance -5",)


def test_flags_stay_once_raised() -> None:
    state = apply_observation(None, report(-5, SEED_TIME, "r_neg"))
    state = apply_observation(state, report(10, SEED_TIME + timedelta(hours=1), "r_ok"))
    assert state.flags == ("r_neg: negative balance -5",)


def test_the_holder_follows_the_newest_report() -> None:
    state = apply_observation(None, seed_observation())
    moved = replace(report(70, SEED_TIME + timedelta(days=1), "r_x"), customer_id="cust_new")
    assert apply_observation(state, moved).customer_id == "cust_new"


def test_a_report_about_another_card_is_refused() -> None:
    state = apply_observation(None, seed_observation())
    with pytest.raises(ValueError, match="not v_p7NP2qmQaMXsNHzb9ujPVjqgDJzJ2ccQ"):
        apply_observation(state, replace(report(1, SEED_TIME, "r_y"), card_id="v_other"))


def test_a_source_time_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        report(1, datetime(2024, 5, 13, 12, 0), "r_naive")


def test_a_loyalty_card_payment_takes_its_redemption_amount_in_points() -> None:
    data = redemption("r_pay", kind="loyalty", applied=800, points=80, voucher_id="v_card")
    event = parsed(RedemptionSucceeded, data)
    observation = observe_redemption(event, source_timestamp(data, event))
    assert observation is not None
    assert (observation.card_id, observation.points_taken, observation.balance) == (
        "v_card",
        80,
        500,
    )
    assert observation.customer_id == "cust_1g637SqVZnkdPNdAIZ7Ra879"
    assert observation.flags() == frozenset()  # 900 - 400 = 500


def test_redemptions_of_anything_but_a_loyalty_card_observe_no_card() -> None:
    parent, _ = stack()
    for data in (seed_redemption(), redemption("r_g", kind="gift"), parent):
        event = parsed(RedemptionSucceeded, data)
        assert observe_redemption(event, SEED_TIME) is None


def test_a_card_without_a_reported_balance_is_named() -> None:
    data = seed_reward_redemption()
    del data["voucher"]["loyalty_card"]["balance"]
    event = parsed(RewardRedemptionCompleted, data)
    with pytest.raises(PayloadError, match=r"^voucher\.loyalty_card\.balance: field required"):
        observe_reward_redemption(event, SEED_TIME)


def test_a_card_falls_back_to_the_customer_when_no_holder_is_named() -> None:
    data = seed_reward_redemption()
    data["holder"] = None
    del data["voucher"]["holder_id"]
    observation = observe_reward_redemption(parsed(RewardRedemptionCompleted, data), SEED_TIME)
    assert observation.customer_id == HOLDER


observations = st.builds(
    CardObservation,
    card_id=st.sampled_from(["v_1", "v_2"]),
    customer_id=st.sampled_from(["cust_a", "cust_b"]),
    balance=st.integers(-10, 1000),
    at=st.datetimes(
        min_value=datetime(2024, 1, 1),
        max_value=datetime(2024, 1, 2),
        timezones=st.just(UTC),
    ),
    source_id=st.sampled_from(["r_1", "r_2", "r_3", "rewr_1", "rewr_2"]),
    points_taken=st.integers(0, 500),
    points=st.none() | st.integers(0, 2000),
    redeemed_points=st.none() | st.integers(0, 1000),
)


@settings(deadline=None)
@given(st.lists(observations, max_size=12), st.data())
def test_any_order_of_observations_gives_the_same_cards(
    seen: list[CardObservation], data: st.DataObject
) -> None:
    assert fold_observations(data.draw(st.permutations(seen))) == fold_observations(seen)
