"""The Celery application: broker, reliability settings, and how events are published."""

from __future__ import annotations

from typing import Any

from celery import Celery

from receiver.outbox import Publish
from workers import redis_transport
from workers.settings import Settings

PROCESS_EVENTS = "voucherhook.process_events"
SEND_NOTIFICATIONS = "voucherhook.send_notifications"

# Longer than any task can run, so Redis never hands a running task to a second worker.
VISIBILITY_TIMEOUT = 3600


def make_celery(settings: Settings, *, fail_fast: bool = False) -> Celery:
    """`fail_fast` is for a process that only publishes (the receiver): a broker that is down
    fails a publish at once, instead of after seconds of reconnecting, and the outbox sweep
    publishes later."""
    redis_transport.install()
    app = Celery("voucherhook", broker=settings.broker_url, set_as_current=False)
    transport: dict[str, Any] = {}
    if not settings.embedded:
        transport = {
            "visibility_timeout": VISIBILITY_TIMEOUT,
            "socket_timeout": 5,
            "socket_connect_timeout": 3,
            "health_check_interval": 10,
        }
        if fail_fast:
            transport.update(max_retries=0, interval_start=0, connect_retries_timeout=1)
    app.conf.update(
        task_default_queue=settings.queue,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        # At least once: a task is acknowledged after it ran, and re-queued if its worker died.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options=transport,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        broker_connection_timeout=3,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app


def publisher(app: Celery, queue: str) -> Publish:
    """A `Publish` for the outbox: one message per batch of event ids, failing fast."""

    def publish(ids: list[str]) -> None:
        # A short argsrepr: Celery would otherwise render the hundred ids into the message's
        # headers, a fifth of the CPU a publish costs the web process.
        app.send_task(
            PROCESS_EVENTS,
            args=[ids],
            queue=queue,
            retry=False,
            argsrepr=f"[<{len(ids)} event ids>]",
            kwargsrepr="{}",
        )

    return publish


def check_broker(app: Celery) -> None:
    """Raise when the broker cannot be reached within a couple of seconds."""
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
