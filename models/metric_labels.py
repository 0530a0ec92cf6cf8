"""The label values of voucherhook's metrics: a small, fixed set whatever arrives.

Every label value a metric carries is a series Prometheus keeps, so none may come from what a
sender chose: an event type is one the handlers table names, or `other` (a type without
handlers, or none at all); an event id never is a label.
"""

from __future__ import annotations

from collections.abc import Iterable

from models.routing import HANDLERS, ORDER

OTHER = "other"
"""The type label of every event type without handlers, and of events without a type."""

EVENT_TYPES: tuple[str, ...] = (*HANDLERS, OTHER)
HANDLER_NAMES: tuple[str, ...] = tuple(handler.name for handler in ORDER)
HANDLER_OUTCOMES = ("done", "held", "retry", "failed")
"""A handler's run on one event: done, held (a rollback waiting for its original), retry (it
failed and will be tried again), failed (for good)."""
NOTIFICATION_OUTCOMES = ("sent", "retry", "failed")
RETRIED = ("event", "notification")
"""What a retry or a re-dispatch is of."""


def event_type(name: str | None) -> str:
    """The type label of an event of type `name`."""
    return name if name is not None and name in HANDLERS else OTHER


def fold_counts(counts: Iterable[tuple[str | None, str, int]]) -> dict[tuple[str, str], int]:
    """(type, status, count) rows as (type label, status) -> count: the types without
    handlers added up under `other`."""
    folded: dict[tuple[str, str], int] = {}
    for name, status, count in counts:
        key = (event_type(name), status)
        folded[key] = folded.get(key, 0) + count
    return folded
