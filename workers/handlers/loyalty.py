"""Cards handler: record the movement an event reports, once, and the loyalty card's state.

Under the card's lock: the movement's best report is kept (`models.cards.better`), the card's
newest movement is found again, and a loyalty card's state follows (`models.loyalty`).

In two halves: `report` reads the event alone (which movement it reports, the flags its
payload raises), `apply` does the rest on the books. A rebuild computes the reports of many
events at once, in other processes, then applies them in receipt order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from models.cards import Movement, better, newest
from models.loyalty import card_state, movement_of, snapshot_flags
from workers.handlers.base import Job, Outcome
from workers.handlers.books import Books


@dataclass(frozen=True)
class Report:
    """What an event says about a card, read from the event alone."""

    movement: Movement
    flags: frozenset[str]
    """The flags its payload raises (`models.loyalty.snapshot_flags`): a loyalty card's only."""


def handle(job: Job) -> Outcome:
    return apply(job.books, report(job), job.now)


def report(job: Job) -> Report | None:
    """The movement the event reports, or None when it moves no card."""
    movement = movement_of(job.event_type, job.payload, job.body, job.event_id)
    if movement is None:
        return None
    loyalty = movement.kind == "loyalty"
    return Report(movement, snapshot_flags(job.payload, movement) if loyalty else frozenset())


def apply(books: Books, found: Report | None, now: datetime) -> Outcome:
    """Keep the report and move the card, on `books`."""
    if found is None:
        return Outcome(note="no card involved")
    movement = found.movement
    books.lock_card(movement.card_id)
    kept = books.movement(movement.card_id, movement.key)
    first = kept is None
    if better(kept, movement):
        books.put_movement(movement, new=first)
    note = None if first else f"{movement.key} already applied to {movement.card_id}"
    if movement.kind != "loyalty":
        return Outcome(note=note)
    latest = newest(books.newest_movements(movement.card_id))
    assert latest is not None  # this movement at least
    state = card_state(
        books.load_card(movement.card_id), movement, first=first, latest=latest, flags=found.flags
    )
    books.save_card(state, now)
    return Outcome(note=note)
