"""Rollbacks, folded once the rest of the log is, each as of its own place in the fold.

A rollback reads what its original booked before it, and is held until its original is noted
when it comes first. What it books is read by nothing else (a rollback's keys are its own, the
cards never read the ledger), so folding it after everything else, with the questions answered
as of its place, books what folding it in its place would. Its place:

- its own, when its original was noted before it;
- just after the event that noted its original first, when it came before it (it was held,
  then released by that note), those released by one note in the order they were held;
- none when its original never came: it stays held.

The rollbacks are read back from `fold_later` an original's together, a batch at a time: their
bodies, and what they ask (`workers.rebuild_ledger`), each read in one go.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from models.db import eventlog, fold_reads, fold_store
from models.voucherify import load_json, parse_payload
from workers.handlers import BY_NAME
from workers.handlers.base import Config, Job
from workers.rebuild_books import FoldBooks, Later
from workers.rebuild_ledger import Asks, Unknown
from workers.rebuild_shard import PLACE_BITS, RELEASED, place

STEP = 16
"""Places between two rollbacks released by one note: more than one books."""

Run = tuple[int, Job, str, str | None]
"""A handler to run on a job at a place; the original whose note releases it there, if so."""


class Releases:
    """How many rollbacks each original's first note released so far (an original's rollbacks
    come together: only the last original is remembered)."""

    def __init__(self) -> None:
        self._original: str | None = None
        self._count = 0

    def next_place(self, original: str, noted: int) -> int:
        if original != self._original:
            self._original, self._count = original, 0
        self._count += 1
        return place(noted >> PLACE_BITS, RELEASED) + STEP * (self._count - 1)


def fold_later(books: FoldBooks, config: Config, now: datetime) -> int:
    """Fold the rollbacks set aside during the fold; how many."""
    books.later = False
    releases = Releases()
    folded = 0
    indexed = False
    for rows in fold_reads.later(books.conn):
        if not indexed:
            fold_store.index_bookings(books.conn)
            indexed = True
        events = {row.id: row for row in eventlog.load(books.conn, [r[1] for r in rows])}
        runs: list[Run] = []
        for at, event_id, handler, original, noted in rows:
            event = events[event_id]
            body = load_json(event.body)
            payload = parse_payload(event.type, body)
            job = Job(books, event.id, event.type, payload, body, now, config)
            runs.append((at, job, handler, None))  # held there if its original came after it
            if noted is not None and noted > at:
                runs.append((releases.next_place(original, noted), job, handler, original))
        _prepare(books, runs)
        for at, job, handler, released in runs:
            if released is not None:
                _unhold(books, released, job.event_id)
            books.at(at)
            BY_NAME[handler](job)
        books.end_batch()
        folded += len(rows)
    return folded


def _unhold(books: FoldBooks, original: str, event_id: str) -> None:
    """The rollback's original is noted: it is held no more."""
    held = books.holds.get(original, [])
    if event_id in held:
        held.remove(event_id)
    if not held:
        books.holds.pop(original, None)


def _prepare(books: FoldBooks, runs: Sequence[Run]) -> None:
    """Read at once what the runs ask: the notes of their originals first, then what the
    originals booked (asked once the notes say they were seen)."""
    for _ in range(3):
        asks = Asks()
        books.ask(asks)
        for at, job, handler, _released in runs:
            books.at(at)
            try:
                BY_NAME[handler](job)
            except (Unknown, Later):
                continue
        books.answer(asks)
        if not asks:
            return
