"""Recovery from a killed worker, at default settings: how long its events wait.

Each scenario runs, on loopback, one `voucherhook serve --no-worker` and `voucherhook worker`
processes (2 pool processes each) on a fresh PostgreSQL database and a Redis server of their
own, with notifications going to a real HTTP endpoint and SMTP server, every setting at its
default. The workload of the fault suite (`tests/support/workload.py`) sends `--events` events
at `--rate`/s; once `--kill-after` events are processed, the fault is injected:

- `second worker`: two workers run; the first one's whole process group is SIGKILLed;
- `restarted`: one worker; its process group is SIGKILLed and a new one started at once;
- `pool process`: one worker; one of its pool processes is SIGKILLed;
- `queue lost`: one worker, stopped (SIGSTOP) for 2 s while messages pile up in Redis, which
  then loses them (the queue is deleted, as a Redis restarted without persistence or a worker
  killed with a message read from Redis but not yet from its socket would); the worker goes on;
- `no kill` (the baseline, same run, same load): nothing is killed.

It prints, for each, the events pending at that moment and the seconds until every one of them
was processed (or ignored): from the kill, or from the restart. Events waiting longer than
`--cap` seconds are reported as not recovered. Then the checker (nothing lost, nothing doubled).

Run:  uv run python -m bench.recovery [--events 300] [--rate 30] [--cap 420]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import signal
import sys
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from sqlalchemy import Engine, func, select

from bench.receiver import migrate, postgres_database
from models.db.engine import make_engine
from models.db.tables import events, notifications
from tests.support.checker import check
from tests.support.processes import SINK_RATES, Fleet, base_env, pool_children
from tests.support.services import RedisServer
from tests.support.sinks import running_sinks
from tests.support.workload import Load, Workload

SCENARIOS = ("no kill", "second worker", "restarted", "pool process", "queue lost")
QUEUE = "vh-recovery"
WORKER = ("--concurrency", "2")


@dataclass(frozen=True)
class Outcome:
    scenario: str
    held: int
    """Events pending at the kill."""
    seconds: float | None
    """From the kill (or the restart) until all of them were processed; None: not within cap."""
    left: int
    checker: str


def pending_ids(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.scalars(select(events.c.id).where(events.c.status == "pending")))


def processed_count(engine: Engine) -> int:
    with engine.connect() as conn:
        done = select(func.count()).where(events.c.status.in_(("processed", "ignored")))
        return int(conn.scalar(done.select_from(events)) or 0)


def still_pending(engine: Engine, ids: set[str]) -> int:
    with engine.connect() as conn:
        stmt = select(func.count()).where(events.c.id.in_(ids), events.c.status == "pending")
        return int(conn.scalar(stmt.select_from(events)) or 0)


def run(scenario: str, args: argparse.Namespace) -> Outcome:
    with ExitStack() as stack:
        database_url = stack.enter_context(postgres_database(f"vh_recovery_{uuid.uuid4().hex}"))
        redis_server = RedisServer()
        redis_server.start()
        stack.callback(redis_server.close)
        sinks = stack.enter_context(running_sinks())
        # Notification rate limits the loopback sinks take: their drain is not what is measured.
        env = base_env(
            database_url,
            redis_server.url,
            VOUCHERHOOK_QUEUE=QUEUE,
            **SINK_RATES,
            **sinks.env(),
        )
        migrate(env)
        engine = make_engine(database_url)
        stack.callback(engine.dispose)
        fleet = stack.enter_context(Fleet(env))
        fleet.receiver()
        fleet.worker(*WORKER)
        if scenario == "second worker":
            fleet.worker(*WORKER)
        workload = stack.enter_context(
            Workload(fleet.webhook_urls, Load(events=args.events, rate=args.rate)).start()
        )
        while processed_count(engine) < args.kill_after:
            time.sleep(0.05)
        time.sleep(random.uniform(0.2, 1.0))
        worker = fleet.workers[0]
        if scenario == "queue lost":
            os.killpg(worker.pid, signal.SIGSTOP)
            time.sleep(2.0)
            redis.Redis.from_url(redis_server.url).delete(QUEUE)
        held = pending_ids(engine)
        if scenario in ("second worker", "restarted"):
            fleet.kill(worker)
            if scenario == "restarted":
                fleet.worker(*WORKER)
        elif scenario == "pool process":
            os.kill(random.choice(pool_children(worker)), signal.SIGKILL)
        elif scenario == "queue lost":
            os.killpg(worker.pid, signal.SIGCONT)
        start = time.monotonic()
        workload.fault(f"{scenario}: {len(held)} pending")
        seconds: float | None = None
        left = len(held)
        while time.monotonic() - start < args.cap:
            left = still_pending(engine, held)
            if left == 0:
                seconds = time.monotonic() - start
                break
            time.sleep(0.25)
        result = check(engine, workload, webhook_sink=sinks.webhook, smtp_sink=sinks.smtp)
        verdict = "ok" if not result.problems else "; ".join(result.problems)
        if seconds is None or result.problems:
            print(fleet.logs(1500), file=sys.stderr)
            with engine.connect() as conn:
                for row in conn.execute(
                    select(notifications).where(notifications.c.status != "sent")
                ):
                    print(dict(row._mapping), file=sys.stderr)
        return Outcome(scenario, len(held), seconds, left, verdict)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--kill-after", type=int, default=60, help="processed events first")
    parser.add_argument("--cap", type=float, default=420.0, help="seconds to wait at most")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS)
    args = parser.parse_args()
    print(
        f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%S%z} on {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}; load average "
        f"{os.getloadavg()[0]:.1f}; {args.events} events at {args.rate:g}/s, default settings"
    )
    print(f"{'scenario':<15} {'pending':>8} {'seconds to all processed':>26}  checker")
    baseline: float | None = None
    for scenario in args.scenario or SCENARIOS:
        outcome = run(scenario, args)
        if outcome.seconds is None:
            waited = f"> {args.cap:.0f} ({outcome.left} left)"
        else:
            waited = f"{outcome.seconds:.1f}"
            if scenario == "no kill":
                baseline = outcome.seconds
            elif baseline:
                waited += f" ({outcome.seconds / baseline:.1f}x no kill)"
        print(f"{scenario:<15} {outcome.held:>8} {waited:>26}  {outcome.checker}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
