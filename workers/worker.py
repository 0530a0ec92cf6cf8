"""Runs a Celery worker that processes events and sweeps the outbox."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import structlog
from celery.signals import worker_ready, worker_shutdown

from models.db import notification_budget, notification_store
from models.db.engine import make_engine
from workers import tasks
from workers.books_check import CARDS_CHECK_EVERY, count_drifting
from workers.celery_app import SEND_NOTIFICATIONS, make_celery, publisher
from workers.leases import Heartbeat
from workers.metrics import REDISPATCHED
from workers.metrics_server import MetricsServer
from workers.orphans import LostMessages, restore_orphans
from workers.reconcile_schedule import scheduled
from workers.retention import RETENTION_EVERY, purge_expired
from workers.settings import Settings
from workers.sweep import Periodic, sweep
from workers.wiring import Runtime

log = structlog.get_logger(__name__)


def run(
    settings: Settings,
    *,
    concurrency: int | None = None,
    pool: str | None = None,
    host: str | None = None,
    metrics_port: int | None = None,
    metrics_dir: str | None = None,
) -> None:
    """Run the worker; with `metrics_dir` (where its processes count, `workers.metric_files`)
    and the admin token, serve /metrics on `metrics_port` (default from the settings, 0:
    none). Raises MetricsPortUnavailable before starting when that port is taken."""
    port = settings.worker_metrics_port if metrics_port is None else metrics_port
    server = None
    if port and metrics_dir and settings.admin_token:
        token = settings.admin_token.get_secret_value()
        server = MetricsServer(host or settings.host, port, token, metrics_dir)
    app = make_celery(settings)
    tasks.register(app, Runtime(settings))
    engine = make_engine(settings.database_url, pool_size=1)
    publish = publisher(app, settings.queue)

    def sweep_events() -> int:
        count = sweep(
            engine,
            publish,
            after=settings.sweep_after,
            redispatch_after=settings.redispatch_after,
        )
        REDISPATCHED.labels("event").inc(count)
        return count

    def sweep_notifications() -> int:
        # A delivery whose send task died with its worker, or was lost (a broker restart), is
        # queued again; published before the commit, so a failed publish leaves it to the
        # next sweep.
        now = datetime.now(UTC)
        with engine.begin() as conn:
            ids = notification_store.stale(
                conn, now, now - timedelta(seconds=settings.redispatch_after)
            )
            if ids:
                app.send_task(SEND_NOTIFICATIONS, args=[ids], queue=settings.queue)
        REDISPATCHED.labels("notification").inc(len(ids))
        # Deliveries waiting on a send task that is overdue by a lease's length: the task
        # scheduled for them (a retry's, or the next slot's) died with its worker or was lost.
        # One task is published for them; it sends whatever is due, and schedules the next.
        late = now - timedelta(seconds=settings.lease_expiry)
        with engine.begin() as conn:
            woken = [
                channel
                for channel in notification_budget.unwoken(conn, late)
                if notification_budget.replace_wake(conn, channel, late, now)
            ]
            if woken:
                app.send_task(SEND_NOTIFICATIONS, args=[[]], queue=settings.queue)
                log.info("notifications_woken", channels=woken, reason="send task overdue")
        return len(ids)

    sweepers = [
        Periodic("outbox-sweep", settings.sweep_interval, sweep_events),
        Periodic("notification-sweep", settings.sweep_interval, sweep_notifications),
        # The figure of voucherhook_cards_drifting, counted by one worker at a time.
        Periodic(
            "cards-check",
            CARDS_CHECK_EVERY,
            lambda: count_drifting(engine),
            first_after=settings.sweep_interval,
        ),
    ]
    if not settings.embedded:
        sweepers.append(
            Periodic(
                "orphan-sweep",
                settings.sweep_interval,
                lambda: restore_orphans(app, engine, settings.queue, settings.lease_expiry),
            )
        )
        lost = LostMessages(
            app,
            engine,
            publish,
            settings.queue,
            expiry=settings.lease_expiry,
            redispatch_after=settings.redispatch_after,
        )

        def sweep_lost() -> int:
            count = lost()
            REDISPATCHED.labels("event").inc(count)
            return count

        sweepers.append(Periodic("lost-messages", settings.sweep_interval, sweep_lost))
    if settings.voucherify_credentials is not None:
        # What the webhooks missed, from Voucherify's API: one worker at a time, once per
        # VOUCHERHOOK_RECONCILE_EVERY between them (workers.reconcile.scheduled), with its own
        # engine and senders.
        reconciling = Runtime(settings)
        sweepers.append(
            Periodic(
                "reconcile",
                min(settings.reconcile_every, settings.sweep_interval * 6),
                lambda: scheduled(reconciling.engine, settings, reconciling),
                first_after=settings.sweep_interval,
            )
        )
    if settings.retention_days:
        # The rolling window: personal data older than VOUCHERHOOK_RETENTION_DAYS is redacted,
        # soon after start and then once an hour, on a thread of its own so that a long purge
        # never holds up the sweeps (every worker does it; rows another worker is redacting
        # are skipped).
        sweepers.append(
            Periodic(
                "retention-purge",
                RETENTION_EVERY,
                lambda: purge_expired(engine, settings.retention_days),
                first_after=settings.sweep_interval,
            )
        )

    # Its own engine: a long sweep or purge never delays a renewal.
    heartbeat = Heartbeat(make_engine(settings.database_url, pool_size=1), settings.lease_expiry)

    @worker_ready.connect(weak=False)
    def _start_sweepers(**_: object) -> None:
        # Once the pool is started: its processes are forked without these threads.
        if server:
            server.start()
        heartbeat.start()
        for sweeper in sweepers:
            sweeper.start()

    @worker_shutdown.connect(weak=False)
    def _stop_sweepers(**_: object) -> None:
        for sweeper in sweepers:
            sweeper.stop()
        heartbeat.stop()
        if server:
            server.stop()

    # The embedded broker is a SQLite file: one process consumes it, tasks run in that process.
    pool = pool or ("solo" if settings.embedded else "prefork")
    app.worker_main(
        [
            "--quiet",  # no banner: the log's "Connected to …" and "… ready." lines say it
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
