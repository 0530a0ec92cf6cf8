"""The recorded Voucherify payloads, and envelopes around them as live webhooks carry."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from models.voucherify import EVENT_MODELS, Payload, parse_payload

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "voucherify"
"""Voucherify's published examples, kept in the repository (see the README there)."""

REDEMPTION = "redemption.succeeded"
REWARD_REDEMPTION = "customer.reward_redemptions.completed"


def example_path(event_type: str) -> Path:
    return FIXTURES / f"{event_type}.json"


def example_bytes(event_type: str) -> bytes:
    return example_path(event_type).read_bytes()


def example(event_type: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(example_bytes(event_type))
    return data


def envelope(
    event_type: str,
    data: dict[str, Any] | None = None,
    *,
    event_id: str | None = None,
    distribution: bool = False,
) -> dict[str, Any]:
    """A v2024-01-01 envelope; a distribution's top-level type is a name the user typed."""
    data = example(event_type) if data is None else data
    return {
        "id": f"whs_{uuid.uuid4().hex[:20]}",
        "project_id": "proj_test",
        "created_at": "2024-05-13T12:26:06.250Z",
        "type": "My reward notification" if distribution else event_type,
        "data": data,
        "source": {
            "id": "distr_test" if distribution else "wh_test",
            "object": "distribution" if distribution else "webhook",
            "target_url": "http://127.0.0.1/webhooks/voucherify",
        },
        "event": {
            "id": event_id or f"ev_{uuid.uuid4().hex[:20]}",
            "type": event_type,
            "created_at": "2024-05-13T12:26:06.250Z",
            "entity_id": "r_test",
            "group_id": "v-test",
            "event_source": {"channel": "API"},
        },
    }


def dumps(payload: object, *, pretty: bool = False) -> bytes:
    return json.dumps(payload, indent=2 if pretty else None).encode()


def reward_redemption(
    rewr_id: str, card_id: str, *, balance: int, points: int, at: str
) -> dict[str, Any]:
    """The seed reward redemption for another card, cost and time; its figures consistent."""
    data = example(REWARD_REDEMPTION)
    voucher = data["voucher"]
    redeemed = voucher["redemption"]["redeemed_points"]
    voucher.update(id=card_id, loyalty_card={"points": balance + redeemed, "balance": balance})
    data["reward_redemption"].update(
        id=rewr_id, voucher_id=card_id, created_at=at, updated_at=at, source_id=f"r_{rewr_id}"
    )
    data["reward_assignment"]["parameters"]["loyalty"]["points"] = points
    return data


P = TypeVar("P", bound=Payload)


def parsed(model: type[P], body: Mapping[str, Any]) -> P:
    """A payload of `model` (one of `EVENT_MODELS`), as the workers parse it: by its event
    type, from an envelope or a raw payload."""
    event_type = next(name for name, known in EVENT_MODELS.items() if known is model)
    payload = parse_payload(event_type, body)
    assert isinstance(payload, model)
    return payload
