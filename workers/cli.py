"""The `voucherhook` command line: the parser, and one line for any failure.

Building the parser imports the standard library only, so `--help` and `--version` answer at
once; a command is named "module:function" and imported once the arguments are parsed, so
each loads only what it uses (`events list` no Celery, Alembic or Starlette)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from models.statuses import EVENT_STATUSES, NOTIFICATION_STATUSES
from workers import sample_events
from workers.arguments import WHEN, customer_id, port, positive, sample_name, timestamp
from workers.parsing import Commands, Parser, Version

if TYPE_CHECKING:
    from workers.settings import Settings

Command = Callable[[argparse.Namespace, "Settings"], int]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _check_send(parser, args)
    # Only now, and only what the chosen command needs: --help never gets here.
    from models.db.schema import SchemaError
    from workers import logs
    from workers.commands import CommandError
    from workers.settings import ConfigError, load_settings

    try:
        settings = load_settings(require_secret=args.needs_secret)
        # A command that prints its result logs errors only: nothing interleaves with it.
        logs.configure(settings.log_level, settings.log_format, quiet=not args.runs)
        return _command(args.command)(args, settings)
    except (ConfigError, CommandError, SchemaError) as exc:
        print(f"voucherhook: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `voucherhook events show ID | head`: the reader had enough
        return 0


def _command(name: str) -> Command:
    """ "module:function" imported: each command loads its own dependencies."""
    module, _, function = name.partition(":")
    found: Command = getattr(importlib.import_module(f"workers.commands.{module}"), function)
    return found


def _parser() -> argparse.ArgumentParser:
    parser = Parser(prog="voucherhook", description="Voucherify webhook receiver and workers.")
    parser.add_argument("--version", action=Version, help="print the version and exit")
    # Only the receiver and `send` sign or verify: the other commands run without the secret.
    # `runs`: a process that runs until stopped, whose log is its output.
    parser.set_defaults(needs_secret=False, runs=False)
    sub = parser.add_subparsers(action=Commands, required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the receiver (and, embedded, a worker beside it)")
    serve.add_argument("--host", help="address to bind (default VOUCHERHOOK_HOST)")
    serve.add_argument("--port", type=port, help="port (default PORT)")
    serve.add_argument("--workers", type=positive, default=1, help="web processes (default 1)")
    beside = serve.add_mutually_exclusive_group()
    beside.add_argument(
        "--with-worker",
        dest="with_worker",
        action="store_true",
        default=None,
        help="also run a worker (the default with the embedded broker, i.e. no REDIS_URL)",
    )
    beside.add_argument(
        "--no-worker", dest="with_worker", action="store_false", help="run the receiver only"
    )
    serve.set_defaults(command="run:cmd_serve", needs_secret=True, runs=True)

    worker = sub.add_parser("worker", help="run a worker: process events, send notifications")
    worker.add_argument(
        "--concurrency", type=int, help="processes (VOUCHERHOOK_WORKER_CONCURRENCY)"
    )
    worker.add_argument("--pool", choices=["prefork", "solo", "threads"], help="Celery pool")
    worker.add_argument("--host", help="address /metrics binds (default VOUCHERHOOK_HOST)")
    worker.add_argument(
        "--metrics-port", type=int, help="/metrics port (VOUCHERHOOK_WORKER_METRICS_PORT; 0: none)"
    )
    worker.set_defaults(command="run:cmd_worker", runs=True)

    migrate = sub.add_parser("migrate", help="create or upgrade the database schema")
    migrate.set_defaults(command="run:cmd_migrate")

    events = sub.add_parser("events", help="stored events: list, show, retype")
    events_sub = events.add_subparsers(action=Commands, required=True, metavar="WHAT")
    listing = events_sub.add_parser("list", help="events, newest first")
    listing.add_argument("--type", help="only this event type")
    listing.add_argument("--status", choices=EVENT_STATUSES, help="only this status")
    listing.add_argument("--since", type=timestamp, help=f"received at or after ({WHEN})")
    listing.add_argument("--until", type=timestamp, help=f"received before ({WHEN})")
    listing.add_argument("--limit", type=positive, default=50, help="at most (default 50)")
    listing.add_argument("--json", action="store_true", help="JSON for scripts")
    listing.set_defaults(command="events:cmd_events_list")
    show = events_sub.add_parser("show", help="one event: body, handlers, errors")
    show.add_argument("event_id", metavar="ID", help="an id from `events list`")
    show.add_argument("--json", action="store_true", help="JSON for scripts")
    show.set_defaults(command="events:cmd_events_show")
    retype = events_sub.add_parser(
        "retype",
        help="give a quarantined raw delivery its right type",
        description="A raw payload (no envelope) sent to a URL naming another type than its "
        "body's shape is quarantined, never booked. Once the distribution's URL is corrected, "
        "give the deliveries it already sent their type: the body must have that type's shape, "
        "and the event keeps its identity.",
    )
    retype.add_argument("event_id", metavar="ID", help="a quarantined event's id")
    retype.add_argument("event_type", metavar="TYPE", help="e.g. redemption.rollback.succeeded")
    retype.set_defaults(command="events:cmd_events_retype")

    notes = sub.add_parser("notifications", help="emails and webhooks sent: list, release")
    notes_sub = notes.add_subparsers(action=Commands, required=True, metavar="WHAT")
    notes_list = notes_sub.add_parser("list", help="deliveries, newest first")
    notes_list.add_argument("--status", choices=NOTIFICATION_STATUSES, help="only this status")
    notes_list.add_argument("--event-id", metavar="ID", help="only this event's")
    notes_list.add_argument("--limit", type=positive, default=50, help="at most (default 50)")
    notes_list.add_argument("--json", action="store_true", help="JSON for scripts")
    notes_list.set_defaults(command="notifications:cmd_notifications_list")
    release = notes_sub.add_parser(
        "release",
        help="make deliveries left `sending` failed, to re-send them",
        description="A delivery whose worker died during the send stays `sending`: nobody knows "
        "whether it arrived, so nothing sends it again. Once you know it did not arrive, release "
        "it: it becomes `failed`, and `voucherhook replay --event-id ID --notify` sends it.",
    )
    release.add_argument(
        "ids", type=positive, nargs="+", metavar="ID", help="ids from `notifications list`"
    )
    release.set_defaults(command="notifications:cmd_notifications_release")

    replay = sub.add_parser("replay", help="run the handlers of stored events again")
    replay.add_argument(
        "--event-id", dest="event_ids", action="append", metavar="ID", help="repeatable"
    )
    replay.add_argument("--type", help="events of this type")
    replay.add_argument("--since", type=timestamp, help=f"received at or after ({WHEN})")
    replay.add_argument("--until", type=timestamp, help=f"received before ({WHEN})")
    replay.add_argument("--status", choices=EVENT_STATUSES, help="events with this status")
    replay.add_argument("--dry-run", action="store_true", help="say what would run, change nothing")
    replay.add_argument(
        "--notify", action="store_true", help="also re-send notifications that never went out"
    )
    replay.set_defaults(command="replay:cmd_replay")

    reconcile = sub.add_parser(
        "reconcile",
        help="store and book what Voucherify's API recorded and the webhooks missed",
        description="List the redemptions, rollbacks and card transactions Voucherify recorded "
        "from --since to --until and compare them with what is stored: each is already here, "
        "missing (stored as the event its webhook would have been, then processed) or "
        "differing (reported with both sides, never overwritten). Needs VOUCHERIFY_APP_ID and "
        "VOUCHERIFY_APP_TOKEN.",
    )
    reconcile.add_argument(
        "--since",
        type=timestamp,
        help=f"from ({WHEN}; default: where the last run stopped)",
    )
    reconcile.add_argument("--until", type=timestamp, help=f"up to (default: now; {WHEN})")
    reconcile.add_argument(
        "--dry-run", action="store_true", help="compare and report only: store nothing"
    )
    reconcile.add_argument("--json", action="store_true", help="JSON for scripts")
    reconcile.set_defaults(command="reconcile:cmd_reconcile")

    rebuild = sub.add_parser("rebuild", help="fold the event log again into ledger and cards")
    rebuild.add_argument("--json", action="store_true", help="JSON for scripts")
    rebuild.add_argument(
        "--processes",
        type=positive,
        help="processes folding the log (default: one per CPU, up to 4, for a log of 20,000 "
        "events or more on PostgreSQL; 1 on SQLite)",
    )
    rebuild.set_defaults(command="rebuild:cmd_rebuild")

    purge = sub.add_parser(
        "purge",
        help="redact personal data of events received before a date",
        description="Replace the raw bodies of processed and ignored events received before "
        "DATE by redacted copies (no names, emails, phones, addresses, metadata; ids, amounts "
        "and times kept, so the books do not change), clear their client headers and address, "
        "and redact the text and addresses of their sent or failed notifications. Pending, "
        "failed and quarantined events are left alone.",
    )
    purge.add_argument(
        "--before",
        type=timestamp,
        required=True,
        metavar="DATE",
        help=f"received before this ({WHEN}; UTC unless it says)",
    )
    purge.add_argument("--dry-run", action="store_true", help="count what would change only")
    purge.add_argument("--json", action="store_true", help="JSON for scripts")
    purge.set_defaults(command="retention:cmd_purge")

    forget = sub.add_parser(
        "forget-customer",
        help="erase one customer's personal data everywhere",
        description="An erasure request: redact every stored event whose body names the "
        "customer, whatever its status (a body that is not JSON is replaced whole), and their "
        "notifications (one not sent yet is cancelled). Ids, amounts and times are kept, so "
        "the books do not change; loyalty cards hold only ids and stay.",
    )
    forget.add_argument(
        "customer_id", type=customer_id, metavar="CUSTOMER_ID", help="the Voucherify id (cust_…)"
    )
    forget.add_argument("--dry-run", action="store_true", help="list what would change only")
    forget.add_argument("--json", action="store_true", help="JSON for scripts")
    forget.set_defaults(command="retention:cmd_forget_customer")

    ledger = sub.add_parser("ledger", help="the double-entry ledger: balances")
    ledger_sub = ledger.add_subparsers(action=Commands, required=True, metavar="WHAT")
    balances = ledger_sub.add_parser("balances", help="account balances")
    balances.add_argument("--account", metavar="PREFIX", help="only accounts starting so")
    balances.add_argument("--json", action="store_true", help="JSON for scripts")
    balances.set_defaults(command="inspect:cmd_ledger_balances")

    loyalty = sub.add_parser("loyalty", help="one loyalty card: balances, drift, gaps")
    loyalty.add_argument("card_id", metavar="CARD_ID", help="the card's voucher id (v_…)")
    loyalty.add_argument("--json", action="store_true", help="JSON for scripts")
    loyalty.set_defaults(command="inspect:cmd_loyalty")

    giftcard = sub.add_parser("giftcard", help="one gift card: balances, drift, gaps")
    giftcard.add_argument("card_id", metavar="CARD_ID", help="the card's voucher id (v_…)")
    giftcard.add_argument("--json", action="store_true", help="JSON for scripts")
    giftcard.set_defaults(command="inspect:cmd_giftcard")

    cards = sub.add_parser(
        "cards",
        help="every card: reported and booked balance, drift, gaps",
    )
    cards.add_argument(
        "--drift",
        action="store_true",
        help="only the cards whose books disagree with Voucherify (exit status 1 if any)",
    )
    cards.add_argument("--json", action="store_true", help="JSON for scripts")
    cards.set_defaults(command="inspect:cmd_cards")

    send = sub.add_parser(
        "send",
        help="sign payloads (files, or a sample) and POST them",
        description="Sign a Voucherify payload with the configured secret and POST it: to try "
        "a deployment end to end. Give a JSON FILE, or --sample NAME for a built-in sample "
        f"({', '.join(sample_events.NAMES)}) with fresh ids, so that every send is a new event; "
        "a sample goes in a v2024-01-01 envelope unless --raw.",
    )
    # FILE or --sample, checked by _check_send: argparse counts an empty FILE… as given.
    send.add_argument(
        "files", type=Path, nargs="*", metavar="FILE", help="JSON files to send, in this order"
    )
    send.add_argument(
        "--sample",
        type=sample_name,
        metavar="NAME",
        help=f"a built-in sample with fresh ids: {', '.join(sample_events.NAMES)}",
    )
    send.add_argument(
        "--url",
        help="the receiver's webhook URL (default: the local receiver, "
        "http://VOUCHERHOOK_HOST:PORT/webhooks/voucherify, i.e. "
        "http://127.0.0.1:8000/webhooks/voucherify unless they are set)",
    )
    send.add_argument("--type", dest="event_type", help="event type of raw payload FILEs")
    send.add_argument(
        "--raw",
        action="store_true",
        help="send the sample without an envelope, its event type appended to the URL",
    )
    send.set_defaults(command="send:cmd_send", needs_secret=True)

    listen = sub.add_parser(
        "listen",
        help="print the notifications POSTed to it (a local sink)",
        description="A local endpoint for NOTIFY_WEBHOOK_URL while trying voucherhook out: "
        "it prints the text of every notification POSTed to it and answers 200. Start it, "
        "then run `serve` or `worker` with NOTIFY_WEBHOOK_URL set to the address it prints.",
    )
    listen.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine)"
    )
    listen.add_argument("--port", type=port, default=9000, help="port (default 9000)")
    listen.set_defaults(command="listen:cmd_listen", runs=True)
    return parser


def _check_send(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """`send` takes FILEs or --sample, exactly one of the two."""
    if getattr(args, "command", None) != "send:cmd_send":
        return
    if args.files and args.sample is not None:
        parser.error("send FILEs or --sample NAME, not both")
    if not args.files and args.sample is None:
        parser.error("send needs FILEs or --sample NAME")


if __name__ == "__main__":
    sys.exit(main())
