"""Benchmark: what the operators' and the workers' queries cost as the event log grows
(docs/performance.md, "cost against the size of the log": flat from 10k to 1M events).

1. A fresh PostgreSQL database (127.0.0.1:5432, user postgres, trust), migrated, and a real
   `voucherhook serve --no-worker` on it (`bench.scrape`'s).
2. The log filled to each size in turn (`--sizes`, default 10k, 100k, 1M; add 10000000 when
   the disk has about 30 GB free and an hour to spare: 1M events take 2.2 GB) by
   `tests.support.large_log`: one `INSERT … SELECT generate_series` per 100,000 events, with
   bodies made from the recorded Voucherify payloads, eight event types (five without a
   handler: `ignored`), the handler runs and the emails live processing leaves (one in 200
   bounced), and the same few failed, pending, quarantined events and stale notifications at
   every size (incidents do not grow with the log); the triggers keep `event_counts`. Then
   VACUUM ANALYZE, as autovacuum would.
3. At each size, each operation the median of `--repeats` runs, through the functions the
   command line and the workers call, with arguments parsed by the command line's own parser:
   - `/metrics`: a scrape over HTTP, each after the one-second cache expired;
   - `events list` with each filter (`workers.commands.events`: `eventlog.select_events`),
     and `notifications list --status failed|pending` (`notification_store.listing`);
   - the sweep's queries at default settings (`eventlog.claim_due` in a transaction rolled
     back, so every run finds the same events; `notification_store.stale`);
   - `replay --status failed --dry-run` and `replay --since … --until … --dry-run`:
     the selection and `workers.replay.pending_work`, as `workers.commands.replay` runs them;
   - the operator console's pages (`bench.console_pages`): the overview's charts and
     counts, pages of events (newest, deep in the log, filtered, a bounded search), and of
     notifications;
   - `voucherhook rebuild --json` as a subprocess (`bench.rebuild`'s): seconds, events/s,
     peak RSS of the process (`--no-rebuild` skips it; it writes the books the first time).
4. A table: milliseconds at each size and the ratio to the first size.

The database is dropped at the end, also on error or Ctrl-C.

Run:  uv run python -m bench.size [--sizes 10000,100000,1000000] [--repeats 7] [--no-rebuild]

Seen on 2026-12-02 (2 cores shared with other engineers' tests and benchmarks, PostgreSQL 15,
shared_buffers 128 MB; the medians move by 2-5x between runs of the same size, so read ratios
up to about 3 as flat): every query above is planned through an index
(`tests/test_query_plans.py` checks it) and took 0.6-7.4 ms at every size, replay's dry-run
selection 10-200 ms (its 250 failed events and the 1,800 events of a half hour, the same at
every size), the scrape 10-27 ms. `--since` a recent hour costs 0.7 ms at 10k and 7 ms at
1M: at 1M the planner reads the hour's 3,600 events by `received_at` and sorts them instead of
walking the newest ones, a cost of the window, not of the log. Rebuild grows with the log:
700k events folded at 1M in 120-231 s (3,000-5,800 events/s), peak RSS about 120 MB at 10k,
350 MB at 100k, 2,450 MB at 1M. (That was the rebuild before it streamed, and those peaks
counted this process's memory too; `tests.support.peak_rss` measures the command alone now.
Today's rebuild figures: docs/performance.md, "Rebuild".)
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from bench.console_pages import console_operations
from bench.rebuild import NEW, new_command, timed
from bench.receiver import postgres_database
from bench.scrape import REDIS_URL, receiver, scrape_ms
from models.db import eventlog, notification_store
from models.db.engine import make_engine
from tests.support import large_log
from workers.cli import _parser
from workers.commands.replay import selection
from workers.replay import pending_work
from workers.settings import Settings


@dataclass
class Table:
    sizes: list[int] = field(default_factory=list)
    rows: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, value: float) -> None:
        self.rows.setdefault(name, []).append(value)

    def print(self) -> None:
        width = max(len(name) for name in self.rows)
        head = "".join(f"{size:>12,} {'ratio':>6}" for size in self.sizes)
        print(f"\n{'ms (median)':<{width}} {head}")
        for name, values in self.rows.items():
            cells = "".join(f"{v:>12.2f} {v / values[0]:>6.2f}" for v in values)
            print(f"{name:<{width}} {cells}")


def median_ms(run: Callable[[], Any], repeats: int) -> float:
    run()  # warm: the first run reads pages from disk and plans
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def cli(*argv: str) -> argparse.Namespace:
    """The arguments as `voucherhook` parses them."""
    return _parser().parse_args(list(argv))


def events_lists(base: datetime, size: int) -> dict[str, argparse.Namespace]:
    """`events list` with each filter; a time window is the log's last hour (or day)."""
    hour = large_log.received_at(base, size - 3600).isoformat()
    day = large_log.received_at(base, size - 86_400).isoformat()
    filters: dict[str, tuple[str, ...]] = {
        "events list": (),
        "events list --type redemption.succeeded": ("--type", "redemption.succeeded"),
        "events list --type (rollbacks, 5%)": ("--type", "redemption.rollback.succeeded"),
        "events list --type (never stored)": ("--type", "voucher.deleted"),
        "events list --status failed": ("--status", "failed"),
        "events list --status pending": ("--status", "pending"),
        "events list --status quarantined": ("--status", "quarantined"),
        "events list --status processed": ("--status", "processed"),
        "events list --since (last hour)": ("--since", hour),
        "events list --since (last day)": ("--since", day),
        "events list --type --status failed": (
            "--type",
            "redemption.succeeded",
            "--status",
            "failed",
        ),
        "events list --type --since (hour)": ("--type", "redemption.succeeded", "--since", hour),
        "events list --status failed --since": ("--status", "failed", "--since", day),
    }
    return {name: cli("events", "list", *argv) for name, argv in filters.items()}


def list_events(engine: Engine, args: argparse.Namespace) -> Callable[[], Any]:
    """What `workers.commands.events.cmd_events_list` asks of the database."""

    def run() -> Any:
        with engine.connect() as conn:
            return eventlog.select_events(
                conn,
                event_type=args.type,
                status=args.status,
                since=args.since,
                limit=args.limit,
                newest_first=True,
            )

    return run


def list_notes(engine: Engine, args: argparse.Namespace) -> Callable[[], Any]:
    """What `workers.commands.notifications.cmd_notifications_list` asks of the database."""

    def run() -> Any:
        with engine.connect() as conn:
            return notification_store.listing(
                conn, status=args.status, event_id=args.event_id, limit=args.limit
            )

    return run


def replay_dry_run(engine: Engine, args: argparse.Namespace) -> Callable[[], Any]:
    """What `workers.commands.replay.cmd_replay --dry-run` asks of the database."""
    assert args.dry_run

    def run() -> Any:
        with engine.connect() as conn:
            rows = selection(conn, args)
        return pending_work(engine, [row.id for row in rows])

    return run


def sweep_queries(engine: Engine, settings: Settings) -> dict[str, Callable[[], Any]]:
    """The queries of `workers.worker`'s sweeps, at default settings."""

    def claim() -> Any:
        with engine.connect() as conn, conn.begin() as transaction:
            ids = eventlog.claim_due(
                conn,
                datetime.now(UTC),
                after=settings.sweep_after,
                redispatch_after=settings.redispatch_after,
                limit=1000,
            )
            transaction.rollback()  # leave them due: every run finds the same
        assert ids, "the log has events for the sweep"
        return ids

    def stale() -> Any:
        with engine.connect() as conn, conn.begin() as transaction:
            now = datetime.now(UTC)
            ago = now - timedelta(seconds=settings.redispatch_after)
            ids = notification_store.stale(conn, now, ago)
            transaction.rollback()  # leave their leases: every run finds the same
        return ids

    return {"sweep: claim_due (events)": claim, "sweep: stale notifications": stale}


def fill(engine: Engine, base: datetime, have: int, want: int) -> float:
    started = time.perf_counter()
    with engine.begin() as conn:
        large_log.fill(conn, base, have + 1, want)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in ("events", "event_counts", "handler_runs", "notifications"):
            conn.execute(text(f"VACUUM ANALYZE {table}"))
    return time.perf_counter() - started


def measure(
    table: Table,
    engine: Engine,
    server: str,
    token: str,
    base: datetime,
    size: int,
    args: argparse.Namespace,
) -> None:
    table.add("/metrics scrape (HTTP)", scrape_ms(server, token, args.scrapes))
    for name, parsed in events_lists(base, size).items():
        table.add(name, median_ms(list_events(engine, parsed), args.repeats))
    for status in ("failed", "pending"):
        parsed = cli("notifications", "list", "--status", status)
        table.add(
            f"notifications list --status {status}",
            median_ms(list_notes(engine, parsed), args.repeats),
        )
    settings = Settings(DATABASE_URL=engine.url.render_as_string(hide_password=False))
    for name, run in sweep_queries(engine, settings).items():
        table.add(name, median_ms(run, args.repeats))
    hour = large_log.received_at(base, size - 3600).isoformat()
    half = large_log.received_at(base, size - 1800).isoformat()
    replays = {
        "replay --status failed --dry-run": cli("replay", "--status", "failed", "--dry-run"),
        "replay --since --until (30 min) --dry-run": cli(
            "replay", "--since", hour, "--until", half, "--dry-run"
        ),
    }
    for name, parsed in replays.items():
        table.add(name, median_ms(replay_dry_run(engine, parsed), args.repeats))
    for name, run in console_operations(engine, settings, base, size).items():
        table.add(name, median_ms(run, args.repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--scrapes", type=int, default=7)
    parser.add_argument("--no-rebuild", action="store_true", help="skip the rebuild")
    parser.add_argument("--port", type=int, default=18322)
    args = parser.parse_args()
    sizes = sorted(int(size) for size in args.sizes.split(","))
    token = secrets.token_hex(16)
    print(f"# bench.size  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  {platform.node()}  "
          f"{os.cpu_count()} cores  sizes {sizes}", flush=True)  # fmt: skip
    table = Table()
    rebuilds: list[str] = []
    with postgres_database(f"vh_bench_size_{secrets.token_hex(4)}") as url, \
            tempfile.TemporaryDirectory() as tmp:  # fmt: skip
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "REDIS_URL": REDIS_URL,
            "VOUCHERIFY_WEBHOOK_SECRET": secrets.token_hex(16),
            "VOUCHERHOOK_ADMIN_TOKEN": token,
            "VOUCHERHOOK_QUEUE": f"bench-size-{token[:6]}",
            "VOUCHERHOOK_LOG_LEVEL": "WARNING",
        }
        base = large_log.base_for(sizes[-1])
        with receiver(env, args.port) as server:  # migrates first
            engine = make_engine(url)
            have = 0
            for size in sizes:
                filled = fill(engine, base, have, size)
                have = size
                print(f"filled to {size:,} events in {filled:.1f}s", flush=True)
                table.sizes.append(size)
                measure(table, engine, server, token, base, size, args)
                if not args.no_rebuild:
                    done = timed(NEW, size, new_command(None), url, Path(tmp))
                    rebuilds.append(
                        f"{size:>12,} {done.events:>10,} {done.seconds:>9.1f} "
                        f"{done.rate:>9,.0f} {done.peak_rss_mb:>8.0f}  "
                        f"rows written {done.written}, CPU {done.cpu:.1f}s"
                    )
                    print(rebuilds[-1], flush=True)
            engine.dispose()
    table.print()
    if rebuilds:
        print(f"\n{'rebuild':>12} {'events':>10} {'seconds':>9} {'events/s':>9} {'peak MB':>8}")
        print("\n".join(rebuilds))


if __name__ == "__main__":
    main()
