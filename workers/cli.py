"""The `voucherhook` command line: the parser, and one line for any failure."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from models import schema
from models.settings import ConfigError, Settings, load_settings
from workers import logs
from workers.commands import CommandError
from workers.commands.inspect import cmd_ledger_balances, cmd_loyalty
from workers.commands.run import cmd_migrate, cmd_serve, cmd_worker
from workers.commands.send import cmd_send


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        logs.configure(settings.log_level, settings.log_format)
        command: Callable[[argparse.Namespace, Settings], int] = args.command
        return command(args, settings)
    except (ConfigError, CommandError, schema.SchemaError) as exc:
        print(f"voucherhook: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voucherhook", description="Voucherify webhook receiver and workers."
    )
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
    serve.set_defaults(command=cmd_serve)

    worker = sub.add_parser("worker", help="run a Celery worker")
    worker.add_argument(
        "--concurrency", type=int, help="processes (VOUCHERHOOK_WORKER_CONCURRENCY)"
    )
    worker.add_argument("--pool", choices=["prefork", "solo", "threads"], help="Celery pool")
    worker.set_defaults(command=cmd_worker)

    migrate = sub.add_parser("migrate", help="create or upgrade the database schema")
    migrate.set_defaults(command=cmd_migrate)

    ledger = sub.add_parser("ledger", help="the double-entry ledger")
    ledger_sub = ledger.add_subparsers(required=True, metavar="WHAT")
    balances = ledger_sub.add_parser("balances", help="account balances")
    balances.add_argument("--account", metavar="PREFIX", help="only accounts starting so")
    balances.add_argument("--json", action="store_true", help="JSON for scripts")
    balances.set_defaults(command=cmd_ledger_balances)

    loyalty = sub.add_parser("loyalty", help="one loyalty card")
    loyalty.add_argument("card_id", metavar="CARD_ID", help="the card's voucher id (v_…)")
    loyalty.add_argument("--json", action="store_true", help="JSON for scripts")
    loyalty.set_defaults(command=cmd_loyalty)

    send = sub.add_parser("send", help="sign a payload with the configured secret and POST it")
    send.add_argument("file", type=Path, help="JSON file to send")
    send.add_argument(
        "--url", required=True, help="the receiver, e.g. http://127.0.0.1:8000/webhooks/voucherify"
    )
    send.add_argument("--type", dest="event_type", help="event type of a raw payload")
    send.set_defaults(command=cmd_send)
    return parser


if __name__ == "__main__":
    sys.exit(main())
