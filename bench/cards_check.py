"""Benchmark: what counting the cards that drift costs a worker as the books grow
(`workers.books_check.count_drifting`, behind `voucherhook_cards_drifting`; one worker runs it
every 5 minutes, on a thread of its main process).

1. A fresh PostgreSQL database (bench.receiver's: 127.0.0.1:5432, user postgres, trust),
   migrated.
2. The books filled to each size in turn (`--sizes`, default 10k, 100k, 1M card movements) with
   one `INSERT … SELECT generate_series` per table: ten movements a card, loyalty and gift cards
   alike, a consistent chain each, and the ledger postings of its account; one card in a
   hundred has a movement missing from its chain (drift and a gap). Then ANALYZE.
3. At each size, the median of `--repeats` counts (each forced, as if the last was 5 minutes
   ago), its ratio to the smallest size, and the count itself (a hundredth of the cards).

The database is dropped at the end, also on error or Ctrl-C.

Run:  uv run python -m bench.cards_check [--sizes 10000,100000,1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import statistics
import time
from datetime import UTC, datetime

import psycopg

from bench.receiver import postgres_database
from models.db import schema
from models.db.engine import make_engine
from workers.books_check import count_drifting

PER_CARD = 10

# Card c (1-based) of kind loyalty when c is odd, gift when even; movement m (1..10) adds 10
# with the balance after it 10 * m. Card c % 100 == 0 misses movement 5: its balance reported
# (100) is 10 more than its ledger account holds, and its chain has a gap.
MOVEMENTS = """
INSERT INTO card_movements
    (card_id, key, kind, type, change, balance_after, at, envelope_at, rank, customer_id, event_id)
SELECT 'card_' || c, 'transaction:vtx_' || c || '_' || m,
       CASE WHEN c %% 2 = 1 THEN 'loyalty' ELSE 'gift' END,
       CASE WHEN c %% 2 = 1 THEN 'POINTS_ACCRUAL' ELSE 'CREDITS_ADDITION' END,
       10, 10 * m, now() - make_interval(hours => 100 - m), NULL, 0, 'cust_' || c,
       'ev_' || c || '_' || m
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS c, generate_series(1, 10) AS m
WHERE NOT (c %% 100 = 0 AND m = 5)
"""
POSTINGS = """
INSERT INTO ledger_postings (transaction_key, account, asset, amount)
SELECT 'transaction:vtx_' || c || '_' || m,
       CASE WHEN c %% 2 = 1 THEN 'loyalty:card:card_' || c ELSE 'giftcard:card_' || c END,
       CASE WHEN c %% 2 = 1 THEN 'POINTS' ELSE 'USD' END,
       CASE WHEN c %% 2 = 1 THEN 10 ELSE -10 END
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS c, generate_series(1, 10) AS m
WHERE NOT (c %% 100 = 0 AND m = 5)
"""


def fill(url: str, have: int, want: int) -> None:
    """Cards have+1 .. want."""
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in (MOVEMENTS, POSTINGS):
            conn.execute(statement, {"first": have + 1, "last": want})
        conn.execute("ANALYZE card_movements")
        conn.execute("ANALYZE ledger_postings")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="card movements")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    print(f"# bench.cards_check  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  {platform.node()}  "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"{'movements':>10} {'cards':>8} {'count s':>8} {'ratio':>6} {'drifting':>9}")
    with postgres_database(f"vh_bench_cards_{secrets.token_hex(4)}") as url:
        engine = make_engine(url)
        schema.upgrade(engine)
        cards = 0
        first: float | None = None
        for size in sizes:
            fill(url, cards, size // PER_CARD)
            cards = size // PER_CARD
            times, counted = [], 0
            for _ in range(args.repeats):
                started = time.perf_counter()
                counted = count_drifting(engine, every=0, duty=0)
                times.append(time.perf_counter() - started)
            median = statistics.median(times)
            first = first or median
            print(f"{size:>10} {cards:>8} {median:>8.2f} {median / first:>6.1f} {counted:>9}")
        engine.dispose()


if __name__ == "__main__":
    main()
