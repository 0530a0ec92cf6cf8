"""Built-in sample events for `voucherhook send --sample NAME`: try a deployment end to end
without a Voucherify account.

Each sample starts from a recorded Voucherify payload in `workers/samples/` and gets fresh ids
(redemption `r_…`, order `ord_…`, reward redemption `rewr_…`, rollback `rr_…`) and the current
time, so every send is a new event that the receiver stores and the workers book, rather than
a duplicate of the last one. `deliveries` wraps each in a v2024-01-01 envelope (fresh send-out
and event ids, the type in the body) unless asked for the raw payload.

A rollback needs its original: the `redemption.rollback.succeeded` sample is a fresh redemption
followed by its rollback (order cancelled), so both are sent and the ledger nets to nothing.
"""

from __future__ import annotations

import copy
import json
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

SAMPLES = Path(__file__).parent / "samples"

REDEMPTION = "redemption.succeeded"
REWARD_REDEMPTION = "customer.reward_redemptions.completed"
ROLLBACK = "redemption.rollback.succeeded"
NAMES = (REDEMPTION, REWARD_REDEMPTION, ROLLBACK)

Json = dict[str, Any]

_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class Delivery:
    """One webhook to send: its event type and the JSON body (enveloped or raw)."""

    event_type: str
    body: Json

    def encoded(self) -> bytes:
        return json.dumps(self.body).encode()


class UnknownSample(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown sample {name!r}: the samples are {', '.join(NAMES)}")


def deliveries(
    name: str, *, raw: bool = False, target_url: str | None = None, now: datetime | None = None
) -> list[Delivery]:
    """The webhooks that sample `name` sends, in order, each with fresh ids."""
    now = now or datetime.now(UTC)
    if name == REDEMPTION:
        events = [(REDEMPTION, redemption(now))]
    elif name == REWARD_REDEMPTION:
        events = [(REWARD_REDEMPTION, reward_redemption(now))]
    elif name == ROLLBACK:
        original = redemption(now)
        events = [(REDEMPTION, original), (ROLLBACK, rollback(original, now))]
    else:
        raise UnknownSample(name)
    return [
        Delivery(event_type, data if raw else envelope(event_type, data, now, target_url))
        for event_type, data in events
    ]


def redemption(now: datetime) -> Json:
    """The recorded `redemption.succeeded`, as a new redemption of a new order."""
    data = _recorded(REDEMPTION)
    r_id, order_id, at = fresh_id("r_", 18, hexadecimal=True), fresh_id("ord_"), _time(now)
    data["order"].update(id=order_id, created_at=at)
    data["redemption"].update(id=r_id, date=at, tracking_id=fresh_id("track_", 32))
    data["redemption"]["order"].update(id=order_id, created_at=at)
    data["created_at"] = at
    return data


def reward_redemption(now: datetime) -> Json:
    """The recorded `customer.reward_redemptions.completed`, as a new reward redemption of the
    same loyalty card (100 more points spent; the card's reported balance as recorded)."""
    data = _recorded(REWARD_REDEMPTION)
    source = fresh_id("r_", 18, hexadecimal=True)
    data["reward_redemption"].update(
        id=fresh_id("rewr_"), created_at=_time(now), updated_at=None, source_id=source
    )
    data["source"] = {"id": source, "type": "redemption"}
    return data


def rollback(original: Json, now: datetime) -> Json:
    """`redemption.rollback.succeeded` of `original`, its order cancelled: the original inside
    `redemption`, the rollback beside it."""
    rolled_back = copy.deepcopy(original["redemption"])
    rolled_back["status"] = "ROLLED BACK"  # the event's spelling, not the API's ROLLED_BACK
    order = {"id": original["order"]["id"], "status": "CANCELED", "object": "order"}
    at = _time(now)
    return {
        "customer": copy.deepcopy(original["customer"]),
        "order": order,
        "redemption": rolled_back,
        "redemption_rollback": {
            "id": fresh_id("rr_", 18, hexadecimal=True),
            "object": "redemption_rollback",
            "date": at,
            "redemption": rolled_back["id"],
            "customer_id": rolled_back.get("customer_id"),
            "tracking_id": rolled_back.get("tracking_id"),
            "amount": -(rolled_back.get("amount") or 0),
            "result": "SUCCESS",
            "status": "SUCCEEDED",
            "order": order,
        },
        "created_at": at,
    }


def envelope(event_type: str, data: Json, now: datetime, target_url: str | None = None) -> Json:
    """The v2024-01-01 envelope of a project webhook around `data`."""
    at = _time(now)
    return {
        "id": fresh_id("whs_"),
        "project_id": "proj_sample",
        "created_at": at,
        "type": event_type,
        "data": data,
        "source": {"id": "wh_sample", "object": "webhook", "target_url": target_url},
        "event": {
            "id": fresh_id("evt_"),
            "type": event_type,
            "created_at": at,
            "entity_id": _entity_id(data),
            "group_id": fresh_id("v-"),
            "event_source": {"channel": "API"},
        },
    }


def fresh_id(prefix: str, length: int = 24, *, hexadecimal: bool = False) -> str:
    """An id shaped like Voucherify's (`r_` and `rr_` ids are hexadecimal, most others not)."""
    if hexadecimal:
        return prefix + secrets.token_hex((length + 1) // 2)[:length]
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def _entity_id(data: Json) -> str | None:
    for key in ("redemption_rollback", "reward_redemption", "redemption"):
        obj = data.get(key)
        if isinstance(obj, dict) and isinstance(obj.get("id"), str):
            return str(obj["id"])
    return None


def _time(now: datetime) -> str:
    return now.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@cache
def _load(event_type: str) -> str:
    return (SAMPLES / f"{event_type}.json").read_text()


def _recorded(event_type: str) -> Json:
    data: Json = json.loads(_load(event_type))
    return data
