"""The books a rebuild folds on, in its main process: in memory only what later events read,
the rest in the fold's tables (`models.db.fold_store`), written batch after batch.

Kept in memory, bounded by the cards, never by the log's length: each loyalty card's state and
each card's movements at its latest times (`Window`); for one batch of events, the reports
kept of the movements it reports and the ledger's rows its handlers ask about
(`workers.rebuild_ledger`). A rollback, whose original may come later in the log, is folded
once the rest is (`workers.rebuild_later`): during the fold, its handler's first question
sets it aside (`Later`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection

from models.cards import LATEST_TIMES, Movement
from models.db import fold_reads, fold_store
from models.journal import Transaction
from models.ledger import Booked, Redemption, StackCheck
from models.loyalty import CardState
from workers.handlers.books import Books
from workers.rebuild_ledger import Asks, LedgerRows, Unknown
from workers.rebuild_shard import Staged

KEPT_TIMES = LATEST_TIMES + 2
"""The times of a card a `Window` holds: a few more than the newest movement needs, so that
one replaced report seldom sends it back to the table."""

CardKey = tuple[str, str]


class Later(Exception):
    """The event is a rollback's, folded once the rest is."""

    def __init__(self, original_id: str) -> None:
        super().__init__(original_id)
        self.original_id = original_id


@dataclass
class Window:
    """A card's kept reports at its latest times: every one of them at or after `floor`
    (None: every one of the card's)."""

    at: dict[datetime, dict[str, Movement]] = field(default_factory=dict)
    floor: datetime | None = None

    def put(self, kept: Movement, replaced: Movement | None) -> None:
        if replaced is not None:
            there = self.at.get(replaced.at)
            if there is not None and there.pop(replaced.key, None) is not None and not there:
                del self.at[replaced.at]
        if self.floor is not None and kept.at < self.floor:
            return  # older than what the window holds: the table has it
        self.at.setdefault(kept.at, {})[kept.key] = kept
        if len(self.at) > KEPT_TIMES:
            del self.at[min(self.at)]
            self.floor = min(self.at)

    @property
    def complete(self) -> bool:
        """It holds the card's latest times, as many as the newest movement reads."""
        return self.floor is None or len(self.at) >= LATEST_TIMES

    def newest(self) -> list[Movement]:
        return [m for at in sorted(self.at)[-LATEST_TIMES:] for m in self.at[at].values()]


class FoldBooks(Books):
    """Books of a rebuild's main process (see the module's docstring). Like `ShardBooks`, a
    booking is staged whatever was booked before: the first of a key stands, settled at the
    end."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.staged = Staged()
        self.ledger = LedgerRows(conn, self.staged)
        self.later = True
        """A rollback's question sets its event aside (`Later`): until the rest is folded."""
        self.holds: dict[str, list[str]] = {}
        """Held rollbacks by the original they wait for, in the order they were held."""
        self.cards: dict[str, CardState] = {}
        self._windows: dict[str, Window] = {}
        self._known: dict[CardKey, Movement | None] = {}
        """The report kept of each movement of this batch (None: none yet)."""
        self._puts: dict[CardKey, Movement] = {}
        """Reports kept since the table was last written."""
        self._next = 0

    # --- places and batches -----------------------------------------------------------------

    def at(self, place: int) -> None:
        """What comes next is at `place` in the fold."""
        self._next = place

    def _take(self) -> int:
        self._next += 1
        return self._next - 1

    def ask(self, asks: Asks) -> None:
        """Run the handlers only to find what they ask (see `workers.rebuild_ledger`): until
        `answer`, an unknown read is added to `asks` and raises `Unknown`, writes do nothing."""
        self.ledger.asking = asks

    def answer(self, asks: Asks) -> None:
        """Read at once what was asked; the handlers run for real from now on."""
        self.ledger.asking = None
        self.ledger.fetch(asks)
        self.expect(asks.movements)

    @property
    def _asking(self) -> Asks | None:
        return self.ledger.asking

    def expect(self, pairs: Collection[CardKey]) -> None:
        """Read at once the reports kept of the movements the next events report."""
        wanted = [pair for pair in pairs if pair not in self._known]
        if not wanted:
            return
        self._write_puts()
        found = fold_reads.kept(self.conn, wanted)
        for pair in wanted:
            self._known[pair] = found.get(pair)

    def end_batch(self) -> None:
        """Write what is staged; forget what the batch read."""
        staged = self.staged
        if staged.transactions or staged.notes:
            fold_store.add_bookings(self.conn, staged.transactions, staged.postings, staged.notes)
            staged.clear()
        self._write_puts()
        self._known.clear()
        self.ledger.clear()

    def _write_puts(self) -> None:
        if self._puts:
            rows = [fold_store.movement_row(m) for m in self._puts.values()]
            fold_store.put_movements(self.conn, rows)
            self._puts.clear()

    # --- the ledger -------------------------------------------------------------------------

    def book(self, transaction: Transaction, event_id: str, at: datetime) -> Booked:
        if self._asking is None:
            self.ledger.staged_booking(*self.staged.book(self._take(), transaction, event_id))
        return "booked"

    def lock_redemption(self, redemption_id: str) -> None:
        pass  # one writer: nothing to serialise

    def note_redemption(self, note: Redemption) -> list[str]:
        if self._asking is not None:
            return []
        self.ledger.staged_note(self.staged.note(self._take(), note))
        return self.holds.pop(note.redemption_id, [])

    def redemption_seen(self, redemption_id: str) -> bool:
        if self.later:
            raise Later(redemption_id)
        return self.ledger.seen(redemption_id, self._next)

    def hold(self, original_id: str, event_id: str) -> None:
        if self.later:
            raise Later(original_id)
        if self._asking is not None:
            return
        held = self.holds.setdefault(original_id, [])
        if event_id not in held:
            held.append(event_id)

    def transactions_of_redemption(
        self, redemption_id: str, order_id: str | None
    ) -> list[Transaction]:
        if self.later:
            raise Later(redemption_id)
        return self.ledger.transactions_of_redemption(redemption_id, order_id, self._next)

    def stack(self, parent_id: str) -> StackCheck:
        return self.ledger.stack(parent_id, self._next)

    # --- the cards --------------------------------------------------------------------------

    def lock_card(self, card_id: str) -> None:
        pass  # one writer: nothing to serialise

    def movement(self, card_id: str, key: str) -> Movement | None:
        pair = (card_id, key)
        if pair not in self._known:
            if self._asking is not None:
                self._asking.movements.add(pair)
                raise Unknown
            self.expect([pair])  # not expected: read now
        return self._known[pair]

    def put_movement(self, kept: Movement, *, new: bool) -> None:
        if self._asking is not None:
            return
        pair = (kept.card_id, kept.key)
        replaced = self._known.get(pair)
        self._known[pair] = self._puts[pair] = kept
        self._window(kept.card_id).put(kept, replaced)

    def newest_movements(self, card_id: str) -> list[Movement]:
        window = self._window(card_id)
        if not window.complete:
            self._write_puts()
            found, whole = fold_reads.latest(self.conn, card_id, KEPT_TIMES)
            window = self._windows[card_id] = Window()
            for movement in found:
                window.at.setdefault(movement.at, {})[movement.key] = movement
            window.floor = None if whole else min(window.at)
        return window.newest()

    def _window(self, card_id: str) -> Window:
        window = self._windows.get(card_id)
        if window is None:
            window = self._windows[card_id] = Window()
        return window

    def load_card(self, card_id: str) -> CardState | None:
        return self.cards.get(card_id)

    def save_card(self, state: CardState, at: datetime) -> None:
        if self._asking is None:
            self.cards[state.card_id] = state
