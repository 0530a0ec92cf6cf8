"""Reconcile: list what Voucherify's API recorded in a window, compare it with what is stored,
store and book what the webhooks missed, report what differs.

A missing object is stored as the event its raw webhook would have been (`models.reconcile`),
marked as coming from the API (`x-voucherhook-origin`), then processed here by the same
handlers as any delivery, in the order Voucherify recorded them. A webhook arriving later is a
duplicate of it (same identity) or, in an envelope, books nothing more: the books are keyed by
the Voucherify objects. A differing object is reported with both sides and never overwritten.

Each list's high-water mark is kept (`models.db.reconcile_store`): the end of the last window
read for redemptions, the last transaction id read for a campaign, so that the next run without
`--since` resumes there. A dry run stores, books and moves nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
from sqlalchemy import Engine

from models.db import card_store, eventlog, reconcile_store
from models.db.eventlog import NewEvent
from models.db.reconcile_store import CardCheck
from models.loyalty import movement_key
from models.reconcile import (
    ORIGIN_HEADER,
    Compared,
    Recorded,
    Stored,
    card_balance,
    compare,
    from_redemption,
    from_transaction,
)
from models.voucherify import parse_payload
from models.voucherify.fields import parse_timestamp
from models.voucherify.transactions import CardTransactionEvent
from workers.voucherify_api import NotFound, VoucherifyApi

log = structlog.get_logger(__name__)

REDEMPTIONS = "redemptions"


@dataclass
class Report:
    since: datetime
    until: datetime
    here: list[Compared] = field(default_factory=list)
    missing: list[Compared] = field(default_factory=list)
    differing: list[Compared] = field(default_factory=list)
    stored: list[str] = field(default_factory=list)
    """The event ids stored for the missing objects (none on a dry run)."""
    failed: dict[str, str] = field(default_factory=dict)
    """Stored events whose processing failed: id → error."""
    drift: list[CardCheck] = field(default_factory=list)
    """The cards touched whose balance Voucherify and the ledger disagree on."""
    cards_checked: int = 0
    silent_since: datetime | None = None
    """Set when objects were missing and no delivery had arrived for longer than the silence
    setting: when the last one did (the run's start when none ever did)."""
    requests: int = 0


def reconcile(
    engine: Engine,
    api: VoucherifyApi,
    since: datetime,
    until: datetime,
    *,
    campaigns: Sequence[str] = (),
    silence_after: float | None = None,
    dry_run: bool = False,
    process: Callable[[list[str]], dict[str, str]] | None = None,
    tell: Callable[[str], None] = lambda _what: None,
) -> Report:
    """Compare the window [since, until) and, unless `dry_run`, store and `process` what is
    missing. `tell` hears what is being read (for a progress display)."""
    report = Report(since, until)
    started = datetime.now(UTC)
    with engine.begin() as conn:
        run = reconcile_store.start_run(conn, since, until, started) if not dry_run else None
    error: str | None = None
    try:
        tell("redemptions")
        recorded = _redemptions(api, since, until)
        marks: dict[str, str] = {}
        for campaign in _campaigns(campaigns, recorded):
            tell(f"transactions of {campaign}")
            found, last = _transactions(engine, api, campaign, since, until)
            recorded += found
            if last is not None:
                marks[f"transactions:{campaign}"] = last
        recorded.sort(key=_when)
        for result in _compare(engine, recorded):
            getattr(report, result.verdict).append(result)
        if report.missing and silence_after is not None:
            report.silent_since = _silence(engine, started, silence_after)
        if not dry_run:
            report.stored = _store(engine, [c.recorded for c in report.missing])
            if report.stored and process is not None:
                report.failed = process(report.stored)
        tell("card balances")
        checks = _check_cards(engine, api, recorded)
        report.cards_checked = len(checks)
        report.drift = [check for check in checks if check.drift]
        if not dry_run:
            with engine.begin() as conn:
                now = datetime.now(UTC)
                old = reconcile_store.mark(conn, REDEMPTIONS)
                if old is None or old < _iso(until):
                    reconcile_store.set_mark(conn, REDEMPTIONS, _iso(until), now)
                for source, value in marks.items():
                    reconcile_store.set_mark(conn, source, value, now)
                for check in checks:
                    reconcile_store.put_check(conn, check)
    except Exception as exc:
        error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise
    finally:
        report.requests = api.requests
        if run is not None:
            with engine.begin() as conn:
                reconcile_store.finish_run(
                    conn,
                    run,
                    datetime.now(UTC),
                    here=len(report.here),
                    missing=len(report.missing),
                    differing=len(report.differing),
                    drifting=len(report.drift),
                    requests=api.requests,
                    error=error,
                    silent_since=report.silent_since,
                )
    return report


def _silence(engine: Engine, now: datetime, after: float) -> datetime | None:
    """When the last delivery arrived, if longer than `after` seconds ago: Voucherify recorded
    what never came, so its webhook is probably disabled. Logged as an ERROR saying what to do."""
    with engine.connect() as conn:
        last = eventlog.last_received(conn)
    if last is not None and (now - last).total_seconds() <= after:
        return None
    log.error(
        "webhook_silent",
        last_delivery=last.isoformat() if last else None,
        error="Voucherify recorded objects that no delivery brought, and none has arrived for "
        f"over {after:.0f} s: the webhook is probably disabled. Re-enable it in Voucherify "
        "(Project settings → Webhooks; a distribution's own settings), check `events list "
        "--limit 5` shows new deliveries, then reconcile the gap (docs/operations.md §9)",
    )
    return last or now


def resume_point(engine: Engine) -> datetime | None:
    """Where the last run read redemptions up to, if any."""
    with engine.connect() as conn:
        value = reconcile_store.mark(conn, REDEMPTIONS)
    return datetime.fromisoformat(value) if value else None


def _iso(moment: datetime) -> str:
    """Sortable as text: UTC, always with microseconds."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _when(recorded: Recorded) -> tuple[datetime, str]:
    """The order Voucherify recorded them in (an original before its rollback)."""
    payload = recorded.payload
    inner = payload.get("transaction") or payload.get("redemption_rollback") or {}
    at = payload.get("created_at") or inner.get("created_at")
    return (parse_timestamp(at) if at else _EPOCH, recorded.object_id)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _redemptions(api: VoucherifyApi, since: datetime, until: datetime) -> list[Recorded]:
    found = []
    for item in api.redemptions(since, until):
        recorded = from_redemption(item)
        if recorded is not None:
            found.append(recorded)
    return found


def _campaigns(configured: Sequence[str], recorded: Iterable[Recorded]) -> list[str]:
    """The configured campaigns, then those of the cards the redemptions used."""
    seen = dict.fromkeys(configured)
    for item in recorded:
        if item.campaign_id and item.card_id:
            seen.setdefault(item.campaign_id)
    return list(seen)


def _transactions(
    engine: Engine, api: VoucherifyApi, campaign: str, since: datetime, until: datetime
) -> tuple[list[Recorded], str | None]:
    """The campaign's transactions created in the window, read on from its mark (from its
    first transaction when it has none); and the new mark: the last one read created before
    `until`."""
    with engine.connect() as conn:
        after = reconcile_store.mark(conn, f"transactions:{campaign}")
    found, last = [], None
    for item in api.campaign_transactions(campaign, after):
        at = parse_timestamp(item["created_at"]) if item.get("created_at") else None
        if at is not None and at >= until:
            break
        last = str(item["id"])
        if at is not None and at < since:
            continue
        recorded = from_transaction(item, campaign)
        if recorded is not None:
            found.append(recorded)
    return found, last


def _check_cards(engine: Engine, api: VoucherifyApi, recorded: list[Recorded]) -> list[CardCheck]:
    """Each card the objects touched, as Voucherify reports it now against the ledger."""
    checks = []
    for card_id in dict.fromkeys(item.card_id for item in recorded if item.card_id):
        assert card_id is not None
        try:
            found = card_balance(api.voucher(card_id))
        except NotFound:
            continue  # deleted in Voucherify since: nothing to compare
        if found is None:
            continue
        kind, reported = found
        with engine.connect() as conn:
            ledger = card_store.ledger_balance(conn, kind, card_id)
        checks.append(CardCheck(card_id, kind, reported, ledger, datetime.now(UTC)))
    return checks


def _compare(engine: Engine, recorded: list[Recorded]) -> list[Compared]:
    identities = {item.object_id: item.identity for item in recorded}
    redemptions = [i.object_id for i in recorded if i.event_type == "redemption.succeeded"]
    rollbacks = [i.object_id for i in recorded if i.event_type.startswith("redemption.rollback")]
    movements = {
        item.object_id: (str(item.card_id), _movement_key(item))
        for item in recorded
        if item.source != REDEMPTIONS and item.card_id
    }
    with engine.connect() as conn:
        events = reconcile_store.stored_events(conn, list(identities.values()))
        booked: dict[str, Stored] = {
            **reconcile_store.booked_redemptions(conn, redemptions),
            **reconcile_store.booked_rollbacks(conn, rollbacks),
        }
        cards = reconcile_store.booked_movements(conn, list(movements.values()))
    results = []
    for item in recorded:
        stored = booked.get(item.object_id)
        if stored is None and item.object_id in movements:
            stored = cards.get(movements[item.object_id])
        if stored is None and identities[item.object_id] in events:
            stored = Stored(identities[item.object_id], None)
        results.append(compare(item, stored))
    return results


def _movement_key(item: Recorded) -> str:
    payload = parse_payload(item.event_type, item.payload)
    assert isinstance(payload, CardTransactionEvent)
    return movement_key(payload)


def _store(engine: Engine, missing: list[Recorded]) -> list[str]:
    """Store the missing objects as events (in this order); the ids stored."""
    now = datetime.now(UTC)
    rows = []
    for item in missing:
        rows.append(
            NewEvent(
                id=item.identity,
                type=item.event_type,
                status="pending",
                received_at=now,
                body=item.body,
                headers={ORIGIN_HEADER: f"voucherify-api {item.source}"},
                remote_addr=None,
                delivery_id=None,
                error=None,
            )
        )
    with engine.begin() as conn:
        eventlog.insert_new(conn, list({row.id: row for row in rows}.values()))
    return list(dict.fromkeys(row.id for row in rows))
