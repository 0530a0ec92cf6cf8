"""Which handlers run for which event type: the one table to read or extend.

An event type missing here is stored, listed and replayable, with status `ignored` until a
handler exists for it.
"""

from __future__ import annotations

HANDLERS: dict[str, tuple[str, ...]] = {
    "redemption.succeeded": ("ledger", "loyalty", "notifications"),
    "customer.reward_redemptions.completed": ("ledger", "loyalty", "notifications"),
    "redemption.rollback.succeeded": ("ledger",),
}


def handlers_for(event_type: str | None) -> tuple[str, ...]:
    return HANDLERS.get(event_type or "", ())
