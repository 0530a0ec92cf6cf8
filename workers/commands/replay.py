"""`voucherhook replay`: choose stored events, run their handlers again, say what changed."""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy import Connection

from models.db import eventlog
from workers import output
from workers.commands import CommandError, connect
from workers.processing import Processor, RetryPolicy
from workers.replay import pending_work, replay
from workers.settings import Settings
from workers.wiring import Runtime


def selection(conn: Connection, args: argparse.Namespace) -> list[Any]:
    """The stored events a replay's arguments choose."""
    return eventlog.select_events(
        conn,
        ids=args.event_ids or (),
        event_type=args.type,
        status=args.status,
        since=args.since,
        until=args.until,
    )


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    if not (args.event_ids or args.type or args.since or args.until or args.status):
        raise CommandError(
            "choose the events to replay: --event-id ID, --type T, --since/--until or --status S"
        )
    engine = connect(settings)
    with engine.connect() as conn:
        rows = selection(conn, args)
    missing = sorted(set(args.event_ids or ()) - {row.id for row in rows})
    if missing:
        raise CommandError(f"no event {', '.join(missing)}: `voucherhook events list` shows ids")
    ids = [row.id for row in rows]
    if not ids:
        print("no events match: nothing to replay")
        return 0
    if args.dry_run:
        work = pending_work(engine, ids)
        output.print_table(
            ("id", "type", "status", "would run"),
            [(r.id, r.type, r.status, ", ".join(work.get(r.id, ())) or "nothing") for r in rows],
            title=f"{len(ids)} event(s) selected (dry run: nothing changed)",
        )
        return 0
    runtime = Runtime(settings)
    # A replay is a person asking now: one attempt, and a failure is reported, not retried.
    once = RetryPolicy(max_attempts=1)
    processor = Processor(engine, runtime.config, once)
    with output.progress() as progress:
        task = progress.add_task("replaying", total=len(ids))
        summary = replay(
            engine,
            processor,
            ids,
            senders=runtime.senders,
            policy=runtime.policy,
            pacing=runtime.pacing,
            notify=args.notify,
            advance=lambda n: progress.advance(task, n),
        )
    print(
        f"selected {summary.selected}, re-run {summary.rerun}, unchanged {summary.unchanged}, "
        f"failed {summary.failed}, skipped {summary.skipped} (quarantined or no handler); "
        f"notifications sent {summary.notifications_sent}"
    )
    for event_id, error in summary.failures.items():
        print(f"  failed {event_id}: {error}")
    if summary.notifications_not_sent:
        print(
            f"  {summary.notifications_not_sent} notification(s) refused: "
            "`voucherhook notifications list --status failed` (or `--status pending`: retried "
            "later) shows each error"
        )
    return 1 if summary.failed else 0
