"""Benchmark of the webhook receiver against the baseline of docs/performance.md.

Measures, on this machine and in this run, with the same load generator (`bench.loadgen`,
a separate process: fresh event id and HMAC signature on every request):

1. maximum throughput on PostgreSQL, `--connections` keep-alive connections for `--duration`
   seconds, baseline then receiver, alternated `--rounds` times (best round reported);
2. latency (p50/p99) at half the receiver's best throughput, open loop, on both apps;
3. maximum throughput on SQLite, the same way;
4. peak RSS (VmHWM) and CPU of each server process;
5. CPU per stored delivery: the server, PostgreSQL, the load generator, the whole machine
   (and the share the hypervisor gave to others), which on a shared machine moves less than
   requests per second do.

The receiver is `voucherhook serve --no-worker` on a fresh, migrated PostgreSQL database
(and on a fresh SQLite file), publishing to a throw-away Redis queue nobody consumes. The
baseline (`bench.baseline`) is a bare Starlette app on the same uvicorn settings that verifies
the HMAC and inserts each body with one INSERT. After each receiver run the rows added to
`events` are compared with the 2xx answers: every acknowledged event must be stored.

Everything it creates (processes, databases, Redis keys, temporary files) is removed at the
end, also on error or Ctrl-C. Only loopback addresses are used.

With `--minimal`, `bench.minimal_receiver` takes the receiver's place: the least a receiver
must do per delivery (HMAC, JSON parse, group-commit insert), with none of the receiver's
checks, limits, metrics or outbox. It tells how much of the receiver's cost is its own.

Run:  uv run python -m bench.receiver [--duration 15] [--connections 32] [--rounds 2] [--minimal]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from types import FrameType
from typing import Any

import httpx
import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
PG_SERVER = f"postgresql://postgres@{HOST}:5432"
REDIS_URL = f"redis://{HOST}:6379/15"
WEBHOOK_PATH = "/webhooks/voucherify"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
CLK_TCK = os.sysconf("SC_CLK_TCK")

BASELINE_TABLE_PG = (
    "CREATE TABLE baseline_events (seq bigserial PRIMARY KEY, "
    "received_at timestamptz NOT NULL DEFAULT now(), body bytea NOT NULL)"
)
BASELINE_TABLE_SQLITE = (
    "CREATE TABLE baseline_events (seq INTEGER PRIMARY KEY, "
    "received_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, body BLOB NOT NULL)"
)


class BenchError(Exception):
    """A step of the benchmark failed; the message says which."""


# --- processes -------------------------------------------------------------------------------


class Server:
    """A server child process in its own session, its output kept in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.port = int(argv[argv.index("--port") + 1])
        self.log = logs / f"{name.replace(' ', '-')}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"{self.name} exited at start:\n{self.log_tail()}")
            try:
                if httpx.get(f"http://{HOST}:{self.port}/healthz", timeout=1).is_success:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise BenchError(f"{self.name} not ready within {START_TIMEOUT:g}s:\n{self.log_tail()}")

    def peak_rss_mb(self) -> float:
        """VmHWM: the highest resident set size since the process started."""
        return peak_rss_kb(self.pid) / 1024

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.pid)

    def log_tail(self, lines: int = 20) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.pid, signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            self.process.wait(5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def running(name: str, argv: list[str], env: dict[str, str], logs: Path) -> Iterator[Server]:
    server = Server(name, argv, env, logs)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def load(
    url: str, secret: str, *, connections: int, duration: float, rate: float | None = None
) -> dict[str, Any]:
    argv = [sys.executable, "-m", "bench.loadgen", "--url", url]
    argv += ["--connections", str(connections), "--duration", str(duration)]
    if rate:
        argv += ["--rate", f"{rate:.1f}"]
    done = subprocess.run(
        argv, cwd=ROOT, env={**os.environ, "BENCH_SECRET": secret}, capture_output=True,
        text=True, timeout=duration + 60, start_new_session=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise BenchError(f"load generator failed ({done.returncode}): {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# --- databases and Redis ---------------------------------------------------------------------


@contextmanager
def postgres_database(name: str) -> Iterator[str]:
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True, connect_timeout=5) as a:
            a.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrate(env: dict[str, str]) -> None:
    done = subprocess.run(
        [str(VENV_BIN / "voucherhook"), "migrate"], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise BenchError(f"voucherhook migrate failed: {done.stderr.strip()}")


def create_baseline_table(database_url: str) -> None:
    if database_url.startswith("sqlite:///"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            conn.execute(BASELINE_TABLE_SQLITE)
        return
    with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(BASELINE_TABLE_PG)


def count_rows(database_url: str, table: str) -> int:
    query = f"SELECT count(*) FROM {table}"
    if database_url.startswith("sqlite:///"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=10) as conn:
            return int(conn.execute(query).fetchone()[0])
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        row = conn.execute(query).fetchone()
        return int(row[0]) if row else 0


def delete_redis_keys(queue: str) -> int:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5, socket_connect_timeout=3)
    keys = list(client.scan_iter(match=f"*{queue}*", count=1000))
    deleted = int(client.delete(*keys)) if keys else 0
    client.close()
    return deleted


# --- measuring -------------------------------------------------------------------------------


@dataclass
class Target:
    """One app under test: its server, its database and the table its events land in."""

    label: str
    server: Server
    database_url: str
    table: str

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server.port}{WEBHOOK_PATH}"


@dataclass(frozen=True)
class CpuTimes:
    """CPU seconds spent so far: by the server, by PostgreSQL (every `postgres` process on
    this machine: the benchmark's server is local), and by the whole machine, with the time
    the hypervisor gave to others (steal) apart."""

    server: float
    postgres: float
    machine_busy: float
    machine_steal: float

    @classmethod
    def now(cls, server: Server) -> CpuTimes:
        busy, steal = machine_seconds()
        return cls(server.cpu_seconds(), postgres_cpu_seconds(), busy, steal)

    def __sub__(self, other: CpuTimes) -> CpuTimes:
        return CpuTimes(
            self.server - other.server,
            self.postgres - other.postgres,
            self.machine_busy - other.machine_busy,
            self.machine_steal - other.machine_steal,
        )


def process_cpu_seconds(pid: int | str) -> float:
    """User + system CPU of process `pid`, all its threads, so far; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_kb(pid: int) -> int:
    """VmHWM of process `pid`: the highest resident set size it has had; 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def postgres_cpu_seconds() -> float:
    total = 0.0
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == "postgres":
                total += process_cpu_seconds(entry.name)
        except OSError:  # gone in between
            continue
    return total


def machine_seconds() -> tuple[float, float]:
    """CPU seconds the machine was busy (user, nice, system, irq, softirq) and stolen."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6]
    return busy / CLK_TCK, fields[7] / CLK_TCK


@dataclass
class Measurement:
    label: str
    result: dict[str, Any]
    rss_mb: float
    server_cpu_percent: float
    rows_added: int
    cpu: CpuTimes

    def per_delivery_us(self, seconds: float) -> float:
        ok = int(self.result["ok"])
        return 1e6 * seconds / ok if ok else float("nan")

    @property
    def generator_cpu_seconds(self) -> float:
        return float(self.result["cpu_percent"]) / 100 * float(self.result["elapsed"])

    @property
    def rps(self) -> float:
        return float(self.result["ok_rps"])

    @property
    def errors(self) -> int:
        return int(self.result["requests"] - self.result["ok"])

    @property
    def stored_ok(self) -> bool:
        return self.rows_added == int(self.result["ok"])


def measure(
    target: Target, secret: str, *, connections: int, duration: float, rate: float | None = None
) -> Measurement:
    rows_before = count_rows(target.database_url, target.table)
    cpu_before = CpuTimes.now(target.server)
    result = load(target.url, secret, connections=connections, duration=duration, rate=rate)
    cpu = CpuTimes.now(target.server) - cpu_before
    rows_added = count_rows(target.database_url, target.table) - rows_before
    label = target.label if rate is None else f"{target.label} @{rate:.0f}/s"
    measured = Measurement(
        label, result, target.server.peak_rss_mb(), 100 * cpu.server / result["elapsed"],
        rows_added, cpu,
    )  # fmt: skip
    progress(
        f"  {label}: {measured.rps:.0f} req/s, p99 {_fmt(result['p99_ms'])} ms, "
        f"errors {measured.errors}, 2xx {result['ok']} / rows added {rows_added}"
    )
    return measured


def best(runs: list[Measurement]) -> Measurement:
    return max(runs, key=lambda m: m.rps)


def throughput_rounds(
    baseline: Target, receiver: Target, secret: str, args: argparse.Namespace
) -> tuple[list[Measurement], list[Measurement]]:
    for target in (baseline, receiver):
        load(target.url, secret, connections=args.connections, duration=args.warmup)
    base_runs: list[Measurement] = []
    recv_runs: list[Measurement] = []
    for _ in range(args.rounds):
        for target, runs in ((baseline, base_runs), (receiver, recv_runs)):
            runs.append(
                measure(target, secret, connections=args.connections, duration=args.duration)
            )
    return base_runs, recv_runs


# --- the phases ------------------------------------------------------------------------------


@dataclass
class Phase:
    """The runs on one database: throughput rounds, then optionally latency runs."""

    database: str
    baseline_runs: list[Measurement]
    receiver_runs: list[Measurement]
    latency_runs: list[Measurement]


def server_env(database_url: str, secret: str, queue: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "VOUCHERIFY_WEBHOOK_SECRET": secret,
        "REDIS_URL": REDIS_URL,
        "VOUCHERHOOK_QUEUE": queue,
        "VOUCHERHOOK_LOG_LEVEL": "WARNING",
        "BENCH_SECRET": secret,
    }


@dataclass
class Context:
    """What every phase of one benchmark run shares."""

    tag: str
    tmp: Path
    secret: str = field(default_factory=lambda: secrets.token_hex(16))
    minimal: bool = False
    """Measure bench.minimal_receiver in the receiver's place."""
    log_notes: list[str] = field(default_factory=list)

    @property
    def queue(self) -> str:
        return f"bench-{self.tag}"


def run_phase(
    name: str,
    receiver_db: str,
    baseline_db: str,
    run: Callable[[Target, Target], Phase],
    context: Context,
) -> Phase:
    """Migrate, start both servers on `name`'s databases, and run the measurements."""
    env = server_env(receiver_db, context.secret, context.queue)
    migrate(env)
    create_baseline_table(baseline_db)
    logs = context.tmp
    if context.minimal:
        kind = "minimal"
        serve = [
            sys.executable, "-m", "uvicorn", "bench.minimal_receiver:app", "--host", HOST,
            "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
    else:
        kind = "receiver"
        serve = [str(VENV_BIN / "voucherhook"), "serve", "--no-worker", "--host", HOST]
    base_argv = [sys.executable, "-m", "bench.baseline", "--database", baseline_db]
    with (
        running(f"baseline {name}", [*base_argv, "--port", str(free_port())], env, logs) as b,
        running(f"{kind} {name}", [*serve, "--port", str(free_port())], env, logs) as r,
    ):
        progress(f"{name}: baseline pid {b.pid}, {kind} pid {r.pid}")
        phase = run(
            Target(f"baseline {name}", b, baseline_db, "baseline_events"),
            Target(f"{kind} {name}", r, receiver_db, "events"),
        )
        context.log_notes.extend(log_note(s) for s in (b, r))
    return phase


def log_note(server: Server) -> str:
    lines = server.log.read_text(errors="replace").splitlines()
    if not lines:
        return f"{server.name}: no log output"
    return f"{server.name}: {len(lines)} log lines, last: {lines[-1][:300]}"


def postgres_phase(args: argparse.Namespace, context: Context) -> Phase:
    secret = context.secret

    def run(baseline: Target, receiver: Target) -> Phase:
        base_runs, recv_runs = throughput_rounds(baseline, receiver, secret, args)
        rate = best(recv_runs).rps / 2
        latency = [
            measure(t, secret, connections=args.connections, duration=args.duration, rate=rate)
            for t in (baseline, receiver)
        ]
        return Phase("PostgreSQL", base_runs, recv_runs, latency)

    with postgres_database(f"vh_bench_{context.tag}") as db:
        return run_phase("PG", db, db, run, context)


def sqlite_phase(args: argparse.Namespace, context: Context) -> Phase:
    secret = context.secret
    tmp = context.tmp

    def run(baseline: Target, receiver: Target) -> Phase:
        base_runs, recv_runs = throughput_rounds(baseline, receiver, secret, args)
        return Phase("SQLite", base_runs, recv_runs, [])

    return run_phase(
        "SQLite", f"sqlite:///{tmp / 'receiver.db'}", f"sqlite:///{tmp / 'baseline.db'}",
        run, context,
    )  # fmt: skip


# --- report ----------------------------------------------------------------------------------

COLUMNS = (
    ("target", 28), ("requests/s", 10), ("p50 ms", 8), ("p99 ms", 8), ("errors", 7),
    ("RSS MB", 7), ("srv CPU%", 8), ("gen CPU%", 8), ("ratio", 6),
)  # fmt: skip


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table_row(m: Measurement, ratio: float | None) -> str:
    cells = (
        m.label, f"{m.rps:.0f}", _fmt(m.result["p50_ms"]), _fmt(m.result["p99_ms"]),
        str(m.errors), f"{m.rss_mb:.0f}", f"{m.server_cpu_percent:.0f}",
        f"{m.result['cpu_percent']:.0f}", _fmt(ratio, 2),
    )  # fmt: skip
    first = f"{cells[0]:<{COLUMNS[0][1]}}"
    return "  ".join(
        [first, *(f"{c:>{w}}" for c, (_, w) in zip(cells[1:], COLUMNS[1:], strict=True))]
    )


def report(phases: list[Phase], args: argparse.Namespace, log_notes: list[str]) -> None:
    header = f"{COLUMNS[0][0]:<{COLUMNS[0][1]}}  " + "  ".join(f"{n:>{w}}" for n, w in COLUMNS[1:])
    print()
    print(
        f"voucherhook receiver benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"nproc {os.cpu_count()}, {args.connections} connections, {args.duration:g} s runs, "
        f"best of {args.rounds} rounds"
    )
    print(header)
    print("-" * len(header))
    for phase in phases:
        base = best(phase.baseline_runs)
        recv = best(phase.receiver_runs)
        print(table_row(base, 1.0))
        print(table_row(recv, recv.rps / base.rps if base.rps else None))
        for m in phase.latency_runs:
            print(table_row(m, None))
    print()
    print("ratio: receiver 2xx/s over the best baseline on the same database; RSS is VmHWM;")
    print("srv/gen CPU%: server / load generator CPU over the run (100 = one core).")
    print()
    cpu_report(phases)
    for phase in phases:
        rounds = zip(phase.baseline_runs, phase.receiver_runs, strict=True)
        shown = ", ".join(f"{b.rps:.0f} / {r.rps:.0f}" for b, r in rounds)
        print(f"{phase.database} rounds (baseline / receiver req/s): {shown}")
        base_median = median(m.rps for m in phase.baseline_runs)
        recv_median = median(m.rps for m in phase.receiver_runs)
        ratio = _fmt(recv_median / base_median if base_median else None, 2)
        print(
            f"{phase.database} medians: baseline {base_median:.0f}, receiver {recv_median:.0f} "
            f"req/s, ratio {ratio}"
        )
    print()
    print("stored check (rows added to the table == 2xx answers):")
    for phase in phases:
        numbered = [
            (f"{m.label} #{i}", m)
            for runs in (phase.baseline_runs, phase.receiver_runs)
            for i, m in enumerate(runs, 1)
        ]
        for label, m in [*numbered, *((m.label, m) for m in phase.latency_runs)]:
            verdict = "ok" if m.stored_ok else "MISMATCH"
            details = _error_details(m)
            print(f"  {label}: 2xx {m.result['ok']}, rows {m.rows_added}: {verdict}{details}")
    print()
    for note in log_notes:
        print(note)


def cpu_report(phases: list[Phase]) -> None:
    """CPU per stored delivery, medians over the throughput rounds: steadier than requests
    per second on a shared machine, and the sum says what the machine can take at most."""
    print("CPU per 2xx delivery, median of the rounds (us): server, PostgreSQL, load generator;")
    print("machine = all busy CPU (these and the rest); steal = % of the run's CPU time")
    print("the hypervisor gave to others.")
    head = f"{'target':<28}  {'server':>7}  {'PG':>7}  {'gen':>7}  {'machine':>7}  {'steal%':>6}"
    print(head)
    print("-" * len(head))
    for phase in phases:
        for runs in (phase.baseline_runs, phase.receiver_runs):
            server = median(m.per_delivery_us(m.cpu.server) for m in runs)
            pg = median(m.per_delivery_us(m.cpu.postgres) for m in runs)
            gen = median(m.per_delivery_us(m.generator_cpu_seconds) for m in runs)
            machine = median(m.per_delivery_us(m.cpu.machine_busy) for m in runs)
            steal = median(
                100 * m.cpu.machine_steal / (m.result["elapsed"] * (os.cpu_count() or 1))
                for m in runs
            )
            label = runs[0].label
            print(
                f"{label:<28}  {server:>7.0f}  {pg:>7.0f}  {gen:>7.0f}  {machine:>7.0f}  "
                f"{steal:>6.0f}"
            )
    print()


def _error_details(m: Measurement) -> str:
    statuses = {k: v for k, v in m.result["statuses"].items() if not k.startswith("2")}
    parts = [f"{k}: {v}" for k, v in {**statuses, **m.result["errors"]}.items()]
    return f" (errors {', '.join(parts)})" if parts else ""


# --- main ------------------------------------------------------------------------------------


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.receiver",
        description="Receiver vs baseline: throughput, latency, SQLite, RSS.",
    )
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per run (15)")
    parser.add_argument("--connections", type=int, default=32, help="connections (32)")
    parser.add_argument("--rounds", type=int, default=2, help="baseline/receiver rounds (2)")
    parser.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds (3)")
    parser.add_argument("--no-sqlite", dest="sqlite", action="store_false", help="skip SQLite")
    parser.add_argument(
        "--minimal",
        action="store_true",
        help="in the receiver's place, bench.minimal_receiver: the least a receiver must do "
        "(PostgreSQL only)",
    )
    args = parser.parse_args()
    if args.minimal:
        args.sqlite = False
    if args.duration <= 0 or args.connections < 1 or args.rounds < 1 or args.warmup <= 0:
        parser.error("duration and warmup must be > 0, connections and rounds >= 1")
    return args


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, _terminate)
    phases: list[Phase] = []
    try:
        with ExitStack() as cleanup:
            tmp = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="vh-bench-")))
            context = Context(tag=secrets.token_hex(4), tmp=tmp, minimal=args.minimal)
            cleanup.callback(
                lambda: progress(f"deleted {delete_redis_keys(context.queue)} Redis keys")
            )
            phases.append(postgres_phase(args, context))
            if args.sqlite:
                phases.append(sqlite_phase(args, context))
            report(phases, args, context.log_notes)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted, cleaned up", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
