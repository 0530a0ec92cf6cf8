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
from typing import TYPE_CHECKING, NoReturn

from models.statuses import EVENT_STATUSES, NOTIFICATION_STATUSES
from workers import sample_events
from workers.arguments import customer_id, positive, sample_name, timestamp

if TYPE_CHECKING:
    from workers.settings import Settings

Command = Callable[[argparse.Namespace, "Settings"], int]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Only now, and only what the chosen command needs: --help never gets here.
    from models.db.schema import SchemaError
    from workers import logs
    from workers.commands import CommandError
    from workers.settings import ConfigError, load_settings

    try:
        settings = load_settings(require_secret=args.needs_secret)
        logs.configure(settings.log_level, settings.log_format)
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


def _version() -> str:
    import importlib.metadata  # only for --version: reading package metadata takes a while

    try:
        return importlib.metadata.version("voucherhook")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="voucherhook", description="Voucherify webhook receiver and workers.")
    parser.add_argument("--version", action=_Version, help="print the version and exit")
    # Only the receiver and `send` sign or verify: the other commands run without the secret.
    parser.set_defaults(needs_secret=False)
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the receiver (and, embedded, a worker beside it)")
    serve.add_argument("--host", help="address to bind (default VOUCHERHOOK_HOST)")
    serve.add_argument("--port", type=int, help="port (default PORT)")
    serve.add_argument("--workers", type=int, default=1, help="web processes (default 1)")
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
    serve.set_defaults(command="run:cmd_serve", needs_secret=True)

    worker = sub.add_parser("worker", help="run a Celery worker")
    worker.add_argument(
        "--concurrency", type=int, help="processes (VOUCHERHOOK_WORKER_CONCURRENCY)"
    )
    worker.add_argument("--pool", choices=["prefork", "solo", "threads"], help="Celery pool")
    worker.add_argument("--host", help="address /metrics binds (default VOUCHERHOOK_HOST)")
    worker.add_argument(
        "--metrics-port", type=int, help="/metrics port (VOUCHERHOOK_WORKER_METRICS_PORT; 0: none)"
    )
    worker.set_defaults(command="run:cmd_worker")

    migrate = sub.add_parser("migrate", help="create or upgrade the database schema")
    migrate.set_defaults(command="run:cmd_migrate")

    events = sub.add_parser("events", help="stored events")
    events_sub = events.add_subparsers(required=True, metavar="WHAT")
    listing = events_sub.add_parser("list", help="events, newest first")
    listing.add_argument("--type", help="only this event type")
    listing.add_argument("--status", choices=EVENT_STATUSES, help="only this status")
    listing.add_argument("--since", type=timestamp, help="received at or after (ISO 8601)")
    listing.add_argument("--limit", type=positive, default=50, help="at most (default 50)")
    listing.add_argument("--json", action="store_true", help="JSON for scripts")
    listing.set_defaults(command="events:cmd_events_list")
    show = events_sub.add_parser("show", help="one event: body, handlers, errors")
    show.add_argument("event_id", metavar="ID", help="an id from `events list`")
    show.add_argument("--json", action="store_true", help="JSON for scripts")
    show.set_defaults(command="events:cmd_events_show")
    retype = events_sub.add_parser(
        "retype",
        help="give a quarantined raw delivery the type its URL should have named",
        description="A raw payload (no envelope) sent to a URL naming another type than its "
        "body's shape is quarantined, never booked. Once the distribution's URL is corrected, "
        "give the deliveries it already sent their type: the body must have that type's shape, "
        "and the event keeps its identity.",
    )
    retype.add_argument("event_id", metavar="ID", help="a quarantined event's id")
    retype.add_argument("event_type", metavar="TYPE", help="e.g. redemption.rollback.succeeded")
    retype.set_defaults(command="events:cmd_events_retype")

    notes = sub.add_parser("notifications", help="emails and webhooks, across events")
    notes_sub = notes.add_subparsers(required=True, metavar="WHAT")
    notes_list = notes_sub.add_parser("list", help="deliveries, newest first")
    notes_list.add_argument("--status", choices=NOTIFICATION_STATUSES, help="only this status")
    notes_list.add_argument("--event-id", metavar="ID", help="only this event's")
    notes_list.add_argument("--limit", type=positive, default=50, help="at most (default 50)")
    notes_list.add_argument("--json", action="store_true", help="JSON for scripts")
    notes_list.set_defaults(command="notifications:cmd_notifications_list")
    release = notes_sub.add_parser(
        "release",
        help="mark deliveries left `sending` (a worker died mid-send) failed, to re-send them",
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
    replay.add_argument("--since", type=timestamp, help="received at or after (ISO 8601)")
    replay.add_argument("--until", type=timestamp, help="received before (ISO 8601)")
    replay.add_argument("--status", choices=EVENT_STATUSES, help="events with this status")
    replay.add_argument("--dry-run", action="store_true", help="say what would run, change nothing")
    replay.add_argument(
        "--notify", action="store_true", help="also re-send notifications that never went out"
    )
    replay.set_defaults(command="replay:cmd_replay")

    rebuild = sub.add_parser("rebuild", help="fold the event log again into ledger and cards")
    rebuild.add_argument("--json", action="store_true", help="JSON for scripts")
    rebuild.set_defaults(command="rebuild:cmd_rebuild")

    purge = sub.add_parser(
        "purge",
        help="redact personal data of processed and ignored events received before a date",
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
        help="received before this ISO 8601 date or time (UTC unless it says)",
    )
    purge.add_argument("--dry-run", action="store_true", help="count what would change only")
    purge.add_argument("--json", action="store_true", help="JSON for scripts")
    purge.set_defaults(command="retention:cmd_purge")

    forget = sub.add_parser(
        "forget-customer",
        help="erase one customer's personal data from every event and notification",
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

    ledger = sub.add_parser("ledger", help="the double-entry ledger")
    ledger_sub = ledger.add_subparsers(required=True, metavar="WHAT")
    balances = ledger_sub.add_parser("balances", help="account balances")
    balances.add_argument("--account", metavar="PREFIX", help="only accounts starting so")
    balances.add_argument("--json", action="store_true", help="JSON for scripts")
    balances.set_defaults(command="inspect:cmd_ledger_balances")

    loyalty = sub.add_parser("loyalty", help="one loyalty card")
    loyalty.add_argument("card_id", metavar="CARD_ID", help="the card's voucher id (v_…)")
    loyalty.add_argument("--json", action="store_true", help="JSON for scripts")
    loyalty.set_defaults(command="inspect:cmd_loyalty")

    giftcard = sub.add_parser("giftcard", help="one gift card")
    giftcard.add_argument("card_id", metavar="CARD_ID", help="the card's voucher id (v_…)")
    giftcard.add_argument("--json", action="store_true", help="JSON for scripts")
    giftcard.set_defaults(command="inspect:cmd_giftcard")

    cards = sub.add_parser(
        "cards",
        help="every loyalty and gift card: reported balance, ledger balance, drift, gaps",
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
        help="sign a payload (a file, or a built-in sample) with the configured secret and POST it",
        description="Sign a Voucherify payload with the configured secret and POST it: to try "
        "a deployment end to end. Give a JSON FILE, or --sample NAME for a built-in sample "
        f"({', '.join(sample_events.NAMES)}) with fresh ids, so that every send is a new event; "
        "a sample goes in a v2024-01-01 envelope unless --raw.",
    )
    what = send.add_mutually_exclusive_group(required=True)
    what.add_argument("file", type=Path, nargs="?", metavar="FILE", help="JSON file to send")
    what.add_argument(
        "--sample",
        type=sample_name,
        metavar="NAME",
        help=f"a built-in sample with fresh ids: {', '.join(sample_events.NAMES)}",
    )
    send.add_argument(
        "--url", required=True, help="the receiver, e.g. http://127.0.0.1:8000/webhooks/voucherify"
    )
    send.add_argument("--type", dest="event_type", help="event type of a raw payload FILE")
    send.add_argument(
        "--raw",
        action="store_true",
        help="send the sample without an envelope, its event type appended to the URL",
    )
    send.set_defaults(command="send:cmd_send", needs_secret=True)
    return parser


class _Version(argparse.Action):
    """--version, looked up only when asked for (reading package metadata takes a while)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help=str(kwargs.get("help")))

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        print(f"voucherhook {_version()}")
        parser.exit(0)


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, like every other failure."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"voucherhook: {message} (see `{self.prog} --help`)\n")


if __name__ == "__main__":
    sys.exit(main())
