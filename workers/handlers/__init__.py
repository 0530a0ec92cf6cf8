"""The handlers by name. Which of them run for which event type: `models.routing.HANDLERS`."""

from __future__ import annotations

from workers.handlers import ledger, loyalty, notify
from workers.handlers.base import Handler

BY_NAME: dict[str, Handler] = {
    "ledger": ledger.handle,
    "loyalty": loyalty.handle,
    "notifications": notify.handle,
}

# Run order within a batch: the books first, then the cards, then what is told to people.
ORDER = ("ledger", "loyalty", "notifications")
