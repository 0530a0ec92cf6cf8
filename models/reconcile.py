"""Reconciliation, as pure rules: what Voucherify's API recorded, as the webhook would have
delivered it, and how it compares with what is stored.

An API object becomes the raw payload its distribution webhook sends (the same fields in the
same places), under the identity that webhook gets (`models.identity`), so that a webhook
arriving later is a duplicate, and the handlers book it as any delivery:

- a redemption (`r_…`, `object: "redemption"`, result SUCCESS): `redemption.succeeded`, the
  object as `redemption`, its order, customer, voucher and promotion tier beside it (a stack
  parent names neither voucher nor tier, a child names its parent in `redemption`, as in the
  webhook);
- a rollback (`rr_…`, `object: "redemption_rollback"`, SUCCESS):
  `redemption.rollback.succeeded`, the object as `redemption_rollback`, its original named in
  `redemption`;
- a card transaction (`vtx_…`): `voucher.loyalty_card.transaction.created` or
  `voucher.gift.transaction.created`, the object as `transaction`.

Failed redemptions and rollbacks book nothing and are not compared.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from models.identity import identify

Json = Mapping[str, Any]

ORIGIN_HEADER = "x-voucherhook-origin"
"""The header an event stored by `reconcile` carries, naming the API list it came from."""

Verdict = Literal["here", "missing", "differing"]


@dataclass(frozen=True)
class Recorded:
    """One object of Voucherify's API, as its webhook would deliver it."""

    source: str
    """The API list it came from: `redemptions` or `transactions:CAMPAIGN`."""
    object_id: str
    """Voucherify's id (r_…, rr_…, vtx_…)."""
    event_type: str
    payload: dict[str, Any]
    figures: tuple[Any, ...]
    """What is compared with the stored side (`Stored.figures`)."""
    card_id: str | None = None
    """The card it moves, for a card transaction or a card redemption."""
    campaign_id: str | None = None
    """The campaign of a gift or loyalty card it touches: its transactions are listed too."""

    @cached_property
    def body(self) -> bytes:
        """The payload as stored."""
        return json.dumps(self.payload, separators=(",", ":"), sort_keys=True).encode()

    @cached_property
    def identity(self) -> str:
        """The identity its webhook gets (`models.identity`): the event id it is stored under."""
        identified = identify(self.body, self.event_type)
        if identified.status != "pending":
            raise ValueError(
                f"{self.object_id}: its payload as a webhook is {identified.status} "
                f"({identified.reason}); report this object's JSON as a bug"
            )
        return identified.event_id


@dataclass(frozen=True)
class Stored:
    """What the books hold of one object: where it is and its figures."""

    event_id: str
    figures: tuple[Any, ...] | None
    """None where the books hold no figures to compare (stored, not booked yet)."""


@dataclass(frozen=True)
class Compared:
    recorded: Recorded
    verdict: Verdict
    stored: Stored | None = None

    def describe(self) -> str:
        """One line for a person: what differs, both sides."""
        ours = self.stored.figures if self.stored else None
        return (
            f"{self.recorded.object_id}: Voucherify {_shown(self.recorded.figures)}, "
            f"stored event {self.stored.event_id if self.stored else '-'} {_shown(ours)}"
        )


def _shown(figures: tuple[Any, ...] | None) -> str:
    return "(none)" if figures is None else "(" + ", ".join(str(f) for f in figures) + ")"


CARD_TYPES = {"LOYALTY_CARD": "loyalty", "GIFT_VOUCHER": "gift"}
TRANSACTION_EVENTS = {
    "loyalty_card": "voucher.loyalty_card.transaction.created",
    "gift_voucher": "voucher.gift.transaction.created",
}


def from_redemption(item: Json) -> Recorded | None:
    """A redemption or rollback of `GET /v1/redemptions`; None for a failed one."""
    if item.get("result") != "SUCCESS" or item.get("status") == "FAILED":
        return None
    if item.get("object") == "redemption_rollback":
        return _rollback(item)
    voucher = item.get("voucher") or None
    tier = item.get("promotion_tier") or None
    order = item.get("order") or None
    campaign_id = None
    if voucher:
        campaign_id = voucher.get("campaign_id")
    elif tier:
        campaign_id = (tier.get("campaign") or {}).get("id") or tier.get("campaign_id")
    payload: dict[str, Any] = {
        "redemption": dict(item),
        "order": order,
        "customer": item.get("customer"),
        "voucher": voucher,
        "promotion_tier": tier,
        "campaign": {"id": campaign_id} if campaign_id else None,
        "created_at": item.get("date") or item.get("created_at"),
    }
    card = voucher if voucher and voucher.get("type") in CARD_TYPES else None
    return Recorded(
        source="redemptions",
        object_id=str(item["id"]),
        event_type="redemption.succeeded",
        payload=payload,
        figures=redemption_figures(order),
        card_id=str(card["id"]) if card and card.get("id") else None,
        campaign_id=campaign_id if card else None,
    )


def _rollback(item: Json) -> Recorded:
    original = item.get("redemption")
    payload: dict[str, Any] = {
        "redemption_rollback": dict(item),
        "redemption": {"id": original} if original else None,
        "order": item.get("order"),
        "created_at": item.get("date") or item.get("created_at"),
    }
    return Recorded(
        source="redemptions",
        object_id=str(item["id"]),
        event_type="redemption.rollback.succeeded",
        payload=payload,
        figures=(original,),
    )


def redemption_figures(order: Json | None) -> tuple[Any, ...]:
    """A redemption's figures: its order and the discount applied to it."""
    if not order:
        return (None, None)
    return (order.get("id"), order.get("total_applied_discount_amount"))


def from_transaction(item: Json, campaign_id: str) -> Recorded | None:
    """A transaction of `GET /v1/campaigns/{id}/transactions`; None for a card kind no handler
    books."""
    balance = ((item.get("details") or {}).get("balance")) or {}
    event_type = TRANSACTION_EVENTS.get(str(balance.get("type")))
    if event_type is None:
        return None
    return Recorded(
        source=f"transactions:{campaign_id}",
        object_id=str(item["id"]),
        event_type=event_type,
        payload={"transaction": dict(item)},
        figures=transaction_figures(balance),
        card_id=item.get("voucher_id"),
        campaign_id=campaign_id,
    )


def transaction_figures(balance: Json) -> tuple[Any, ...]:
    """A card movement's figures: the change and the balance after it."""
    change = balance.get("points") if balance.get("points") is not None else balance.get("amount")
    return (change, balance.get("balance"))


def compare(recorded: Recorded, stored: Stored | None) -> Compared:
    """Here when stored with the same figures (or stored and not booked yet), missing when not
    stored, differing when the books hold other figures for the same object."""
    if stored is None:
        return Compared(recorded, "missing")
    if stored.figures is None or tuple(stored.figures) == tuple(recorded.figures):
        return Compared(recorded, "here", stored)
    return Compared(recorded, "differing", stored)


def card_balance(voucher: Json) -> tuple[str, int] | None:
    """A card's kind and balance as `GET /v1/vouchers/{id}` reports them (points for a loyalty
    card, credit in minor units for a gift card); None for a voucher that is neither."""
    kind = CARD_TYPES.get(str(voucher.get("type")))
    held = (voucher.get("loyalty_card") if kind == "loyalty" else voucher.get("gift")) or {}
    balance = held.get("balance")
    if kind is None or not isinstance(balance, int) or isinstance(balance, bool):
        return None
    return kind, balance
