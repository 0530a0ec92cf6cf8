"""`voucherhook notifications list|release`: deliveries across events, and releasing the ones a
worker left `sending` when it died mid-send (runbook §5)."""

from __future__ import annotations

import argparse
from typing import Any

from models.db import notification_store
from workers import output
from workers.commands import CommandError, connect
from workers.output import utc
from workers.settings import Settings

RELEASED = "released by hand: not received"


def cmd_notifications_list(args: argparse.Namespace, settings: Settings) -> int:
    engine = connect(settings)
    with engine.connect() as conn:
        rows = notification_store.listing(
            conn, status=args.status, event_id=args.event_id, limit=args.limit
        )
    listed = [describe(row) for row in rows]
    if args.json:
        output.print_json(listed)
    elif not listed:
        print("no notifications match")
    else:
        columns = ("id", "event_id", "channel", "recipient", "status", "attempts", "error")
        output.print_table(columns, [[n[c] for c in columns] for n in listed])
    return 0


def cmd_notifications_release(args: argparse.Namespace, settings: Settings) -> int:
    """All or nothing: if one id is not `sending`, none is released and the line says why."""
    ids = sorted(set(args.ids))
    engine = connect(settings)
    with engine.begin() as conn:
        found = notification_store.statuses(conn, ids)
        wrong = [
            f"{seq} is {found[seq]}" if seq in found else f"{seq} does not exist"
            for seq in ids
            if found.get(seq) != "sending"
        ]
        if wrong:
            raise CommandError(
                f"released nothing: only a delivery left `sending` can be released, and "
                f"{', '.join(wrong)} (`voucherhook notifications list --status sending` shows "
                "them; a failed one is re-sent by `replay --notify` as it is)"
            )
        released = notification_store.release(conn, ids, RELEASED)
    events = sorted({row.event_id for row in released})
    print(
        f"released {len(released)} notification(s), now failed; to send them again: "
        + "voucherhook replay --notify "
        + " ".join(f"--event-id {event_id}" for event_id in events)
    )
    return 0


def describe(row: Any) -> dict[str, Any]:
    return {
        "id": row.seq,
        "event_id": row.event_id,
        "channel": row.channel,
        "recipient": row.recipient,
        "status": row.status,
        "attempts": row.attempts,
        "error": row.error,
        "created_at": utc(row.created_at),
        "sent_at": utc(row.sent_at),
    }
