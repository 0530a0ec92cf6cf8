"""Benchmark: what a `/metrics` scrape costs as the event log grows (docs/performance.md, "cost
against the size of the log").

1. A fresh PostgreSQL database (bench.receiver's: 127.0.0.1:5432, user postgres, trust),
   migrated.
2. A real `voucherhook serve --no-worker` on it, with an admin token.
3. The log filled to each size in turn (10k, 100k, 1M; `--sizes` to choose, e.g. up to 10M
   when disk and time allow) with one `INSERT … SELECT generate_series` per 200,000 rows: five
   event types, mostly `processed`, some `failed`, `ignored`, `quarantined`, and the same
   backlog of about 100 `pending` at every size (a backlog is not the log's length), so the
   counting triggers do their work as they would live; then VACUUM ANALYZE, as autovacuum
   would.
4. At each size: `--scrapes` scrapes, each after the cached answer expired (1.1 s apart),
   timed from the client; the median and the ratio to the smallest size. Beside it, for
   contrast, the query scrapes ran before the counts were kept (`GROUP BY type, status` over
   the whole log), timed in this process.

The database is dropped at the end, also on error or Ctrl-C.

Run:  uv run python -m bench.scrape [--sizes 10000,100000,1000000] [--scrapes 15]
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg

from bench.receiver import postgres_database

ROOT = Path(__file__).resolve().parents[1]
REDIS_URL = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")
CHUNK = 200_000

FILL = """
INSERT INTO events (id, type, status, received_at, body, headers, attempts, processed_at)
SELECT 'bench-' || n,
       (ARRAY['redemption.succeeded', 'customer.reward_redemptions.completed',
              'redemption.rollback.succeeded', 'voucher.updated', 'redemption.failed'])[1 + n %% 5],
       CASE WHEN n %% 97 = 0 AND n <= 10000 THEN 'pending' WHEN n %% 89 = 0 THEN 'failed'
            WHEN n %% 5 = 3 THEN 'ignored' WHEN n %% 83 = 0 THEN 'quarantined'
            ELSE 'processed' END,
       now() - make_interval(secs => (%(top)s::bigint - n)::double precision),
       convert_to('{"id": "' || n || '", "data": {"redemption": {"id": "r_' || n || '"}}}',
                  'UTF8'),
       '{}'::json, 1, now()
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS n
"""


GROUP_BY = "SELECT type, status, count(*) FROM events GROUP BY type, status"


@contextmanager
def receiver(env: dict[str, str], port: int) -> Iterator[str]:
    cli = [sys.executable, "-m", "workers.cli"]
    subprocess.run([*cli, "migrate"], env=env, cwd=ROOT, check=True, capture_output=True)
    process = subprocess.Popen(
        [*cli, "serve", "--no-worker", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(20)


def fill(url: str, have: int, want: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for first in range(have + 1, want + 1, CHUNK):
            last = min(first + CHUNK - 1, want)
            conn.execute(FILL, {"first": first, "last": last, "top": want})
        conn.execute("VACUUM ANALYZE events")


def scrape_ms(url: str, token: str, scrapes: int) -> float:
    times = []
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        for _ in range(scrapes):
            time.sleep(1.1)  # past the one-second cache: every scrape queries the database
            started = time.perf_counter()
            response = client.get(f"{url}/metrics")
            times.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
    return statistics.median(times)


def group_by_ms(url: str, repeats: int = 3) -> float:
    times = []
    with psycopg.connect(url) as conn:
        for _ in range(repeats):
            started = time.perf_counter()
            conn.execute(GROUP_BY).fetchall()
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--scrapes", type=int, default=15)
    parser.add_argument("--port", type=int, default=18321)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    token = secrets.token_hex(16)
    print(f"# bench.scrape  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  {platform.node()}  "
          f"{os.cpu_count()} cores")  # fmt: skip
    print(f"{'events':>10} {'fill s':>7} {'scrape ms':>10} {'ratio':>6} {'GROUP BY ms':>12}")
    with postgres_database(f"vh_bench_scrape_{secrets.token_hex(4)}") as url:
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "REDIS_URL": REDIS_URL,
            "VOUCHERIFY_WEBHOOK_SECRET": secrets.token_hex(16),
            "VOUCHERHOOK_ADMIN_TOKEN": token,
            "VOUCHERHOOK_QUEUE": f"bench-scrape-{token[:6]}",
            "VOUCHERHOOK_LOG_LEVEL": "WARNING",
        }
        with receiver(env, args.port) as server:
            have, first = 0, None
            for size in sizes:
                started = time.perf_counter()
                fill(url, have, size)
                filled = time.perf_counter() - started
                have = size
                scrape = scrape_ms(server, token, args.scrapes)
                first = first or scrape
                print(
                    f"{size:>10,} {filled:>7.1f} {scrape:>10.1f} {scrape / first:>6.2f} "
                    f"{group_by_ms(url):>12.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
