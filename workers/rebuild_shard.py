"""A rebuild's fold, the part of each event that needs nothing but the event: run in several
processes at once, a range of the log each.

For each event: its payload parsed, the ledger handler run on `ShardBooks` (which stages its
bookings and notes as rows of the fold's tables, `models.db.fold_store`), and the card report
of the loyalty handler (`workers.handlers.loyalty.report`). What needs the fold so far (a
rollback's original, a stack's notes, a card's movements) is left to the main process, which
applies the shards in receipt order (`workers.rebuild_books.FoldBooks`): an event whose handler
asks the books such a question is handed back whole (`Forwarded`) and folded there.

Every row carries its place in the fold (`place`): the event's receipt sequence, then the
order of the row within the event, so the main process can tell what came before what.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import NoReturn

from sqlalchemy import Connection, Engine

from models.cards import Movement
from models.db import bulk_io as bulk
from models.db import fold_store, run_store
from models.db.engine import make_engine
from models.db.run_store import EventRuns
from models.folded import Booking, Entry, Note
from models.journal import Transaction
from models.ledger import Booked, Redemption, StackCheck
from models.loyalty import CardState
from models.routing import LOYALTY, ORDER
from models.voucherify import load_json, parse_payload
from workers.handlers import BY_NAME, loyalty
from workers.handlers.base import Config, Job
from workers.handlers.books import Books
from workers.templates import environment

FOLDED = {handler.name: handler.rebuilt for handler in ORDER if handler.rebuilt}
"""The handlers a rebuild runs again, in run order, and the statuses of their runs that it
folds (`models.routing.Handler.rebuilt`)."""

PLACE_BITS = 20
RELEASED = 1 << (PLACE_BITS - 1)
"""Places from here on within an event: the rollbacks it released, after its own rows."""


def place(seq: int, n: int = 0) -> int:
    """The place in the fold of an event's `n`th row."""
    return seq << PLACE_BITS | n


@dataclass
class Staged:
    """Rows for the fold's tables (`models.db.fold_store`), in the order they were made."""

    transactions: list[Booking] = field(default_factory=list)
    postings: list[Entry] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    def book(self, at: int, transaction: Transaction, event_id: str) -> tuple[Booking, list[Entry]]:
        booking, entries = fold_store.booking_rows(at, transaction, event_id)
        self.transactions.append(booking)
        self.postings.extend(entries)
        return booking, entries

    def note(self, at: int, note: Redemption) -> Note:
        row = fold_store.note_row(at, note)
        self.notes.append(row)
        return row

    def marks(self) -> tuple[int, int, int]:
        return len(self.transactions), len(self.postings), len(self.notes)

    def undo(self, marks: tuple[int, int, int]) -> None:
        """Forget the rows made since `marks`."""
        del self.transactions[marks[0] :], self.postings[marks[1] :], self.notes[marks[2] :]

    def clear(self) -> None:
        self.transactions, self.postings, self.notes = [], [], []


class Forward(Exception):
    """The handler asked what only the fold so far knows: the event is folded by the main
    process."""


class ShardBooks(Books):
    """Books that stage a handler's bookings and notes, and answer nothing else.

    A booking is staged whatever was booked before: which booking of a key stands, and
    whether a later one differs from it (a conflict, which fails the rebuild), is settled
    over the whole log at its end (`models.db.fold_store.settle`). Releasing the rollbacks
    a note was waiting for is the main process's work (it holds them)."""

    def __init__(self) -> None:
        self.staged = Staged()
        self._next = 0

    def start(self, seq: int) -> None:
        self._next = place(seq)

    def _take(self) -> int:
        self._next += 1
        return self._next - 1

    def book(self, transaction: Transaction, event_id: str, at: datetime) -> Booked:
        self.staged.book(self._take(), transaction, event_id)
        return "booked"

    def lock_redemption(self, redemption_id: str) -> None:
        pass  # nothing is written here that another process could race

    def note_redemption(self, note: Redemption) -> list[str]:
        self.staged.note(self._take(), note)
        return []

    def redemption_seen(self, redemption_id: str) -> bool:
        raise Forward

    def hold(self, original_id: str, event_id: str) -> None:
        raise Forward

    def transactions_of_redemption(
        self, redemption_id: str, order_id: str | None
    ) -> list[Transaction]:
        raise Forward

    def stack(self, parent_id: str) -> StackCheck:
        raise Forward

    # A card's state is the main process's: a handler that reaches for it is forwarded.
    def lock_card(self, card_id: str) -> None:
        raise Forward

    def movement(self, card_id: str, key: str) -> Movement | None:
        raise Forward

    def put_movement(self, kept: Movement, *, new: bool) -> NoReturn:
        raise Forward

    def newest_movements(self, card_id: str) -> list[Movement]:
        raise Forward

    def load_card(self, card_id: str) -> CardState | None:
        raise Forward

    def save_card(self, state: CardState, at: datetime) -> NoReturn:
        raise Forward


@dataclass(frozen=True)
class Folded:
    """An event this part folded: what is left to the main process, in receipt order."""

    seq: int
    report: loyalty.Report | None
    """Its card report, to apply (None: no loyalty handler, or no card)."""


@dataclass(frozen=True)
class Forwarded:
    """An event the main process folds whole."""

    seq: int
    event: EventRuns


@dataclass
class Shard:
    """What the fold of one range of the log hands to the main process."""

    bookings: tuple[fold_store.Rows, fold_store.Rows, fold_store.Rows]
    """The staged transactions, postings and notes (`models.db.fold_store.add_bookings`)."""
    steps: list[Folded | Forwarded]
    events: int


def fold_shard(
    events: list[EventRuns], config: Config, now: datetime, encode: Connection | None = None
) -> Shard:
    """Fold what each event alone tells (see the module's docstring). With `encode` (on
    PostgreSQL), the rows staged are handed over in COPY's text format, made through it."""
    books = ShardBooks()
    steps: list[Folded | Forwarded] = []
    for event in events:
        body = load_json(event.body)
        payload = parse_payload(event.type, body)
        job = Job(books, event.id, event.type, payload, body, now, config)
        marks = books.staged.marks()
        books.start(event.seq)
        report = None
        try:
            for name in event.handlers:
                if name == LOYALTY.name:
                    report = loyalty.report(job)
                else:
                    BY_NAME[name](job)
        except Forward:
            books.staged.undo(marks)
            steps.append(Forwarded(event.seq, event))
            continue
        steps.append(Folded(event.seq, report))
    staged = books.staged
    rows = (staged.transactions, staged.postings, staged.notes)
    if encode is None:
        return Shard(rows, steps, len(events))
    encoded = [bulk.copy_text(encode, table) for table in rows]
    return Shard((encoded[0], encoded[1], encoded[2]), steps, len(events))


# --- in a process of its own --------------------------------------------------------------

_process: tuple[Engine, Config, datetime] | None = None


def start_process(
    database_url: str, currency: str, email: bool, webhook: bool, now: datetime
) -> None:
    """A folding process's set-up: its own connection to the log, and the handlers' config
    (no templates: the handlers folded render nothing)."""
    global _process
    config = Config(currency, environment(None), email=email, webhook=webhook)
    _process = (make_engine(database_url, pool_size=1), config, now)


def fold_range(first: int, last: int) -> Shard:
    """Fold the events of sequences `first` to `last` (see `fold_shard`)."""
    assert _process is not None, "start_process first"
    engine, config, now = _process
    with engine.connect() as conn:
        events = [
            event
            for page in run_store.events_with(conn, FOLDED, after=first - 1, until=last)
            for event in page
        ]
        # On PostgreSQL the rows go as COPY's text, made here: the main process passes it on.
        return fold_shard(
            events, config, now, conn if engine.dialect.name == "postgresql" else None
        )
