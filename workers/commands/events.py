"""`voucherhook events list|show|retype`: what arrived, what happened to it, and why."""

from __future__ import annotations

import argparse
from typing import Any

from models.db import eventlog, ledger_store, notification_store, run_store
from workers import output
from workers.commands import CommandError, connect, notifications
from workers.output import utc
from workers.settings import Settings

# What `events show` tells of each of the event's notifications.
NOTIFICATION_FIELDS = ("channel", "recipient", "status", "attempts", "error", "sent_at")


def cmd_events_list(args: argparse.Namespace, settings: Settings) -> int:
    engine = connect(settings)
    with engine.connect() as conn:
        rows = eventlog.select_events(
            conn,
            event_type=args.type,
            status=args.status,
            since=args.since,
            until=args.until,
            limit=args.limit,
            newest_first=True,
        )
    listed = [
        {
            "id": row.id,
            "type": row.type,
            "status": row.status,
            "received_at": utc(row.received_at),
            "attempts": row.attempts,
            "error": row.error,
        }
        for row in rows
    ]
    if args.json:
        output.print_json(listed)
    elif not listed:
        print("no events match")
    else:
        output.print_table(
            ("received_at", "id", "type", "status", "attempts", "error"),
            [
                (row.received_at, row.id, row.type, row.status, row.attempts, _short(row.error))
                for row in rows
            ],
        )
    return 0


def cmd_events_show(args: argparse.Namespace, settings: Settings) -> int:
    engine = connect(settings)
    with engine.connect() as conn:
        row = eventlog.get(conn, args.event_id)
        if row is None:
            raise CommandError(
                f"no event {args.event_id}: `voucherhook events list` shows the stored ids"
            )
        runs = run_store.for_event(conn, row.id)
        sent = notification_store.for_event(conn, row.id)
        keys = ledger_store.keys_of_event(conn, row.id)
    shown = describe(row, runs, sent, keys)
    if args.json:
        output.print_json(shown)
        return 0
    output.print_record(
        [
            (k, shown[k])
            for k in (
                "id",
                "type",
                "status",
                "received_at",
                "attempts",
                "error",
                "delivery_id",
                "remote_addr",
                "dispatched_at",
                "processed_at",
                "redacted_at",
            )
        ]
    )
    print("\nheaders:")
    for name, value in shown["headers"].items():
        print(f"  {name}: {value}")
    print("\nhandlers:")
    for run in shown["handlers"]:
        print(
            f"  {run['handler']}: {run['status']} after {run['attempts']} attempt(s)"
            + (f" — {run['error']}" if run["error"] else "")
        )
        if run["traceback"]:
            print("    " + run["traceback"].rstrip().replace("\n", "\n    "))
    print("\nledger transactions:", ", ".join(shown["ledger_transactions"]) or "none")
    print("notifications:")
    for note in shown["notifications"] or [{"channel": "none"}]:
        if "recipient" in note:
            print(
                f"  {note['channel']} to {note['recipient']}: {note['status']}"
                + (f" — {note['error']}" if note["error"] else "")
            )
        else:
            print("  none")
    print("\nbody:")
    print(shown["body"])
    return 0


def describe(row: Any, runs: list[Any], sent: list[Any], keys: list[str]) -> dict[str, Any]:
    return {
        "id": row.id,
        "type": row.type,
        "status": row.status,
        "received_at": utc(row.received_at),
        "attempts": row.attempts,
        "error": row.error,
        "delivery_id": row.delivery_id,
        "remote_addr": row.remote_addr,
        "dispatched_at": utc(row.dispatched_at),
        "processed_at": utc(row.processed_at),
        "redacted_at": utc(row.redacted_at),
        "headers": dict(row.headers or {}),
        "body": bytes(row.body).decode("utf-8", "replace"),
        "handlers": [
            {
                "handler": run.handler,
                "status": run.status,
                "attempts": run.attempts,
                "error": run.error,
                "traceback": run.traceback,
                "updated_at": utc(run.updated_at),
            }
            for run in runs
        ],
        "ledger_transactions": keys,
        "notifications": [
            {k: v for k, v in notifications.describe(note).items() if k in NOTIFICATION_FIELDS}
            for note in sent
        ],
    }


def _short(text: str | None, width: int = 60) -> str | None:
    if text is None or len(text) <= width:
        return text
    return text[: width - 1] + "…"


def cmd_events_retype(args: argparse.Namespace, settings: Settings) -> int:
    """A raw delivery quarantined because its URL named the wrong type (a distribution
    misconfigured): give it the right one, if its body has that type's shape."""
    from models.identity import identify  # the payload models: only this command needs them
    from receiver.signature import compact

    engine = connect(settings)
    with engine.begin() as conn:
        row = eventlog.get(conn, args.event_id)
        if row is None:
            raise CommandError(f"no event {args.event_id!r}: take an id from `events list`")
        if row.status != "quarantined":
            raise CommandError(
                f"event {row.id} is {row.status}, not quarantined: only a quarantined event "
                "can be given another type"
            )
        # The receiver identified the form the signature matched: the body, or its compact form.
        body = bytes(row.body)
        verdicts = [identify(form, args.event_type) for form in (body, compact(body))]
        verdict = next((v for v in verdicts if v.event_id == row.id), verdicts[0])
        if verdict.status == "quarantined" or verdict.event_id != row.id:
            reason = verdict.reason or f"its identity would be {verdict.event_id}, not {row.id}"
            raise CommandError(f"event {row.id} cannot be {args.event_type}: {reason}")
        assert verdict.event_type is not None
        if not eventlog.retype(conn, row.id, verdict.event_type, verdict.status):
            raise CommandError(f"event {row.id} changed meanwhile: look at it again")
    print(
        f"event {row.id} is now {verdict.event_type}, {verdict.status}"
        + ("; the workers take it within a minute" if verdict.status == "pending" else "")
    )
    return 0
