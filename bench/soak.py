"""Soak: the production topology under a steady Voucherify-like load for a chosen time.

Starts, on loopback, `--receivers` `voucherhook serve --no-worker` processes and `--workers`
`voucherhook worker` processes on a fresh PostgreSQL database and their own Redis queue, with
notifications going to a real HTTP endpoint and a real SMTP server in this process. The workload
of the fault suite (`tests/support/workload.py`: redemptions, reward redemptions on shared
cards, rollbacks, stacks, ignored types; signed, retried with backoff like Voucherify) sends
`--rate` events/s for `--minutes`. Every `--every` seconds it prints one line: events accepted
and processed in the interval (per second), the backlog (pending events, and the age of the
oldest), notifications sent, and the resident memory of the receivers and the workers (summed
over each process tree).

At the end the checker compares sent, stored, booked and notified (accepted = sent, processed
= accepted, lost 0, double-booked 0, duplicate notifications 0), and two verdicts are printed:

- memory flat: each role's RSS at the end is within `--rss-growth` (default 20 %) of its RSS
  after the first quarter of the run (start-up and warm-up excluded);
- backlog bounded: the backlog never exceeded `--max-backlog-seconds` (default 30) seconds of
  load, and the largest backlog of the second half is no larger than that of the first half
  plus 5 seconds of load (it does not grow with time).

Exit status 0 when the checker and both verdicts hold, 1 otherwise. Not part of the test suite.

Run:  uv run python -m bench.soak --minutes 30 [--rate 50] [--receivers 2] [--workers 3]
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import redis
from sqlalchemy import Engine, func, select

from bench.receiver import BenchError, migrate, postgres_database
from models.db import eventlog
from models.db.engine import make_engine
from models.db.tables import events, notifications
from tests.support.checker import check
from tests.support.processes import Fleet, Process, base_env
from tests.support.services import REDIS_URL
from tests.support.sinks import running_sinks
from tests.support.workload import Load, Workload


@dataclass(frozen=True)
class Sample:
    at: float
    accepted: int
    processed: int
    backlog: int
    oldest: float
    sent_notifications: int
    receivers_mb: float
    workers_mb: float


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (Linux /proc), in MB."""
    total_kb, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total_kb += int(line.split()[1])
        stack += [int(child) for child in children]
    return total_kb / 1024


def role_rss(processes: list[Process]) -> float:
    return sum(tree_rss_mb(process.pid) for process in processes)


def sample(engine: Engine, fleet: Fleet, workload: Workload) -> Sample:
    with engine.connect() as conn:
        pending, _undispatched, oldest = eventlog.backlog(conn, datetime.now(UTC))
        done = conn.scalar(
            select(func.count()).select_from(events).where(events.c.status != "pending")
        )
        sent = conn.scalar(
            select(func.count()).select_from(notifications).where(notifications.c.status == "sent")
        )
    return Sample(
        at=workload.elapsed(),
        accepted=workload.accepted_count(),
        processed=done or 0,
        backlog=pending,
        oldest=oldest,
        sent_notifications=sent or 0,
        receivers_mb=role_rss(list(fleet.receivers)),
        workers_mb=role_rss(list(fleet.workers)),
    )


HEADER = (
    f"{'time':>6} {'accepted/s':>10} {'processed/s':>11} {'backlog':>8} {'oldest s':>8} "
    f"{'notified/s':>10} {'receivers MB':>12} {'workers MB':>10}"
)


def line(previous: Sample, current: Sample) -> str:
    span = max(current.at - previous.at, 1e-9)

    def rate(attribute: str) -> float:
        return (getattr(current, attribute) - getattr(previous, attribute)) / span

    return (
        f"{current.at:>6.0f} {rate('accepted'):>10.1f} {rate('processed'):>11.1f} "
        f"{current.backlog:>8} {current.oldest:>8.1f} {rate('sent_notifications'):>10.1f} "
        f"{current.receivers_mb:>12.0f} {current.workers_mb:>10.0f}"
    )


def memory_flat(samples: list[Sample], growth: float) -> tuple[bool, str]:
    after_warmup = samples[max(1, len(samples) // 4)]
    last = samples[-1]
    verdicts = []
    ok = True
    for role in ("receivers_mb", "workers_mb"):
        start, end = getattr(after_warmup, role), getattr(last, role)
        change = (end - start) / start if start else 0.0
        ok = ok and change <= growth
        verdicts.append(f"{role.removesuffix('_mb')} {start:.0f} → {end:.0f} MB ({change:+.0%})")
    return ok, "; ".join(verdicts)


def backlog_bounded(samples: list[Sample], rate: float, limit_s: float) -> tuple[bool, str]:
    loaded = [s for s in samples if s.at > 0]
    half = len(loaded) // 2
    first = max((s.backlog for s in loaded[:half]), default=0)
    second = max((s.backlog for s in loaded[half:]), default=0)
    peak = max(first, second)
    ok = peak <= rate * limit_s and second <= first + rate * 5
    return ok, (
        f"largest backlog {peak} events (limit {rate * limit_s:.0f}); "
        f"first half {first}, second half {second}"
    )


def run(args: argparse.Namespace) -> int:
    seconds = args.minutes * 60
    load = Load(events=max(int(seconds * args.rate), 20), rate=args.rate)
    queue = f"vh-soak-{uuid.uuid4().hex[:8]}"
    with ExitStack() as stack:
        database_url = stack.enter_context(postgres_database(f"vh_soak_{uuid.uuid4().hex[:8]}"))
        stack.callback(redis.Redis.from_url(args.redis).delete, queue)
        sinks = stack.enter_context(running_sinks())
        # The outbox's default timings: a soak shows the steady state, not recovery.
        env = base_env(database_url, args.redis, VOUCHERHOOK_QUEUE=queue, **sinks.env())
        migrate(env)
        engine = make_engine(database_url)
        stack.callback(engine.dispose)
        fleet = stack.enter_context(Fleet(env))
        for _ in range(args.receivers):
            fleet.receiver()
        for _ in range(args.workers):
            fleet.worker("--concurrency", str(args.concurrency))
        print(
            f"soak: {args.receivers} receivers, {args.workers} workers "
            f"of {args.concurrency} processes, {load.describe()}",
            flush=True,
        )
        print(HEADER, flush=True)
        workload = stack.enter_context(Workload(fleet.webhook_urls, load, deadline=seconds + 600))
        workload.start()
        samples = [sample(engine, fleet, workload)]
        while workload.elapsed() < seconds:
            time.sleep(min(args.every, max(seconds - workload.elapsed(), 0.1)))
            samples.append(sample(engine, fleet, workload))
            print(line(samples[-2], samples[-1]), flush=True)
        result = check(
            engine, workload, webhook_sink=sinks.webhook, smtp_sink=sinks.smtp, timeout=600
        )
        flat, memory = memory_flat(samples, args.rss_growth)
        bounded, backlog = backlog_bounded(samples, args.rate, args.max_backlog_seconds)
        print(f"\nchecker: {'ok' if not result.problems else 'FAILED'}: {result.summary()}")
        for problem in result.problems:
            print(f"  - {problem}")
        print(f"memory flat: {'yes' if flat else 'NO'}: {memory}")
        print(f"backlog bounded: {'yes' if bounded else 'NO'}: {backlog}")
        return 0 if flat and bounded and not result.problems else 1
    return 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--minutes", type=float, default=30.0, help="how long the load lasts")
    parser.add_argument("--rate", type=float, default=50.0, help="new events per second")
    parser.add_argument("--receivers", type=int, default=2)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=2, help="pool processes per worker")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between lines")
    parser.add_argument("--rss-growth", type=float, default=0.20)
    parser.add_argument("--max-backlog-seconds", type=float, default=30.0)
    parser.add_argument("--redis", default=REDIS_URL, help="Redis URL (a queue of its own)")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.rate <= 0 or args.every <= 0:
        parser.error("--minutes, --rate and --every must be positive")
    if args.receivers < 1 or args.workers < 1 or args.concurrency < 1:
        parser.error("--receivers, --workers and --concurrency must be at least 1")
    return args


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return run(args)
    except BenchError as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("soak: interrupted; everything it started is stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
