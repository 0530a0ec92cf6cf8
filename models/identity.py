"""What a signed delivery is: its event type, its identity and whether it can be processed.

Pure: bytes in, a verdict out. Identity, best first (see docs of Voucherify's webhooks):
`event.id` of the v2024-01-01 envelope; else the envelope's send-out `id`; else, for a raw
payload, the event type plus the id of the object inside; else the event type plus a hash of
the body. A body that is not a JSON object is quarantined under a hash of its bytes.

Parsing tries orjson first (three times faster than json on a delivery) and leaves every body
it refuses to json.loads, so what is JSON, and each quarantine reason, is json.loads' verdict.
Where orjson accepts a body it parses it as json does, except that integers beyond 64 bits
become floats: identities are strings, so the verdict is the same.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from models.routing import handlers_for

Status = Literal["pending", "ignored", "quarantined"]

MAX_ID_LENGTH = 200
EVENT_TYPE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}$")

# Raw payloads: the object whose id names the event, most specific first (a rollback payload
# also carries the original redemption; a reward redemption may carry its source redemption).
RAW_OBJECT_KEYS = ("redemption_rollback", "reward_redemption", "transaction", "redemption")


@dataclass(frozen=True)
class Identified:
    event_id: str
    event_type: str | None
    status: Status
    delivery_id: str | None = None
    reason: str | None = None


def identify(body: bytes, path_type: str | None = None) -> Identified:
    """Classify a delivery whose signature was already verified."""
    if path_type is not None and not EVENT_TYPE.match(path_type):
        # Kept out of the type column (it may hold anything, NUL included); the reason shows it.
        return _quarantine(body, None, f"the URL names an invalid event type: {path_type[:200]!a}")
    try:
        payload = _parse(body)
    except (ValueError, RecursionError) as exc:
        return _quarantine(body, path_type, f"body is not JSON ({_short(exc)})")
    if not isinstance(payload, dict):
        return _quarantine(body, path_type, f"body is JSON but not an object ({_kind(payload)})")

    if _is_envelope(payload):
        return _from_envelope(payload, body, path_type)
    if path_type is None:
        return _quarantine(
            body,
            None,
            "no event type: the body has no envelope and the URL names no type "
            "(send raw payloads to /webhooks/voucherify/{event_type})",
        )
    return _known(f"{path_type}:{_raw_object_id(payload) or _sha(body)}", path_type)


def _parse(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)


def _is_envelope(payload: dict[str, Any]) -> bool:
    return isinstance(payload.get("data"), dict) and (
        isinstance(payload.get("event"), dict) or isinstance(payload.get("type"), str)
    )


def _from_envelope(payload: dict[str, Any], body: bytes, path_type: str | None) -> Identified:
    event = payload.get("event") if isinstance(payload.get("event"), dict) else {}
    assert isinstance(event, dict)
    # A distribution's top-level `type` is a name the user typed; `event.type` is the real one.
    event_type = _text(event.get("type")) or path_type or _text(payload.get("type"))
    if event_type is None or not EVENT_TYPE.match(event_type):
        return _quarantine(body, None, "the envelope names no valid event type")
    delivery_id = _text(payload.get("id"))
    if delivery_id is not None:
        delivery_id = _bounded(delivery_id)  # kept in a column of 255
    event_id = _text(event.get("id")) or delivery_id
    if event_id is None:
        raw_id = _raw_object_id(payload["data"])
        event_id = f"{event_type}:{raw_id or _sha(body)}"
    return _known(_bounded(event_id), event_type, delivery_id)


def _known(event_id: str, event_type: str, delivery_id: str | None = None) -> Identified:
    status: Status = "pending" if handlers_for(event_type) else "ignored"
    return Identified(_bounded(event_id), event_type, status, delivery_id)


def _quarantine(body: bytes, event_type: str | None, reason: str) -> Identified:
    return Identified(_sha(body), event_type, "quarantined", reason=reason)


def _raw_object_id(data: dict[str, Any]) -> str | None:
    for key in RAW_OBJECT_KEYS:
        obj = data.get(key)
        if isinstance(obj, dict) and (object_id := _text(obj.get("id"))):
            return object_id
    return None


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
