"""Notifications handler: render and plan the deliveries of an event, once each.

Sending happens after the commit, in tasks of its own: a failing channel is retried there and
never holds up the ledger or the balances.
"""

from __future__ import annotations

from models import notification_store
from models.notifications import messages
from workers.handlers.base import Job, Outcome


def handle(job: Job) -> Outcome:
    config = job.config
    planned = messages(
        config.templates,
        job.event_type,
        job.payload,
        currency=config.currency,
        email=config.email,
        webhook_url=config.webhook_url,
    )
    assert job.conn is not None, "notifications are planned in the database only"
    for message in planned:
        notification_id = notification_store.plan(
            job.conn,
            job.event_id,
            message.source_id,
            message.channel,
            message.recipient,
            message.subject,
            message.body,
            job.now,
        )
        if notification_id is not None:
            job.notifications.append(notification_id)
    return Outcome(note=f"{len(planned)} notification(s)" if planned else "nothing to notify")
