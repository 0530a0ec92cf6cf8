"""Rebuild: fold the event log again, in receipt order, and make the books what it computes.

The events folded are those whose ledger or loyalty handler is done (or, for the ledger,
holding a rollback): the rebuilt state is what live processing computed, made again from the
log with the same handlers. It all happens in one transaction that excludes the handlers
writing the books, so deliveries keep arriving and are processed right after, and nothing
committed meanwhile is wiped (on PostgreSQL the digest of the books before is read on a
second connection meanwhile: the same books, as nothing can write them).

In memory bounded whatever the log's length. The log is folded a range at a time: what each
event tells alone (its payload, its bookings, its card report) by several processes at once
(`workers.rebuild_shard`), the rest in receipt order by this one (`workers.rebuild_books`),
every row computed streamed into temporary tables. At the end the database compares them
with the books, set against set, and replaces only the rows that differ (rebuilding books
that were right writes nothing); the digests of the books before and after are read in sorted
streams (`models.db.digest`).
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine

from models.db import fold_store, ledger_store, run_store
from models.db.books_store import PARTS
from models.db.digest import books_digest
from models.voucherify import load_json, parse_payload
from workers import rebuild_shard
from workers.handlers import BY_NAME, loyalty
from workers.handlers.base import Config, Job, LedgerConflict
from workers.read_ahead import ReadAhead
from workers.rebuild_books import FoldBooks, Later
from workers.rebuild_later import fold_later
from workers.rebuild_ledger import Asks, Unknown
from workers.rebuild_shard import FOLDED, Folded, Forwarded, Shard, fold_shard, place

SPAN = 1024
"""Sequences of the log per range: what a process folds at a time. Their bodies are what a
range weighs (about 5 MB for payloads of Voucherify's usual size), and a few ranges are in
memory at once: read ahead, being folded, folded by other processes and waiting."""
PARALLEL_FROM = 20_000
"""From how many sequences on the ranges are folded by other processes (below, starting them
costs more than it saves)."""
MAX_PROCESSES = 4
_START = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
"""A forked process starts at once, with every module this one imported (a spawned one
imports them again: seconds). It opens its own connection and never uses the ones it
inherits (`rebuild_shard.start_process`); it leaves through os._exit, closing none of them."""


@dataclass(frozen=True)
class Rebuilt:
    events: int
    before: str
    after: str
    written: int
    """Rows deleted or inserted: 0 when the books already were what the log implies."""


def digest(conn: Connection) -> str:
    """The digest of the books in the database."""
    return books_digest(conn)


def rebuild(
    engine: Engine,
    config: Config,
    advance: Callable[[int], None] = lambda _n: None,
    *,
    processes: int | None = None,
    span: int = SPAN,
) -> Rebuilt:
    """`processes`: how many fold the ranges (1: this one alone; None: one per CPU, up to
    `MAX_PROCESSES`, on PostgreSQL and a log of `PARALLEL_FROM` sequences or more)."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        ledger_store.rebuild_guard(conn, exclusive=True)
        # Read once the guard is held: an event stored later has no run the fold reads.
        bounds = run_store.sequence_range(conn)
        fold_store.create(conn)
        books = FoldBooks(conn)
        events = 0
        if bounds is not None:
            ranges = [
                (a, min(a + span - 1, bounds[1])) for a in range(bounds[0], bounds[1] + 1, span)
            ]
            workers = processes or _processes(engine, bounds)
            for shard in _shards(engine, ranges, workers, config, now):
                _apply(shard, books, config, now)
                events += shard.events
                advance(shard.events)
        with ThreadPoolExecutor(1) as aside:
            stored = aside.submit(_digest_aside, engine) if _aside(engine) else None
            fold_later(books, config, now)
            fold_store.put_cards(conn, books.cards.values())
            holds = [(o, e) for o, events_ in books.holds.items() for e in events_]
            fold_store.put_holds(conn, holds)
            conflict = fold_store.settle(conn)
            if conflict is not None:
                raise LedgerConflict(conflict)
            before = _digest_before(conn, stored)
        written = sum(part.replace_with(conn, fold_store.computed(part), now) for part in PARTS)
        after = books_digest(conn) if written else before
        fold_store.drop(conn)
        return Rebuilt(events, before, after, written)


def _aside(engine: Engine) -> bool:
    """Whether the digest of the books before is read on a connection of its own, while this
    one settles what was folded: on PostgreSQL (a second core then works on it). The guard
    keeps every writer of the books out until this transaction ends, so that connection reads
    what this one would."""
    return engine.dialect.name == "postgresql"


ASIDE_LOCK_TIMEOUT = "5s"
"""How long the second connection waits for a lock on the books (held by someone else, a
migration say) before it gives up and the digest is read here, where PostgreSQL sees every
wait and breaks a deadlock."""


def _digest_aside(engine: Engine) -> str:
    with engine.connect() as conn:
        ledger_store.wait_for_locks_at_most(conn, ASIDE_LOCK_TIMEOUT)
        return books_digest(conn)


def _digest_before(conn: Connection, aside: Future[str] | None) -> str:
    if aside is not None:
        try:
            return aside.result()
        except Exception:  # a lock waited for too long, a connection lost: read here instead
            pass
    return books_digest(conn)


def _processes(engine: Engine, bounds: tuple[int, int]) -> int:
    if engine.dialect.name != "postgresql" or bounds[1] - bounds[0] + 1 < PARALLEL_FROM:
        return 1
    return min(os.cpu_count() or 1, MAX_PROCESSES)


def _shards(
    engine: Engine, ranges: list[tuple[int, int]], processes: int, config: Config, now: datetime
) -> Iterator[Shard]:
    """The ranges folded, in order: here, or by `processes` processes, a few ranges ahead."""
    if processes <= 1:
        with engine.connect() as log, ReadAhead(_read(log, ranges), depth=1) as pages:
            for events in pages:
                yield fold_shard(events, config, now)
        return
    pool = ProcessPoolExecutor(
        processes,
        mp_context=multiprocessing.get_context(_START),
        initializer=rebuild_shard.start_process,
        initargs=(
            engine.url.render_as_string(hide_password=False),
            config.currency,
            config.email,
            config.webhook,
            now,
        ),
    )
    try:
        ahead: deque[Future[Shard]] = deque()
        for first, last in ranges:
            ahead.append(pool.submit(rebuild_shard.fold_range, first, last))
            if len(ahead) > 2 * processes:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _read(log: Connection, ranges: list[tuple[int, int]]) -> Iterator[list[run_store.EventRuns]]:
    for first, last in ranges:
        yield [
            e
            for page in run_store.events_with(log, FOLDED, after=first - 1, until=last)
            for e in page
        ]


def _apply(shard: Shard, books: FoldBooks, config: Config, now: datetime) -> None:
    """Fold what the shard left, in receipt order: its card reports and its forwarded events,
    whose questions are read at once first (`workers.rebuild_ledger`)."""
    fold_store.add_bookings(books.conn, *shard.bookings)
    forwarded = {
        step.seq: _job(step.event, books, config, now)
        for step in shard.steps
        if isinstance(step, Forwarded)
    }
    asks = Asks()
    asks.movements = {
        (step.report.movement.card_id, step.report.movement.key)
        for step in shard.steps
        if isinstance(step, Folded) and step.report is not None
    }
    books.ask(asks)
    for step in shard.steps:
        if isinstance(step, Forwarded):
            _fold_whole(books, step, forwarded[step.seq])
    books.answer(asks)
    later = []
    for step in shard.steps:
        if isinstance(step, Forwarded):
            later += _fold_whole(books, step, forwarded[step.seq])
        elif step.report is not None:
            loyalty.apply(books, step.report, now)
    fold_store.add_later(books.conn, later)
    books.end_batch()


def _job(event: run_store.EventRuns, books: FoldBooks, config: Config, now: datetime) -> Job:
    body = load_json(event.body)
    return Job(books, event.id, event.type, parse_payload(event.type, body), body, now, config)


def _fold_whole(books: FoldBooks, step: Forwarded, job: Job) -> list[tuple[int, str, str, str]]:
    """Run every handler of the event on the books (while they are asking, up to its first
    question). A rollback's handler is set aside: its row for `fold_later`."""
    at = place(step.seq)
    later = []
    for name in step.event.handlers:
        books.at(at)
        marks = books.staged.marks()
        try:
            BY_NAME[name](job)
        except Unknown:
            return []
        except Later as aside:
            if books.staged.marks() != marks:
                raise RuntimeError(
                    f"{name} wrote before asking about {aside.original_id}: a rebuild cannot "
                    "set such a handler aside"
                ) from None
            later.append((at, job.event_id, name, aside.original_id))
    return later
