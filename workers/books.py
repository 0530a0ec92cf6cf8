"""Where the ledger and loyalty handlers keep their effects: the database, or memory.

Live processing uses `SqlBooks` (the SQL of `models.db.ledger_store` and `models.db.card_store` on
the handler's connection). A rebuild runs the very same handlers on `MemoryBooks`, then writes
what differs from the database in bulk: one set of rules, two places to keep their results.
Both implement `workers.handlers.books.Books`, the interface the handlers are written against.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from models.cards import LATEST_TIMES, Movement
from models.db import card_store, ledger_store, redemption_store
from models.db.books_store import CARDS, HOLDS, MOVEMENTS, POSTINGS, REDEMPTIONS, TRANSACTIONS, Part
from models.db.ledger_store import digest
from models.journal import Posting, Transaction
from models.ledger import Booked, Redemption, StackCheck
from models.loyalty import CardState
from workers.handlers.base import LedgerConflict
from workers.handlers.books import Books


@dataclass
class SqlBooks(Books):
    """The books in the database, for a batch of events in the caller's transaction.

    The ledger's writes (bookings, redemption locks and notes, holds) are staged and written
    together by `flush`: a few statements per batch rather than a few per event. What the
    stage knows (a key or a redemption of this batch) is answered from it; every other read of
    the ledger flushes first, so a handler sees all that was written before it, and a lock is
    taken before what it protects is read. A booking answers "booked" until the database has
    seen it: a conflict with a booked key raises `LedgerConflict` at the flush (one event per
    batch, when the processing isolates it). The cards are read and written at once.
    """

    conn: Connection
    released: list[str] = field(default_factory=list)
    """Held events that the flushed notes released: to publish after the commit."""
    _bookings: dict[str, tuple[Transaction, str, datetime]] = field(default_factory=dict)
    _locks: set[str] = field(default_factory=set)
    _notes: dict[str, Redemption] = field(default_factory=dict)
    _holds: dict[str, dict[str, None]] = field(default_factory=dict)
    """Held events by the original they wait for, in the order they were held."""

    def book(self, transaction: Transaction, event_id: str, at: datetime) -> Booked:
        staged = self._bookings.get(transaction.key)
        if staged is None:
            self._bookings[transaction.key] = (transaction, event_id, at)
            return "booked"
        return "unchanged" if digest(staged[0]) == digest(transaction) else "conflict"

    def lock_redemption(self, redemption_id: str) -> None:
        self._locks.add(redemption_id)

    def note_redemption(self, note: Redemption) -> list[str]:
        self._notes.setdefault(note.redemption_id, note)
        return list(self._holds.pop(note.redemption_id, {}))

    def redemption_seen(self, redemption_id: str) -> bool:
        if redemption_id in self._notes:
            return True
        self.flush()
        return redemption_store.redemption_seen(self.conn, redemption_id)

    def hold(self, original_id: str, event_id: str) -> None:
        self._holds.setdefault(original_id, {})[event_id] = None

    def transactions_of_redemption(
        self, redemption_id: str, order_id: str | None
    ) -> list[Transaction]:
        self.flush()
        return ledger_store.transactions_of_redemption(self.conn, redemption_id, order_id)

    def stack(self, parent_id: str) -> StackCheck:
        self.flush()
        return redemption_store.stack(self.conn, parent_id)

    def lock_card(self, card_id: str) -> None:
        card_store.lock_card(self.conn, card_id)

    def movement(self, card_id: str, key: str) -> Movement | None:
        return card_store.movement(self.conn, card_id, key)

    def put_movement(self, kept: Movement, *, new: bool) -> None:
        card_store.put_movement(self.conn, kept, new=new)

    def newest_movements(self, card_id: str) -> list[Movement]:
        return card_store.newest_movements(self.conn, card_id)

    def load_card(self, card_id: str) -> CardState | None:
        return card_store.load_for_update(self.conn, card_id)

    def save_card(self, state: CardState, at: datetime) -> None:
        card_store.save(self.conn, state, at)

    def flush(self) -> None:
        """Write what is staged: the locks first, then what they protect."""
        redemption_store.lock_redemptions(self.conn, self._locks)
        self._locks.clear()
        bookings, self._bookings = self._bookings, {}
        verdicts = ledger_store.book(self.conn, list(bookings.values()))
        for key, verdict in verdicts.items():
            if verdict == "conflict":
                raise LedgerConflict(bookings[key][0])
        redemption_store.hold(
            self.conn,
            [(original, held) for original, events in self._holds.items() for held in events],
        )
        self._holds.clear()
        notes, self._notes = self._notes, {}
        self.released.extend(redemption_store.note_redemptions(self.conn, list(notes.values())))


@dataclass
class MemoryBooks(Books):
    """The same effects in dictionaries, held as the rows of the books' tables (the parts of
    `models.db.books_store`), which `rows` hands to a rebuild. The rebuild stamps the rows it
    writes with its own time, so the times handlers pass are not kept."""

    transactions: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    """Key -> (event id, digest, memo), as `books_store.TRANSACTIONS`."""
    postings: dict[str, tuple[tuple[str, str, int], ...]] = field(default_factory=dict)
    """Key -> its postings, as `books_store.POSTINGS`."""
    redemptions: dict[str, tuple[str, str | None, str | None, int, str]] = field(
        default_factory=dict
    )
    """Redemption id -> (role, parent id, order id, applied, event id), as
    `books_store.REDEMPTIONS`."""
    holds: dict[str, list[str]] = field(default_factory=dict)
    movements: dict[str, dict[str, Movement]] = field(default_factory=dict)
    """Card id -> movement key -> the report kept, as `books_store.MOVEMENTS`."""
    cards: dict[str, CardState] = field(default_factory=dict)
    # Indexes, so that a whole log folds in linear time.
    _applied_by_children: dict[str, list[int]] = field(default_factory=dict)
    _keys_of: dict[str, list[str]] = field(default_factory=dict)
    _times: dict[str, dict[datetime, set[str]]] = field(default_factory=dict)
    """Card id -> time -> the keys of its movements at that time."""
    _ordered: dict[str, list[datetime]] = field(default_factory=dict)
    """Card id -> its times, in order."""

    def book(self, transaction: Transaction, event_id: str, at: datetime) -> Booked:
        key, own = transaction.key, digest(transaction)
        booked = self.transactions.get(key)
        if booked is not None:
            return "unchanged" if booked[1] == own else "conflict"
        self.transactions[key] = (event_id, own, transaction.memo)
        self.postings[key] = tuple([(p.account, p.asset, p.amount) for p in transaction.postings])
        if key.startswith("redemption:"):
            self._keys_of.setdefault(key.split(":", 2)[1], []).append(key)
        return "booked"

    def lock_redemption(self, redemption_id: str) -> None:
        pass  # one writer: nothing to serialise

    def note_redemption(self, note: Redemption) -> list[str]:
        if note.redemption_id not in self.redemptions:
            self.redemptions[note.redemption_id] = (
                note.role,
                note.parent_id,
                note.order_id,
                note.applied,
                note.event_id,
            )
            if note.parent_id:
                self._applied_by_children.setdefault(note.parent_id, []).append(note.applied)
        return self.holds.pop(note.redemption_id, [])

    def redemption_seen(self, redemption_id: str) -> bool:
        return redemption_id in self.redemptions

    def hold(self, original_id: str, event_id: str) -> None:
        held = self.holds.setdefault(original_id, [])
        if event_id not in held:
            held.append(event_id)

    def transactions_of_redemption(
        self, redemption_id: str, order_id: str | None
    ) -> list[Transaction]:
        keys = list(self._keys_of.get(redemption_id, ()))
        if order_id and f"order:{order_id}:gross" in self.transactions:
            keys.append(f"order:{order_id}:gross")
        return [
            Transaction(
                key, tuple(Posting(*p) for p in self.postings[key]), self.transactions[key][2]
            )
            for key in keys
        ]

    def stack(self, parent_id: str) -> StackCheck:
        parent = self.redemptions.get(parent_id)
        children = self._applied_by_children.get(parent_id, [])
        return StackCheck(
            parent_id,
            expected=parent[3] if parent else None,
            booked=sum(children),
            children=len(children),
        )

    def lock_card(self, card_id: str) -> None:
        pass  # one writer: nothing to serialise

    def movement(self, card_id: str, key: str) -> Movement | None:
        return self.movements.get(card_id, {}).get(key)

    def put_movement(self, kept: Movement, *, new: bool) -> None:
        movements = self.movements.setdefault(kept.card_id, {})
        times = self._times.setdefault(kept.card_id, {})
        ordered = self._ordered.setdefault(kept.card_id, [])
        replaced = movements.get(kept.key)
        if replaced is not None:
            times[replaced.at].discard(kept.key)
            if not times[replaced.at]:
                del times[replaced.at]
                ordered.remove(replaced.at)
        movements[kept.key] = kept
        if kept.at not in times:
            # A log folds mostly in time order: a new time is nearly always the last.
            bisect.insort(ordered, kept.at)
        times.setdefault(kept.at, set()).add(kept.key)

    def newest_movements(self, card_id: str) -> list[Movement]:
        times = self._times.get(card_id, {})
        movements = self.movements.get(card_id, {})
        latest = self._ordered.get(card_id, [])[-LATEST_TIMES:]
        return [movements[key] for at in latest for key in times[at]]

    def load_card(self, card_id: str) -> CardState | None:
        return self.cards.get(card_id)

    def save_card(self, state: CardState, at: datetime) -> None:
        self.cards[state.card_id] = state

    def rows(self) -> dict[Part, Mapping[Any, Any]]:
        """Every row the books hold, by part: (key -> values, or for postings the sequence of
        a transaction's values)."""
        return {
            TRANSACTIONS: self.transactions,
            POSTINGS: self.postings,
            REDEMPTIONS: self.redemptions,
            HOLDS: {
                (original, event_id): ()
                for original, held in self.holds.items()
                for event_id in held
            },
            MOVEMENTS: {
                (m.card_id, m.key): (
                    m.kind,
                    m.type,
                    m.change,
                    m.after,
                    m.at,
                    m.envelope_at,
                    m.rank,
                    m.customer_id,
                    m.event_id,
                )
                for kept in self.movements.values()
                for m in kept.values()
            },
            CARDS: {
                c.card_id: (
                    c.customer_id,
                    c.balance,
                    c.as_of,
                    c.balance_source,
                    c.points_spent,
                    c.events,
                    list(c.flags),
                )
                for c in self.cards.values()
            },
        }
