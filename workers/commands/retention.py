"""`voucherhook purge` and `voucherhook forget-customer`: personal data out of what is stored,
the books left exactly as they were (README, "Personal data and retention")."""

from __future__ import annotations

import argparse
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from models.db.retention_store import PURGED_STATUSES
from models.statuses import EVENT_STATUSES
from workers import output
from workers.commands import CommandError, connect
from workers.retention import Forgotten, Purged, forget_customer, purge
from workers.settings import Settings

LEFT_ALONE = tuple(status for status in EVENT_STATUSES if status not in PURGED_STATUSES)
"""The statuses of the events a purge leaves, in the order they are reported."""


def cmd_purge(args: argparse.Namespace, settings: Settings) -> int:
    before: datetime = args.before
    now = datetime.now(UTC)
    if before > now:
        raise CommandError(
            f"--before {before.isoformat()} is in the future, which would purge events received "
            "a moment ago: give a date in the past (VOUCHERHOOK_RETENTION_DAYS keeps a rolling "
            "window)"
        )
    engine = connect(settings)
    with output.progress() as progress:
        task = progress.add_task("purging", total=None)
        result = purge(
            engine,
            before,
            dry_run=args.dry_run,
            advance=lambda n: progress.advance(task, n),
            now=now,
        )
    if args.json:
        output.print_json(_purged_json(result))
    else:
        _print_purged(result)
    return 0


def _purged_json(result: Purged) -> dict[str, Any]:
    return {
        "before": result.before.isoformat(),
        "dry_run": result.dry_run,
        "events": result.events,
        "notifications": result.notifications,
        "left_alone": {status: result.left_alone.get(status, 0) for status in LEFT_ALONE},
        "notifications_unsent": result.unsent,
    }


def _print_purged(result: Purged) -> None:
    when = result.before.isoformat()
    counted = (
        f"{result.events} event(s) received before {when} and {result.notifications} "
        "finished notification(s) of redacted events"
    )
    if result.dry_run:
        print(f"dry run: would redact {counted}; nothing changed")
    else:
        print(f"redacted {counted}")
    alone = ", ".join(f"{result.left_alone.get(status, 0)} {status}" for status in LEFT_ALONE)
    print(
        f"left alone: {alone} event(s) received before then (still being worked on, or "
        "waiting for a person: purge them once processed, or erase one customer's data "
        "whatever its status with `voucherhook forget-customer`)"
    )
    if result.unsent:
        print(
            f"{result.unsent} notification(s) of those events are not sent yet: the first "
            "purge after they are redacts them"
        )


def cmd_forget_customer(args: argparse.Namespace, settings: Settings) -> int:
    engine = connect(settings)
    with output.progress() as progress:
        task = progress.add_task("searching the log", total=None)
        result = forget_customer(
            engine,
            args.customer_id,
            dry_run=args.dry_run,
            advance=lambda n: progress.advance(task, n),
        )
    if args.json:
        output.print_json(_forgotten_json(result))
    else:
        _print_forgotten(result)
    return 0


def _forgotten_json(result: Forgotten) -> dict[str, Any]:
    return {
        "customer_id": result.customer_id,
        "dry_run": result.dry_run,
        "events": [
            {"id": event.id, "status": event.status, "action": event.action}
            for event in result.events
        ],
        "notifications": [
            {
                "id": note.id,
                "event_id": note.event_id,
                "channel": note.channel,
                "status": note.status,
                "action": "cancelled and redacted" if note.status == "pending" else "redacted",
            }
            for note in result.notifications
        ],
        "loyalty_cards_kept": result.cards,
    }


def _print_forgotten(result: Forgotten) -> None:
    who = result.customer_id
    would = "would be " if result.dry_run else ""
    if not result.events and not result.notifications:
        print(f"nothing stored names {who}: nothing to redact")
    else:
        changed = result.changed
        statuses = Counter(event.status for event in changed)
        by_status = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))
        print(
            f"{len(changed)} event(s) naming {who} {would}redacted"
            + (f" ({by_status})" if by_status else "")
            + (
                f"; {len(result.events) - len(changed)} already redacted"
                if len(changed) < len(result.events)
                else ""
            )
        )
        cancelled = sum(note.status == "pending" for note in result.notifications)
        print(
            f"{len(result.notifications)} notification(s) {would}redacted"
            + (f", of which {cancelled} not sent yet {would}cancelled" if cancelled else "")
        )
        rows = [(event.id, event.status, _said(event.action, result.dry_run)) for event in changed]
        if rows:
            output.print_table(("event", "status", "what"), rows)
        if statuses.get("pending"):
            print(
                "pending events are processed as usual and notify nothing; one being processed "
                "at this very moment may still plan a notification from what it read before: "
                f"run `voucherhook forget-customer {who}` again once they are processed"
            )
    if result.cards:
        print(
            f"loyalty card(s) {', '.join(result.cards)} kept: they hold the customer's id and "
            "figures only, which the books need"
        )
    if result.dry_run:
        print("dry run: nothing changed")


def _said(action: str, dry_run: bool) -> str:
    said = (
        "body not JSON: replaced whole by [redacted]"
        if action == "replaced"
        else "personal data redacted"
    )
    return f"{said} (would be)" if dry_run else said
