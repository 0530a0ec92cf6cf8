"""Payloads for the rule tests: the recorded Voucherify examples, and variants built on them.

Everything starts from a file in `tests/fixtures/voucherify/`: the seed `redemption.succeeded`,
the seed `customer.reward_redemptions.completed`, and the stacked structure of the
`POST /v1/redemptions` example with its placeholders ("<string>", 123) replaced by consistent
values.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

from tests.support.payloads import FIXTURES

REDEMPTION = "redemption.succeeded"
REWARD_REDEMPTION = "customer.reward_redemptions.completed"
ROLLBACK = "redemption.rollback.succeeded"

Json = dict[str, Any]


@cache
def _load(name: str) -> Json:
    data: Json = json.loads((FIXTURES / name).read_text())
    return data


def recorded(name: str) -> Json:
    """A fresh copy of a recorded payload: tests may change it freely."""
    return copy.deepcopy(_load(name))


def seed_redemption() -> Json:
    return recorded("redemption.succeeded.json")


def seed_reward_redemption() -> Json:
    return recorded("customer.reward_redemptions.completed.json")


def envelope(event_type: str, data: Json, *, created_at: str = "2024-05-13T12:26:06.250Z") -> Json:
    """The v2024-01-01 envelope a project webhook wraps around `data`."""
    return {
        "id": "whs_test",
        "project_id": "proj_test",
        "created_at": created_at,
        "type": event_type,
        "data": data,
        "source": {"id": "wh_test", "object": "webhook", "target_url": "http://127.0.0.1/"},
        "event": {"id": "ev_test", "type": event_type, "created_at": created_at},
    }


def redemption(
    r_id: str,
    *,
    order_id: str = "ord_3VYCHwdV0YOOch2nm1RsTKNI",
    amount: int = 7000,
    applied: int = 1000,
    kind: str = "discount",
    campaign_id: str | None = "camp_kwMyXFKquedx8FzXNpVPN7QU",
    voucher_id: str = "v_VZgTRbJvauZR7Ub7exOtAg0MqxXljPpA",
    tier_id: str | None = None,
    points: int | None = None,
    parent: str | None = None,
    created_at: str = "2024-01-15T12:20:38.636Z",
) -> Json:
    """The seed redemption turned into another: a discount, gift card or loyalty card voucher,
    a promotion tier (`tier_id`), or a stack parent (`kind="parent"`)."""
    data = seed_redemption()
    order = data["order"]
    order.update(id=order_id, amount=amount, total_applied_discount_amount=applied)
    order.update(total_discount_amount=applied, total_amount=amount - applied)
    data["redemption"].update(id=r_id, redemption=parent, order=copy.deepcopy(order))
    data["created_at"] = created_at
    if points is not None:
        data["redemption"]["amount"] = points
    if campaign_id is None:
        data["campaign"] = None
    else:
        data["campaign"]["id"] = campaign_id
    voucher = data["voucher"]
    voucher.update(id=voucher_id, campaign_id=campaign_id)
    if kind == "gift":
        voucher.update(type="GIFT_VOUCHER", gift={"amount": 10000, "balance": 10000 - applied})
    elif kind == "loyalty":
        voucher.update(type="LOYALTY_CARD", loyalty_card={"points": 900, "balance": 500})
        voucher.update(holder_id="cust_1g637SqVZnkdPNdAIZ7Ra879")
        voucher["redemption"] = {"redeemed_quantity": 1, "redeemed_points": 400}
    if tier_id is not None or kind == "parent":
        data["voucher"] = data["redemption"]["voucher"] = None
    if tier_id is not None:
        tier_campaign = {"id": campaign_id} if campaign_id else None
        data["promotion_tier"] = {"id": tier_id, "name": "Tier", "campaign": tier_campaign}
    return data


def rollback(original: Json, rr_id: str, *, order_status: str = "PAID") -> Json:
    """`redemption.rollback.succeeded` of `original`: it in `redemption`, the rollback beside."""
    rolled_back = copy.deepcopy(original["redemption"])
    rolled_back["status"] = "ROLLED BACK"  # the event's spelling, not the API's ROLLED_BACK
    order = {"id": original["order"]["id"], "status": order_status, "object": "order"}
    return {
        "customer": original["customer"],
        "order": order,
        "redemption": rolled_back,
        "redemption_rollback": {
            "id": rr_id,
            "object": "redemption_rollback",
            "date": "2024-01-16T09:00:00.000Z",
            "redemption": rolled_back["id"],
            "amount": -(rolled_back.get("amount") or 0),
            "result": "SUCCESS",
            "status": "SUCCEEDED",
            "order": order,
        },
        "created_at": "2024-01-16T09:00:00.000Z",
    }


STACK_ORDER = "ord_stack_8Xq2"
STACK_PARENT = "r_stack_parent"
STACK_CHILDREN = (
    ("r_stack_child_1", "v_stack_1", "STACK-10", "camp_stack_A", 1000),
    ("r_stack_child_2", "v_stack_2", "STACK-5", "camp_stack_B", 500),
)


def stack(order_amount: int = 10000) -> tuple[Json, list[Json]]:
    """One stacked redemption as webhooks carry it: the parent, then its two children.

    Built on `POST /v1/redemptions`'s `parent_redemption` and `redemptions[]`. Each child's
    order is a running snapshot: `total_discount_amount` grows (1000, then 1500) while
    `total_applied_discount_amount` is that child's own (1000, then 500).
    """
    example = recorded("post-v1-redemptions.response-example.json")
    children, running = [], 0
    for r_id, voucher_id, code, campaign_id, applied in STACK_CHILDREN:
        running += applied
        order = _order(example["order"], order_amount, running, applied)
        redeemed = _redemption(example["redemptions"][0], r_id, order, parent=STACK_PARENT)
        voucher = _voucher(example["redemptions"][0]["voucher"], voucher_id, code, campaign_id)
        redeemed["voucher"] = voucher
        campaign = {"id": campaign_id, "name": code, "campaign_type": "DISCOUNT_COUPONS"}
        children.append(_event(redeemed, order, voucher=voucher, campaign=campaign))
    order = _order(example["order"], order_amount, running, running)
    parent = _redemption(example["parent_redemption"], STACK_PARENT, order, parent=None)
    return _event(parent, order, voucher=None, campaign=None), children


def _order(template: Json, amount: int, running: int, applied: int) -> Json:
    order = copy.deepcopy(template)
    order.update(id=STACK_ORDER, source_id="web-1001", status="PAID", amount=amount)
    order.update(initial_amount=amount, discount_amount=running, applied_discount_amount=applied)
    order.update(items_discount_amount=0, items_applied_discount_amount=0)
    order.update(total_discount_amount=running, total_applied_discount_amount=applied)
    order.update(total_amount=amount - running, customer_id="cust_stack", referrer_id=None)
    order.update(customer={"id": "cust_stack", "object": "customer"}, referrer=None)
    order["items"] = [
        {"object": "order_item", "source_id": "sku-1", "quantity": 1, "price": amount,
         "amount": amount, "related_object": "sku"}
    ]  # fmt: skip
    return order


def _redemption(template: Json, r_id: str, order: Json, *, parent: str | None) -> Json:
    redeemed = copy.deepcopy(template)
    redeemed.update(id=r_id, redemption=parent, order=order, customer_id="cust_stack")
    redeemed.update(tracking_id="track_stack", date="2024-03-01T10:00:00.000Z", amount=None)
    redeemed.update(result="SUCCESS", status="SUCCEEDED", failure_code=None, failure_message=None)
    redeemed.update(related_redemptions={"rollbacks": [], "redemptions": []}, session=None)
    redeemed.update(customer=_customer(), promotion_tier=None, reward=None, gift=None)
    redeemed.update(loyalty_card=None, voucher=None, related_object_id=None)
    redeemed["related_object_type"] = "redemption" if parent is None else "voucher"
    return redeemed


def _voucher(template: Json, voucher_id: str, code: str, campaign_id: str) -> Json:
    voucher = copy.deepcopy(template)
    voucher.update(id=voucher_id, code=code, campaign=code, campaign_id=campaign_id)
    voucher.update(category=None, category_id=None, type="DISCOUNT_VOUCHER", gift=None)
    voucher.update(loyalty_card=None, holder_id=None, referrer_id=None, holder=None)
    voucher.update(object="voucher", additional_info=None, categories=[])
    voucher["discount"] = {"type": "AMOUNT", "amount_off": int(code.split("-")[1]) * 100,
                           "effect": "APPLY_TO_ORDER"}  # fmt: skip
    voucher["redemption"] = {"quantity": None, "redeemed_quantity": 1, "object": "list"}
    return voucher


def _customer() -> Json:
    return {"id": "cust_stack", "name": "Stack Shopper", "email": "stack@example.com",
            "source_id": "stack-1", "metadata": {}, "object": "customer"}  # fmt: skip


def _event(redeemed: Json, order: Json, *, voucher: Json | None, campaign: Json | None) -> Json:
    """The `redemption.succeeded` data around one redemption of the stack."""
    event = {
        "customer": _customer(),
        "order": copy.deepcopy(order),
        "campaign": campaign,
        "voucher": voucher,
        "holder": None,
        "promotion_tier": None,
        "redemption": redeemed,
        "created_at": redeemed["date"],
    }
    scrubbed: Json = _scrub(event)
    return scrubbed


def _scrub(value: Any) -> Any:
    """The example's remaining placeholders ("<string>", "<any>") become nulls."""
    if isinstance(value, dict):
        return {key: _scrub(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub(item) for item in value]
    return None if value in ("<string>", "<any>") else value


def card_transaction(
    vtx: str,
    card: str,
    kind: str,
    change: int,
    after: int,
    *,
    created_at: str = "2024-07-24T10:51:30.608Z",
    redemption: str | None = None,
    rollback: str | None = None,
    order_id: str | None = None,
    peer: str | None = None,
) -> Json:
    """The recorded `voucher.loyalty_card.transaction.created` (or, for a `CREDITS_…` type,
    `voucher.gift.transaction.created`) turned into another transaction of `card`."""
    gift = kind.startswith("CREDITS_")
    name = "voucher.gift" if gift else "voucher.loyalty_card"
    data = recorded(f"{name}.transaction.created.json")
    transaction = data["transaction"]
    details: Json = {
        "balance": {
            "type": "gift_voucher" if gift else "loyalty_card",
            "object": "balance",
            "amount" if gift else "points": change,
            "balance": after,
            "related_object": {"id": card, "type": "voucher"},
        }
    }
    if redemption:
        details["redemption"] = {"id": redemption}
    if rollback:
        details["rollback"] = {"id": rollback}
    if order_id:
        details["order"] = {"id": order_id, "source_id": None}
    if peer and kind == "POINTS_TRANSFER_OUT":
        details["destination_voucher"] = {"id": peer}
    if peer and kind == "POINTS_TRANSFER_IN":
        details["source_voucher"] = {"id": peer}
    transaction.update(id=vtx, voucher_id=card, type=kind, details=details, created_at=created_at)
    data["voucher"]["id"] = card
    data["balance"] = details["balance"]
    return data
