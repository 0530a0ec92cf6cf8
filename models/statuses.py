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
