"""The posting rules (bookkeeping.md, "The ledger"): what each event books, under which key,
and that folding the transactions of any events in any order gives the same balances."""

from __future__ import annotations

import itertools

import pytest

from models.journal import Journal, asset_totals
from models.ledger import (
    POINTS,
    Posting,
    StackCheck,
    Transaction,
    balances,
    fold,
    is_conflict,
    post_redemption,
    post_reward_redemption,
    post_rollback,
)
from models.voucherify import (
    PayloadError,
    RedemptionRollbackSucceeded,
    RedemptionSucceeded,
    RewardRedemptionCompleted,
)
from tests.support.payloads import parsed
from tests.unit.recorded import (
    STACK_ORDER,
    Json,
    redemption,
    rollback,
    seed_redemption,
    seed_reward_redemption,
    stack,
)

USD = "USD"
SEED_ORDER = "ord_3VYCHwdV0YOOch2nm1RsTKNI"
SEED_CAMPAIGN = "camp_kwMyXFKquedx8FzXNpVPN7QU"
CARD = "v_p7NP2qmQaMXsNHzb9ujPVjqgDJzJ2ccQ"
REWARD = "rew_UtRGHxt98jwCzodkskxQ7KLp"


def book(data: Json, currency: str = USD) -> tuple[Transaction, ...]:
    return post_redemption(parsed(RedemptionSucceeded, data), currency)


def non_zero(
    transactions: tuple[Transaction, ...] | list[Transaction],
) -> dict[tuple[str, str], int]:
    return {account: total for account, total in balances(transactions).items() if total}


# --- redemption.succeeded ---------------------------------------------------------------


def test_seed_redemption_books_gross_and_discount() -> None:
    assert balances(book(seed_redemption())) == {
        (f"order:{SEED_ORDER}", USD): 6000,
        ("sales", USD): -7000,
        (f"discount:{SEED_CAMPAIGN}", USD): 1000,
    }


def test_seed_redemption_keys_are_built_from_voucherify_ids() -> None:
    keys = [t.key for t in book(seed_redemption())]
    assert keys == [f"order:{SEED_ORDER}:gross", "redemption:r_0e2500291ae016adea:discount"]


def test_order_account_ends_at_the_orders_total_amount() -> None:
    data = seed_redemption()
    assert balances(book(data))[(f"order:{SEED_ORDER}", USD)] == data["order"]["total_amount"]


def test_order_gross_is_booked_once_per_order() -> None:
    first = book(redemption("r_1", applied=1000))
    second = book(redemption("r_2", applied=500, campaign_id="camp_other"))
    assert non_zero([*first, *second])[("sales", USD)] == -7000


def test_discount_books_what_this_redemption_applied_not_the_running_total() -> None:
    data = redemption("r_1", applied=300)
    data["order"]["total_discount_amount"] = 1300  # an earlier redemption's discount too
    assert balances(book(data))[(f"discount:{SEED_CAMPAIGN}", USD)] == 300


def test_currency_is_a_parameter() -> None:
    assert {p.asset for t in book(seed_redemption(), "EUR") for p in t.postings} == {"EUR"}
    with pytest.raises(ValueError, match="ISO 4217"):
        book(seed_redemption(), "usd")


def test_gift_card_credit_is_not_a_discount() -> None:
    transactions = book(redemption("r_g", kind="gift", applied=2500, voucher_id="v_gift"))
    assert non_zero(transactions) == {
        (f"order:{SEED_ORDER}", USD): 4500,
        ("sales", USD): -7000,
        ("giftcard:v_gift", USD): 2500,
    }


def test_loyalty_card_payment_books_money_as_discount_and_points_from_the_card() -> None:
    data = redemption("r_l", kind="loyalty", applied=800, points=80, voucher_id="v_card")
    transactions = book(data)
    assert non_zero(transactions) == {
        (f"order:{SEED_ORDER}", USD): 6200,
        ("sales", USD): -7000,
        (f"discount:{SEED_CAMPAIGN}", USD): 800,
        ("loyalty:payments", POINTS): 80,
        ("loyalty:card:v_card", POINTS): -80,
    }
    assert transactions[-1].key == "redemption:r_l:points"


def test_loyalty_card_payment_without_points_is_refused() -> None:
    data = redemption("r_l", kind="loyalty", applied=800)
    with pytest.raises(PayloadError, match=r"^redemption\.amount: field required"):
        book(data)


def test_promotion_tier_books_to_its_campaign() -> None:
    transactions = book(redemption("r_t", tier_id="promo_1", campaign_id="camp_promo"))
    assert ("discount:camp_promo", USD) in balances(transactions)


def test_promotion_tier_without_campaign_books_to_the_tier() -> None:
    transactions = book(redemption("r_t", tier_id="promo_1", campaign_id=None))
    assert balances(transactions)[("discount:promotion:promo_1", USD)] == 1000


def test_voucher_without_campaign_books_to_the_voucher() -> None:
    transactions = book(redemption("r_s", campaign_id=None, voucher_id="v_alone"))
    assert balances(transactions)[("discount:voucher:v_alone", USD)] == 1000


def test_a_redemption_that_applied_nothing_books_only_the_gross() -> None:
    assert [t.key for t in book(redemption("r_0", applied=0))] == [f"order:{SEED_ORDER}:gross"]


def test_a_redemption_without_an_order_cannot_be_booked() -> None:
    data = seed_redemption()
    data["order"] = data["redemption"]["order"] = None
    with pytest.raises(PayloadError, match=r"^order: null"):
        book(data)


# --- stacks -----------------------------------------------------------------------------

STACK_BALANCES = {
    (f"order:{STACK_ORDER}", USD): 8500,
    ("sales", USD): -10000,
    ("discount:camp_stack_A", USD): 1000,
    ("discount:camp_stack_B", USD): 500,
}


def test_the_stack_example_has_running_snapshots() -> None:
    _, children = stack()
    running = [child["order"]["total_discount_amount"] for child in children]
    assert running == [1000, 1500]  # summing them would book 2500 for a 1500 discount


def test_stack_children_are_booked_and_the_parent_posts_only_the_gross() -> None:
    parent, children = stack()
    assert [t.key for t in book(parent)] == [f"order:{STACK_ORDER}:gross"]
    assert non_zero([t for data in (parent, *children) for t in book(data)]) == STACK_BALANCES


def test_a_stack_gives_the_same_balances_in_any_arrival_order() -> None:
    parent, children = stack()
    events = [book(data) for data in (parent, *children)]
    for arrival in itertools.permutations([*events, events[1]]):  # a child delivered twice
        journal = fold(t for transactions in arrival for t in transactions)
        assert journal.conflicts == ()
        assert {k: v for k, v in journal.balances().items() if v} == STACK_BALANCES


def test_stack_check_compares_the_childrens_applied_amounts_with_the_parents() -> None:
    """What the ledger handler notes of a stack (the books' sums: tests/test_handlers_books.py)."""
    check = StackCheck("r_stack_parent", expected=1500, booked=1500, children=2)
    assert check.ok
    assert check.describe() == (
        "stack r_stack_parent: 2 children booked 1500, parent applied 1500: matches"
    )


def test_stack_check_tells_a_missing_child() -> None:
    check = StackCheck("r_stack_parent", expected=1500, booked=500, children=1)
    assert not check.ok
    assert check.describe().endswith("parent applied 1500: differs by 1000")


def test_stack_check_tells_a_parent_not_seen_yet() -> None:
    check = StackCheck("r_stack_parent", expected=None, booked=1000, children=1)
    assert not check.ok
    assert check.describe() == ("stack r_stack_parent: 1 children booked 1000, parent not seen yet")


# --- customer.reward_redemptions.completed ------------------------------------------------


def test_seed_reward_redemption_is_booked_as_the_redemption_that_paid_for_it() -> None:
    (transaction,) = post_reward_redemption(
        parsed(RewardRedemptionCompleted, seed_reward_redemption())
    )
    assert transaction.key == "redemption:r_0ebe369389d0528f1f:points"
    assert balances([transaction]) == {
        ("loyalty:payments", POINTS): 100,
        (f"loyalty:card:{CARD}", POINTS): -100,
    }


def test_a_reward_without_its_redemption_is_keyed_by_the_reward_redemption() -> None:
    data = seed_reward_redemption()
    data["reward_redemption"]["source_id"] = None
    (transaction,) = post_reward_redemption(parsed(RewardRedemptionCompleted, data))
    assert transaction.key == "reward_redemption:rewr_N5xhKgV5tJBmJxrtb5YB7V3q"
    assert balances([transaction]) == {
        ("loyalty:payments", POINTS): 100,
        (f"loyalty:card:{CARD}", POINTS): -100,
    }


def test_the_rewards_own_coupon_posts_nothing_yet() -> None:
    transactions = post_reward_redemption(
        parsed(RewardRedemptionCompleted, seed_reward_redemption())
    )
    accounts = {posting.account for t in transactions for posting in t.postings}
    assert not any("v_7cNPiXkbCZJ4SkCil4XFZulEi3Z7ejmD" in account for account in accounts)


def test_a_reward_costing_no_points_posts_nothing() -> None:
    data = seed_reward_redemption()
    data["reward_assignment"]["parameters"]["loyalty"]["points"] = 0
    assert post_reward_redemption(parsed(RewardRedemptionCompleted, data)) == ()


# --- rollbacks ----------------------------------------------------------------------------


def roll_back(original: Json, rr_id: str, order_status: str = "PAID") -> tuple[Transaction, ...]:
    event = parsed(
        RedemptionRollbackSucceeded, rollback(original, rr_id, order_status=order_status)
    )
    return post_rollback(event, book(original))


def test_rollback_reverses_the_discount_but_not_the_gross() -> None:
    original = seed_redemption()
    reversal = roll_back(original, "rr_1")
    assert [t.key for t in reversal] == ["rollback:rr_1"]
    assert non_zero([*book(original), *reversal]) == {
        (f"order:{SEED_ORDER}", USD): 7000,
        ("sales", USD): -7000,
    }


def test_rollback_of_a_cancelled_order_reverses_the_gross_too() -> None:
    original = seed_redemption()
    reversal = roll_back(original, "rr_1", order_status="CANCELED")
    assert [t.key for t in reversal] == ["rollback:rr_1", f"order:{SEED_ORDER}:gross:reversal"]
    assert non_zero([*book(original), *reversal]) == {}


def test_a_cancelled_stack_reverses_its_gross_once() -> None:
    parent, children = stack()
    booked = [t for data in (parent, *children) for t in book(data)]
    for index, data in enumerate((parent, *children)):
        booked += roll_back(data, f"rr_{index}", order_status="CANCELED")
    assert non_zero(booked) == {}


def test_rollback_of_a_loyalty_payment_returns_the_points_to_the_card() -> None:
    original = redemption("r_l", kind="loyalty", applied=800, points=80, voucher_id="v_card")
    reversal = roll_back(original, "rr_l")
    assert balances(reversal)[("loyalty:card:v_card", POINTS)] == 80
    assert non_zero([*book(original), *reversal])[("sales", USD)] == -7000


def test_rollback_of_a_redemption_that_booked_nothing_books_nothing() -> None:
    assert roll_back(redemption("r_0", applied=0), "rr_0") == ()


def test_rollback_refuses_transactions_booked_by_another_redemption() -> None:
    event = parsed(RedemptionRollbackSucceeded, rollback(seed_redemption(), "rr_1"))
    with pytest.raises(ValueError, match="not booked by r_0e2500291ae016adea"):
        post_rollback(event, book(redemption("r_other")))


# --- transactions -----------------------------------------------------------------------


def test_a_transaction_must_sum_to_zero_per_asset() -> None:
    with pytest.raises(ValueError, match="do not sum to zero"):
        Transaction("k", (Posting("a", USD, 5), Posting("b", USD, -4)))
    with pytest.raises(ValueError, match="do not sum to zero"):
        Transaction("k", (Posting("a", USD, 5), Posting("b", POINTS, -5)))


def test_a_transaction_may_span_assets_each_balanced() -> None:
    postings = (Posting("a", USD, 5), Posting("b", USD, -5), Posting("c", POINTS, 7))
    Transaction("k", (*postings, Posting("d", POINTS, -7)))


def test_a_transaction_carries_no_zero_postings() -> None:
    with pytest.raises(ValueError, match="zero-amount"):
        Transaction("k", (Posting("a", USD, 0), Posting("b", USD, 0)))


def test_amounts_are_integers() -> None:
    with pytest.raises(TypeError):
        Posting("a", USD, True)
    with pytest.raises(TypeError):
        Posting("a", USD, 1.5)  # type: ignore[arg-type]


def test_same_key_with_other_postings_is_a_conflict() -> None:
    stored = Transaction("k", (Posting("a", USD, 5), Posting("b", USD, -5)), "first")
    reordered = Transaction("k", (Posting("b", USD, -5), Posting("a", USD, 5)), "second")
    other = Transaction("k", (Posting("a", USD, 6), Posting("b", USD, -6)))
    assert not is_conflict(stored, reordered)
    assert is_conflict(stored, other)
    assert not is_conflict(stored, Transaction("k2", other.postings))


def test_folding_keeps_the_first_of_a_key_and_surfaces_conflicts() -> None:
    first = Transaction("k", (Posting("a", USD, 5), Posting("b", USD, -5)))
    clash = Transaction("k", (Posting("a", USD, 6), Posting("b", USD, -6)))
    journal = fold([first, first, clash])
    assert journal.balances() == {("a", USD): 5, ("b", USD): -5}
    assert [(c.kept, c.refused) for c in journal.conflicts] == [(first, clash)]
    assert Journal().balances() == {}


def test_every_posting_rule_balances_on_the_seed_events() -> None:
    everything = [
        *book(seed_redemption()),
        *post_reward_redemption(parsed(RewardRedemptionCompleted, seed_reward_redemption())),
        *roll_back(seed_redemption(), "rr_1", order_status="CANCELED"),
    ]
    assert all(set(asset_totals(t.postings).values()) == {0} for t in everything)
