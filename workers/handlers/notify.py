"""Notifications handler: render the deliveries of an event, to be planned once each.

The processing plans a batch's messages in one statement, in the handler's transaction; one
already planned for the same Voucherify object, channel and recipient is not planned again.
Sending happens after the commit, in tasks of its own: a failing channel is retried there and
never holds up the ledger or the balances.

A redacted event (purge, forget-customer) notifies nothing: its person's data is gone, and
what it would say is about them.
"""

from __future__ import annotations

from models.notifications import email_refused, messages
from models.redaction import is_redacted
from workers.handlers.base import Job, Outcome


def handle(job: Job) -> Outcome:
    config = job.config
    if is_redacted(job.body):
        return Outcome(note="redacted: nothing to notify")
    planned = messages(
        config.templates,
        job.event_type,
        job.payload,
        currency=config.currency,
        email=config.email,
        webhook=config.webhook,
    )
    job.messages.extend(planned)
    note = f"{len(planned)} notification(s)" if planned else "nothing to notify"
    refused = email_refused(job.payload) if config.email else None
    if refused:  # then no email was planned
        note = f"{note}; {refused}"
    return Outcome(note=note)
