"""The parts of Voucherify's event payloads that the bookkeeping rules read, as Pydantic models.

Lenient where Voucherify is: unknown fields are ignored, objects the docs say may be null
(`order`, `voucher`, `holder`, `promotion_tier`, `customer.email`, ...) may be null, and
timestamps may carry 3 or 6 fraction digits, be bare dates, or be malformed the way the
published examples are (`"2024-05-13T10: 24: 01.084Z"`). Strict about what the rules need:
ids are non-empty strings and money and points are JSON integers, never strings or booleans.
Fields no rule reads are not modelled at all, so their oddities cannot fail an event.

Parsing, envelopes and source timestamps live in `models.payload_parsing`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator
from pydantic import StringConstraints as Text

_SPACES_AFTER_COLON = re.compile(r":\s+")
_BARE_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_timestamp(value: object) -> datetime:
    """An aware UTC datetime from any timestamp shape Voucherify is known to send."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        # The published reward-redemption example has "10: 24: 01.084Z"; nothing else puts
        # whitespace after a colon in an ISO 8601 string, so removing it is safe.
        text = _SPACES_AFTER_COLON.sub(":", value.strip())
        if _BARE_DATE.fullmatch(text):
            text += "T00:00:00+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not an ISO 8601 timestamp: {value!r}") from None
    else:
        raise ValueError(f"expected an ISO 8601 timestamp, got {type(value).__name__}")
    # Voucherify always means UTC; a naive value is read as UTC rather than local time.
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _integral(value: object) -> object:
    # Some JSON encoders write 7000 as 7000.0; that is still an integer amount.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _status(value: object) -> object:
    # Events spell "ROLLED BACK" where the API says ROLLED_BACK: compare one spelling only.
    if isinstance(value, str):
        return re.sub(r"[\s\-]+", "_", value.strip()).upper()
    return value


Timestamp = Annotated[datetime, PlainValidator(parse_timestamp)]
Id = Annotated[str, Text(strip_whitespace=True, min_length=1)]
Amount = Annotated[int, BeforeValidator(_integral), Field(strict=True, ge=0)]
"""Money (minor units) or points that cannot be negative."""
Figure = Annotated[int, BeforeValidator(_integral), Field(strict=True)]
"""A reported integer that may be negative (a balance gone wrong, a rollback's amount)."""
Status = Annotated[str, BeforeValidator(_status)]


class Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


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

    redemption: Redemption | None = None
    redemption_rollback: RedemptionRollback
    order: OrderStatus | None = None
    created_at: Timestamp | None = None

    @property
    def original_id(self) -> str:
        """The rolled-back redemption (`problems` guarantees there is one)."""
        original = self.redemption_rollback.redemption or (
            self.redemption.id if self.redemption else None
        )
        assert original is not None, "parse_payload reports a rollback without its original"
        return original

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


Payload = RedemptionSucceeded | RewardRedemptionCompleted | RedemptionRollbackSucceeded
