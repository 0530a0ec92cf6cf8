"""The statuses an event and a notification delivery can have: one typed set each."""

from __future__ import annotations

from typing import Literal, get_args

EventStatus = Literal["pending", "processed", "failed", "ignored", "quarantined"]
"""pending: stored, not processed yet; processed: every handler ran; failed: a handler kept
failing; ignored: no handler for its type; quarantined: signed but unusable as it is."""
EVENT_STATUSES: tuple[EventStatus, ...] = get_args(EventStatus)

NotificationStatus = Literal["pending", "sending", "sent", "failed"]
"""sending: claimed by a worker and committed before the send, so never sent twice."""
NOTIFICATION_STATUSES: tuple[NotificationStatus, ...] = get_args(NotificationStatus)

RunStatus = Literal["running", "done", "failed", "held"]
"""A handler's run on one event: running (claimed, its effects not committed yet), done,
failed (kept failing; the error and traceback are kept), held (waiting for another event, e.g.
a rollback for its original)."""
RUN_STATUSES: tuple[RunStatus, ...] = get_args(RunStatus)
