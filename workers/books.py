"""Where the ledger and loyalty handlers keep their effects: the database, or memory.

Live processing uses `SqlBooks` (the SQL of `models.ledger_store` and `models.card_store` on
the handler's connection). A rebuild runs the very same handlers on `MemoryBooks`, then writes
the result in bulk: one set of rules, two places to keep their results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sqlalchemy import Connection

from models import card_store, ledger_store, redemption_store
from models.journal import Transaction
from models.ledger_store import Booked, digest
from models.loyalty import CardState
from models.redemption_store import Redemption


class Books(Protocol):
    def book(self, transaction: Transaction, event_id: str, at: datetime) -> Booked: ...
    def lock_redemption(self, redemption_id: str) -> None: ...
    def note_redemption(self, note: Redemption) -> list[str]: ...
    def redemption_seen(self, redemption_id: str) -> bool: ...
    def release(self, original_id: str) -> list[str]: ...
    def hold(self, original_id: str, event_id: str) -> None: ...
    def transactions_of_redemption(
        self, redemption_id: str, order_id: str | None
    ) -> list[Transaction]: ...
    def stack(self, parent_id: str) -> tuple[int | None, int, int]: ...
    def first_sighting(self, source_id: str, card_id: str, event_id: str, points: int) -> bool: ...
    def load_card(self, card_id: str) -> CardState | None: ...
    def insert_card(self, state: CardState, at: datetime) -> bool: ...
    def save_card(self, state: CardState, at: datetime) -> None: ...


@dataclass
class SqlBooks:
    conn: Connection

    def book(self, transaction: Transaction, event_id: str, at: datetime) -> Booked:
        return ledger_store.book(self.conn, transaction, event_id, at)

    def lock_redemption(self, redemption_id: str) -> None:
        redemption_store.lock_redemption(self.conn, redemption_id)

    def note_redemption(self, note: Redemption) -> list[str]:
        return redemption_store.note_redemption(self.conn, note)

    def redemption_seen(self, redemption_id: str) -> bool:
        return redemption_store.redemption_seen(self.conn, redemption_id)

    def release(self, original_id: str) -> list[str]:
        return redemption_store.release(self.conn, original_id)

    def hold(self, original_id: str, event_id: str) -> None:
        redemption_store.hold(self.conn, original_id, event_id)

    def transactions_of_redemption(
        self, redemption_id: str, order_id: str | None
    ) -> list[Transaction]:
        return ledger_store.transactions_of_redemption(self.conn, redemption_id, order_id)

    def stack(self, parent_id: str) -> tuple[int | None, int, int]:
        return redemption_store.stack(self.conn, parent_id)

    def first_sighting(self, source_id: str, card_id: str, event_id: str, points: int) -> bool:
        return card_store.first_sighting(self.conn, source_id, card_id, event_id, points)

    def load_card(self, card_id: str) -> CardState | None:
        return card_store.load_for_update(self.conn, card_id)

    def insert_card(self, state: CardState, at: datetime) -> bool:
        return card_store.insert_new(self.conn, state, at)

    def save_card(self, state: CardState, at: datetime) -> None:
        card_store.save(self.conn, state, at)


@dataclass
class MemoryBooks:
    """The same effects in dictionaries; `write` puts them in the database in bulk."""

    transactions: dict[str, tuple[Transaction, str, str, datetime]] = field(default_factory=dict)
    redemptions: dict[str, Redemption] = field(default_factory=dict)
    holds: dict[str, list[str]] = field(default_factory=dict)
    movements: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    cards: dict[str, tuple[CardState, datetime]] = field(default_factory=dict)
    # Indexes, so that a whole log folds in linear time.
    _children: dict[str, list[Redemption]] = field(default_factory=dict)
    _keys_of: dict[str, list[str]] = field(default_factory=dict)

    def book(self, transaction: Transaction, event_id: str, at: datetime) -> Booked:
        own = digest(transaction)
        booked = self.transactions.get(transaction.key)
        if booked is None:
            self.transactions[transaction.key] = (transaction, own, event_id, at)
            if transaction.key.startswith("redemption:"):
                redemption_id = transaction.key.split(":", 2)[1]
                self._keys_of.setdefault(redemption_id, []).append(transaction.key)
            return "booked"
        return "unchanged" if booked[1] == own else "conflict"

    def lock_redemption(self, redemption_id: str) -> None:
        pass  # one writer: nothing to serialise

    def note_redemption(self, note: Redemption) -> list[str]:
        if note.redemption_id not in self.redemptions:
            self.redemptions[note.redemption_id] = note
            if note.parent_id:
                self._children.setdefault(note.parent_id, []).append(note)
        return self.release(note.redemption_id)

    def redemption_seen(self, redemption_id: str) -> bool:
        return redemption_id in self.redemptions

    def release(self, original_id: str) -> list[str]:
        return self.holds.pop(original_id, [])

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
        return [self.transactions[key][0] for key in keys]

    def stack(self, parent_id: str) -> tuple[int | None, int, int]:
        parent = self.redemptions.get(parent_id)
        children = [r.applied for r in self._children.get(parent_id, ())]
        return (parent.applied if parent else None), sum(children), len(children)

    def first_sighting(self, source_id: str, card_id: str, event_id: str, points: int) -> bool:
        if source_id in self.movements:
            return False
        self.movements[source_id] = (card_id, event_id, points)
        return True

    def load_card(self, card_id: str) -> CardState | None:
        found = self.cards.get(card_id)
        return found[0] if found else None

    def insert_card(self, state: CardState, at: datetime) -> bool:
        if state.card_id in self.cards:
            return False
        self.cards[state.card_id] = (state, at)
        return True

    def save_card(self, state: CardState, at: datetime) -> None:
        self.cards[state.card_id] = (state, at)

    def write(self, conn: Connection) -> None:
        """Replace the ledger and the cards in the database with these."""
        ledger_store.clear(conn)
        card_store.clear(conn)
        ledger_store.write_all(
            conn,
            [(t, own, event_id, at) for t, own, event_id, at in self.transactions.values()],
            list(self.redemptions.values()),
            [(original, event_id) for original, held in self.holds.items() for event_id in held],
        )
        card_store.write_all(
            conn,
            [(source, *movement) for source, movement in self.movements.items()],
            list(self.cards.values()),
        )
