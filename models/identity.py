"""What a signed delivery is: its event type, its identity and whether it can be processed.

Pure: bytes in, a verdict out. Only signed bytes decide: the URL path is not signed, so it can
confirm a type but never change an identity or re-type an event.

- An envelope (v2024-01-01) names its own type (`event.type`) and identity: `event.id`; else
  the envelope's send-out `id`; else the type plus the id of the object inside; else a hash.
  The URL path plays no part.
- A raw payload (a distribution's "raw payload" option) has no envelope: its kind is read from
  its shape (`RAW_KINDS`, `_raw_kind`: a rollback holds `redemption_rollback`, a reward
  redemption holds `reward_redemption`, …) and its identity is that kind plus the object's id.
  The URL's type must agree with the shape; a body whose shape contradicts the URL, or that
  has no known shape while the URL names a type with handlers, is quarantined, never booked.
- A body that is not a JSON object, or a raw payload of no known shape, is identified by a
  hash of its signed form (the bytes the signature matched), so whitespace, padding or a
  different URL cannot give one signed delivery a second identity.

Parsing and the envelope test are the wire format's (`models.voucherify.parse_json`,
`is_envelope`): orjson first (three times faster than json on a delivery), every body it refuses
left to json.loads, so what is JSON, and each quarantine reason, is json.loads' verdict.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Literal

from models.routing import handlers_for
from models.voucherify import CARD_TRANSACTION_EVENTS, is_envelope, parse_json
from models.voucherify.fields import normal_status

Status = Literal["pending", "ignored", "quarantined"]
"""The statuses a delivery can be stored with (a subset of models.statuses.EventStatus)."""

MAX_ID_LENGTH = 200
EVENT_TYPE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}$")

# The kind of a raw payload, by event type: the types that share a kind are the same event
# delivered two ways (a project event and its distribution look-alike). A type with handlers
# must be here, so nothing is booked from a raw body whose shape was not checked.
RAW_KINDS: dict[str, str] = {
    "redemption.succeeded": "redemption.succeeded",
    "customer.redemption.succeeded": "redemption.succeeded",
    "redemption.failed": "redemption.failed",
    "customer.redemption.failed": "redemption.failed",
    "redemption.rollback.succeeded": "redemption.rollback.succeeded",
    "customer.redemption.rollback.succeeded": "redemption.rollback.succeeded",
    "redemption.rollback.failed": "redemption.rollback.failed",
    "customer.redemption.rollback.failed": "redemption.rollback.failed",
    "customer.reward_redemptions.created": "customer.reward_redemptions.created",
    "customer.reward_redemptions.pending": "customer.reward_redemptions.pending",
    "customer.reward_redemptions.completed": "customer.reward_redemptions.completed",
    "customer.reward_redemptions.rolledback": "customer.reward_redemptions.rolledback",
    # One transaction (`vtx_...`) may come as several of these: one kind, so that the same
    # transaction delivered raw under two of them is one event.
    **dict.fromkeys(CARD_TRANSACTION_EVENTS, "card.transaction"),
    "customer.rewarded.loyalty_points": "customer.rewarded.loyalty_points",
    "voucher.loyalty_card.pending_points.added": "pending_points.added",
    "voucher.loyalty_card.pending_points.canceled": "pending_points.canceled",
}

_FAILED = ("FAILURE", "FAILED")
_REWARD_STATES = {
    "CREATED": "customer.reward_redemptions.created",
    "PENDING": "customer.reward_redemptions.pending",
    "COMPLETED": "customer.reward_redemptions.completed",
    "ROLLED_BACK": "customer.reward_redemptions.rolledback",
}
# Objects of their own that a payload may hold beside a `redemption` given as context (a gift
# or points transaction, pending points): such a payload is not a redemption event.
_OTHER_OBJECTS = ("transaction", "pending_points")


@dataclass(frozen=True)
class Identified:
    event_id: str
    event_type: str | None
    status: Status
    delivery_id: str | None = None
    reason: str | None = None


def identify(body: bytes, path_type: str | None = None) -> Identified:
    """Classify a delivery whose signature was verified over `body` (its signed form)."""
    claimed = path_type if path_type is not None and EVENT_TYPE.match(path_type) else None
    try:
        payload = parse_json(body)
    except (ValueError, RecursionError) as exc:
        return _quarantine(_sha(body), claimed, f"body is not JSON ({_short(exc)})")
    if not isinstance(payload, dict):
        return _quarantine(
            _sha(body), claimed, f"body is JSON but not an object ({_kind(payload)})"
        )
    if is_envelope(payload):
        return _from_envelope(payload, body)
    return _from_raw(payload, body, path_type, claimed)


def _raw_kind(payload: dict[str, Any]) -> tuple[str, str] | None:
    """The kind of a raw payload read from its shape, and the id of its object; None when the
    shape is none of the known ones."""
    rollback = payload.get("redemption_rollback")
    if isinstance(rollback, dict) and (object_id := _text(rollback.get("id"))):
        failed = _failed(rollback)
        kind = "redemption.rollback.failed" if failed else "redemption.rollback.succeeded"
        return kind, object_id
    reward = payload.get("reward_redemption")
    if isinstance(reward, dict) and (object_id := _text(reward.get("id"))):
        reward_kind = _REWARD_STATES.get(str(normal_status(reward.get("state"))))
        return (reward_kind, object_id) if reward_kind else None
    transaction = payload.get("transaction")
    if isinstance(transaction, dict):
        object_id = _text(transaction.get("id"))
        return ("card.transaction", object_id) if object_id else None
    pending = payload.get("pending_points")
    if isinstance(pending, dict):
        return _pending_kind(payload, pending)
    if _rewarded_points(payload):
        return _rewarded_kind(payload)
    if any(isinstance(payload.get(key), dict) for key in _OTHER_OBJECTS):
        return None
    redemption = payload.get("redemption")
    if isinstance(redemption, dict) and (object_id := _text(redemption.get("id"))):
        kind = "redemption.failed" if _failed(redemption) else "redemption.succeeded"
        return kind, object_id
    return None


def _pending_kind(payload: dict[str, Any], pending: dict[str, Any]) -> tuple[str, str] | None:
    """Pending points held back (a positive change) or released unspent (negative)."""
    object_id = _text(pending.get("id"))
    balance = payload.get("voucher_pending_points_balance")
    points = balance.get("points") if isinstance(balance, dict) else None
    if object_id is None or not isinstance(points, int) or isinstance(points, bool):
        return None
    return ("pending_points.added" if points > 0 else "pending_points.canceled"), object_id


def _rewarded_points(payload: dict[str, Any]) -> bool:
    """Loyalty points told without a transaction: a card's balance beside its earning rule."""
    balance = payload.get("balance")
    return (
        isinstance(balance, dict)
        and isinstance(payload.get("voucher"), dict)
        and isinstance(payload.get("earning_rule"), dict)
        and "redemption" not in payload
    )


def _rewarded_kind(payload: dict[str, Any]) -> tuple[str, str] | None:
    """Identified by the card and the customer event (else the order) that earned the points."""
    card = _text(payload["voucher"].get("id"))
    cause = next(
        (
            _text(obj.get("id"))
            for obj in (payload.get("event"), payload.get("order"))
            if isinstance(obj, dict) and _text(obj.get("id"))
        ),
        None,
    )
    if card is None or cause is None:
        return None
    return "customer.rewarded.loyalty_points", f"{card}:{cause}"


def _from_raw(
    payload: dict[str, Any], body: bytes, path_type: str | None, claimed: str | None
) -> Identified:
    shape = _raw_kind(payload)
    event_id = _shape_id(shape, body)
    if path_type is None:
        return _quarantine(
            event_id,
            None,
            "no event type: the body has no envelope and the URL names no type "
            "(send raw payloads to /webhooks/voucherify/{event_type})",
        )
    if claimed is None:
        return _quarantine(
            event_id, None, f"the URL names an invalid event type: {path_type[:200]!a}"
        )
    wanted = RAW_KINDS.get(claimed)
    if wanted == (shape[0] if shape else None):
        return _known(event_id, claimed)  # the shape agrees, or neither has a known shape
    return _quarantine(
        event_id,
        claimed,
        f"the URL says {claimed} but the body is {_found(shape)}: "
        "check the URL this distribution sends to",
    )


def _from_envelope(payload: dict[str, Any], body: bytes) -> Identified:
    event = payload.get("event") if isinstance(payload.get("event"), dict) else {}
    assert isinstance(event, dict)
    # A distribution's top-level `type` is a name the user typed; `event.type` is the real one.
    event_type = _text(event.get("type")) or _text(payload.get("type"))
    delivery_id = _text(payload.get("id"))
    if delivery_id is not None:
        delivery_id = _bounded(delivery_id)  # kept in a column of 255
    shape = _raw_kind(payload["data"])
    event_id = _text(event.get("id")) or delivery_id or _shape_id(shape, body)
    if event_type is None or not EVENT_TYPE.match(event_type):
        return _quarantine(event_id, None, "the envelope names no valid event type", delivery_id)
    wanted = RAW_KINDS.get(event_type)
    if wanted is not None and wanted != (shape[0] if shape else None):
        reason = f"the envelope says {event_type} but its data is {_found(shape)}"
        return _quarantine(event_id, event_type, reason, delivery_id)
    return _known(event_id, event_type, delivery_id)


def _shape_id(shape: tuple[str, str] | None, body: bytes) -> str:
    """`KIND:OBJECT_ID` for a payload of a known shape, else a hash of the signed bytes."""
    return f"{shape[0]}:{shape[1]}" if shape else _sha(body)


def _found(shape: tuple[str, str] | None) -> str:
    return f"a {shape[0]} payload" if shape else "no payload of a known kind"


def _known(event_id: str, event_type: str, delivery_id: str | None = None) -> Identified:
    status: Status = "pending" if handlers_for(event_type) else "ignored"
    return Identified(_bounded(event_id), event_type, status, delivery_id)


def _quarantine(
    event_id: str, event_type: str | None, reason: str, delivery_id: str | None = None
) -> Identified:
    return Identified(_bounded(event_id), event_type, "quarantined", delivery_id, reason)


def _failed(obj: dict[str, Any]) -> bool:
    return obj.get("result") in _FAILED or obj.get("status") in _FAILED


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _bounded(event_id: str) -> str:
    """Keep identities printable and short; an absurd id is replaced by its hash."""
    if len(event_id) <= MAX_ID_LENGTH and event_id.isprintable():
        return event_id
    return "sha256:" + hashlib.sha256(event_id.encode("utf-8", "surrogatepass")).hexdigest()


def _sha(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _short(exc: BaseException) -> str:
    return type(exc).__name__ if isinstance(exc, RecursionError) else str(exc)[:120]


def _kind(value: object) -> str:
    return {
        list: "an array",
        str: "a string",
        int: "a number",
        float: "a number",
        bool: "a boolean",
        type(None): "null",
    }.get(type(value), type(value).__name__)
