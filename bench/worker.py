"""Benchmark of the worker against the baseline of docs/performance.md ("worker throughput").

Two measurements in one run, on this machine, over the same Redis (db 13, queues unique to
the run) and with the same worker settings (`make_celery`'s configuration: acks_late,
prefetch multiplier 1, JSON; prefork pool, `--concurrency` processes, no gossip/mingle/
heartbeat):

1. baseline: N no-op Celery tasks (`bench.noop_app`, one message per item, as a per-event task
   would be), published as fast as possible, then consumed by
   `celery -A bench.noop_app worker --pool=prefork --concurrency=C`;
2. voucherhook: N events committed as `pending` straight into the `events` table of a fresh,
   migrated PostgreSQL database (distinct `redemption.succeeded` events with distinct
   redemption and order ids, plus one `customer.reward_redemptions.completed` in 50 spread
   over a few loyalty cards), published the way the receiver does (one `process_events`
   message per 100 ids, `publisher(app, queue)`), then processed by
   `voucherhook worker --concurrency=C`. Notifications are on: NOTIFY_WEBHOOK_URL points to
   an HTTP sink (`bench.sinks`, uvicorn in a process of its own), so every event also plans
   one webhook notification, which the same worker then sends in `send_notifications` tasks of
   its own (`--no-notify` turns them off); with `--email`, SMTP_URL points to an SMTP server
   in that process too, and each
   redemption also emails its customer. The channels' rate limits are raised for the sinks
   (`--webhook-rate`, `--email-rate`, messages per second; the defaults of 1 and 10 would
   measure the limits), and the report says so.

Timing, the same for both: everything is published before the worker starts; the clock starts
when the first message leaves the queue (Redis LLEN polled every 5 ms) and stops when the work
is done, polled every 100 ms: for the baseline, the queue is empty and none of its messages is
unacknowledged (seen twice in a row); for voucherhook, no event is `pending` any more (index
on status). Worker start-up is thus excluded from both. A second voucherhook row goes on until
the sinks have received every notification: its items are the notifications.

Checks: events processed == N, ledger transactions booked == the count the pure posting rules
(`models.ledger`) give for the same payloads, notifications sent == expected.

RSS is VmHWM (peak resident set) of each worker process, read just before it is stopped: the
table gives the largest pool process and the main (consumer) process. CPU is the user+system
time of the main and pool processes over the timed interval (100 = one core).

Everything created (processes, database, Redis keys) is removed at the end, also on error or
Ctrl-C. Only loopback addresses are used; each wait is bounded (`--timeout`).

Run:  uv run python -m bench.worker [--events 20000] [--concurrency 2] [--email]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

import redis
from sqlalchemy import Engine, text

from bench.receiver import (
    HOST,
    ROOT,
    VENV_BIN,
    BenchError,
    migrate,
    peak_rss_kb,
    postgres_database,
    process_cpu_seconds,
    progress,
)
from bench.sinks import LoopbackSinks
from models.db import eventlog
from models.db.engine import make_engine
from models.db.eventlog import NewEvent
from models.identity import identify
from models.ledger import post_redemption, post_reward_redemption
from models.notifications import context as notification_context
from models.notifications import email_address
from models.voucherify import RedemptionSucceeded, RewardRedemptionCompleted, parse_payload
from receiver.outbox import BATCH
from tests.support.payloads import REWARD_REDEMPTION, envelope, reward_redemption
from tests.unit.recorded import REDEMPTION, redemption
from workers.celery_app import make_celery, publisher
from workers.settings import Settings

NOOP = "bench.noop"  # the task of bench.noop_app (not imported: it reads the environment)
REDIS_DB = 13
REDIS_URL = f"redis://{HOST}:6379/{REDIS_DB}"
CURRENCY = "USD"
CARDS = 4
REWARD_EVERY = 50
INSERT_CHUNK = 2000
FIRST_POLL = 0.005
DONE_POLL = 0.1
STOP_TIMEOUT = 20.0
UNACKED = "unacked"
UNACKED_INDEX = "unacked_index"
PIDBOX_KEYS = ("_kombu.binding.celery.pidbox", "_kombu.binding_deadlines")


# --- the workload ----------------------------------------------------------------------------


@dataclass
class Workload:
    """The events to store, and what processing them must leave behind."""

    events: list[NewEvent]
    transactions: int
    notifications: int
    rewards: int
    emails: int = 0


def build_workload(count: int, tag: str, *, notify: bool, email: bool) -> Workload:
    """`count` distinct events, with the figures the pure rules give for them."""
    now = datetime.now(UTC)
    events: list[NewEvent] = []
    keys: set[str] = set()
    notifications = rewards = emails = 0
    for i in range(count):
        if i % REWARD_EVERY == REWARD_EVERY - 1:
            rewards += 1
            card = f"v_bench_card_{tag}_{(i // REWARD_EVERY) % CARDS}"
            at = (now - timedelta(seconds=count - i)).isoformat(timespec="milliseconds")
            data = reward_redemption(
                f"rewr_{tag}_{i}",
                card,
                balance=100_000 - i,
                points=100,
                at=at.replace("+00:00", "Z"),
            )
            event_type = REWARD_REDEMPTION
        else:
            amount = 5_000 + i % 997
            data = redemption(
                f"r_{tag}_{i}", order_id=f"ord_{tag}_{i}", amount=amount, applied=100 + i % 500
            )
            event_type = REDEMPTION
        body = json.dumps(envelope(event_type, data, event_id=f"evt_{tag}_{i}")).encode()
        verdict = identify(body)
        if verdict.status != "pending":
            raise BenchError(f"event {i} would not be processed: {verdict}")
        payload = parse_payload(event_type, json.loads(body))
        if isinstance(payload, RedemptionSucceeded):
            keys.update(t.key for t in post_redemption(payload, CURRENCY))
        elif isinstance(payload, RewardRedemptionCompleted):
            keys.update(t.key for t in post_reward_redemption(payload))
        if notify and notification_context(event_type, payload, CURRENCY) is not None:
            notifications += 1
            emails += email and email_address(payload) is not None
        events.append(
            NewEvent(
                id=verdict.event_id,
                type=verdict.event_type,
                status="pending",
                received_at=now,
                body=body,
                headers={"content-type": "application/json", "user-agent": "voucherhook-bench"},
                remote_addr=HOST,
                delivery_id=verdict.delivery_id,
                error=None,
                # As the receiver does: stamped as handed to the broker, published after commit.
                dispatched_at=now,
            )
        )
    return Workload(events, len(keys), notifications + emails, rewards, emails)


def store(engine: Engine, events: list[NewEvent]) -> None:
    for start in range(0, len(events), INSERT_CHUNK):
        chunk = events[start : start + INSERT_CHUNK]
        with engine.begin() as conn:
            new = eventlog.insert_new(conn, chunk)
        if len(new) != len(chunk):
            raise BenchError(f"only {len(new)} of {len(chunk)} events were new")


def db_counts(engine: Engine, query: str) -> tuple[int, ...]:
    with engine.connect() as conn:
        row = conn.execute(text(query)).one()
    return tuple(int(value) for value in row)


# Cheap to poll: one probe of the (status, seq) index, from the end processed last.
ANY_PENDING = (
    "SELECT count(*) FROM (SELECT 1 FROM events WHERE status = 'pending' "
    "ORDER BY seq DESC LIMIT 1) AS probe"
)
FINAL_COUNTS = (
    "SELECT (SELECT count(*) FROM events WHERE status = 'processed'), "
    "(SELECT count(*) FROM events WHERE status = 'failed'), "
    "(SELECT count(*) FROM events WHERE status = 'pending'), "
    "(SELECT count(*) FROM ledger_transactions), "
    "(SELECT count(*) FROM ledger_conflicts), "
    "(SELECT count(*) FROM notifications WHERE status = 'sent'), "
    "(SELECT count(*) FROM notifications), "
    "(SELECT count(*) FROM loyalty_cards)"
)


# --- processes -------------------------------------------------------------------------------


@dataclass
class ProcStats:
    rss_main_mb: float
    rss_pool_max_mb: float
    rss_sum_mb: float
    pool_processes: int


class Worker:
    """A Celery worker (main process and its pool) in its own session, logging to a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.log = logs / f"{name}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.process.pid

    def pool(self) -> list[int]:
        try:
            text_ = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text()
        except OSError:
            return []
        return [int(pid) for pid in text_.split()]

    def cpu_seconds(self) -> float:
        return sum(process_cpu_seconds(pid) for pid in [self.pid, *self.pool()])

    def stats(self) -> ProcStats:
        pool = [peak_rss_kb(pid) / 1024 for pid in self.pool()]
        main = peak_rss_kb(self.pid) / 1024
        return ProcStats(main, max(pool, default=0.0), main + sum(pool), len(pool))

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise BenchError(f"{self.name} exited ({self.process.returncode}):\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.pid, signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            self.process.wait(5)


@contextmanager
def running(name: str, argv: list[str], env: dict[str, str], logs: Path) -> Iterator[Worker]:
    worker = Worker(name, argv, env, logs)
    try:
        yield worker
    finally:
        worker.stop()


# --- Redis -----------------------------------------------------------------------------------


def redis_client() -> redis.Redis[bytes]:
    return redis.Redis.from_url(REDIS_URL, socket_timeout=5, socket_connect_timeout=3)


def unacked_of(client: redis.Redis[bytes], queue: str) -> list[bytes]:
    """Delivery tags of messages taken from `queue` and not acknowledged yet."""
    entries: dict[bytes, bytes] = client.hgetall(UNACKED)
    tags = []
    for tag, value in entries.items():
        try:
            if json.loads(value)[-1] == queue:
                tags.append(tag)
        except (ValueError, IndexError, TypeError):
            continue
    return tags


def delete_redis_keys(queues: list[str]) -> int:
    """Our queues, their bindings, and any unacknowledged message of ours."""
    client = redis_client()
    try:
        deleted = 0
        for queue in queues:
            keys = list(client.scan_iter(match=f"*{queue}*", count=1000))
            deleted += int(client.delete(*keys)) if keys else 0
            tags = unacked_of(client, queue)
            if tags:
                deleted += int(client.hdel(UNACKED, *tags))
                client.zrem(UNACKED_INDEX, *tags)
        # The workers' remote-control binding is not named after our queues; drop it when
        # nothing else uses this database (it would otherwise linger until its deadline).
        leftovers = {key.decode() for key in client.scan_iter(count=1000)}
        if leftovers and leftovers <= set(PIDBOX_KEYS):
            deleted += int(client.delete(*PIDBOX_KEYS))
        return deleted
    finally:
        client.close()


# --- measuring -------------------------------------------------------------------------------


@dataclass
class Row:
    target: str
    items: int
    seconds: float
    rss: ProcStats | None
    cpu_percent: float | None
    baseline: bool = False

    @property
    def rate(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else float("nan")


@dataclass
class Context:
    args: argparse.Namespace
    tag: str
    logs: Path
    rows: list[Row] = field(default_factory=list)
    checks: list[tuple[str, bool]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    queues: list[str] = field(default_factory=list)

    def queue(self, name: str) -> str:
        queue = f"bench-{name}-{self.tag}"
        self.queues.append(queue)
        return queue

    def check(self, label: str, ok: bool) -> None:
        self.checks.append((label, ok))


def worker_flags(queue: str, concurrency: int) -> list[str]:
    """The options `workers.worker.run` gives `worker_main`."""
    return [
        "--pool=prefork", f"--concurrency={concurrency}", f"--queues={queue}",
        "--loglevel=WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip


def worker_env(
    queue: str,
    database_url: str,
    notify_url: str | None,
    smtp_url: str | None = None,
    rates: tuple[float, float] = (1.0, 10.0),
) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "VOUCHERIFY_WEBHOOK_SECRET": "bench-secret-5d2f9a7c31e04b68",
        "VOUCHERHOOK_QUEUE": queue,
        "VOUCHERHOOK_LOG_LEVEL": "WARNING",
        "VOUCHERHOOK_CURRENCY": CURRENCY,
    }
    env.pop("NOTIFY_WEBHOOK_URL", None)
    env.pop("SMTP_URL", None)
    if notify_url:
        env["NOTIFY_WEBHOOK_URL"] = notify_url
    if smtp_url:
        env["SMTP_URL"] = smtp_url
    env["VOUCHERHOOK_NOTIFY_WEBHOOK_RATE"] = f"{rates[0]:g}"
    env["VOUCHERHOOK_NOTIFY_EMAIL_RATE"] = f"{rates[1]:g}"
    return env


def settings_for(env: dict[str, str]) -> Settings:
    keys = ("DATABASE_URL", "REDIS_URL", "VOUCHERIFY_WEBHOOK_SECRET", "VOUCHERHOOK_QUEUE")
    return Settings.model_validate({key: env[key] for key in keys})


def wait_until(
    done: Callable[[], bool], worker: Worker, timeout: float, interval: float, what: str
) -> float:
    """Poll `done` until true; answer the monotonic time of the poll that saw it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return time.monotonic()
        worker.check_alive()
        time.sleep(interval)
    raise BenchError(f"{worker.name}: {what} not within {timeout:g}s\n{worker.log_tail()}")


def first_consumed(client: redis.Redis[bytes], queue: str, published: int) -> Callable[[], bool]:
    return lambda: int(client.llen(queue)) < published


def measure_noop(ctx: Context, when: str) -> Row:
    args = ctx.args
    queue = ctx.queue(f"noop-{when}")
    env = worker_env(queue, "sqlite:///:memory:", None)
    app = make_celery(settings_for(env), fail_fast=True)
    client = redis_client()
    try:
        started = time.monotonic()
        for i in range(args.events):
            app.send_task(NOOP, args=[[f"evt_{i}"]], queue=queue, retry=False)
        published = time.monotonic() - started
        ctx.notes.append(f"no-op {when}: published {args.events} tasks in {published:.1f}s")
        progress(ctx.notes[-1] + ", starting worker")

        def drained() -> bool:
            return int(client.llen(queue)) == 0 and not unacked_of(client, queue)

        def drained_twice() -> bool:
            if not drained():
                return False
            time.sleep(0.02)
            return drained()

        argv = [str(VENV_BIN / "celery"), "-A", "bench.noop_app", "worker"]
        argv += [
            *worker_flags(queue, args.concurrency),
            f"--hostname=bench-noop-{when}-{ctx.tag}@%h",
        ]
        with running("noop-worker", argv, env, ctx.logs) as worker:
            t0 = wait_until(
                first_consumed(client, queue, args.events), worker, args.timeout, FIRST_POLL,
                "first message consumed",
            )  # fmt: skip
            cpu0 = worker.cpu_seconds()
            t1 = wait_until(drained_twice, worker, args.timeout, DONE_POLL, "all tasks done")
            cpu = worker.cpu_seconds() - cpu0
            stats = worker.stats()
    finally:
        client.close()
        app.close()
    seconds = t1 - t0
    row = Row(
        f"celery no-op task (baseline, {when})", args.events, seconds, stats,
        100 * cpu / seconds, baseline=True,
    )  # fmt: skip
    progress(f"no-op {when}: {row.rate:.0f} tasks/s over {seconds:.2f}s")
    return row


def measure_voucherhook(ctx: Context, sink: LoopbackSinks | None) -> list[Row]:
    args = ctx.args
    email = sink is not None and args.email
    queue = ctx.queue("worker")
    started = time.monotonic()
    workload = build_workload(args.events, ctx.tag, notify=sink is not None, email=email)
    progress(
        f"voucherhook: built {len(workload.events)} events ({workload.rewards} reward "
        f"redemptions on {CARDS} cards) in {time.monotonic() - started:.1f}s"
    )
    with postgres_database(f"vh_bench_worker_{ctx.tag}") as database_url:
        env = worker_env(
            queue,
            database_url,
            sink.url if sink else None,
            sink.smtp_url if sink and email else None,
            (args.webhook_rate, args.email_rate),
        )
        migrate(env)
        engine = make_engine(database_url, pool_size=1)
        app = make_celery(settings_for(env), fail_fast=True)
        client = redis_client()
        try:
            started = time.monotonic()
            store(engine, workload.events)
            stored = time.monotonic() - started
            ids = [event.id for event in workload.events]
            publish = publisher(app, queue)
            started = time.monotonic()
            for start in range(0, len(ids), BATCH):
                publish(ids[start : start + BATCH])
            messages = (len(ids) + BATCH - 1) // BATCH
            ctx.notes.append(
                f"voucherhook: stored {len(ids)} events in {stored:.1f}s, published "
                f"{messages} messages of up to {BATCH} ids in {time.monotonic() - started:.2f}s"
            )
            progress(ctx.notes[-1] + ", starting worker")

            def settled() -> bool:
                return db_counts(engine, ANY_PENDING)[0] == 0

            argv = [str(VENV_BIN / "voucherhook"), "worker", f"--concurrency={args.concurrency}"]
            with running("voucherhook-worker", argv, env, ctx.logs) as worker:
                t0 = wait_until(
                    first_consumed(client, queue, messages), worker, args.timeout, FIRST_POLL,
                    "first message consumed",
                )  # fmt: skip
                cpu0 = worker.cpu_seconds()
                sink_cpu0 = sink.cpu_seconds() if sink else 0.0
                t1 = wait_until(settled, worker, args.timeout, DONE_POLL, "all events settled")
                cpu1 = worker.cpu_seconds()
                stats1 = worker.stats()
                rows = [
                    Row("voucherhook: events processed", len(ids), t1 - t0, stats1,
                        100 * (cpu1 - cpu0) / (t1 - t0)),
                ]  # fmt: skip
                if sink is not None:
                    expected = workload.notifications
                    t2 = wait_until(
                        lambda: received(sink) >= expected, worker, args.timeout,
                        DONE_POLL, f"{expected} notifications received",
                    )  # fmt: skip
                    cpu2 = worker.cpu_seconds()
                    sink_cpu = sink.cpu_seconds() - sink_cpu0
                    ctx.notes.append(
                        f"loopback sinks (their own process): {100 * sink_cpu / (t2 - t0):.0f}% "
                        f"CPU, {1e6 * sink_cpu / expected:.0f} us per message"
                    )
                    rows.append(
                        Row("voucherhook: + notifications sent", expected, t2 - t0,
                            worker.stats(), 100 * (cpu2 - cpu0) / (t2 - t0))
                    )  # fmt: skip
                    # Let the last `mark_sent` commits land before counting.
                    deadline = time.monotonic() + 10
                    while time.monotonic() < deadline and (
                        db_counts(engine, "SELECT count(*) FROM notifications "
                                  "WHERE status = 'sent'")[0] < expected
                    ):  # fmt: skip
                        time.sleep(0.1)
                ctx.notes.append(f"voucherhook worker log: {_log_summary(worker)}")
            verify(ctx, engine, workload, sink)
        finally:
            client.close()
            app.close()
            engine.dispose()
    for row in rows:
        progress(f"{row.target}: {row.rate:.0f} items/s over {row.seconds:.2f}s")
    return rows


def received(sink: LoopbackSinks) -> int:
    return sink.webhooks + sink.emails


def verify(ctx: Context, engine: Engine, workload: Workload, sink: LoopbackSinks | None) -> None:
    processed, failed, pending, booked, conflicts, sent, planned, cards = db_counts(
        engine, FINAL_COUNTS
    )
    n = len(workload.events)
    ctx.check(
        f"events processed == N: {processed} == {n} (failed {failed}, pending {pending})",
        processed == n,
    )
    ctx.check(
        f"ledger transactions booked == expected: {booked} == {workload.transactions} "
        f"(conflicts {conflicts})",
        booked == workload.transactions and conflicts == 0,
    )
    ctx.check(f"loyalty cards == {CARDS}: {cards}", cards == CARDS)
    if sink is not None:
        got = received(sink)
        ctx.check(
            f"notifications planned == sent == received by the sinks == expected: "
            f"{planned} == {sent} == {got} == {workload.notifications} "
            f"({workload.emails} of them emails)",
            planned == sent == got == workload.notifications,
        )


def _log_summary(worker: Worker) -> str:
    lines = worker.log.read_text(errors="replace").splitlines()
    warnings = [line for line in lines if "warning" in line.lower() or "error" in line.lower()]
    last = f", last: {warnings[-1][:200]}" if warnings else ""
    return f"{len(lines)} lines, {len(warnings)} warnings/errors{last}"


# --- report ----------------------------------------------------------------------------------

COLUMNS = (
    ("target", 36), ("items", 7), ("seconds", 8), ("items/s", 8), ("ratio", 6),
    ("RSS pool max MB", 15), ("RSS main MB", 11), ("CPU%", 5),
)  # fmt: skip


def report(ctx: Context) -> None:
    args = ctx.args
    baseline = max(row.rate for row in ctx.rows if row.baseline)
    print()
    print(
        f"voucherhook worker benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"nproc {os.cpu_count()}, {args.events} items, concurrency {args.concurrency} "
        f"(prefork), notifications {'on' if args.notify else 'off'}"
    )
    if args.notify:
        print(
            f"rate limits raised for the sinks: VOUCHERHOOK_NOTIFY_WEBHOOK_RATE="
            f"{args.webhook_rate:g}, VOUCHERHOOK_NOTIFY_EMAIL_RATE={args.email_rate:g} "
            f"(defaults 1 and 10 per second); email {'on' if args.email else 'off'}"
        )
    header = f"{COLUMNS[0][0]:<{COLUMNS[0][1]}}  " + "  ".join(f"{n:>{w}}" for n, w in COLUMNS[1:])
    print(header)
    print("-" * len(header))
    for row in ctx.rows:
        rss = row.rss
        cells = (
            f"{row.items}", f"{row.seconds:.2f}", f"{row.rate:.0f}", f"{row.rate / baseline:.2f}",
            f"{rss.rss_pool_max_mb:.0f} (x{rss.pool_processes})" if rss else "-",
            f"{rss.rss_main_mb:.0f}" if rss else "-",
            f"{row.cpu_percent:.0f}" if row.cpu_percent is not None else "-",
        )  # fmt: skip
        print(
            f"{row.target:<{COLUMNS[0][1]}}  "
            + "  ".join(f"{c:>{w}}" for c, (_, w) in zip(cells, COLUMNS[1:], strict=True))
        )
    print()
    print("seconds: first message consumed -> all done (published before the worker started);")
    print("ratio: items/s over the faster no-op run's tasks/s; RSS: VmHWM, largest pool process")
    print("and main process;")
    print("CPU%: worker main + pool processes over the timed interval (100 = one core).")
    print()
    print("checks:")
    for label, ok in ctx.checks:
        print(f"  {'ok' if ok else 'FAILED'}: {label}")
    for note in ctx.notes:
        print(note)


# --- main ------------------------------------------------------------------------------------


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.worker",
        description="Worker throughput vs a Celery no-op task, same Redis, same settings.",
    )
    parser.add_argument("--events", type=int, default=20_000, help="events / tasks (20000)")
    parser.add_argument("--concurrency", type=int, default=2, help="pool processes (2)")
    parser.add_argument("--timeout", type=float, default=600.0, help="max seconds per wait")
    parser.add_argument(
        "--no-notify", dest="notify", action="store_false", help="no NOTIFY_WEBHOOK_URL"
    )
    parser.add_argument("--email", action="store_true", help="SMTP_URL too: email customers")
    parser.add_argument(
        "--webhook-rate", type=float, default=100_000.0, help="webhook messages/s (100000)"
    )
    parser.add_argument("--email-rate", type=float, default=100_000.0, help="emails/s (100000)")
    args = parser.parse_args()
    if args.events < 1 or args.concurrency < 1 or args.timeout <= 0:
        parser.error("events and concurrency must be >= 1, timeout > 0")
    if args.webhook_rate <= 0 or args.email_rate <= 0:
        parser.error("rates must be > 0 messages per second")
    return args


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, _terminate)
    try:
        with ExitStack() as cleanup:
            logs = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="vh-bench-w-")))
            ctx = Context(args, secrets.token_hex(4), logs)
            cleanup.callback(
                lambda: progress(f"deleted {delete_redis_keys(ctx.queues)} Redis keys/entries")
            )
            ctx.rows.append(measure_noop(ctx, "before"))
            sink = cleanup.enter_context(LoopbackSinks()) if args.notify else None
            ctx.rows.extend(measure_voucherhook(ctx, sink))
            ctx.rows.append(measure_noop(ctx, "after"))
            report(ctx)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted, cleaned up", file=sys.stderr)
        return 130
    return 0 if all(ok for _, ok in ctx.checks) else 1


if __name__ == "__main__":
    sys.exit(main())
