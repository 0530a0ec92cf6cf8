"""What a handler is given and what it answers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from jinja2 import Environment

from models.journal import Transaction
from models.notifications import Message
from models.voucherify import Payload
from workers.handlers.books import Books


class PermanentError(Exception):
    """Retrying cannot help (the payload or the books need a person): fail the event now."""


class LedgerConflict(PermanentError):
    """A key already booked with other postings; carries the transaction, to be recorded."""

    def __init__(self, transaction: Transaction) -> None:
        super().__init__(
            f"ledger conflict: key {transaction.key} is already booked with other postings; "
            "recorded in ledger_conflicts, check the original event and correct by hand"
        )
        self.transaction = transaction


@dataclass(frozen=True)
class Config:
    currency: str
    templates: Environment
    email: bool
    webhook: bool
    """The operations webhook is on (NOTIFY_WEBHOOK_URL is set). Deliveries name
    NOTIFY_WEBHOOK_URL, never the URL, which the sender reads from the settings when it sends."""


@dataclass
class Job:
    """One event for one handler, inside the handler's transaction."""

    books: Books
    event_id: str
    event_type: str
    payload: Payload
    body: dict[str, Any]
    now: datetime
    config: Config
    # Filled by handlers: the messages are planned in the handler's transaction, the
    # released (held) events are published after its commit.
    messages: list[Message] = field(default_factory=list)
    released: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Outcome:
    status: Literal["done", "held"] = "done"
    note: str | None = None


Handle = Callable[[Job], Outcome]
"""A handler's function; the handlers themselves are declared in `models.routing`."""
