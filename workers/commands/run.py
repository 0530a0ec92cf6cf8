"""Commands that run things: migrate, serve, worker."""

from __future__ import annotations

import argparse
import ctypes
import os
import secrets
import signal
import subprocess
import sys
import threading

from sqlalchemy.exc import SQLAlchemyError

from models.db import schema
from models.db.engine import make_engine
from workers import metric_files
from workers.commands import CommandError, db_error
from workers.console.address import console_url
from workers.settings import Settings


def cmd_migrate(_args: argparse.Namespace, settings: Settings) -> int:
    engine = make_engine(settings.database_url)
    try:
        before, after = schema.upgrade(engine)
    except SQLAlchemyError as exc:
        raise CommandError(db_error(settings, exc)) from None
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
        raise CommandError(db_error(settings, exc)) from None
    finally:
        engine.dispose()


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    # Before anything imports prometheus_client: the web processes (and a worker beside them)
    # count in files of this directory, which /metrics adds up.
    metric_files.prepare()
    import uvicorn

    prepare_database(settings)
    host, port = args.host or settings.host, args.port or settings.port
    if settings.admin_token is None and settings.embedded:
        # The embedded default is for trying it out: metrics work at once, with a token of
        # this run's (the web processes read it from the environment).
        token = secrets.token_urlsafe(24)
        os.environ["VOUCHERHOOK_ADMIN_TOKEN"] = token
        print(
            "voucherhook: admin token for this run (set VOUCHERHOOK_ADMIN_TOKEN to choose one):\n"
            f"    curl -H 'Authorization: Bearer {token}' http://{host}:{port}/metrics\n"
            + console_url(host, port, token),
            file=sys.stderr,
            flush=True,
        )
    with_worker = settings.embedded if args.with_worker is None else args.with_worker
    if not with_worker and args.with_worker is None:
        print(
            "voucherhook: no worker runs beside the receiver (REDIS_URL is set): start one "
            "with `voucherhook worker`, here or on any machine with the same settings, or "
            "pass --with-worker",
            file=sys.stderr,
            flush=True,
        )
    worker = _WorkerChild() if with_worker else None
    if worker:
        worker.start()
    try:
        uvicorn.run(
            "workers.web:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=args.workers,
            log_config=None,
            # Beyond this many connections and requests at once, uvicorn answers 503.
            limit_concurrency=settings.max_connections,
            timeout_graceful_shutdown=10,
        )
    finally:
        if worker:
            worker.stop()
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    metrics_dir = metric_files.prepare()  # before prometheus_client is imported
    from workers.metrics_server import MetricsPortUnavailable
    from workers.worker import run

    prepare_database(settings)
    try:
        run(
            settings,
            concurrency=args.concurrency,
            pool=args.pool,
            host=args.host,
            metrics_port=args.metrics_port,
            metrics_dir=metrics_dir,
        )
    except MetricsPortUnavailable as exc:
        raise CommandError(str(exc)) from None
    return 0


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
                # Its processes count in this receiver's directory, which its /metrics reads:
                # the worker serves none of its own.
                [sys.executable, "-m", "workers.cli", "worker", "--metrics-port", "0"],
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
