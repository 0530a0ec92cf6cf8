"""Pydantic models of the parts of Voucherify's event payloads that the rules read.

The redemption events: `redemption.succeeded`, `customer.reward_redemptions.completed` and
`redemption.rollback.succeeded` (the card transactions: `models.voucherify.transactions`).
Objects the docs say may be null may be null here; fields no rule reads are not modelled at all,
so their oddities cannot fail an event. Each event model has `occurred_at` (its own source
timestamp) and `problems()` (what makes it unusable beyond its shape). Parse them through
`models.voucherify`, which turns failures into `PayloadError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import model_validator

from models.voucherify.fields import Amount, Figure, Id, Model, Status, Timestamp


class Customer(Model):
    id: Id | None = None
    name: str | None = None
    email: str | None = None
    source_id: str | None = None


class Order(Model):
    id: Id
    source_id: str | None = None
    status: Status | None = None
    customer_id: str | None = None
    amount: Amount
    total_applied_discount_amount: Amount
    """The discount applied by this redemption: what the ledger books."""
    total_discount_amount: Amount | None = None
    """A running total across a stack's snapshots: never summed, never booked."""
    total_amount: Amount | None = None


class OrderStatus(Model):
    """An order where only its identity and status matter (a rollback's order)."""

    id: str | None = None
    status: Status | None = None


class Campaign(Model):
    id: Id
    name: str | None = None
    campaign_type: str | None = None


class Gift(Model):
    amount: Figure | None = None
    subtracted_amount: Figure | None = None
    balance: Figure | None = None


class LoyaltyCard(Model):
    points: Figure | None = None
    balance: Figure | None = None
    expired_points: Figure | None = None
    subtracted_points: Figure | None = None
    pending_points: Figure | None = None


class VoucherRedemptions(Model):
    quantity: int | None = None
    redeemed_quantity: int | None = None
    redeemed_points: Figure | None = None


VoucherKind = Literal["discount", "gift", "loyalty"]


class Voucher(Model):
    id: Id
    code: str | None = None
    type: str | None = None
    campaign: str | None = None
    campaign_id: str | None = None
    holder_id: str | None = None
    gift: Gift | None = None
    loyalty_card: LoyaltyCard | None = None
    redemption: VoucherRedemptions | None = None

    @property
    def kind(self) -> VoucherKind:
        """Gift card, loyalty card or anything else (a discount), by `type` first."""
        voucher_type = (self.type or "").upper()
        if voucher_type == "GIFT_VOUCHER":
            return "gift"
        if voucher_type == "LOYALTY_CARD":
            return "loyalty"
        if voucher_type:
            return "discount"
        # An untyped voucher: its sub-objects are the only evidence left.
        if self.gift is not None:
            return "gift"
        if self.loyalty_card is not None:
            return "loyalty"
        return "discount"


class TierCampaign(Model):
    id: str | None = None


class PromotionTier(Model):
    id: Id
    name: str | None = None
    campaign: TierCampaign | None = None
    campaign_id: str | None = None

    @property
    def campaign_ref(self) -> str | None:
        return self.campaign_id or (self.campaign.id if self.campaign else None)


class Redemption(Model):
    id: Id
    date: Timestamp | None = None
    customer_id: str | None = None
    tracking_id: str | None = None
    amount: Figure | None = None
    """Points for a loyalty card, cents for a gift card; negative in a rollback."""
    redemption: str | None = None
    """The stack parent's `r_...` id, on a stack's children only."""
    result: Status | None = None
    status: Status | None = None


StackRole = Literal["single", "child", "parent"]


class RedemptionSucceeded(Model):
    """`redemption.succeeded`: one redeemable, or a whole stack (the parent)."""

    customer: Customer | None = None
    order: Order | None = None
    campaign: Campaign | None = None
    voucher: Voucher | None = None
    holder: Customer | None = None
    promotion_tier: PromotionTier | None = None
    redemption: Redemption
    created_at: Timestamp | None = None

    @model_validator(mode="before")
    @classmethod
    def _order_from_redemption(cls, data: Any) -> Any:
        # The order appears twice (top level and in `redemption`); either copy will do.
        if isinstance(data, Mapping) and data.get("order") is None:
            inner = data.get("redemption")
            if isinstance(inner, Mapping) and inner.get("order") is not None:
                return {**data, "order": inner["order"]}
        return data

    @property
    def role(self) -> StackRole:
        """A parent names neither voucher nor tier; a child names its parent."""
        if self.voucher is None and self.promotion_tier is None:
            return "parent"
        return "child" if self.redemption.redemption else "single"

    @property
    def occurred_at(self) -> datetime | None:
        return self.created_at or self.redemption.date

    def problems(self) -> list[tuple[str, str]]:
        """What makes this payload unusable beyond its shape."""
        found = []
        if self.role == "parent" and self.redemption.redemption:
            found.append(
                (
                    "redemption.redemption",
                    "names a parent, but the redemption names neither a voucher nor a "
                    "promotion tier (only a stack parent does that, and it has no parent)",
                )
            )
        if self.redemption.result == "FAILURE" or self.redemption.status == "FAILED":
            found.append(("redemption.result", "a failed redemption in a redemption.succeeded"))
        return found


class LoyaltyPoints(Model):
    points: Amount


class RewardParameters(Model):
    loyalty: LoyaltyPoints


class RewardAssignment(Model):
    id: str | None = None
    parameters: RewardParameters


class Reward(Model):
    id: Id
    name: str | None = None
    type: str | None = None
    voucher: Voucher | None = None
    """The reward's own coupon (a CAMPAIGN reward): named in notifications, not booked."""


class RewardRedemption(Model):
    id: Id
    state: Status | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None
    voucher_id: str | None = None
    customer_id: str | None = None
    source_id: str | None = None
    """The redemption (`r_...`) that paid for the reward, when `source_type` is `redemption`."""
    source_type: str | None = None


class RewardRedemptionCompleted(Model):
    """`customer.reward_redemptions.completed`: points of a loyalty card spent on a reward."""

    customer: Customer | None = None
    holder: Customer | None = None
    voucher: Voucher
    """The loyalty card the points came from."""
    campaign: Campaign | None = None
    reward_redemption: RewardRedemption
    reward: Reward
    reward_assignment: RewardAssignment

    @property
    def points(self) -> int:
        return self.reward_assignment.parameters.loyalty.points

    @property
    def occurred_at(self) -> datetime | None:
        # A completed reward redemption is updated when it completes; if it never was, it
        # completed when it was created.
        return self.reward_redemption.updated_at or self.reward_redemption.created_at

    def problems(self) -> list[tuple[str, str]]:
        return []


class RolledBackRedemption(Redemption):
    """The original redemption as a rollback event carries it, with its order."""

    order: OrderStatus | None = None


class RedemptionRollback(Model):
    id: Id
    date: Timestamp | None = None
    redemption: str | None = None
    """The original redemption's `r_...` id."""
    amount: Figure | None = None
    result: Status | None = None
    status: Status | None = None
    order: OrderStatus | None = None


class RedemptionRollbackSucceeded(Model):
    """`redemption.rollback.succeeded`: the original in `redemption`, the rollback beside it."""

    redemption: RolledBackRedemption | None = None
    redemption_rollback: RedemptionRollback
    order: OrderStatus | None = None
    created_at: Timestamp | None = None

    @property
    def original_id(self) -> str:
        """The rolled-back redemption (`problems` guarantees there is one)."""
        original = self.redemption_rollback.redemption or (
            self.redemption.id if self.redemption else None
        )
        if original is None:
            raise ValueError("a rollback without its original (parse_payload reports it)")
        return original

    @property
    def order_id(self) -> str | None:
        """The rolled-back order: the original redemption's, else the rollback's view of it."""
        original = self.redemption.order if self.redemption else None
        if original is not None and original.id:
            return original.id
        rolled = self.redemption_rollback.order or self.order
        return rolled.id if rolled is not None and rolled.id else None

    @property
    def order_cancelled(self) -> bool:
        """Whether the rolled-back order is CANCELED (the rollback's own order view first)."""
        order = self.redemption_rollback.order or self.order
        return order is not None and order.status in ("CANCELED", "CANCELLED")

    @property
    def occurred_at(self) -> datetime | None:
        return self.redemption_rollback.date or self.created_at

    def problems(self) -> list[tuple[str, str]]:
        named = self.redemption_rollback.redemption
        inside = self.redemption.id if self.redemption else None
        if named is None and inside is None:
            return [("redemption_rollback.redemption", "field required (no original redemption)")]
        if named is not None and inside is not None and named != inside:
            return [("redemption_rollback.redemption", f"{named} but redemption.id is {inside}")]
        return []
