"""Commands that show what is stored: events, ledger balances, loyalty cards."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from models.amounts import money, of_asset, points
from models.cards import CardReport, report
from models.db import card_store, ledger_store, reconcile_store
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
        output.print_table(
            ("account", "balance"), [(account, of_asset(b, asset)) for account, asset, b in rows]
        )
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
        books = _report(conn, "loyalty", args.card_id)
        checked = reconcile_store.check_of(conn, args.card_id)
    record: dict[str, Any] = {
        "card_id": card.card_id,
        "customer_id": card.customer_id,
        "balance": card.balance,
        "ledger_balance": books.ledger_balance,
        "drift": books.drift,
        "points_spent": card.points_spent,
        "as_of": card.as_of,
        "events": card.events,
        "flagged": card.flagged,
        "flags": list(card.flags),
        **_checked(checked),
        "gaps": _gaps(books),
    }
    money_fields = ("balance", "ledger_balance", "drift", "points_spent", "voucherify_balance")
    _show(record, books, args.json, points, money_fields)
    return 0


def cmd_giftcard(args: argparse.Namespace, settings: Settings) -> int:
    engine = connect(settings)
    with engine.connect() as conn:
        books = _report(conn, "gift", args.card_id)
        checked = reconcile_store.check_of(conn, args.card_id)
    if not books.movements:
        raise CommandError(
            f"no gift card {args.card_id}: no processed event moved its credit "
            "(card ids are voucher ids, v_…; see `voucherhook events list`)"
        )
    record: dict[str, Any] = {
        "card_id": books.card_id,
        "balance": books.balance,
        "ledger_balance": books.ledger_balance,
        "drift": books.drift,
        "as_of": books.as_of,
        "movements": books.movements,
        **_checked(checked),
        "gaps": _gaps(books),
    }
    amounts = ("balance", "ledger_balance", "drift", "voucherify_balance")
    _show(record, books, args.json, _money(settings), amounts)
    return 0


def cmd_cards(args: argparse.Namespace, settings: Settings) -> int:
    """Every card seen; with --drift, only those whose books disagree with Voucherify."""
    engine = connect(settings)
    with engine.connect() as conn:
        booked = card_store.ledger_balances(conn)
        reports = [
            report(m[0].card_id, m[0].kind, m, booked.get((m[0].kind, m[0].card_id), 0))
            for m in card_store.all_movements(conn)
        ]
    shown = [r for r in reports if not r.agrees] if args.drift else reports
    if args.json:
        output.print_json(
            [
                {
                    "card_id": r.card_id,
                    "kind": r.kind,
                    "balance": r.balance,
                    "ledger_balance": r.ledger_balance,
                    "drift": r.drift,
                    "gaps": _gaps(r),
                }
                for r in shown
            ]
        )
    elif not shown:
        print("every card's books agree with Voucherify" if args.drift else "no card seen")
    else:
        shown_in = {"loyalty": points, "gift": _money(settings)}
        output.print_table(
            ("card", "kind", "balance", "ledger", "drift", "gaps"),
            [
                (
                    r.card_id,
                    r.kind,
                    *(shown_in[r.kind](n) for n in (r.balance, r.ledger_balance, r.drift)),
                    len(r.gaps),
                )
                for r in shown
            ],
        )
        if args.drift:
            print(
                f"{len(shown)} card(s) disagree: `voucherhook loyalty CARD_ID` or "
                "`voucherhook giftcard CARD_ID` names each gap (a movement never received: "
                "a missed webhook, or an event type not subscribed)"
            )
    return 1 if args.drift and shown else 0


def _checked(check: reconcile_store.CardCheck | None) -> dict[str, Any]:
    """The card's last check against Voucherify's API (`voucherhook reconcile`), if any: the
    balance Voucherify reported then, and when."""
    if check is None:
        return {"voucherify_balance": None, "voucherify_checked_at": None}
    return {"voucherify_balance": check.reported, "voucherify_checked_at": check.checked_at}


def _report(conn: Any, kind: str, card_id: str) -> CardReport:
    movements = [m for m in card_store.movements(conn, card_id) if m.kind == kind]
    return report(
        card_id,
        "loyalty" if kind == "loyalty" else "gift",
        movements,
        card_store.ledger_balance(conn, kind, card_id),
    )


def _gaps(books: CardReport) -> list[dict[str, Any]]:
    return [
        {
            "after": gap.after_key,
            "before": gap.before_key,
            "expected": gap.expected,
            "found": gap.found,
            "missing": gap.missing,
        }
        for gap in books.gaps
    ]


def _money(settings: Settings) -> Callable[[int], str]:
    """Gift cards hold credit in the project currency (payloads never name it)."""
    return lambda minor: money(minor, settings.currency)


def _show(
    record: dict[str, Any],
    books: CardReport,
    as_json: bool,
    amount: Callable[[int], str],
    amounts: tuple[str, ...],
) -> None:
    """`--json` as stored (integers); for people, the fields in `amounts` shown by `amount`."""
    if as_json:
        output.print_json(record)
        return
    output.print_record(
        [
            (k, amount(v) if k in amounts and v is not None else v)
            for k, v in record.items()
            if k != "gaps" and not (k.startswith("voucherify_") and v is None)
        ]
    )
    for gap in books.gaps:
        print(f"gap: {gap.describe(amount)}")
