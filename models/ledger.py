"""The posting rules of `bookkeeping.md`: a Voucherify event in, balanced transactions out.

Pure functions over the payload models. The currency is a parameter (payloads never carry
it). Every transaction has an idempotency key built from Voucherify ids, so folding the
transactions of any events, in any order and however often, gives the same balances.

Zero amounts post nothing: a transaction whose amount would be 0 (a voucher that applied no
discount, an order of 0, a reward costing 0 points) is left out instead of being booked with
zero postings. So a rule returns a tuple that may be empty.

The double-entry primitives (`Posting`, `Transaction`, `is_conflict`, `fold`) are in
`models.journal` and re-exported here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from models.journal import POINTS, Posting, Transaction, balances, fold, is_conflict
from models.voucherify import (
    Order,
    PayloadError,
    RedemptionRollbackSucceeded,
    RedemptionSucceeded,
    RewardRedemptionCompleted,
    paid_points,
)

__all__ = [
    "POINTS",
    "Booked",
    "Posting",
    "Redemption",
    "StackCheck",
    "Transaction",
    "balances",
    "fold",
    "is_conflict",
    "is_order_gross",
    "money_account",
    "post_redemption",
    "post_reward_redemption",
    "post_rollback",
]

SALES = "sales"
LOYALTY_PAYMENTS = "loyalty:payments"
_GROSS_KEY = re.compile(r"order:.+:gross")

Booked = Literal["booked", "unchanged", "conflict"]
"""What booking a transaction under its key did: booked it, found the same one there, or
found a different one (a conflict)."""


@dataclass(frozen=True)
class Redemption:
    """What the ledger notes of every redemption it saw, even one that posted nothing.

    (Not the payload's `models.voucherify.Redemption`: this is the ledger's note of one.)"""

    redemption_id: str
    role: str  # plain | child | parent
    parent_id: str | None
    order_id: str | None
    applied: int
    event_id: str


@dataclass(frozen=True)
class StackCheck:
    """A stack parent against its children, as booked so far: the children's applied amounts
    sum to the parent's.

    Each child's order is a running snapshot whose `total_discount_amount` grows from child
    to child, so only `total_applied_discount_amount` (what that child applied) is summed; a
    child delivered twice is noted, and so counted, once.
    """

    parent_id: str
    expected: int | None
    """The parent's `order.total_applied_discount_amount`; None while the parent is not seen."""
    booked: int
    """The sum of the children's `order.total_applied_discount_amount`."""
    children: int
    """How many children are booked."""

    @property
    def ok(self) -> bool:
        return self.expected == self.booked

    def describe(self) -> str:
        seen = f"stack {self.parent_id}: {self.children} children booked {self.booked}"
        if self.expected is None:
            return f"{seen}, parent not seen yet"
        verdict = "matches" if self.ok else f"differs by {self.expected - self.booked}"
        return f"{seen}, parent applied {self.expected}: {verdict}"


def post_redemption(event: RedemptionSucceeded, currency: str) -> tuple[Transaction, ...]:
    """`redemption.succeeded`: the order gross once per order, then what this redemption applied.

    A stack parent posts only the order gross: its children book the discounts, and the
    parent serves as a check (`StackCheck`).
    """
    _check_currency(currency)
    order = _order(event)
    gross = _gross(order, currency)
    booked = [gross] if gross is not None else []
    if event.role == "parent":
        return tuple(booked)
    redemption_id = event.redemption.id
    applied = order.total_applied_discount_amount
    if applied:
        account = money_account(event)
        booked.append(
            _move(
                f"redemption:{redemption_id}:discount",
                debit=account,
                credit=f"order:{order.id}",
                asset=currency,
                amount=applied,
                memo=f"{redemption_id} applied {applied} to order {order.id} ({account})",
            )
        )
    voucher = event.voucher
    if voucher is not None and voucher.kind == "loyalty":
        points = paid_points(event)
        if points:
            booked.append(
                _move(
                    f"redemption:{redemption_id}:points",
                    debit=LOYALTY_PAYMENTS,
                    credit=f"loyalty:card:{voucher.id}",
                    asset=POINTS,
                    amount=points,
                    memo=f"{redemption_id} paid {points} points from card {voucher.id}",
                )
            )
    return tuple(booked)


def money_account(event: RedemptionSucceeded) -> str:
    """Where a redemption's applied amount is debited.

    A gift card's credit is spent, not a discount: `giftcard:{voucher}`. A loyalty card's
    money side is a discount of its campaign. A promotion tier with no campaign books to
    `discount:promotion:{tier}`; a voucher with no campaign (a standalone code) likewise to
    `discount:voucher:{voucher}`. A voucher is preferred over a promotion tier when a payload
    names both, since a redemption is about one redeemable and the voucher is the code used.
    """
    voucher, tier = event.voucher, event.promotion_tier
    fallback_campaign = event.campaign.id if event.campaign else None
    if voucher is not None:
        if voucher.kind == "gift":
            return f"giftcard:{voucher.id}"
        campaign = voucher.campaign_id or fallback_campaign
        return f"discount:{campaign}" if campaign else f"discount:voucher:{voucher.id}"
    if tier is not None:
        campaign = tier.campaign_ref or fallback_campaign
        return f"discount:{campaign}" if campaign else f"discount:promotion:{tier.id}"
    raise ValueError(f"{event.redemption.id}: a stack parent has no money account")


def post_reward_redemption(event: RewardRedemptionCompleted) -> tuple[Transaction, ...]:
    """`customer.reward_redemptions.completed`: points moved from the card to the reward.

    The reward's own coupon posts nothing now: it is booked when it is itself redeemed.
    """
    points = event.points
    if not points:
        return ()
    rewr, reward, card = event.reward_redemption.id, event.reward.id, event.voucher.id
    return (
        _move(
            f"reward_redemption:{rewr}",
            debit=f"loyalty:rewards:{reward}",
            credit=f"loyalty:card:{card}",
            asset=POINTS,
            amount=points,
            memo=f"{rewr}: {points} points from card {card} for reward {reward}",
        ),
    )


def post_rollback(
    event: RedemptionRollbackSucceeded, original: Iterable[Transaction]
) -> tuple[Transaction, ...]:
    """`redemption.rollback.succeeded`: the exact inverse of what the original booked.

    `original` is what was booked for the rolled-back redemption: `post_redemption` of the
    stored original event gives it. The caller holds a rollback until its original is
    stored, since an empty `original` means "booked nothing", not "not there yet".

    Key `rollback:{rr_id}` reverses everything but the order gross. The gross is reversed
    only when the rolled-back order is CANCELED, and under its own once-per-order key
    `order:{order_id}:gross:reversal`: every child of a cancelled stack is rolled back, and
    each of them would otherwise reverse the one gross again.
    """
    rollback_id, original_id = event.redemption_rollback.id, event.original_id
    own, gross = _split_original(original, original_id)
    reversed_postings = tuple(p.reversed() for t in own for p in t.postings)
    booked = []
    if reversed_postings:
        memo = f"{rollback_id} reverses {original_id}: " + ", ".join(t.key for t in own)
        booked.append(Transaction(f"rollback:{rollback_id}", reversed_postings, memo))
    if event.order_cancelled:
        booked.extend(
            t.reversal(f"{t.key}:reversal", f"{rollback_id}: order cancelled") for t in gross
        )
    return tuple(booked)


def is_order_gross(transaction: Transaction) -> bool:
    """Whether a transaction is an order's once-per-order gross (`order:{id}:gross`)."""
    return _GROSS_KEY.fullmatch(transaction.key) is not None


def _split_original(
    original: Iterable[Transaction], original_id: str
) -> tuple[list[Transaction], list[Transaction]]:
    """The original's own transactions and its order gross, each key once."""
    unique: dict[str, Transaction] = {}
    for transaction in original:
        kept = unique.setdefault(transaction.key, transaction)
        if is_conflict(kept, transaction):
            raise ValueError(f"two different transactions under {transaction.key}")
    own = [t for t in unique.values() if not is_order_gross(t)]
    strangers = [t.key for t in own if not t.key.startswith(f"redemption:{original_id}:")]
    if strangers:
        # Reversing another redemption's postings would corrupt the ledger silently.
        raise ValueError(f"not booked by {original_id}: {', '.join(strangers)}")
    return own, [t for t in unique.values() if is_order_gross(t)]


def _gross(order: Order, currency: str) -> Transaction | None:
    if not order.amount:
        return None
    return _move(
        f"order:{order.id}:gross",
        debit=f"order:{order.id}",
        credit=SALES,
        asset=currency,
        amount=order.amount,
        memo=f"gross of order {order.id}",
    )


def _move(key: str, *, debit: str, credit: str, asset: str, amount: int, memo: str) -> Transaction:
    return Transaction(key, (Posting(debit, asset, amount), Posting(credit, asset, -amount)), memo)


def _order(event: RedemptionSucceeded) -> Order:
    if event.order is None:
        # Every posting of a redemption is against its order; without one nothing is bookable.
        raise PayloadError.at("order", "null, but a redemption is booked against its order")
    return event.order


def _check_currency(currency: str) -> None:
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise ValueError(f"currency must be a three-letter ISO 4217 code, got {currency!r}")
