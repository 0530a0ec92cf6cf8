"""Celery tasks: thin like views. Take ids, load, decide, save."""

from __future__ import annotations

from datetime import UTC, datetime

import structlog
from celery import Celery

from models import eventlog
from models.routing import handlers_for
from workers.celery_app import PROCESS_EVENTS
from workers.runtime import Runtime

log = structlog.get_logger(__name__)


def register(app: Celery, runtime: Runtime) -> None:
    @app.task(name=PROCESS_EVENTS, acks_late=True, reject_on_worker_lost=True)
    def process_events(ids: list[str]) -> None:
        with runtime.engine.begin() as conn:
            for row in eventlog.load(conn, ids):
                if row.status not in ("pending", "failed"):
                    continue  # done already: a redelivered or re-swept message changes nothing
                status = "processed" if handlers_for(row.type) else "ignored"
                eventlog.set_status(conn, row.id, status, datetime.now(UTC))
                log.info("event_processed", event_id=row.id, type=row.type, status=status)
