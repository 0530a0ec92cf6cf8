"""What books folded so far answer, read from their rows: the rows a rebuild's fold writes, each
with its place in the fold (`ord`), among which the first note of a redemption and the first
booking of a key stand (as books keep them: a later one changes nothing).

Pure: the rows are given (read from the fold's tables, or staged in memory), and each answer
is for an asker at a place, from the rows placed before it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from models.journal import Posting, Transaction
from models.ledger import StackCheck


class Note(NamedTuple):
    """A note of a redemption (`models.ledger.Redemption`) at its place."""

    ord: int
    redemption_id: str
    role: str
    parent_id: str | None
    order_id: str | None
    applied: int
    event_id: str


class Booking(NamedTuple):
    """A booking of a transaction at its place; its postings are `Entry` rows."""

    ord: int
    key: str
    redemption: str | None
    """The redemption of a `redemption:{id}:…` key (`redemption_of`), else None."""
    event_id: str
    digest: str
    memo: str


class Entry(NamedTuple):
    """A posting of the booking at `ord`, the `pos`th (from 1)."""

    ord: int
    pos: int
    account: str
    asset: str
    amount: int


def redemption_of(key: str) -> str | None:
    """The redemption whose own transaction `key` is (`redemption:{id}:…`), as the books in
    memory index them."""
    return key.split(":", 2)[1] if key.startswith("redemption:") else None


def seen(notes: Iterable[Note], redemption_id: str, before: int) -> bool:
    return any(n.redemption_id == redemption_id and n.ord < before for n in notes)


def stack(notes: Iterable[Note], parent_id: str, before: int) -> StackCheck:
    """The parent's first note against its children's: a child counts by its first note,
    whatever parent a later one names. `notes`: at least every note of the parent and of each
    redemption a note names as its child."""
    first: dict[str, Note] = {}
    for note in sorted(n for n in notes if n.ord < before):
        first.setdefault(note.redemption_id, note)
    children = [n.applied for n in first.values() if n.parent_id == parent_id]
    parent = first.get(parent_id)
    return StackCheck(
        parent_id,
        expected=None if parent is None else parent.applied,
        booked=sum(children),
        children=len(children),
    )


def gross_key(order_id: str | None) -> str | None:
    return f"order:{order_id}:gross" if order_id else None


def transactions_of_redemption(
    bookings: Iterable[Booking],
    entries: Iterable[Entry],
    redemption_id: str,
    order_id: str | None,
    before: int,
) -> list[Transaction]:
    """What stands, before `before`, of the redemption's own transactions (in the order they
    were booked), then of its order's gross. `bookings`: at least every booking of those keys,
    `entries` at least their postings."""
    gross = gross_key(order_id)
    first: dict[str, Booking] = {}
    for booking in sorted(bookings):
        if booking.ord < before and (booking.redemption == redemption_id or booking.key == gross):
            first.setdefault(booking.key, booking)
    standing = {booking.ord: booking for booking in first.values()}
    postings: dict[int, list[Posting]] = {}
    for entry in sorted(e for e in entries if e.ord in standing):
        postings.setdefault(entry.ord, []).append(Posting(entry.account, entry.asset, entry.amount))
    found = [
        Transaction(booking.key, tuple(postings[at]), booking.memo)
        for at, booking in sorted(standing.items())
    ]
    return sorted(found, key=lambda transaction: transaction.key == gross)
