"""A short fingerprint of the computed state (ledger and cards), to compare two at a glance."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from models.loyalty import CardState


def state_digest(
    balances: Iterable[tuple[str, str, int]],
    transactions: Iterable[tuple[str, str]],
    cards: Iterable[CardState],
) -> str:
    """sha256 over account balances, transaction keys with their postings' digests, and every
    card's figures. Times of booking are left out: they differ between two foldings of one
    log, the state does not."""
    content = {
        "balances": sorted([account, asset, balance] for account, asset, balance in balances),
        "transactions": sorted([key, digest] for key, digest in transactions),
        "cards": sorted(
            [
                card.card_id,
                card.customer_id,
                card.balance,
                card.as_of.isoformat(),
                card.points_spent,
                card.events,
                list(card.flags),
            ]
            for card in cards
        ),
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
