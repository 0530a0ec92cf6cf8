"""Reading a stored Voucherify event as the rules need it: the one entry point for payloads.

A stored body is either a v2024-01-01 envelope or, from a distribution with the "raw
payload" option, the event data alone. The rules take the event data; an envelope's `data`
is the same thing, so every function here accepts either. A payload the rules cannot use
raises `PayloadError`, whose message names each field path and why ("order.amount: field
required"). The models themselves live in `models.voucherify.models` (their field types in
`models.voucherify.fields`) and are re-exported here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError

from models.voucherify.fields import parse_timestamp
from models.voucherify.models import (
    Campaign,
    Customer,
    Order,
    PromotionTier,
    Redemption,
    RedemptionRollbackSucceeded,
    RedemptionSucceeded,
    Reward,
    RewardRedemptionCompleted,
    Voucher,
)
from models.voucherify.transactions import (
    CardTransactionEvent,
    LoyaltyPointsRewarded,
    PendingPointsChanged,
)

__all__ = [
    "CARD_TRANSACTION_EVENTS",
    "EVENT_MODELS",
    "Campaign",
    "CardTransactionEvent",
    "Customer",
    "LoyaltyPointsRewarded",
    "Order",
    "Payload",
    "PayloadError",
    "PendingPointsChanged",
    "PromotionTier",
    "Redemption",
    "RedemptionRollbackSucceeded",
    "RedemptionSucceeded",
    "Reward",
    "RewardRedemptionCompleted",
    "Voucher",
    "event_data",
    "is_envelope",
    "load_json",
    "paid_points",
    "parse_json",
    "parse_payload",
    "parse_timestamp",
    "source_timestamp",
]

Payload = (
    RedemptionSucceeded
    | RewardRedemptionCompleted
    | RedemptionRollbackSucceeded
    | CardTransactionEvent
    | LoyaltyPointsRewarded
    | PendingPointsChanged
)

CARD_TRANSACTION_EVENTS = (
    "voucher.loyalty_card.transaction.created",
    "voucher.loyalty_card.points_added",
    "voucher.loyalty_card.points_expired",
    "voucher.loyalty_card.pending_points.activated",
    "voucher.gift.transaction.created",
    "voucher.gift.balance_added",
    "customer.voucher.loyalty_card.points_added",
    "customer.voucher.loyalty_card.points_expired",
    "customer.voucher.gift.balance_added",
)
"""The event types that carry one transaction of a card (`vtx_…`): the same transaction may
come as several of them (an addition as `points_added` and `transaction.created`, and a
distribution's copy of either)."""

EVENT_MODELS: dict[str, type[Payload]] = {
    "redemption.succeeded": RedemptionSucceeded,
    "customer.reward_redemptions.completed": RewardRedemptionCompleted,
    "redemption.rollback.succeeded": RedemptionRollbackSucceeded,
    **dict.fromkeys(CARD_TRANSACTION_EVENTS, CardTransactionEvent),
    "customer.rewarded.loyalty_points": LoyaltyPointsRewarded,
    "voucher.loyalty_card.pending_points.added": PendingPointsChanged,
    "voucher.loyalty_card.pending_points.canceled": PendingPointsChanged,
}

WHOLE = "(payload)"
"""The path named when the problem is the payload as a whole."""


class PayloadError(ValueError):
    """A payload the rules cannot use. `problems` holds (field path, why) pairs."""

    def __init__(self, problems: Iterable[tuple[str, str]], *, event_type: str | None = None):
        self.problems = tuple(problems)
        self.event_type = event_type
        super().__init__("; ".join(f"{path}: {why}" for path, why in self.problems))

    @classmethod
    def at(cls, path: str, why: str, *, event_type: str | None = None) -> PayloadError:
        return cls([(path, why)], event_type=event_type)


def parse_json(raw: bytes | str) -> Any:
    """Any JSON value; what is JSON is json.loads' verdict (ValueError or RecursionError).

    orjson is several times faster (a rebuild parses the whole log, the receiver every
    delivery); what it refuses (numbers beyond 64 bits, deep nesting) goes to json.loads.
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def load_json(raw: bytes | str) -> dict[str, Any]:
    """A stored body as a JSON object, or a PayloadError saying why it is not one."""
    try:
        body = parse_json(raw)
    except (ValueError, RecursionError) as exc:
        raise PayloadError.at(WHOLE, f"not JSON ({type(exc).__name__})") from None
    if not isinstance(body, dict):
        raise PayloadError.at(WHOLE, "not a JSON object")
    return body


def is_envelope(body: Mapping[str, Any]) -> bool:
    """The v2024-01-01 envelope: `data` beside an `event` object or a `type` string."""
    return _is_mapping(body.get("data")) and (
        _is_mapping(body.get("event")) or isinstance(body.get("type"), str)
    )


def _is_mapping(value: object) -> bool:
    # Parsed JSON objects are dicts: the exact type check spares the ABC's slower one, which
    # runs for every delivery received and every event a rebuild reads.
    return type(value) is dict or isinstance(value, Mapping)


def event_data(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """The event payload: an envelope's `data`, or a raw payload as it is."""
    data = body["data"] if is_envelope(body) else body
    assert isinstance(data, Mapping)
    return data


def parse_payload(event_type: str, body: Mapping[str, Any]) -> Payload:
    """The payload model of `event_type` from an envelope or a raw payload."""
    model = EVENT_MODELS.get(event_type)
    if model is None:
        # A caller bug (the handler table and this one disagree), not a bad payload.
        raise ValueError(f"no payload model for event type {event_type!r}")
    return _validate(model, body, event_type)


def paid_points(event: RedemptionSucceeded) -> int:
    """The points a loyalty card paid in a redemption (`redemption.amount`), or a
    PayloadError when they are missing or negative."""
    points = event.redemption.amount
    if points is None or points < 0:
        why = "field required" if points is None else "negative"
        raise PayloadError.at("redemption.amount", f"{why}: the points a loyalty card paid")
    return points


def source_timestamp(body: Mapping[str, Any], payload: Payload) -> datetime:
    """When the event happened at Voucherify: what orders loyalty balance snapshots.

    The payload's own time first, so a raw and an enveloped delivery of one event agree;
    then the envelope's `event.created_at`, then the envelope's `created_at`.
    """
    if payload.occurred_at is not None:
        return payload.occurred_at
    if is_envelope(body):
        event = body.get("event")
        candidates = (event.get("created_at") if isinstance(event, Mapping) else None,)
        for candidate in (*candidates, body.get("created_at")):
            if candidate is None:
                continue
            try:
                return parse_timestamp(candidate)
            except ValueError:
                continue  # a malformed envelope time: try the next source
    raise PayloadError.at("created_at", "no usable source timestamp in the payload or envelope")


def _validate(model: type[Payload], body: Mapping[str, Any], event_type: str) -> Payload:
    if not isinstance(body, Mapping):
        raise PayloadError.at(WHOLE, "not a JSON object", event_type=event_type)
    try:
        payload = model.model_validate(event_data(body))
    except ValidationError as exc:
        raise PayloadError(_problems(exc), event_type=event_type) from None
    problems = payload.problems()
    if problems:
        raise PayloadError(problems, event_type=event_type)
    return payload


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    return [(_path(error["loc"]), _why(error["msg"])) for error in exc.errors()]


def _path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path or WHOLE


def _why(message: str) -> str:
    message = message.removeprefix("Value error, ")
    return message[:1].lower() + message[1:]
