"""Which notifications an event gives, and what they say: pure, over the payload models.

Templates are Jinja2; the environment (and so where templates come from) is passed in by the
caller. Email goes to the customer when they have exactly one plain address; the operations
webhook gets a Slack-compatible `{"text": …}` for every notified event, with the payload's text
escaped so that it cannot mention, link or format. A stack notifies once, through its parent
(which carries the stack's whole discount); its children notify nothing.

A card's points or credit notify by what happened to the card (`NOTICES`): points earned or
added, points on their way (pending) or no longer, points expired, gift credit added. The
message is about the movement, not the event: every event telling one movement renders the
same message under the same `source_id` (the accrual and its `customer.rewarded.loyalty_points`
under `earned:{card}:{customer event}`), so it is planned once whichever comes first; the
operations webhook names the card, not its holder, whom not every such event names. Points
spent, refunded, removed or transferred notify nothing of their own: a redemption and a reward
notify already.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import getaddresses
from typing import Any, Literal

from jinja2 import Environment

from models.amounts import money
from models.loyalty import movement_key
from models.voucherify import (
    CardTransactionEvent,
    Customer,
    LoyaltyPointsRewarded,
    Payload,
    PendingPointsChanged,
    RedemptionRollbackSucceeded,
    RedemptionSucceeded,
    RewardRedemptionCompleted,
)

Channel = Literal["email", "webhook"]

WEBHOOK_RECIPIENT = "NOTIFY_WEBHOOK_URL"
"""The recipient of every webhook delivery: the setting whose URL the sender posts to at send
time. The URL is a credential (a Slack incoming webhook) and is never stored."""

NOT_ONE_PLAIN_ADDRESS = "is not one plain address (several, a display name or a line break)"
"""Why an email address is refused (`plain_address`)."""

NOT_ONE_ADDRESS = (
    f"no email: the customer's email {NOT_ONE_PLAIN_ADDRESS}; correct it in Voucherify"
)


@dataclass(frozen=True)
class Message:
    channel: Channel
    recipient: str
    subject: str
    body: str
    source_id: str
    """The Voucherify object it is about: one message per object, channel and recipient."""


NOTICES = {
    "POINTS_ACCRUAL": "loyalty.points_earned",
    "POINTS_ADDITION": "loyalty.points_earned",
    "PENDING_POINTS_ACTIVATION": "loyalty.points_earned",
    "POINTS_EXPIRATION": "loyalty.points_expired",
    "CREDITS_ADDITION": "gift.credit_added",
}
"""The transaction types a customer is told of, and the template that tells them."""


def context(event_type: str, payload: Payload, currency: str) -> dict[str, Any] | None:
    """What the templates of `event_type` are given; None when the event notifies nothing.
    `template` names the templates (the event type, or a card notice of `NOTICES`) and
    `source_id` the Voucherify object the message is about."""
    if _stack_child(payload):
        return None
    if isinstance(payload, (CardTransactionEvent, LoyaltyPointsRewarded, PendingPointsChanged)):
        return _card_context(payload, currency)
    if isinstance(payload, RedemptionSucceeded):
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
            "template": event_type,
            "source_id": payload.redemption.id,
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
            "template": event_type,
            "source_id": payload.reward_redemption.id,
        }
    return None


def _card_context(
    payload: CardTransactionEvent | LoyaltyPointsRewarded | PendingPointsChanged, currency: str
) -> dict[str, Any] | None:
    customer = next((person for person in payload.people() if person is not None), None)
    voucher = payload.voucher
    values: dict[str, Any] = {
        "customer_name": (customer.name if customer else None) or "customer",
        "card_code": (voucher.code if voucher else None) or (voucher.id if voucher else ""),
    }
    if isinstance(payload, LoyaltyPointsRewarded):
        cause = (payload.event.id if payload.event else None) or (
            payload.order.id if payload.order else None
        )
        if not payload.points or payload.points <= 0 or cause is None:
            return None
        balance = payload.balance.balance if payload.balance else None
        source = f"earned:{payload.voucher.id}:{cause}"
        return {
            **values,
            "template": "loyalty.points_earned",
            "source_id": source,
            "points": payload.points,
            "balance": balance,
        }
    if isinstance(payload, PendingPointsChanged):
        pending, change = payload.pending_points, payload.voucher_pending_points_balance
        points = change.points if change else None
        if pending is None or pending.id is None or not points:
            return None
        added = points > 0
        return {
            **values,
            "template": "loyalty.points_pending" if added else "loyalty.points_pending_canceled",
            "source_id": f"pending:{pending.id}:{'added' if added else 'canceled'}",
            "points": abs(points),
            "activates_at": pending.activates_at.date().isoformat()
            if pending.activates_at
            else None,
        }
    kind = payload.transaction.type
    template = NOTICES.get(kind)
    if template is None or (payload.change <= 0 and kind != "POINTS_EXPIRATION"):
        return None
    details = payload.details
    source = movement_key(payload)
    if payload.transaction.type == "POINTS_ACCRUAL" and details.event and details.event.id:
        source = f"earned:{payload.card_id}:{details.event.id}"
    if payload.kind == "gift":
        return {
            **values,
            "template": template,
            "source_id": source,
            "amount": money(payload.change, currency),
            "balance": money(payload.after, currency),
        }
    return {
        **values,
        "template": template,
        "source_id": source,
        "points": abs(payload.change),
        "balance": payload.after,
    }


def _stack_child(payload: Payload) -> bool:
    """A stack notifies once, through its parent: its children notify nothing."""
    return isinstance(payload, RedemptionSucceeded) and payload.role == "child"


def plain_address(text: str) -> str | None:
    """`text` (trimmed) when it is exactly one plain address, `local@domain`; else None.

    Anything that could make one delivery reach more people, or somebody else, is refused:
    several addresses, a display name (`Name <a@x.io>`), a comment, quotes, a line break, a
    comma or a semicolon, more than one @, an empty local or domain part.
    """
    candidate = text.strip()
    if not candidate or any(not ch.isprintable() or ch.isspace() for ch in candidate):
        return None  # line breaks, tabs, spaces and other control characters
    if any(ch in _NOT_IN_A_PLAIN_ADDRESS for ch in candidate) or candidate.count("@") != 1:
        return None
    local, _, domain = candidate.partition("@")
    if not local or not domain or ".." in domain or domain.startswith(".") or domain.endswith("."):
        return None
    found = getaddresses([candidate])
    if found != [("", candidate)]:
        return None
    return candidate


_NOT_IN_A_PLAIN_ADDRESS = frozenset(',;<>()[]:"\\')


def _people(payload: Payload) -> tuple[Customer | None, ...]:
    if isinstance(payload, RewardRedemptionCompleted):
        return (payload.holder, payload.customer)
    if isinstance(payload, RedemptionSucceeded):
        return (payload.customer, payload.holder)
    if isinstance(payload, RedemptionRollbackSucceeded):
        return ()
    return payload.people()


def email_address(payload: Payload) -> str | None:
    """The address to email about `payload`: the first of its people's that is one plain
    address (see `plain_address`); None when none is."""
    for person in _people(payload):
        if person is not None and person.email:
            address = plain_address(person.email)
            if address is not None:
                return address
    return None


def email_refused(payload: Payload) -> str | None:
    """Why nobody is emailed although the payload gives an email; None when an address is
    used, or none was given, or the event notifies nobody. The address itself is not repeated."""
    if _stack_child(payload):
        return None
    given = any(person is not None and person.email for person in _people(payload))
    if given and email_address(payload) is None:
        return NOT_ONE_ADDRESS
    return None


def slack_escape(text: str) -> str:
    """Text shown as it is in a Slack message: `&`, `<` and `>` as Slack documents them, so
    that `<!channel>`, `<@U123>` or `<http://x|click>` in a payload mention and link nobody."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def messages(
    env: Environment,
    event_type: str,
    payload: Payload,
    *,
    currency: str,
    email: bool,
    webhook: bool,
) -> list[Message]:
    """The messages of one event, rendered; empty when it notifies nothing. The webhook's
    recipient is `WEBHOOK_RECIPIENT`, and its template is given Slack-escaped text."""
    values = context(event_type, payload, currency)
    if values is None:
        return []
    source_id, template = values["source_id"], values["template"]
    found = []
    address = email_address(payload) if email else None
    if address:
        found.append(
            Message(
                "email",
                address,
                _render(env, f"email/{template}.subject.j2", values).strip(),
                _render(env, f"email/{template}.txt.j2", values),
                source_id,
            )
        )
    if webhook:
        escaped = {k: slack_escape(v) if isinstance(v, str) else v for k, v in values.items()}
        found.append(
            Message(
                "webhook",
                WEBHOOK_RECIPIENT,
                "",
                _render(env, f"webhook/{template}.j2", escaped).strip(),
                source_id,
            )
        )
    return found


def _render(env: Environment, name: str, values: dict[str, Any]) -> str:
    return env.get_template(name).render(**values)
