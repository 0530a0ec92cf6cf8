"""Rebuild: fold the event log again, in receipt order, and make the books what it computes.

The events folded are those whose ledger or loyalty handler is done (or, for the ledger,
holding a rollback): the rebuilt state is what live processing computed, made again from the
log with the same handlers, on books in memory. Then each table of the books is read once and
only the rows that differ from the computed ones are replaced (rebuilding books that were
right writes nothing). It all happens in one transaction that excludes the handlers writing
those tables, so deliveries keep arriving and are processed right after, and nothing
committed meanwhile is wiped.

The log is read on a second connection, by a thread, while the handlers fold what was read:
the database's work overlaps with theirs. The runs folded cannot change meanwhile (their
handlers wait for the rebuild), so it reads the same log as the rebuild's transaction would.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine

from models.changes import Rows, Sequences
from models.db import ledger_store, run_store
from models.db.books_store import PARTS, Part
from models.db.digest import DIGESTED, StateDigest
from models.routing import ORDER
from models.voucherify import load_json, parse_payload
from workers.books import MemoryBooks
from workers.handlers import BY_NAME
from workers.handlers.base import Config, Job
from workers.read_ahead import ReadAhead

FOLDED = {handler.name: handler.rebuilt for handler in ORDER if handler.rebuilt}
"""The handlers a rebuild runs again, in run order, and the statuses of their runs that it
folds (`models.routing.Handler.rebuilt`)."""


@dataclass(frozen=True)
class Rebuilt:
    events: int
    before: str
    after: str
    written: int
    """Rows deleted or inserted: 0 when the books already were what the log implies."""


def digest(conn: Connection) -> str:
    """The digest of the books in the database."""
    state = StateDigest()
    for part in DIGESTED:
        for rows in part.read(conn):
            state.add(part, rows)
    return state.hexdigest()


def rebuild(
    engine: Engine, config: Config, advance: Callable[[int], None] = lambda _n: None
) -> Rebuilt:
    # The fold keeps millions of small objects alive until the end: the cyclic garbage
    # collector would rescan them again and again, for nothing to free.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _rebuild(engine, config, advance)
    finally:
        if collecting:
            gc.enable()


def _rebuild(engine: Engine, config: Config, advance: Callable[[int], None]) -> Rebuilt:
    now = datetime.now(UTC)
    books = MemoryBooks()
    with engine.begin() as conn:
        ledger_store.rebuild_guard(conn, exclusive=True)
        with engine.connect() as log, ReadAhead(run_store.events_with(log, FOLDED)) as pages:
            events = _fold(pages, books, config, now, advance)
        rows = books.rows()
        before, after, written = StateDigest(), StateDigest(), 0
        for part in PARTS:  # postings after their transactions
            after.add_computed(part, rows[part])
            written += _replace(conn, part, rows[part], before, now)
        digest_before = before.hexdigest()
        digest_after = digest_before if after == before else after.hexdigest()
        return Rebuilt(events, digest_before, digest_after, written)


def _fold(
    pages: Iterable[list[run_store.EventRuns]],
    books: MemoryBooks,
    config: Config,
    now: datetime,
    advance: Callable[[int], None],
) -> int:
    """Run the handlers of each event on `books`, in receipt order; the events folded."""
    held: dict[str, tuple[str, Job]] = {}  # event id -> the handler that held it, its job
    folded = 0
    for page in pages:
        for event in page:
            body = load_json(event.body)
            payload = parse_payload(event.type, body)
            job = Job(books, event.id, event.type, payload, body, now, config)
            for name in event.handlers:
                if BY_NAME[name](job).status == "held":
                    held[event.id] = (name, job)
            for released in job.released:  # rollbacks that waited for this original
                if released in held:
                    name, waiting = held.pop(released)
                    BY_NAME[name](waiting)
        folded += len(page)
        advance(len(page))
    return folded


def _replace(
    conn: Connection, part: Part, computed: Mapping[Any, Any], state: StateDigest, at: datetime
) -> int:
    """Read the part's stored rows into `state` and replace those that differ from
    `computed`; the rows written."""
    diff = Sequences(computed) if part.sequence else Rows(computed)
    with ReadAhead(part.read(conn)) as stored:
        for rows in stored:
            state.add(part, rows)
            diff.read(rows)
    changes = diff.changes()
    return part.replace(conn, changes.stale, {key: computed[key] for key in changes.fresh}, at)
