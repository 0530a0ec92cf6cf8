"""Commands that show what is stored: events, ledger balances, loyalty cards."""

from __future__ import annotations

import argparse

from models.db import card_store, ledger_store
from workers import output
from workers.commands import CommandError, connect
from workers.settings import Settings


def cmd_ledger_balances(args: argparse.Namespace, settings: Settings) -> int:
    engine = connect(settings)
    with engine.connect() as conn:
        rows = ledger_store.balances(conn, args.account)
    if args.json:
        output.print_json([{"account": a, "asset": s, "balance": b} for a, s, b in rows])
    elif not rows:
        print(
            "no postings" + (f" for accounts starting with {args.account}" if args.account else "")
        )
    else:
        output.print_table(("account", "asset", "balance"), rows)
    return 0


def cmd_loyalty(args: argparse.Namespace, settings: Settings) -> int:
    engine = connect(settings)
    with engine.connect() as conn:
        card = card_store.get(conn, args.card_id)
    if card is None:
        raise CommandError(
            f"no loyalty card {args.card_id}: no processed event touched it "
            "(card ids are voucher ids, v_…; see `voucherhook events list`)"
        )
    record = {
        "card_id": card.card_id,
        "customer_id": card.customer_id,
        "balance": card.balance,
        "points_spent": card.points_spent,
        "as_of": card.as_of,
        "events": card.events,
        "flagged": card.flagged,
        "flags": list(card.flags),
    }
    if args.json:
        output.print_json(record)
    else:
        output.print_record(list(record.items()))
    return 0
