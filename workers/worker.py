"""Runs a Celery worker that processes events and sweeps the outbox."""

from __future__ import annotations

import os

from celery.signals import worker_ready, worker_shutdown

from models.db import make_engine
from models.settings import Settings
from receiver.outbox import Sweeper
from workers import tasks
from workers.celery_app import make_celery, publisher
from workers.runtime import Runtime


def run(settings: Settings, *, concurrency: int | None = None, pool: str | None = None) -> None:
    app = make_celery(settings)
    tasks.register(app, Runtime(settings))
    sweeper = Sweeper(
        make_engine(settings.database_url, pool_size=1),
        publisher(app, settings.queue),
        interval=settings.sweep_interval,
        after=settings.sweep_after,
        redispatch_after=settings.redispatch_after,
    )

    @worker_ready.connect(weak=False)
    def _start_sweeper(**_: object) -> None:
        sweeper.start()

    @worker_shutdown.connect(weak=False)
    def _stop_sweeper(**_: object) -> None:
        sweeper.stop()

    # The embedded broker is a SQLite file: one process consumes it, tasks run in that process.
    pool = pool or ("solo" if settings.embedded else "prefork")
    app.worker_main(
        [
            "worker",
            f"--pool={pool}",
            f"--concurrency={concurrency or settings.worker_concurrency}",
            f"--queues={settings.queue}",
            f"--loglevel={settings.log_level}",
            f"--hostname=voucherhook-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )
