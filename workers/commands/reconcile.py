"""`voucherhook reconcile`: what Voucherify's API recorded against what is stored."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from workers import output
from workers.commands import CommandError, connect
from workers.reconcile import Report, resume_point
from workers.reconcile_schedule import api_for, configured
from workers.settings import Settings
from workers.voucherify_api import ApiError
from workers.wiring import Runtime

NO_CREDENTIALS = (
    "reconcile needs Voucherify's API credentials: set VOUCHERIFY_APP_ID and "
    "VOUCHERIFY_APP_TOKEN (Project Settings → General → Application Keys), and "
    "VOUCHERIFY_API_URL if your project is not in Europe"
)


def cmd_reconcile(args: argparse.Namespace, settings: Settings) -> int:
    api = api_for(settings)
    if api is None:
        raise CommandError(NO_CREDENTIALS)
    engine = connect(settings)
    until = args.until or datetime.now(UTC)
    since = args.since or resume_point(engine)
    if since is None:
        raise CommandError(
            "no earlier reconciliation to resume from: say where to start, e.g. --since 2d"
        )
    if since >= until:
        raise CommandError(f"--since ({since.isoformat()}) must be before --until")
    try:
        with api, output.progress() as progress:
            task = progress.add_task("reading Voucherify's API", total=None)
            report = configured(
                engine,
                api,
                settings,
                Runtime(settings),
                since,
                until,
                dry_run=args.dry_run,
                tell=lambda what: progress.update(task, description=f"reading {what}"),
            )
    except ApiError as exc:
        raise CommandError(str(exc)) from None
    if args.json:
        output.print_json(_as_json(report, args.dry_run))
    else:
        _print(report, args.dry_run)
    return 1 if report.failed else 0


def _as_json(report: Report, dry_run: bool) -> dict[str, Any]:
    return {
        "since": output.utc(report.since),
        "until": output.utc(report.until),
        "dry_run": dry_run,
        "here": len(report.here),
        "missing": len(report.missing),
        "differing": len(report.differing),
        "requests": report.requests,
        "missing_ids": [c.recorded.object_id for c in report.missing],
        "stored": report.stored,
        "failed": report.failed,
        "cards_checked": report.cards_checked,
        "silent_since": output.utc(report.silent_since),
        "drift": [
            {
                "card_id": check.card_id,
                "kind": check.kind,
                "voucherify_balance": check.reported,
                "ledger_balance": check.ledger,
                "drift": check.drift,
            }
            for check in report.drift
        ],
        "differences": [
            {
                "id": c.recorded.object_id,
                "event_type": c.recorded.event_type,
                "voucherify": list(c.recorded.figures),
                "stored": list(c.stored.figures or ()) if c.stored else None,
                "event_id": c.stored.event_id if c.stored else None,
            }
            for c in report.differing
        ],
    }


def _print(report: Report, dry_run: bool) -> None:
    window = f"{output.utc(report.since)} to {output.utc(report.until)}"
    print(
        f"Voucherify recorded {len(report.here) + len(report.missing) + len(report.differing)} "
        f"object(s) from {window}: {len(report.here)} already here, {len(report.missing)} "
        f"missing, {len(report.differing)} differing ({report.requests} API request(s))"
    )
    if report.missing:
        if dry_run:
            print("dry run: nothing stored; run without --dry-run to store and book these:")
        else:
            print(f"stored and processed {len(report.stored)} event(s) for the missing:")
        for compared in report.missing:
            print(f"  {compared.recorded.event_type} {compared.recorded.object_id}")
    for event_id, error in report.failed.items():
        print(f"  failed {event_id}: {error} (`voucherhook events show {event_id}`)")
    if report.silent_since is not None:
        print(
            f"no delivery since {output.utc(report.silent_since)} while Voucherify recorded "
            "these: its webhook is probably disabled; re-enable it in Voucherify (Project "
            "settings → Webhooks) and see docs/operations.md §9"
        )
    for check in report.drift:
        print(
            f"  card {check.card_id} drifts: Voucherify's balance {check.reported}, the "
            f"ledger's {check.ledger} ({check.drift:+}); `voucherhook "
            f"{'loyalty' if check.kind == 'loyalty' else 'giftcard'} {check.card_id}` shows "
            "its movements and gaps"
        )
    if report.differing:
        print("differing (Voucherify's figures, then the stored ones; nothing was changed):")
        for compared in report.differing:
            print(f"  {compared.describe()}")
