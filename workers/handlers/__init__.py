"""The handlers' functions by name. Which handlers run for which event type, in which order,
and what else each is: `models.routing`."""

from __future__ import annotations

from models.routing import LEDGER, LOYALTY, NOTIFICATIONS
from workers.handlers import ledger, loyalty, notify
from workers.handlers.base import Handle

BY_NAME: dict[str, Handle] = {
    LEDGER.name: ledger.handle,
    LOYALTY.name: loyalty.handle,
    NOTIFICATIONS.name: notify.handle,
}
