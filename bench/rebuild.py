"""Benchmark of `voucherhook rebuild` (docs/performance.md, "Rebuild": at least 10,000 events/s
over 1,000,000 stored events, a peak memory that does not grow with the log).

1. A fresh PostgreSQL database (127.0.0.1:5432, user postgres, trust), migrated with
   `voucherhook migrate`.
2. N events stored the way the receiver stores them (`models.identity.identify`, then
   `models.db.eventlog.insert_new`, in batches), in envelopes with distinct event ids:
   - mostly `redemption.succeeded` with distinct redemption and order ids: discount vouchers,
     promotion tiers, gift cards, and loyalty cards paying with points (on `--cards` cards);
   - one `customer.reward_redemptions.completed` in `--reward-every`, on the same cards, with
     rising timestamps and balances (so the newest-by-source-time rule has work to do);
   - one stack (a parent and two children, children first) every `--stack-every` events.
   Storing and processing are split over `--jobs` processes; the events of one card or one
   stack go to the same process, in receipt order.
3. Every event processed by `workers.processing.Processor`, in batches of `--batch`, built as
   `workers.wiring.Runtime` builds it but with no notification channel (email off, no webhook
   URL): ledger, loyalty and the notifications handler (which plans nothing) all run, as live.
   Then every event must be `processed`. This is slow (tens of events/s per process on a busy
   2-core machine: about 35 to 45 minutes for 100,000), so `--fill rebuild` instead records
   every handler run as done and computes the live state with one rebuild: the timed rebuild
   is the same work, but its digest check then only shows that a rebuild is deterministic.
4. The timed part: `voucherhook rebuild --json` run as a subprocess; up to `--before-up-to`
   events, the rebuild as it was before it streamed too (`bench/rebuild_before.py`); with
   `--profile`, `workers.rebuild.rebuild` in this process under cProfile. For each: events
   folded, seconds, events/s, peak RSS, whether the digest before equals the digest after
   (it must: the live state was computed by the same rules from the same log), and the rows
   the rebuild wrote (0 here: it writes only rows that differ).

Peak RSS: the command's, or that of a folding process it started if larger, started from a
small process of its own (`tests.support.peak_rss`): started from this one, it would count the
gigabyte the fill leaves here.

The database is dropped at the end, also on error or Ctrl-C (SIGTERM too).

Run:  uv run python -m bench.rebuild [--sizes 10000,100000] [--fill process|rebuild] [--jobs 2]
                                     [--batch 500] [--processes N] [--keep] [--profile FILE]
The goal figure:  uv run python -m bench.rebuild --sizes 1000000 --fill rebuild --before-up-to 0
"""

from __future__ import annotations

import argparse
import cProfile
import json
import multiprocessing
import os
import platform
import pstats
import secrets
import signal
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg
from sqlalchemy import Engine, func, select, text, update

from bench.receiver import (
    PG_SERVER,
    ROOT,
    VENV_BIN,
    BenchError,
    migrate,
    postgres_database,
    progress,
)
from models.db import eventlog
from models.db.engine import make_engine
from models.db.eventlog import NewEvent
from models.db.tables import events as events_table
from models.db.tables import handler_runs
from models.identity import identify
from models.routing import handlers_for
from tests.support import peak_rss
from tests.support.payloads import REWARD_REDEMPTION, envelope, reward_redemption
from tests.unit.recorded import REDEMPTION, redemption, stack
from workers.handlers.base import Config
from workers.processing import Processor, RetryPolicy
from workers.rebuild import rebuild
from workers.templates import environment

CURRENCY = "USD"
INSERT_CHUNK = 1000
SECRET = "bench-rebuild-not-a-real-secret"  # long enough for a server database
GOAL = 10_000.0  # events/s at one million events, docs/performance.md


# --- the workload ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Mix:
    cards: int
    reward_every: int
    stack_every: int


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _redemption_variant(i: int, tag: str, mix: Mix, at: datetime) -> dict[str, Any]:
    """A `redemption.succeeded` with its own redemption and order: one of four kinds."""
    r_id, order_id = f"r_{tag}_{i}", f"ord_{tag}_{i}"
    amount, applied = 5_000 + i % 997, 100 + i % 500
    created = _iso(at)
    variant = i % 20
    if variant < 2:  # a promotion tier, no voucher
        return redemption(
            r_id, order_id=order_id, amount=amount, applied=applied,
            tier_id=f"promo_{tag}_{i % 7}", created_at=created,
        )  # fmt: skip
    if variant < 4:  # a gift card: credit spent, not a discount
        return redemption(
            r_id, order_id=order_id, amount=amount, applied=applied, kind="gift",
            voucher_id=f"v_gift_{tag}_{i % 500}", created_at=created,
        )  # fmt: skip
    if _pays_with_card(i):  # a loyalty card paying with points
        return redemption(
            r_id, order_id=order_id, amount=amount, applied=applied, kind="loyalty",
            voucher_id=_card(tag, i, mix), points=applied, created_at=created,
        )  # fmt: skip
    return redemption(
        r_id, order_id=order_id, amount=amount, applied=applied,
        campaign_id=f"camp_{tag}_{i % 50}", voucher_id=f"v_{tag}_{i}", created_at=created,
    )  # fmt: skip


def _card(tag: str, i: int, mix: Mix) -> str:
    """A card for event `i`, spread over all `mix.cards` (i itself runs in steps, so i % cards
    would use only a few of them)."""
    return f"v_card_{tag}_{zlib.crc32(i.to_bytes(8, 'little')) % mix.cards}"


def _pays_with_card(i: int) -> bool:
    return 4 <= i % 20 < 6


def _stack(k: int, tag: str) -> list[dict[str, Any]]:
    """Stack number `k`: its two children, then its parent, with ids of their own."""
    parent, children = stack()
    text = json.dumps([*children, parent])
    for old in ("r_stack_parent", "r_stack_child_1", "r_stack_child_2", "ord_stack_8Xq2"):
        text = text.replace(f'"{old}"', f'"{old}_{tag}_{k}"')
    renamed: list[dict[str, Any]] = json.loads(text)
    return renamed


Build = Callable[[], dict[str, Any]]


def workload(count: int, tag: str, mix: Mix) -> Iterator[tuple[str, str, Build]]:
    """`count` (group, event type, payload builder) triples, in the order they are received.

    Events of one group (one loyalty card, one stack) must be processed by one process, in
    this order: the same order as the rebuild folds them."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    produced = stacks = 0
    i = 0
    while produced < count:
        at = start + timedelta(seconds=i)
        if mix.stack_every and i % mix.stack_every == mix.stack_every - 1 and count - produced >= 3:
            for data in _stack(stacks, tag):
                yield f"stack:{stacks}", REDEMPTION, partial(dict, data)
            stacks += 1
            produced += 3
        elif mix.reward_every and i % mix.reward_every == mix.reward_every - 1:
            card = _card(tag, i, mix)
            reward = partial(
                reward_redemption,
                f"rewr_{tag}_{i}", card, balance=1_000_000 - i, points=100, at=_iso(at),
            )  # fmt: skip
            yield f"card:{card}", REWARD_REDEMPTION, reward
            produced += 1
        else:
            group = f"card:{_card(tag, i, mix)}" if _pays_with_card(i) else f"event:{i}"
            yield group, REDEMPTION, partial(_redemption_variant, i, tag, mix, at)
            produced += 1
        i += 1


def new_event(event_type: str, data: dict[str, Any], event_id: str) -> NewEvent:
    body = json.dumps(envelope(event_type, data, event_id=event_id)).encode()
    verdict = identify(body)
    if verdict.status != "pending":
        raise BenchError(f"{event_id} would not be processed: {verdict}")
    now = datetime.now(UTC)
    return NewEvent(
        id=verdict.event_id,
        type=verdict.event_type,
        status=verdict.status,
        received_at=now,
        body=body,
        headers={"content-type": "application/json"},
        remote_addr="127.0.0.1",
        delivery_id=verdict.delivery_id,
        error=None,
        dispatched_at=now,
    )


# --- filling ---------------------------------------------------------------------------------


def config() -> Config:
    """What `workers.wiring.Runtime.config` builds, with every notification channel off."""
    return Config(currency=CURRENCY, templates=environment(None), email=False, webhook=False)


@dataclass(frozen=True)
class Part:
    """One filling process's share: the events whose group hashes to `index`."""

    database_url: str
    count: int
    tag: str
    mix: Mix
    jobs: int
    index: int
    batch: int
    process: bool


def _mine(group: str, part: Part) -> bool:
    return zlib.crc32(group.encode()) % part.jobs == part.index


def fill_part(part: Part, stored: Any, processed: Any) -> None:
    """Store this share's events, then process them in batches; runs in a process of its own.

    `stored` and `processed` are shared counters for the progress line."""
    engine = make_engine(part.database_url, pool_size=2)
    ids: list[str] = []
    try:
        batch: list[NewEvent] = []

        def flush() -> None:
            with engine.begin() as conn:
                new = eventlog.insert_new(conn, batch)
            if len(new) != len(batch):
                raise BenchError(f"{len(batch) - len(new)} events were duplicates")
            ids.extend(e.id for e in batch)
            with stored.get_lock():
                stored.value += len(batch)
            batch.clear()

        for n, (group, event_type, build) in enumerate(workload(part.count, part.tag, part.mix)):
            if _mine(group, part):
                batch.append(new_event(event_type, build(), f"evt_{part.tag}_{n}"))
                if len(batch) >= INSERT_CHUNK:
                    flush()
        if batch:
            flush()
        if not part.process:
            return
        processor = Processor(engine, config(), RetryPolicy())
        for start in range(0, len(ids), part.batch):
            chunk = ids[start : start + part.batch]
            follow = processor.process(chunk)
            if follow.notifications:
                raise BenchError(f"{len(follow.notifications)} notifications were planned")
            with processed.get_lock():
                processed.value += len(chunk)
    finally:
        engine.dispose()


class Ticker:
    """A progress line on stderr: rewritten in place on a terminal, else every 15 seconds."""

    def __init__(self, total: int) -> None:
        self._total = total
        self._started = self._shown = time.perf_counter()
        self._interactive = sys.stderr.isatty()

    def __call__(self, stored: int, processed: int, *, final: bool = False) -> None:
        now = time.perf_counter()
        if not final and now - self._shown < (0.5 if self._interactive else 15.0):
            return
        self._shown = now
        line = (
            f"filling: stored {stored:,}/{self._total:,}, processed {processed:,}/{self._total:,}"
            f" ({now - self._started:.0f}s)"
        )
        if self._interactive:
            print(f"\r{line}\033[K", end="\n" if final else "", file=sys.stderr, flush=True)
        else:
            progress(line)


def fill(database_url: str, engine: Engine, args: argparse.Namespace, size: int, tag: str) -> float:
    """Store and process every event with `args.jobs` processes; the seconds it took."""
    mix = Mix(args.cards, args.reward_every, args.stack_every)
    process = args.fill == "process"
    spawn = multiprocessing.get_context("spawn")
    stored, processed = spawn.Value("q", 0), spawn.Value("q", 0)
    tick = Ticker(size)
    started = time.perf_counter()
    children = [
        spawn.Process(
            target=fill_part,
            args=(
                Part(database_url, size, tag, mix, args.jobs, i, args.batch, process),
                stored,
                processed,
            ),
            name=f"fill-{i}",
        )
        for i in range(args.jobs)
    ]
    try:
        for child in children:
            child.start()
        while any(child.is_alive() for child in children):
            time.sleep(0.2)
            tick(stored.value, processed.value)
            if any(child.exitcode not in (None, 0) for child in children):
                break
    finally:
        for child in children:
            if child.is_alive():
                child.terminate()
            child.join()
    failed = [child.name for child in children if child.exitcode != 0]
    if failed:
        raise BenchError(f"filling failed in {', '.join(failed)} (its traceback is above)")
    tick(stored.value, processed.value, final=True)
    if not process:
        mark_processed_by_rebuild(engine)
        return time.perf_counter() - started
    # Two processes may still deadlock on a shared row now and then (the Processor isolates
    # and schedules a retry): process what is left, here.
    for _ in range(5):
        with engine.connect() as conn:
            left = [r.id for r in eventlog.select_events(conn, status="pending")]
        if not left:
            break
        progress(f"processing {len(left)} events left pending (retries)")
        Processor(engine, config(), RetryPolicy()).process(left)
    return time.perf_counter() - started


def mark_processed_by_rebuild(engine: Engine) -> None:
    """`--fill rebuild`: record every handler as done and every event as processed, as the
    Processor would have, then compute the ledger and the cards with one rebuild (the same
    handlers on books in memory). Fast, but the timed rebuild's digest then only checks that
    rebuilding is deterministic, not that it equals what live processing computed."""
    now = datetime.now(UTC)
    progress("recording handler runs as done, then a first rebuild to compute the state…")
    with engine.begin() as conn:
        rows = list(conn.execute(select(events_table.c.id, events_table.c.type)))
        for start in range(0, len(rows), 10 * INSERT_CHUNK):
            conn.execute(
                handler_runs.insert(),
                [
                    {
                        "event_id": i,
                        "handler": h,
                        "status": "done",
                        "attempts": 1,
                        "updated_at": now,
                    }
                    for i, event_type in rows[start : start + 10 * INSERT_CHUNK]
                    for h in handlers_for(event_type)
                ],
            )
        conn.execute(update(events_table).values(status="processed", processed_at=now, attempts=1))
    rebuild(engine, config())


def status_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(events_table.c.status, func.count()).group_by(events_table.c.status)
        )
        return {status: int(n) for status, n in rows}


# --- the timed rebuilds ----------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    how: str
    size: int
    events: int
    seconds: float
    peak_rss_mb: float
    digest: str
    same: bool
    """The digest before equals the digest after."""
    written: int
    cpu: float
    """CPU seconds (user and system) of the command and the processes it started."""
    load: tuple[float, float]
    """The 1-minute load average when the run started and when it ended."""

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


NEW = "voucherhook rebuild"
BEFORE = "before (bench.rebuild_before)"


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def rebuild_here(engine: Engine, profile: Path, processes: int | None) -> None:
    """The new rebuild in this process under cProfile (the folding processes, if any, are not
    profiled: `--processes 1` puts the whole fold in the profile)."""
    profiler = cProfile.Profile()
    profiler.enable()
    rebuild(engine, config(), processes=processes)
    profiler.disable()
    profiler.dump_stats(profile)


def timed(how: str, size: int, command: list[str], database_url: str, tmp: Path) -> Timing:
    """Run a rebuild command printing `voucherhook rebuild --json`'s JSON; its peak RSS and
    CPU (`tests.support.peak_rss`: none of this process's memory)."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "VOUCHERIFY_WEBHOOK_SECRET": SECRET,
        "VOUCHERHOOK_LOG_LEVEL": "WARNING",
    }
    out, err = tmp / "rebuild.out", tmp / "rebuild.err"
    load_before = os.getloadavg()[0]
    with out.open("wb") as stdout, err.open("wb") as stderr:
        measured = peak_rss.run(command, cwd=ROOT, env=env, stdout=stdout, stderr=stderr)
    if measured.returncode != 0:
        raise BenchError(f"{how} failed: {err.read_text().strip()[-2000:]}")
    shown = json.loads(out.read_text())
    return Timing(
        how,
        size,
        int(shown["events"]),
        float(shown["seconds"]),
        measured.peak_mb,
        shown["digest"],
        bool(shown["unchanged"]) and shown["digest_before"] == shown["digest"],
        int(shown["rows_written"]),
        measured.cpu_s,
        (load_before, os.getloadavg()[0]),
    )


def new_command(processes: int | None) -> list[str]:
    command = [str(VENV_BIN / "voucherhook"), "rebuild", "--json"]
    return [*command, "--processes", str(processes)] if processes else command


def before_command(database_url: str) -> list[str]:
    return [str(VENV_BIN / "python"), "-m", "bench.rebuild_before", database_url]


# --- report ----------------------------------------------------------------------------------


def report(args: argparse.Namespace, fills: dict[int, float], timings: list[Timing]) -> None:
    print(
        f"\nrebuild benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"nproc {os.cpu_count()}, Python {platform.python_version()}, PostgreSQL on 127.0.0.1"
    )
    for size, seconds in fills.items():
        print(
            f"filled {size:,} events in {seconds:.0f}s: "
            + (
                f"stored and processed by workers.processing.Processor, {args.jobs} processes"
                if args.fill == "process"
                else f"stored by {args.jobs} processes, runs marked done, state computed by a "
                "rebuild"
            )
        )
    header = (
        f"{'size':>9} {'how':<30} {'events':>9} {'seconds':>8} {'events/s':>9} {'peak RSS':>9}"
        f" {'vs before':>9} {'CPU s':>7} {'load':>9}  digest"
    )
    print(header)
    print("-" * (len(header) + 20))
    for t in timings:
        baseline = next((b for b in timings if b.size == t.size and b.how == BEFORE), None)
        ratio = f"{t.rate / baseline.rate:.2f}x" if baseline and t.how != BEFORE else ""
        digests = {x.digest for x in timings if x.size == t.size}
        verdict = "before == after" if t.same else "before != after (DIFFERS)"
        verdict += ", same as every run" if len(digests) == 1 else ", NOT the same as other runs"
        print(
            f"{t.size:>9,} {t.how:<30} {t.events:>9,} {t.seconds:>8.1f} {t.rate:>9,.0f}"
            f" {t.peak_rss_mb:>6.0f} MB {ratio:>9} {t.cpu:>7.1f}"
            f" {t.load[0]:>4.1f}-{t.load[1]:<4.1f}  {verdict}"
        )
    print(
        "peak RSS: the largest of the command's process and the folding processes it started "
        "(each about the size of a 1-process rebuild's). CPU s: user + "
        "system of the command and the processes it started (not the database server's)"
    )
    print(f"goal (docs/performance.md): >= {GOAL:,.0f} events/s at 1,000,000 events")


# --- main ------------------------------------------------------------------------------------


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: sizes are whole numbers, comma-separated"
        ) from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: every size must be >= 1")
    return sizes


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.rebuild",
        description="Time `voucherhook rebuild` over N processed events on PostgreSQL, against "
        "the rebuild as it was before it streamed.",
    )
    parser.add_argument(
        "--sizes", type=_sizes, default=[10_000, 100_000], help="events, comma-separated "
        "(10000,100000); each in a database of its own",
    )  # fmt: skip
    parser.add_argument(
        "--before-up-to", type=int, default=300_000, help="run the rebuild as it was before up "
        "to this size (300000: beyond, it needs gigabytes)",
    )  # fmt: skip
    parser.add_argument("--batch", type=int, default=500, help="events per Processor call (500)")
    parser.add_argument(
        "--jobs", type=int, default=2, help="processes storing and processing events (2)"
    )
    parser.add_argument(
        "--fill",
        choices=("process", "rebuild"),
        default="process",
        help="process: every event through workers.processing.Processor, as live (default); "
        "rebuild: mark them processed and compute the state with one rebuild (fast, but the "
        "digest check then only shows the rebuild is deterministic)",
    )
    parser.add_argument("--cards", type=int, default=300, help="loyalty cards (300)")
    parser.add_argument(
        "--reward-every", type=int, default=10, help="one reward redemption in N (10)"
    )
    parser.add_argument("--stack-every", type=int, default=1000, help="one stack in N (1000)")
    parser.add_argument(
        "--processes", type=int, help="voucherhook rebuild --processes (default: its own)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep each database (named in the output) and, "
        "when one of that size is kept from before, use it instead of filling a new one",
    )  # fmt: skip
    parser.add_argument(
        "--profile", type=Path, help="also run the new rebuild in this process under cProfile "
        "(at the largest size), write it to this file and print its top",
    )  # fmt: skip
    args = parser.parse_args()
    if min(args.batch, args.cards, args.jobs) < 1:
        parser.error("--batch, --cards and --jobs must be >= 1")
    if args.reward_every < 0 or args.stack_every < 0:
        parser.error("--reward-every and --stack-every must be >= 0 (0: none)")
    return args


def _kept_name(size: int, args: argparse.Namespace) -> str:
    mix = f"{args.cards}_{args.reward_every}_{args.stack_every}_{args.fill}"
    return f"vh_bench_rebuild_kept_{size}_{mix}"


def _kept(name: str) -> bool:
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True, connect_timeout=5) as admin:
        return (
            admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            is not None
        )


def measure(size: int, args: argparse.Namespace, tmp: Path) -> tuple[float, list[Timing]]:
    """Fill a database with `size` events (or take the one kept), then time the rebuilds."""
    with ExitStack() as cleanup:
        tag = secrets.token_hex(4)
        name = _kept_name(size, args) if args.keep else f"vh_bench_rebuild_{tag}"
        filled = 0.0
        if args.keep and _kept(name):
            database_url = f"{PG_SERVER}/{name}"
            progress(f"using the kept database {name}")
        else:
            database_url = _database(name, keep=args.keep, cleanup=cleanup)
            progress(f"created database {name}")
            migrate(
                {**os.environ, "DATABASE_URL": database_url, "VOUCHERIFY_WEBHOOK_SECRET": SECRET}
            )
            engine = make_engine(database_url)
            try:
                filled = fill(database_url, engine, args, size, tag)
                counts = status_counts(engine)
            finally:
                engine.dispose()
            if counts.get("processed", 0) != size:
                raise BenchError(f"not every event was processed: {counts}")
        analyze(database_url)
        timings = []
        if size <= args.before_up_to:
            progress(f"{size:,}: the rebuild as it was before…")
            timings.append(timed(BEFORE, size, before_command(database_url), database_url, tmp))
        progress(f"{size:,}: voucherhook rebuild…")
        timings.append(timed(NEW, size, new_command(args.processes), database_url, tmp))
        if args.profile and size == max(args.sizes):
            progress(f"{size:,}: the new rebuild in this process, under cProfile…")
            engine = make_engine(database_url)
            try:
                rebuild_here(engine, args.profile, args.processes)
            finally:
                engine.dispose()
        return filled, timings


def analyze(database_url: str) -> None:
    """The statistics a live database has from autovacuum (a test server may run without it):
    the rebuild's plans read them."""
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    finally:
        engine.dispose()


def _database(name: str, *, keep: bool, cleanup: ExitStack) -> str:
    if not keep:
        url = cleanup.enter_context(postgres_database(name))
        cleanup.callback(lambda: progress(f"dropping database {name}"))
        return url
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return f"{PG_SERVER}/{name}"


def run(args: argparse.Namespace) -> None:
    fills: dict[int, float] = {}
    timings: list[Timing] = []
    with tempfile.TemporaryDirectory(prefix="vh-bench-") as tmp:
        for size in args.sizes:
            filled, found = measure(size, args, Path(tmp))
            if filled:
                fills[size] = filled
            timings += found
    report(args, fills, timings)
    if args.profile:
        print(f"\ncProfile of the in-process rebuild ({args.profile}), top 30 by internal time:")
        stats = pstats.Stats(str(args.profile), stream=sys.stdout)
        stats.sort_stats("tottime").print_stats(30)


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, _terminate)
    try:
        run(args)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted, cleaned up", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
