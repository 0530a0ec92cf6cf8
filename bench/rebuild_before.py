"""The rebuild as it was before it streamed: the baseline `bench.rebuild` compares with.

The whole log folded on `workers.books.MemoryBooks`, every table then read into Python and
diffed there (`models.changes`), the digests computed from rows in memory
(`models.db.digest.StateDigest`): memory grows with the log. Kept verbatim (but for reading
the log through today's `run_store.events_with`) so that a ratio printed by the bench is
against the same code, run in the same process tree on the same data.

Run:  python -m bench.rebuild_before DATABASE_URL   (prints the JSON `voucherhook rebuild
--json` prints)
"""

from __future__ import annotations

import gc
import json
import sys
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine

from models.changes import Rows, Sequences
from models.db import ledger_store, run_store
from models.db.books_store import PARTS, Part
from models.db.digest import StateDigest
from models.db.engine import make_engine
from models.voucherify import load_json, parse_payload
from workers.books import MemoryBooks
from workers.handlers import BY_NAME
from workers.handlers.base import Config, Job
from workers.read_ahead import ReadAhead
from workers.rebuild import FOLDED, Rebuilt
from workers.templates import environment


def rebuild(engine: Engine, config: Config) -> Rebuilt:
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _rebuild(engine, config)
    finally:
        if collecting:
            gc.enable()


def _rebuild(engine: Engine, config: Config) -> Rebuilt:
    now = datetime.now(UTC)
    books = MemoryBooks()
    with engine.begin() as conn:
        ledger_store.rebuild_guard(conn, exclusive=True)
        with engine.connect() as log, ReadAhead(run_store.events_with(log, FOLDED)) as pages:
            events = _fold(pages, books, config, now)
        rows = books.rows()
        before, after, written = StateDigest(), StateDigest(), 0
        for part in PARTS:  # postings after their transactions
            after.add_computed(part, rows[part])
            written += _replace(conn, part, rows[part], before, now)
        digest_before = before.hexdigest()
        digest_after = digest_before if after == before else after.hexdigest()
        return Rebuilt(events, digest_before, digest_after, written)


def _fold(
    pages: Iterable[list[run_store.EventRuns]], books: MemoryBooks, config: Config, now: datetime
) -> int:
    held: dict[str, tuple[str, Job]] = {}
    folded = 0
    for page in pages:
        for event in page:
            body = load_json(event.body)
            payload = parse_payload(event.type, body)
            job = Job(books, event.id, event.type, payload, body, now, config)
            for name in event.handlers:
                if BY_NAME[name](job).status == "held":
                    held[event.id] = (name, job)
            for released in job.released:
                if released in held:
                    name, waiting = held.pop(released)
                    BY_NAME[name](waiting)
        folded += len(page)
    return folded


def _replace(
    conn: Connection, part: Part, computed: Mapping[Any, Any], state: StateDigest, at: datetime
) -> int:
    diff = Sequences(computed) if part.sequence else Rows(computed)
    with ReadAhead(part.read(conn)) as stored:
        for rows in stored:
            state.add(part, rows)
            diff.read(rows)
    changes = diff.changes()
    return part.replace(conn, changes.stale, {key: computed[key] for key in changes.fresh}, at)


def main() -> int:
    engine = make_engine(sys.argv[1])
    config = Config(currency="USD", templates=environment(None), email=False, webhook=False)
    started = time.perf_counter()
    result = rebuild(engine, config)
    seconds = time.perf_counter() - started
    engine.dispose()
    print(
        json.dumps(
            {
                "events": result.events,
                "seconds": round(seconds, 3),
                "digest_before": result.before,
                "digest": result.after,
                "unchanged": result.before == result.after,
                "rows_written": result.written,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
