"""A long event log made quickly on PostgreSQL, with SQL (`generate_series`), for the query
plan test and `bench.size`.

Event `n` (1, 2, …) is received `n` seconds after `base`, with a body made from the recorded
Voucherify payloads (`tests/fixtures/voucherify/`, in an envelope) whose identities carry `n`:
its event, redemption and order ids differ from every other event's, it happened when it was
received, and its card is one of `CARDS` (or as many as asked) gift, loyalty and reward
cards, so a rebuild folds real, distinct work. The mix, by `n % 20`:

- n % 20 in 0..9: `redemption.succeeded` (discount, promotion tier, gift card, loyalty
  points): ledger, loyalty and notifications;
- 10..12: `customer.reward_redemptions.completed`: the same three handlers;
- 13: `redemption.rollback.succeeded` of event n - 7's redemption: the ledger;
- 14..19: `redemption.failed` and four types no handler takes (`voucher.updated`, …),
  carrying the data of recorded events: `ignored`.

What happened to them, as live processing leaves it: events with handlers `processed`, with a
`done` run per handler and, for redemptions and reward redemptions, a `sent` email. A few
stand out, all among the first `SPECIAL` events, so their number is the same however long the
log grows (incidents are not proportional to the log): `FAILED` failed events (their loyalty
run failed, with an error and a traceback), `PENDING` pending ones (half never dispatched,
half dispatched long ago: the sweep's work), `QUARANTINED` quarantined, and
`STALE_NOTIFICATIONS` pending deliveries long past due. Emails that bounced (failed for good)
are spread over the whole log, one in `BOUNCE_EVERY` events. Rows are inserted by statement,
so the triggers keep `event_counts` right.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Connection, text

from models.routing import handlers_for
from tests.support.payloads import example, reward_redemption
from tests.unit.recorded import envelope, redemption, rollback

SPECIAL = 10_000
"""The failed, pending and quarantined events are among the first this many."""
FAILED = 250
PENDING = 100
QUARANTINED = 50
STALE_NOTIFICATIONS = 50
BOUNCE_EVERY = 200
"""One email in about this many events failed for good (an address that bounces): failed
deliveries pile up as the log grows."""

N = "@N@"  # the event's number in a template
ORIGINAL = "@O@"  # the number of the event whose redemption a rollback rolls back
AT = "@T@"  # when the event happened: its receipt time
CARD = "@C@"  # which of `CARDS` loyalty cards it concerns
CARDS = 5000
CHUNK = 100_000

IGNORED = (
    ("redemption.failed", "redemption.failed"),
    ("redemption.failed", "redemption.failed"),
    ("voucher.updated", "voucher.gift.balance_added"),
    ("voucher.published", "voucher.loyalty_card.points_added"),
    ("customer.created", "customer.rewarded.loyalty_points"),
    ("order.paid", "voucher.loyalty_card.transaction.created"),
)
"""Types no handler takes, as (type, the recorded event whose data it carries)."""


def _redemption(variant: int, n: str) -> dict[str, Any]:
    common = {"order_id": f"ord_{n}", "created_at": AT}
    if variant < 2:
        return redemption(f"r_{n}", tier_id=f"promo_{variant}", **common)
    if variant < 4:
        return redemption(f"r_{n}", kind="gift", voucher_id=f"v_gift_{CARD}", applied=700, **common)
    if variant < 6:
        return redemption(f"r_{n}", kind="loyalty", voucher_id=f"card_{CARD}", points=100, **common)
    return redemption(f"r_{n}", **common)


@cache
def templates() -> tuple[tuple[str, str], ...]:
    """(type, body with the placeholders N, ORIGINAL, AT and CARD) for n % 20 = 0, 1, …, 19."""
    bodies: list[tuple[str, dict[str, Any]]] = []
    for variant in range(10):
        bodies.append(("redemption.succeeded", _redemption(variant, N)))
    for _ in range(3):
        data = reward_redemption(f"rewr_{N}", f"card_rw_{CARD}", balance=5000, points=100, at=AT)
        bodies.append(("customer.reward_redemptions.completed", data))
    bodies.append(("redemption.rollback.succeeded", rollback(_redemption(6, ORIGINAL), f"rr_{N}")))
    bodies.extend((kind, example(recorded)) for kind, recorded in IGNORED)
    # The runs and notifications below are written for these handlers.
    assert [handlers_for(kind) for kind, _ in bodies] == (
        [("ledger", "loyalty", "notifications")] * 13 + [("ledger",)] + [()] * 6
    )
    made = []
    for kind, data in bodies:
        wrapped = envelope(kind, data)
        wrapped["id"] = f"whs_{N}"
        wrapped["event"]["id"] = f"evt_{N}"
        made.append((kind, json.dumps(wrapped)))
    return tuple(made)


# The columns every statement below computes from n.
_KIND = "(n % 20)"
_FAILED = f"(n <= {SPECIAL} AND n % {SPECIAL // FAILED} = 5)"  # n % 20 = 5: a redemption
_PENDING = f"(n <= {SPECIAL} AND n % {SPECIAL // PENDING} = 50)"  # n % 20 = 10: a reward
_UNDISPATCHED = f"({_PENDING} AND n % {2 * SPECIAL // PENDING} = 50)"
_QUARANTINED = f"(n <= {SPECIAL} AND n % {SPECIAL // QUARANTINED} = 17)"  # an ignored type
_STALE = f"(n <= {SPECIAL} AND n % {SPECIAL // STALE_NOTIFICATIONS} = 20)"
_UNSENT = f"(n % {BOUNCE_EVERY} = 40)"
_AT = "(CAST(:base AS timestamptz) + make_interval(secs => n))"

EVENTS = text(
    f"""
INSERT INTO events (id, type, status, received_at, body, headers, remote_addr, delivery_id,
                    error, attempts, dispatched_at, processed_at)
SELECT 'evt_' || n,
       CASE WHEN {_QUARANTINED} THEN NULL ELSE (CAST(:types AS text[]))[1 + {_KIND}] END,
       CASE WHEN {_QUARANTINED} THEN 'quarantined' WHEN {_KIND} >= 14 THEN 'ignored'
            WHEN {_FAILED} THEN 'failed' WHEN {_PENDING} THEN 'pending' ELSE 'processed' END,
       {_AT},
       convert_to(replace(replace(replace(replace(
           (CAST(:bodies AS text[]))[1 + {_KIND}], '{N}', n::text), '{ORIGINAL}', (n - 7)::text),
           '{AT}', to_char({_AT} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')),
           '{CARD}', ((n / 20) % CAST(:cards AS bigint))::text), 'UTF8'),
       CAST(:headers AS json),
       '203.0.113.' || (n % 250),
       'whs_' || n,
       CASE WHEN {_QUARANTINED} THEN 'no known shape: the body is not a Voucherify event'
            WHEN {_FAILED} THEN 'loyalty: card not found; replay after the fix' END,
       CASE WHEN {_KIND} >= 14 OR {_PENDING} THEN 0 WHEN {_FAILED} THEN 5 ELSE 1 END,
       CASE WHEN {_KIND} >= 14 OR {_UNDISPATCHED} THEN NULL
            WHEN {_PENDING} THEN {_AT} + interval '1 second'
            ELSE {_AT} + interval '5 milliseconds' END,
       CASE WHEN {_KIND} < 14 AND NOT {_FAILED} AND NOT {_PENDING}
            THEN {_AT} + interval '80 milliseconds' END
FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS n
"""
)

# One run per handler of each event with handlers: n % 20 < 13 run ledger, loyalty and
# notifications, n % 20 = 13 (a rollback) the ledger only. Pending events have none yet.
RUNS = text(
    f"""
INSERT INTO handler_runs (event_id, handler, status, attempts, error, traceback, updated_at)
SELECT 'evt_' || n, h,
       CASE WHEN {_FAILED} AND h = 'loyalty' THEN 'failed' ELSE 'done' END,
       CASE WHEN {_FAILED} AND h = 'loyalty' THEN 5 ELSE 1 END,
       CASE WHEN {_FAILED} AND h = 'loyalty' THEN 'card not found' END,
       CASE WHEN {_FAILED} AND h = 'loyalty' THEN
            'Traceback (most recent call last):' || chr(10) ||
            '  File "workers/handlers/loyalty.py", line 40, in run' || chr(10) ||
            'LookupError: card not found' END,
       {_AT} + interval '80 milliseconds'
FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS n
CROSS JOIN unnest(ARRAY['ledger', 'loyalty', 'notifications']) AS h
WHERE {_KIND} < 14 AND NOT {_PENDING} AND NOT {_QUARANTINED}
  AND ({_KIND} < 13 OR h = 'ledger')
"""
)

NOTIFICATIONS = text(
    f"""
INSERT INTO notifications (event_id, source_id, channel, recipient, status, subject, body,
                           attempts, error, created_at, due_at, sent_at)
SELECT 'evt_' || n,
       CASE WHEN {_KIND} < 10 THEN 'r_' ELSE 'rewr_' END || n,
       'email', 'customer' || (n % 5000) || '@example.com',
       CASE WHEN {_STALE} THEN 'pending' WHEN {_UNSENT} THEN 'failed' ELSE 'sent' END,
       'Your order: discount applied',
       'Hello, your redemption ' || n || ' applied a discount of 10.00 USD to your order. '
       || repeat('Thank you for shopping with us. ', 12),
       CASE WHEN {_STALE} THEN 0 ELSE 1 END,
       CASE WHEN {_UNSENT} THEN 'smtp: 550 mailbox unavailable' END,
       {_AT} + interval '80 milliseconds',
       {_AT} + interval '80 milliseconds',
       CASE WHEN NOT {_STALE} AND NOT {_UNSENT} THEN {_AT} + interval '1 second' END
FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS n
WHERE {_KIND} < 13 AND NOT {_FAILED} AND NOT {_PENDING} AND NOT {_QUARANTINED}
"""
)

HEADERS = json.dumps(
    {"content-type": "application/json", "content-length": "5300", "user-agent": "Voucherify"}
)


def base_for(events: int, now: datetime | None = None) -> datetime:
    """A start such that the last of `events` events was received an hour before `now`."""
    return (now or datetime.now(UTC)) - timedelta(seconds=events + 3600)


def received_at(base: datetime, n: int) -> datetime:
    """When event n was received."""
    return base + timedelta(seconds=n)


def fill(conn: Connection, base: datetime, first: int, last: int, cards: int = CARDS) -> None:
    """Insert events first..last (numbers, inclusive) with their runs and notifications, a
    chunk per statement, about `cards` loyalty cards; the caller commits (and ANALYZEs)."""
    kinds, bodies = zip(*templates(), strict=True)
    for start in range(first, last + 1, CHUNK):
        bounds = {"first": start, "last": min(start + CHUNK - 1, last), "base": base}
        conn.execute(
            EVENTS,
            {
                **bounds,
                "types": list(kinds),
                "bodies": list(bodies),
                "headers": HEADERS,
                "cards": cards,
            },
        )
        conn.execute(RUNS, bounds)
        conn.execute(NOTIFICATIONS, bounds)


def analyze(conn: Connection) -> None:
    for table in ("events", "event_counts", "handler_runs", "notifications"):
        conn.execute(text(f"ANALYZE {table}"))
