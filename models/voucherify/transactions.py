"""Pydantic models of the events about a card's points or credit (`vtx_…` transactions).

Every event that carries a Voucherify transaction is read by one model,
`CardTransactionEvent`: `voucher.loyalty_card.transaction.created`, `.points_added`,
`.points_expired`, `.pending_points.activated`, `voucher.gift.transaction.created`,
`voucher.gift.balance_added` and their distribution look-alikes. Two have no transaction:
`customer.rewarded.loyalty_points` (`LoyaltyPointsRewarded`) and the pending-points events
that only hold points back (`PendingPointsChanged`).

The change is `transaction.details.balance.points` (loyalty) or `.amount` (gift, minor
units), signed; the balance after it is `.balance`. Two published examples have
`details: null` (`points_added`, `balance_added`): there the top-level `balance` gives both.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from models.voucherify.fields import Figure, Id, Model, Status, Timestamp
from models.voucherify.models import Campaign, Customer, Voucher

CardKind = Literal["loyalty", "gift"]

LOYALTY_TYPES = frozenset(
    {
        "PENDING_POINTS_ACTIVATION",
        "POINTS_ACCRUAL",
        "POINTS_REDEMPTION",
        "POINTS_REFUND",
        "POINTS_ADDITION",
        "POINTS_REMOVAL",
        "POINTS_EXPIRATION",
        "POINTS_TRANSFER_IN",
        "POINTS_TRANSFER_OUT",
    }
)
GIFT_TYPES = frozenset(
    {"CREDITS_REDEMPTION", "CREDITS_REFUND", "CREDITS_ADDITION", "CREDITS_REMOVAL"}
)


class Ref(Model):
    """An object named by its id (an order, a redemption, a customer event, …)."""

    id: str | None = None
    name: str | None = None


class Balance(Model):
    """`VoucherBalance`: a signed change and the balance after it."""

    type: str | None = None
    points: Figure | None = None
    amount: Figure | None = None
    balance: Figure | None = None
    related_object: Ref | None = None


class Details(Model):
    balance: Balance | None = None
    order: Ref | None = None
    event: Ref | None = None
    redemption: Ref | None = None
    rollback: Ref | None = None
    reward: Ref | None = None
    pending_points: Ref | None = None
    source_voucher: Ref | None = None
    destination_voucher: Ref | None = None


class Transaction(Model):
    id: Id
    voucher_id: str | None = None
    campaign_id: str | None = None
    type: Status
    details: Details | None = None
    related_transaction_id: str | None = None
    created_at: Timestamp | None = None


class CardTransactionEvent(Model):
    """An event carrying one transaction of a loyalty or gift card."""

    transaction: Transaction
    voucher: Voucher | None = None
    balance: Balance | None = None
    """The top-level balance: repeats the transaction's, or stands in for null details."""
    customer: Customer | None = None
    holder: Customer | None = None
    campaign: Campaign | None = None
    source_voucher: Ref | None = None
    destination_voucher: Ref | None = None

    @property
    def kind(self) -> CardKind:
        return "gift" if self.transaction.type in GIFT_TYPES else "loyalty"

    @property
    def details(self) -> Details:
        return self.transaction.details or Details()

    @property
    def card_id(self) -> str:
        """The card whose balance changed (`problems` guarantees there is one)."""
        found = self._card_id()
        if found is None:
            raise ValueError("a transaction without its card (parse_payload reports it)")
        return found

    def _card_id(self) -> str | None:
        transaction, balance = self.transaction, self._balance()
        related = balance.related_object.id if balance and balance.related_object else None
        voucher = self.voucher.id if self.voucher else None
        return transaction.voucher_id or related or voucher

    def _balance(self) -> Balance | None:
        details = self.transaction.details
        if details is not None and details.balance is not None:
            return details.balance
        return self.balance

    @property
    def change(self) -> int:
        """Points (loyalty) or minor units (gift) added, negative when taken."""
        balance = self._balance()
        value = (
            None if balance is None else balance.amount if self.kind == "gift" else balance.points
        )
        if value is None:
            raise ValueError("a transaction without its change (parse_payload reports it)")
        return value

    @property
    def after(self) -> int:
        """The card's available balance after the transaction."""
        balance = self._balance()
        if balance is None or balance.balance is None:
            raise ValueError("a transaction without its balance (parse_payload reports it)")
        return balance.balance

    @property
    def campaign_id(self) -> str | None:
        voucher = self.voucher
        return (
            self.transaction.campaign_id
            or (voucher.campaign_id if voucher else None)
            or (self.campaign.id if self.campaign else None)
        )

    @property
    def transfer_peer(self) -> str | None:
        """The other card of a transfer: the receiver of an OUT, the donor of an IN."""
        details = self.details
        if self.transaction.type == "POINTS_TRANSFER_OUT":
            ref = details.destination_voucher or self.destination_voucher
        elif self.transaction.type == "POINTS_TRANSFER_IN":
            ref = details.source_voucher or self.source_voucher
        else:
            return None
        return ref.id if ref else None

    @property
    def occurred_at(self) -> datetime | None:
        return self.transaction.created_at

    def people(self) -> tuple[Customer | None, ...]:
        return (self.holder, self.customer)

    def problems(self) -> list[tuple[str, str]]:
        found = []
        kind = self.transaction.type
        if kind not in LOYALTY_TYPES and kind not in GIFT_TYPES:
            found.append(
                ("transaction.type", f"{kind!r} is not a loyalty or gift transaction type")
            )
        if self._card_id() is None:
            found.append(("transaction.voucher_id", "field required (the card)"))
        balance = self._balance()
        what = "amount" if self.kind == "gift" else "points"
        change = None if balance is None else getattr(balance, what)
        if change is None:
            found.append((f"transaction.details.balance.{what}", "field required (the change)"))
        if balance is None or balance.balance is None:
            found.append(
                ("transaction.details.balance.balance", "field required (the balance after)")
            )
        if self.transaction.created_at is None:
            found.append(("transaction.created_at", "field required (when it happened)"))
        return found


class LoyaltyPointsRewarded(Model):
    """`customer.rewarded.loyalty_points`: an accrual told without its transaction."""

    voucher: Voucher
    balance: Balance | None = None
    customer: Customer | None = None
    holder: Customer | None = None
    event: Ref | None = None
    order: Ref | None = None
    campaign: Campaign | None = None
    created_at: Timestamp | None = None

    @property
    def points(self) -> int | None:
        return self.balance.points if self.balance else None

    @property
    def occurred_at(self) -> datetime | None:
        return self.created_at

    def people(self) -> tuple[Customer | None, ...]:
        return (self.holder, self.customer)

    def problems(self) -> list[tuple[str, str]]:
        return []


class PendingPoints(Model):
    id: str | None = None
    points: Figure | None = None
    activates_at: Timestamp | None = None


class PendingPointsChanged(Model):
    """`voucher.loyalty_card.pending_points.added` / `.canceled`: points held back or released
    from the hold; the spendable balance does not change."""

    voucher: Voucher
    pending_points: PendingPoints | None = None
    voucher_pending_points_balance: Balance | None = None
    customer: Customer | None = None
    created_at: Timestamp | None = None

    @property
    def occurred_at(self) -> datetime | None:
        return self.created_at

    def people(self) -> tuple[Customer | None, ...]:
        return (self.customer,)

    def problems(self) -> list[tuple[str, str]]:
        return []
