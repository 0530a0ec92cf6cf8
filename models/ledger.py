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
from models.loyalty import movement_key, reward_movement_key
from models.voucherify import (
    CardTransactionEvent,
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
    "card_account",
    "fold",
    "is_conflict",
    "is_order_gross",
    "money_account",
    "post_card_transaction",
    "post_redemption",
    "post_reward_redemption",
    "post_rollback",
]

SALES = "sales"
LOYALTY_PAYMENTS = "loyalty:payments"
"""Points spent through a redemption: paying for an order, or for a reward."""
LOYALTY_ADDITIONS = "loyalty:additions"
LOYALTY_REMOVALS = "loyalty:removals"
LOYALTY_EXPIRED = "loyalty:expired"
GIFT_ADDITIONS = "giftcard:additions"
GIFT_REMOVALS = "giftcard:removals"
_COUNTERS = {
    "POINTS_ADDITION": LOYALTY_ADDITIONS,
    "POINTS_REMOVAL": LOYALTY_REMOVALS,
    "POINTS_EXPIRATION": LOYALTY_EXPIRED,
    "POINTS_REDEMPTION": LOYALTY_PAYMENTS,
    "POINTS_REFUND": LOYALTY_PAYMENTS,
    "CREDITS_ADDITION": GIFT_ADDITIONS,
    "CREDITS_REMOVAL": GIFT_REMOVALS,
}
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
        booked.append(_applied(redemption_id, money_account(event), order.id, applied, currency))
    voucher = event.voucher
    if voucher is not None and voucher.kind == "loyalty":
        points = paid_points(event)
        if points:
            booked.append(_points_paid(redemption_id, voucher.id, points))
    return tuple(booked)


def _points_paid(redemption_id: str, card: str, points: int) -> Transaction:
    """A card's points spent in a redemption: the one booking of `redemption.succeeded`, the
    reward it paid for and its `POINTS_REDEMPTION`, whichever comes first."""
    return _move(
        f"redemption:{redemption_id}:points",
        debit=LOYALTY_PAYMENTS,
        credit=card_account("loyalty", card),
        asset=POINTS,
        amount=points,
        memo=f"{redemption_id} paid {points} points from card {card}",
    )


def _applied(
    redemption_id: str, account: str, order_id: str, applied: int, currency: str
) -> Transaction:
    return _move(
        f"redemption:{redemption_id}:discount",
        debit=account,
        credit=f"order:{order_id}",
        asset=currency,
        amount=applied,
        memo=f"{redemption_id} applied {applied} to order {order_id} ({account})",
    )


def card_account(kind: str, card: str) -> str:
    """The account of a card: `loyalty:card:{id}` in POINTS, whose balance is the card's
    points; `giftcard:{id}` in the currency, a liability whose balance is minus the card's
    credit (credit added is credited to it, credit spent debited)."""
    return f"loyalty:card:{card}" if kind == "loyalty" else f"giftcard:{card}"


def post_card_transaction(event: CardTransactionEvent, currency: str) -> tuple[Transaction, ...]:
    """A loyalty or gift card transaction (`vtx_...`): the card moves by its change, against
    the account that says where the points or credit came from or went.

    Keyed as `models.loyalty.movement_key`: a points or credit redemption under its
    redemption's key, a refund under its rollback's, with the very postings and memo that
    `redemption.succeeded` and `redemption.rollback.succeeded` book, so the movement is booked
    once whichever arrives first. Every other transaction under `transaction:{vtx}`.
    """
    _check_currency(currency)
    change, card, kind = event.change, event.card_id, event.kind
    if not change:
        return ()
    details, kind_of = event.details, event.transaction.type
    order = details.order.id if details.order else None
    redemption = details.redemption.id if details.redemption else None
    rollback = details.rollback.id if details.rollback else None
    gift = card_account("gift", card)
    if kind_of == "POINTS_REDEMPTION" and redemption:
        return (_points_paid(redemption, card, -change),)
    if kind_of == "CREDITS_REDEMPTION" and redemption and order:
        return (_applied(redemption, gift, order, -change, currency),)
    if kind_of == "POINTS_REFUND" and rollback and redemption:
        return (_refund(event, rollback, redemption, _points_paid(redemption, card, change)),)
    if kind_of == "CREDITS_REFUND" and rollback and redemption and order:
        return (
            _refund(
                event, rollback, redemption, _applied(redemption, gift, order, change, currency)
            ),
        )
    asset, unit = (POINTS, "points") if kind == "loyalty" else (currency, currency)
    counter = _counter(event)
    own = card_account(kind, card)
    # Signed: the loyalty card's balance is its points, the gift card's minus its credit.
    moved = change if kind == "loyalty" else -change
    return (
        Transaction(
            movement_key(event),
            (Posting(own, asset, moved), Posting(counter, asset, -moved)),
            f"{event.transaction.id}: {change:+} {unit} on card {card} ({event.transaction.type})",
        ),
    )


def _refund(
    event: CardTransactionEvent, rollback: str, redemption: str, original: Transaction
) -> Transaction:
    """A refund: the exact reversal of what its redemption booked, as its rollback books it."""
    return original.reversal(
        movement_key(event), f"{rollback} reverses {redemption}: {original.key}"
    )


def _counter(event: CardTransactionEvent) -> str:
    """Where a card's points or credit came from or went."""
    kind, card = event.transaction.type, event.card_id
    if kind in ("POINTS_ACCRUAL", "PENDING_POINTS_ACTIVATION"):
        campaign = event.campaign_id
        return f"loyalty:accrual:{campaign}" if campaign else "loyalty:accrual"
    if kind in ("POINTS_TRANSFER_OUT", "POINTS_TRANSFER_IN"):
        # A clearing account per pair of cards: zero once both halves are in.
        peer = event.transfer_peer
        if peer is None:
            return "loyalty:transfers"
        donor, receiver = (card, peer) if kind == "POINTS_TRANSFER_OUT" else (peer, card)
        return f"loyalty:transfers:{donor}>{receiver}"
    if kind in ("CREDITS_REDEMPTION", "CREDITS_REFUND"):
        order = event.details.order
        return f"order:{order.id}" if order and order.id else "giftcard:redeemed"
    return _COUNTERS.get(kind, "loyalty:other" if event.kind == "loyalty" else "giftcard:other")


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
    """`customer.reward_redemptions.completed`: points spent from the card, booked as the
    redemption that paid for the reward (`reward_redemption.source_id`), so that the reward, its
    `redemption.succeeded` and its `POINTS_REDEMPTION` move the card once.

    The reward's own coupon posts nothing now: it is booked when it is itself redeemed.
    """
    points = event.points
    if not points:
        return ()
    key, card = reward_movement_key(event), event.voucher.id
    if key.startswith("redemption:"):
        # The redemption that paid for it: the same movement as its redemption.succeeded.
        return (_points_paid(key.split(":")[1], card, points),)
    rewr, reward = event.reward_redemption.id, event.reward.id
    return (
        _move(
            key,
            debit=LOYALTY_PAYMENTS,
            credit=card_account("loyalty", card),
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

    Key `rollback:{rr_id}` reverses everything but the order gross and the points a loyalty
    card paid; those come back to the card under `rollback:{rr_id}:points`, the key its
    `POINTS_REFUND` transaction books, so the refund moves the card once. The gross is reversed
    only when the rolled-back order is CANCELED, and under its own once-per-order key
    `order:{order_id}:gross:reversal`: every child of a cancelled stack is rolled back, and
    each of them would otherwise reverse the one gross again.
    """
    rollback_id, original_id = event.redemption_rollback.id, event.original_id
    own, gross = _split_original(original, original_id)
    points = [t for t in own if t.key.endswith(":points")]
    booked = []
    for key, reversed_ in (
        (f"rollback:{rollback_id}", _others(own, points)),
        (f"rollback:{rollback_id}:points", points),
    ):
        postings = tuple(p.reversed() for t in reversed_ for p in t.postings)
        if postings:
            memo = f"{rollback_id} reverses {original_id}: " + ", ".join(t.key for t in reversed_)
            booked.append(Transaction(key, postings, memo))
    if event.order_cancelled:
        booked.extend(
            t.reversal(f"{t.key}:reversal", f"{rollback_id}: order cancelled") for t in gross
        )
    return tuple(booked)


def _others(own: list[Transaction], points: list[Transaction]) -> list[Transaction]:
    return [t for t in own if t not in points]


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
