"""Rebuild: empty the ledger and the cards and fold the event log again, in receipt order.

The events folded are those whose ledger or loyalty handler is done (or, for the ledger,
holding a rollback): the rebuilt state is what live processing computed, made again from the
log with the same handlers, on books in memory, then written in bulk. It all happens in one
transaction that excludes the handlers writing those tables, so deliveries keep arriving and
are processed right after, and nothing committed meanwhile is wiped.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine

from models import card_store, eventlog, ledger_store, run_store
from models.digest import state_digest
from models.payloads import load_json, parse_payload
from workers.books import MemoryBooks
from workers.handlers import BY_NAME
from workers.handlers.base import Config, Job

CHUNK = 1000
FOLDED = ("ledger", "loyalty")


@dataclass(frozen=True)
class Rebuilt:
    events: int
    before: str
    after: str


def digest(conn: Connection) -> str:
    return state_digest(
        ledger_store.balances(conn), ledger_store.digests(conn), card_store.all_cards(conn)
    )


def rebuild(
    engine: Engine, config: Config, advance: Callable[[int], None] = lambda _n: None
) -> Rebuilt:
    # The fold keeps millions of small objects alive until the final write: the cyclic
    # garbage collector would rescan them again and again, for nothing to free.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _rebuild(engine, config, advance)
    finally:
        if collecting:
            gc.enable()


def _rebuild(engine: Engine, config: Config, advance: Callable[[int], None]) -> Rebuilt:
    with engine.begin() as conn:
        ledger_store.rebuild_guard(conn, exclusive=True)
        before = digest(conn)
        ledger = set(run_store.events_with(conn, ("ledger",), ("done", "held")))
        loyalty = set(run_store.events_with(conn, ("loyalty",), ("done",)))
        ordered = run_store.events_with(conn, FOLDED, ("done", "held"))
        books = MemoryBooks()
        held: dict[str, Job] = {}
        now = datetime.now(UTC)
        for start in range(0, len(ordered), CHUNK):
            for row in eventlog.bodies(conn, ordered[start : start + CHUNK]):
                body = load_json(row.body)
                job = Job(
                    None, books, row.id, row.type, parse_payload(row.type, body), body, now, config
                )
                for name in FOLDED:
                    if row.id in (ledger if name == "ledger" else loyalty):
                        outcome = BY_NAME[name](job)
                        if name == "ledger" and outcome.status == "held":
                            held[row.id] = job
                for released in job.released:  # rollbacks that waited for this original
                    if released in held:
                        BY_NAME["ledger"](held.pop(released))
                job.released.clear()
            advance(min(CHUNK, len(ordered) - start))
        books.write(conn)
        return Rebuilt(len(ordered), before, digest(conn))
