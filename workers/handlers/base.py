"""What a handler is given and what it answers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from jinja2 import Environment
from sqlalchemy import Connection

from models.payloads import Payload

if TYPE_CHECKING:
    from workers.books import Books


class PermanentError(Exception):
    """Retrying cannot help (the payload or the books need a person): fail the event now."""


@dataclass(frozen=True)
class Config:
    currency: str
    templates: Environment
    email: bool
    webhook_url: str | None


@dataclass
class Job:
    """One event for one handler, inside the handler's transaction."""

    conn: Connection | None
    """The handler's transaction; None when the handler runs on books in memory (rebuild)."""
    books: Books
    event_id: str
    event_type: str
    payload: Payload
    body: dict[str, Any]
    now: datetime
    config: Config
    # Filled by handlers, acted on after the commit.
    notifications: list[int] = field(default_factory=list)
    released: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Outcome:
    status: Literal["done", "held"] = "done"
    note: str | None = None


Handler = Callable[[Job], Outcome]
