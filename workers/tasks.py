"""Celery tasks: thin like views. Take ids, call the processing, publish what follows."""

from __future__ import annotations

import structlog
from celery import Celery

from workers.celery_app import PROCESS_EVENTS, SEND_NOTIFICATIONS
from workers.notification_sending import deliver_due
from workers.processing import FollowUp
from workers.wiring import Runtime

log = structlog.get_logger(__name__)


def register(app: Celery, runtime: Runtime) -> None:
    queue = runtime.settings.queue

    def publish(follow: FollowUp) -> None:
        if follow.notifications:
            app.send_task(SEND_NOTIFICATIONS, args=[follow.notifications], queue=queue)
        if follow.released:
            app.send_task(PROCESS_EVENTS, args=[follow.released], queue=queue)
        for retry in follow.retries:
            app.send_task(
                PROCESS_EVENTS, args=[[retry.event_id]], queue=queue, countdown=retry.countdown
            )

    @app.task(name=PROCESS_EVENTS, acks_late=True, reject_on_worker_lost=True)
    def process_events(ids: list[str]) -> None:
        publish(runtime.processor.process(ids))

    @app.task(name=SEND_NOTIFICATIONS, acks_late=True, reject_on_worker_lost=True)
    def send_notifications(ids: list[int]) -> None:
        # The ids say a send is wanted; the task sends whatever is due, as the rate limits
        # allow, and comes back when what is left may go (the next slot, the next retry).
        outcome = deliver_due(runtime.engine, runtime.senders, runtime.policy, runtime.pacing, ids)
        for countdown in outcome.wakes:
            app.send_task(SEND_NOTIFICATIONS, args=[[]], queue=queue, countdown=countdown)
