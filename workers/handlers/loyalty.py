"""Cards handler: record the movement an event reports, once, and the loyalty card's state.

Under the card's lock: the movement's best report is kept (`models.cards.better`), the card's
newest movement is found again, and a loyalty card's state follows (`models.loyalty`).
"""

from __future__ import annotations

from models.cards import better, newest
from models.loyalty import card_state, movement_of, snapshot_flags
from workers.handlers.base import Job, Outcome


def handle(job: Job) -> Outcome:
    movement = movement_of(job.event_type, job.payload, job.body, job.event_id)
    if movement is None:
        return Outcome(note="no card involved")
    books = job.books
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
        books.load_card(movement.card_id),
        movement,
        first=first,
        latest=latest,
        flags=snapshot_flags(job.payload, movement),
    )
    books.save_card(state, job.now)
    return Outcome(note=note)
