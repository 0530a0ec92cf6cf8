"""The `voucherhook` command line."""

from __future__ import annotations

import argparse
import ctypes
import json
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from models import card_store, ledger_store, schema
from models.db import make_engine
from models.settings import ConfigError, Settings, load_settings
from workers import logs, output


class CommandError(Exception):
    """A failure to report as one line, with a non-zero exit."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        logs.configure(settings.log_level, settings.log_format)
        command: Callable[[argparse.Namespace, Settings], int] = args.command
        return command(args, settings)
    except (ConfigError, CommandError, schema.SchemaError) as exc:
        print(f"voucherhook: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voucherhook", description="Voucherify webhook receiver and workers."
    )
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the receiver (and, embedded, a worker beside it)")
    serve.add_argument("--host", help="address to bind (default VOUCHERHOOK_HOST)")
    serve.add_argument("--port", type=int, help="port (default PORT)")
    serve.add_argument("--workers", type=int, default=1, help="web processes (default 1)")
    beside = serve.add_mutually_exclusive_group()
    beside.add_argument(
        "--with-worker",
        dest="with_worker",
        action="store_true",
        default=None,
        help="also run a worker (the default with the embedded broker, i.e. no REDIS_URL)",
    )
    beside.add_argument(
        "--no-worker", dest="with_worker", action="store_false", help="run the receiver only"
    )
    serve.set_defaults(command=cmd_serve)

    worker = sub.add_parser("worker", help="run a Celery worker")
    worker.add_argument(
        "--concurrency", type=int, help="processes (VOUCHERHOOK_WORKER_CONCURRENCY)"
    )
    worker.add_argument("--pool", choices=["prefork", "solo", "threads"], help="Celery pool")
    worker.set_defaults(command=cmd_worker)

    migrate = sub.add_parser("migrate", help="create or upgrade the database schema")
    migrate.set_defaults(command=cmd_migrate)

    ledger = sub.add_parser("ledger", help="the double-entry ledger")
    ledger_sub = ledger.add_subparsers(required=True, metavar="WHAT")
    balances = ledger_sub.add_parser("balances", help="account balances")
    balances.add_argument("--account", metavar="PREFIX", help="only accounts starting so")
    balances.add_argument("--json", action="store_true", help="JSON for scripts")
    balances.set_defaults(command=cmd_ledger_balances)

    loyalty = sub.add_parser("loyalty", help="one loyalty card")
    loyalty.add_argument("card_id", metavar="CARD_ID", help="the card's voucher id (v_…)")
    loyalty.add_argument("--json", action="store_true", help="JSON for scripts")
    loyalty.set_defaults(command=cmd_loyalty)

    send = sub.add_parser("send", help="sign a payload with the configured secret and POST it")
    send.add_argument("file", type=Path, help="JSON file to send")
    send.add_argument(
        "--url", required=True, help="the receiver, e.g. http://127.0.0.1:8000/webhooks/voucherify"
    )
    send.add_argument("--type", dest="event_type", help="event type of a raw payload")
    send.set_defaults(command=cmd_send)
    return parser


def cmd_migrate(_args: argparse.Namespace, settings: Settings) -> int:
    engine = make_engine(settings.database_url)
    try:
        before, after = schema.upgrade(engine)
    except SQLAlchemyError as exc:
        raise CommandError(_db_error(settings, exc)) from None
    if before == after:
        print(f"schema is up to date (revision {after})")
    else:
        print(f"schema upgraded from {before or 'nothing'} to revision {after}")
    return 0


def prepare_database(settings: Settings) -> None:
    """The embedded default migrates itself; a server database must be migrated on purpose."""
    engine = make_engine(settings.database_url)
    try:
        if engine.dialect.name == "sqlite":
            schema.upgrade(engine)
        else:
            schema.check(engine)
    except SQLAlchemyError as exc:
        raise CommandError(_db_error(settings, exc)) from None
    finally:
        engine.dispose()


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    prepare_database(settings)
    with_worker = settings.embedded if args.with_worker is None else args.with_worker
    worker = _WorkerChild() if with_worker else None
    if worker:
        worker.start()
    try:
        uvicorn.run(
            "workers.web:app_from_env",
            factory=True,
            host=args.host or settings.host,
            port=args.port or settings.port,
            workers=args.workers,
            log_config=None,
            timeout_graceful_shutdown=10,
        )
    finally:
        if worker:
            worker.stop()
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from workers.worker import run

    prepare_database(settings)
    run(settings, concurrency=args.concurrency, pool=args.pool)
    return 0


def _connect(settings: Settings) -> Engine:
    engine = make_engine(settings.database_url)
    try:
        schema.check(engine)
    except SQLAlchemyError as exc:
        raise CommandError(_db_error(settings, exc)) from None
    return engine


def cmd_ledger_balances(args: argparse.Namespace, settings: Settings) -> int:
    engine = _connect(settings)
    with engine.connect() as conn:
        rows = ledger_store.balances(conn, args.account)
    if args.json:
        output.print_json([{"account": a, "asset": s, "balance": b} for a, s, b in rows])
    elif not rows:
        print(
            "no postings" + (f" for accounts starting with {args.account}" if args.account else "")
        )
    else:
        output.print_table(("account", "asset", "balance"), rows)
    return 0


def cmd_loyalty(args: argparse.Namespace, settings: Settings) -> int:
    engine = _connect(settings)
    with engine.connect() as conn:
        card = card_store.get(conn, args.card_id)
    if card is None:
        raise CommandError(
            f"no loyalty card {args.card_id}: no processed event touched it "
            "(card ids are voucher ids, v_…; see `voucherhook events list`)"
        )
    record = {
        "card_id": card.card_id,
        "customer_id": card.customer_id,
        "balance": card.balance,
        "points_spent": card.points_spent,
        "as_of": card.as_of,
        "events": card.events,
        "flagged": card.flagged,
        "flags": list(card.flags),
    }
    if args.json:
        output.print_json(record)
    else:
        output.print_record(list(record.items()))
    return 0


def cmd_send(args: argparse.Namespace, settings: Settings) -> int:
    from workers.send import send

    if not args.file.is_file():
        raise CommandError(f"{args.file}: no such file")
    try:
        response = send(args.file, args.url, settings.secrets[0], args.event_type)
    except httpx.HTTPError as exc:
        raise CommandError(f"could not POST to {args.url}: {exc}") from None
    try:
        shown = json.dumps(response.json())
    except ValueError:
        shown = response.text[:500]
    print(f"{response.status_code} {shown}")
    return 0 if response.is_success else 1


class _WorkerChild:
    """A `voucherhook worker` child process, restarted if it dies while the receiver runs.

    The child has a session of its own, so a signal meant for the receiver's process group
    reaches it only through `stop()`, and it is told to exit if the receiver dies abruptly.
    """

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name="worker-child", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            self._process = subprocess.Popen(
                [sys.executable, "-m", "workers.cli", "worker"],
                start_new_session=True,
                preexec_fn=_exit_with_parent,
            )
            self._process.wait()
            if not self._stopping.wait(2):
                print("voucherhook: worker exited, restarting it", file=sys.stderr)

    def stop(self) -> None:
        self._stopping.set()
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(15)
            except subprocess.TimeoutExpired:
                self._process.kill()


def _exit_with_parent() -> None:
    """Linux: deliver SIGTERM to this child when the thread that started it dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


PR_SET_PDEATHSIG = 1


def _db_error(settings: Settings, exc: Exception) -> str:
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"database {_redacted(settings.database_url)} unavailable: {first}"


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":
    sys.exit(main())
