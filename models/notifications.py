"""Which notifications an event gives, and what they say: pure, over the payload models.

Templates are Jinja2; the environment (and so where templates come from) is passed in by the
caller. Email goes to the customer when they have an address; the operations webhook gets a
Slack-compatible `{"text": …}` for every notified event. A stack notifies once, through its
parent (which carries the stack's whole discount); its children notify nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from jinja2 import Environment

from models.payloads import Payload, RedemptionSucceeded, RewardRedemptionCompleted

Channel = Literal["email", "webhook"]

# ISO 4217 currencies without minor units; every other is shown with two decimals.
ZERO_DECIMAL = frozenset(
    {
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "ISK",
        "JPY",
        "KMF",
        "KRW",
        "PYG",
        "RWF",
        "UGX",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    }
)


@dataclass(frozen=True)
class Message:
    channel: Channel
    recipient: str
    subject: str
    body: str
    source_id: str
    """The Voucherify object it is about: one message per object, channel and recipient."""


def money(minor: int, currency: str) -> str:
    if currency in ZERO_DECIMAL:
        return f"{minor:,} {currency}"
    sign = "-" if minor < 0 else ""
    units, cents = divmod(abs(minor), 100)
    return f"{sign}{units:,}.{cents:02d} {currency}"


def context(event_type: str, payload: Payload, currency: str) -> dict[str, Any] | None:
    """What the templates of `event_type` are given; None when the event notifies nothing."""
    if isinstance(payload, RedemptionSucceeded):
        if payload.role == "child":
            return None
        order = payload.order
        customer = payload.customer
        return {
            "event_type": event_type,
            "customer_name": (customer.name if customer else None) or "customer",
            "code": (payload.voucher.code if payload.voucher else None)
            or (payload.promotion_tier.name if payload.promotion_tier else None),
            "campaign": payload.campaign.name if payload.campaign else None,
            "order_id": order.id if order else None,
            "saved": money(order.total_applied_discount_amount, currency) if order else None,
            "order_amount": money(order.amount, currency) if order else None,
            "to_pay": money(order.amount - order.total_applied_discount_amount, currency)
            if order
            else None,
            "redemption_id": payload.redemption.id,
        }
    if isinstance(payload, RewardRedemptionCompleted):
        customer = payload.holder or payload.customer
        card = payload.voucher
        return {
            "event_type": event_type,
            "customer_name": (customer.name if customer else None) or "customer",
            "reward": payload.reward.name or payload.reward.id,
            "reward_code": payload.reward.voucher.code if payload.reward.voucher else None,
            "points": payload.points,
            "card_code": card.code or card.id,
            "balance": card.loyalty_card.balance if card.loyalty_card else None,
            "reward_redemption_id": payload.reward_redemption.id,
        }
    return None


def email_address(payload: Payload) -> str | None:
    if isinstance(payload, RewardRedemptionCompleted):
        people = (payload.holder, payload.customer)
    elif isinstance(payload, RedemptionSucceeded):
        people = (payload.customer, payload.holder)
    else:
        return None
    for person in people:
        if person is not None and person.email and "@" in person.email:
            return person.email
    return None


def messages(
    env: Environment,
    event_type: str,
    payload: Payload,
    *,
    currency: str,
    email: bool,
    webhook_url: str | None,
) -> list[Message]:
    """The messages of one event, rendered; empty when it notifies nothing."""
    values = context(event_type, payload, currency)
    if values is None:
        return []
    source_id = values.get("reward_redemption_id") or values["redemption_id"]
    found = []
    address = email_address(payload) if email else None
    if address:
        found.append(
            Message(
                "email",
                address,
                _render(env, f"email/{event_type}.subject.j2", values).strip(),
                _render(env, f"email/{event_type}.txt.j2", values),
                source_id,
            )
        )
    if webhook_url:
        found.append(
            Message(
                "webhook",
                webhook_url,
                "",
                _render(env, f"webhook/{event_type}.j2", values).strip(),
                source_id,
            )
        )
    return found


def _render(env: Environment, name: str, values: dict[str, Any]) -> str:
    return env.get_template(name).render(**values)
