"""The ledger's rows a rebuild's main process knows in one batch: those it staged, and those it
read back about the redemptions and keys its handlers ask about, each question answered as of
the asker's place (`models.folded`).

Reading back costs a round trip to the database, which a busy machine makes long: the batch's
questions are found first (`Asking`: the handlers run once, every unknown read recorded and
stopped), then read in one go (`fetch`), then the handlers run for real.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields

from sqlalchemy import Connection

from models import folded
from models.db import fold_reads
from models.folded import Booking, Entry, Note
from models.journal import Transaction
from models.ledger import StackCheck
from workers.rebuild_shard import Staged


class Unknown(Exception):
    """Asked while finding the batch's questions: the answer is not read yet."""


@dataclass
class Asks:
    """The redemptions and keys a batch asks about."""

    noted: set[str] = field(default_factory=set)
    """Whose notes are asked (seen, a stack's parent)."""
    parents: set[str] = field(default_factory=set)
    """Whose children's notes are asked."""
    booked: set[str] = field(default_factory=set)
    """Whose own bookings are asked."""
    keys: set[str] = field(default_factory=set)
    """Whose bookings are asked."""
    movements: set[tuple[str, str]] = field(default_factory=set)
    """(card, key): whose report kept is asked."""

    def __bool__(self) -> bool:
        return any(getattr(self, name) for name in _ALL)

    def add(self, other: Asks) -> None:
        """Ask what `other` asks too (its movements aside)."""
        for name in _LEDGER:
            getattr(self, name).update(getattr(other, name))

    def minus(self, read: Asks) -> Asks:
        """What is asked here and not in `read` (movements aside)."""
        return Asks(**{name: getattr(self, name) - getattr(read, name) for name in _LEDGER})


_ALL = [f.name for f in fields(Asks)]
_LEDGER = [name for name in _ALL if name != "movements"]
"""What the ledger's rows answer (the movements are the cards')."""


class LedgerRows:
    def __init__(self, conn: Connection, staged: Staged) -> None:
        self.conn = conn
        self.staged = staged
        self.asking: Asks | None = None
        """While finding the questions: where the unknown ones go."""
        self.clear()

    def clear(self) -> None:
        """Forget what was read (the next batch reads again: the tables have grown)."""
        self._read = Asks()
        self._notes: dict[str, dict[int, Note]] = {}
        self._children: dict[str, set[str]] = {}
        self._by_redemption: dict[str, dict[int, Booking]] = {}
        self._by_key: dict[str, dict[int, Booking]] = {}
        self._entries: dict[int, dict[int, Entry]] = {}

    def fetch(self, asks: Asks) -> None:
        """Read the rows about these redemptions and keys (the notes and the bookings apart: a
        stack asks about notes only, and the bookings have no index until the rest is folded,
        `models.db.fold_store.index_bookings`)."""
        left = asks.minus(self._read)
        if left.noted or left.parents:
            self._add_notes(fold_reads.notes_about(self.conn, left.noted, left.parents))
        if left.booked or left.keys:
            bookings, entries = fold_reads.bookings_about(self.conn, left.booked, left.keys)
            self._add_bookings(bookings, entries)
        self._read.add(left)

    def staged_note(self, note: Note) -> None:
        self._add_notes([note])

    def staged_booking(self, booking: Booking, entries: list[Entry]) -> None:
        self._add_bookings([booking], entries)

    # --- answers, as of a place ---------------------------------------------------------------

    def seen(self, redemption_id: str, before: int) -> bool:
        self._need(noted={redemption_id})
        return folded.seen(self._notes.get(redemption_id, {}).values(), redemption_id, before)

    def stack(self, parent_id: str, before: int) -> StackCheck:
        self._need(noted={parent_id}, parents={parent_id})
        # A child named only by a note staged here: its notes read from the table too.
        self._need(noted=self._children.get(parent_id, set()))
        ids = {parent_id, *self._children.get(parent_id, ())}
        notes = [note for i in ids for note in self._notes.get(i, {}).values()]
        return folded.stack(notes, parent_id, before)

    def transactions_of_redemption(
        self, redemption_id: str, order_id: str | None, before: int
    ) -> list[Transaction]:
        gross = folded.gross_key(order_id)
        self._need(booked={redemption_id}, keys={gross} if gross else set())
        bookings = [
            *self._by_redemption.get(redemption_id, {}).values(),
            *(self._by_key.get(gross, {}).values() if gross else ()),
        ]
        entries = [e for b in bookings for e in self._entries.get(b.ord, {}).values()]
        return folded.transactions_of_redemption(bookings, entries, redemption_id, order_id, before)

    def _need(
        self,
        noted: Iterable[str] = (),
        parents: Iterable[str] = (),
        booked: Iterable[str] = (),
        keys: Iterable[str] = (),
    ) -> None:
        asks = Asks(set(noted), set(parents), set(booked), set(keys)).minus(self._read)
        if not asks:
            return
        if self.asking is not None:
            self.asking.add(asks)
            raise Unknown
        self.fetch(asks)  # not asked for beforehand: read now

    def _add_notes(self, notes: Iterable[Note]) -> None:
        for note in notes:
            self._notes.setdefault(note.redemption_id, {})[note.ord] = note
            if note.parent_id:
                self._children.setdefault(note.parent_id, set()).add(note.redemption_id)

    def _add_bookings(self, bookings: Iterable[Booking], entries: Iterable[Entry]) -> None:
        for booking in bookings:
            if booking.redemption:
                self._by_redemption.setdefault(booking.redemption, {})[booking.ord] = booking
            self._by_key.setdefault(booking.key, {})[booking.ord] = booking
        for entry in entries:
            self._entries.setdefault(entry.ord, {})[entry.pos] = entry
