"""The checker: what a workload sent against what the system stored, booked and notified.

`check(engine, workload, …)` waits until the system is quiet (nothing pending, no notification
waiting), then reads the database and the notification sinks and compares them with what the
pure rules compute from the payloads sent:

- events: sent, accepted (every copy answered 2xx), stored, processed (`processed`, or
  `ignored` for a type without handlers), lost (accepted but not stored, or not processed);
- ledger: every transaction the posting rules give, once, with exactly their postings;
  a key the rules do not give, or more postings than they give, is double-booked;
- loyalty cards: balance, as-of, holder, points spent and event count as the card rules fold
  them;
- notifications, counted where they arrive (the HTTP sink's Idempotency-Key, the email's
  Message-ID): every one planned is received, none twice.

The database must hold this workload's events only (a fresh or emptied one). When the
environment variable VOUCHERHOOK_RELIABILITY_REPORT names a file, each check appends one JSON
line to it: the test, the load, the faults, the figures and the command that reproduces it.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import asdict, dataclass, field
from datetime import UTC
from typing import Any

from sqlalchemy import Engine, func, select

from models.cards import Movement
from models.db.tables import events, ledger_conflicts, ledger_postings, ledger_transactions
from models.db.tables import notifications as notifications_table
from models.journal import Transaction, fold
from models.ledger import post_redemption, post_reward_redemption, post_rollback
from models.loyalty import CardState, fold_cards, movement_of, snapshot_flags
from models.notifications import WEBHOOK_RECIPIENT, context, email_address
from models.routing import NOTIFICATIONS, handlers_for
from models.voucherify import (
    RedemptionRollbackSucceeded,
    RedemptionSucceeded,
    RewardRedemptionCompleted,
    load_json,
    parse_payload,
)
from tests.support import stores
from tests.support.payloads import parsed
from tests.support.sinks import HttpSink, SmtpSink
from tests.support.workload import Event, Workload
from workers.notification_channels import message_id

CARD_EVENTS = ("redemption.succeeded", "customer.reward_redemptions.completed")

REPORT_ENV = "VOUCHERHOOK_RELIABILITY_REPORT"
Key = tuple[str, str, str]
"""A notification: (Voucherify object, channel, recipient)."""
Postings = Counter[tuple[str, str, int]]


@dataclass(frozen=True)
class Expected:
    """What the rules compute from the events sent."""

    statuses: dict[str, str]
    transactions: dict[str, Transaction]
    cards: dict[str, CardState]
    notifications: frozenset[Key]


def expect(
    sent: Iterable[Event], *, currency: str = "USD", webhook_url: str | None, email: bool
) -> Expected:
    sent = list(sent)
    redemptions = {
        event.redemption_id: post_redemption(parsed(RedemptionSucceeded, event.data), currency)
        for event in sent
        if event.redemption_id
    }
    booked: list[Transaction] = [t for ts in redemptions.values() for t in ts]
    observed: list[tuple[Movement, frozenset[str]]] = []
    planned: set[Key] = set()
    for event in sent:
        if event.event_type == "customer.reward_redemptions.completed":
            reward = parsed(RewardRedemptionCompleted, event.data)
            booked += post_reward_redemption(reward)
        elif event.original is not None:
            booked += post_rollback(
                parsed(RedemptionRollbackSucceeded, event.data), redemptions[event.original]
            )
        if event.event_type in CARD_EVENTS and event.original is None:
            payload = parse_payload(event.event_type, event.data)
            delivered = load_json(event.body)  # an envelope's time settles equal times
            card = movement_of(event.event_type, payload, delivered, event.event_id)
            observed += [(card, snapshot_flags(payload, card))] if card else []
        planned |= _notifications(event, currency, webhook_url, email)
    journal = fold(booked)
    assert not journal.conflicts, f"the workload's own events conflict: {journal.conflicts}"
    return Expected(
        statuses={
            e.event_id: "processed" if handlers_for(e.event_type) else "ignored" for e in sent
        },
        transactions=dict(journal.transactions),
        cards=fold_cards(observed),
        notifications=frozenset(planned),
    )


def _notifications(event: Event, currency: str, webhook_url: str | None, email: bool) -> set[Key]:
    if NOTIFICATIONS.name not in handlers_for(event.event_type):
        return set()
    payload = parse_payload(event.event_type, event.data)
    values = context(event.event_type, payload, currency)
    if values is None:
        return set()
    source = values["source_id"]
    planned = {(source, "webhook", WEBHOOK_RECIPIENT)} if webhook_url else set()
    address = email_address(payload) if email else None
    return planned | ({(source, "email", address)} if address else set())


@dataclass
class Result:
    """The comparison, figure by figure; `problems` explains every figure that is wrong."""

    load: str
    faults: list[str]
    duration: float
    """Seconds from the first delivery to the last answer."""
    settled: float
    """Seconds from the last answer until nothing was pending any more."""
    sent: int
    accepted: int
    stored: int
    processed: int
    lost: int
    failed: int
    double_booked: int
    ledger_missing: int
    ledger_wrong: int
    cards_wrong: int
    notifications_planned: int
    notifications_received: int
    duplicate_notifications: int
    unknown_sends: int
    """Notifications left `sending` by a worker killed mid-send, never received."""
    answers: dict[str, int]
    quiet: bool
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        answers = " ".join(f"{k}: {v}" for k, v in sorted(self.answers.items()))
        return (
            f"sent {self.sent}, accepted {self.accepted}, stored {self.stored}, "
            f"processed {self.processed}, lost {self.lost}, double-booked {self.double_booked}, "
            f"ledger missing {self.ledger_missing}, cards wrong {self.cards_wrong}, "
            f"notifications {self.notifications_received}/{self.notifications_planned} "
            f"(duplicates {self.duplicate_notifications}, unknown {self.unknown_sends}); "
            f"answers {answers}; sent in {self.duration:.0f}s, settled {self.settled:.0f}s later"
        )

    def assert_ok(self, *, allow_unknown_sends: bool = False) -> None:
        """Fail with every problem found. `allow_unknown_sends`: a worker was killed, so a
        notification it was sending may be left `sending` (README, Known limits); it must
        then be one of those, never one that was simply not sent."""
        problems = list(self.problems)
        if self.unknown_sends and not allow_unknown_sends:
            problems.append(f"{self.unknown_sends} notification(s) left sending, never received")
        if problems:
            raise AssertionError(
                "the checker found:\n  - " + "\n  - ".join(problems) + f"\n{self.summary()}"
            )

    def report(self, test: str | None = None) -> None:
        path = os.environ.get(REPORT_ENV)
        if not path:
            return
        nodeid = test or os.environ.get("PYTEST_CURRENT_TEST", "unknown").rsplit(" ", 1)[0]
        line = {
            "test": nodeid,
            **{k: round(v, 1) if isinstance(v, float) else v for k, v in asdict(self).items()},
            "ok": not self.problems,
            "problems": self.problems[:20],
            "reproduce": f"uv run pytest {nodeid}",
            "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")


def check(
    engine: Engine,
    workload: Workload,
    *,
    webhook_sink: HttpSink | None = None,
    smtp_sink: SmtpSink | None = None,
    currency: str = "USD",
    timeout: float = 180.0,
    report: bool = True,
) -> Result:
    """Wait for the workload and for the system to settle, then compare; see the module doc.

    Pass the sinks the workers were configured with (NOTIFY_WEBHOOK_URL, SMTP_URL).
    `report=False` keeps the result out of the reliability report (a test of the checker)."""
    workload.wait(timeout)
    expected = expect(
        workload.events,
        currency=currency,
        webhook_url=webhook_sink.url if webhook_sink else None,
        email=smtp_sink is not None,
    )
    settling = time.monotonic()
    quiet = _settle(engine, len(workload.accepted_ids()), timeout)
    settled = time.monotonic() - settling
    received = _received(webhook_sink, smtp_sink, expected.notifications)
    with engine.connect() as conn:
        result = _compare(conn, workload, expected, received, quiet, settled)
    if report:
        result.report()
    return result


def _settle(engine: Engine, accepted: int, timeout: float, grace: float = 10.0) -> bool:
    """Until every event is stored and none is pending, and no notification waits to be sent
    or is being sent (a send still `sending` after `grace` seconds of calm is one a killed
    worker left); then a moment more, for a wrongly repeated send to show up. False on
    timeout."""
    deadline = time.monotonic() + timeout
    calm_since: float | None = None
    while time.monotonic() < deadline:
        stored, pending, notifications = _progress(engine)
        if stored < accepted or pending or notifications.get("pending"):
            calm_since = None
        else:
            calm_since = calm_since or time.monotonic()
            if not notifications.get("sending") or time.monotonic() - calm_since > grace:
                time.sleep(1.0)
                return True
        time.sleep(0.5)
    return False


def _progress(engine: Engine) -> tuple[int, int, dict[str, int]]:
    """Events stored, events pending, notifications by status."""
    with engine.connect() as conn:
        stored = conn.scalar(select(func.count()).select_from(events)) or 0
        pending = conn.scalar(
            select(func.count()).select_from(events).where(events.c.status == "pending")
        )
        by_status = conn.execute(
            select(notifications_table.c.status, func.count()).group_by(
                notifications_table.c.status
            )
        )
        return int(stored), int(pending or 0), {status: int(n) for status, n in by_status}


def _received(
    webhook: HttpSink | None, smtp: SmtpSink | None, planned: AbstractSet[Key]
) -> Counter[Key]:
    """Every notification that arrived, as many times as it arrived."""
    got: Counter[Key] = Counter()
    if webhook is not None:
        for key, count in list(webhook.keys.items()):
            source, _, channel = key.rpartition(":")
            got[(source, channel, WEBHOOK_RECIPIENT)] += count
    if smtp is not None:
        # Message-ID: <HASH@domain>, HASH from the key SOURCE:email; one not planned keeps it
        by_hash = {
            _local(message_id(f"{source}:{channel}")): source
            for source, channel, _ in planned
            if channel == "email"
        }
        for message in list(smtp.messages):
            local = _local(str(message["Message-ID"]))
            got[(by_hash.get(local, local), "email", str(message["To"]))] += 1
    return got


def _local(header: str) -> str:
    """The part of a Message-ID before its @."""
    return header.strip().strip("<>").partition("@")[0]


def _compare(
    conn: Any,
    workload: Workload,
    expected: Expected,
    received: Counter[Key],
    quiet: bool,
    settled: float,
) -> Result:
    problems: list[str] = [] if quiet else ["the system did not settle before the timeout"]
    rows = list(conn.execute(select(events.c.id, events.c.status, events.c.error)))
    statuses = {row.id: row.status for row in rows}
    errors = {row.id: f"{row.status}: {row.error}" for row in rows if row.error}
    accepted = workload.accepted_ids()
    figures = _event_figures(workload, expected, statuses, errors, accepted, problems)
    ledger = _ledger_figures(conn, expected, problems)
    cards_wrong = _card_figures(conn, expected, problems)
    notes = _notification_figures(conn, expected, received, problems)
    return Result(
        load=workload.load.describe(),
        faults=[f"t={at:.0f}s {what}" for at, what in workload.faults],
        duration=workload.duration,
        settled=settled,
        sent=len(workload.events),
        accepted=len(accepted),
        **figures,
        **ledger,
        cards_wrong=cards_wrong,
        **notes,
        answers=dict(workload.answers()),
        quiet=quiet,
        problems=problems,
    )


def _event_figures(
    workload: Workload,
    expected: Expected,
    statuses: dict[str, str],
    errors: dict[str, str],
    accepted: set[str],
    problems: list[str],
) -> dict[str, int]:
    sent = set(expected.statuses)
    stored = sent & set(statuses)
    processed = {i for i in stored if statuses[i] == expected.statuses[i]}
    lost = accepted - processed
    failed = sorted(i for i in stored if statuses[i] == "failed")
    _problem(problems, sent - accepted, "sent but never answered 2xx", _last_errors(workload))
    _problem(problems, lost - stored, "accepted but not stored")
    _problem(
        problems,
        {i for i in lost & stored if statuses[i] != "failed"},
        "accepted but not processed",
        {**statuses, **errors},
    )
    _problem(problems, set(failed), "failed", errors)
    _problem(problems, set(statuses) - sent, "stored but never sent")
    wrong_ids = {
        event_id
        for event_id, copies in workload.deliveries.items()
        if any(c.accepted and c.event_id != event_id for c in copies)
    }
    _problem(problems, wrong_ids, "answered with another event_id")
    twice = {
        event_id
        for event_id, copies in workload.deliveries.items()
        if sum(c.status == 202 for c in copies) > 1
    }
    _problem(problems, twice, "answered 202 accepted (new) more than once")
    return {
        "stored": len(stored),
        "processed": len(processed),
        "lost": len(lost),
        "failed": len(failed),
    }


def _ledger_figures(conn: Any, expected: Expected, problems: list[str]) -> dict[str, int]:
    booked: dict[str, Postings] = {}
    rows = conn.execute(
        select(
            ledger_postings.c.transaction_key,
            ledger_postings.c.account,
            ledger_postings.c.asset,
            ledger_postings.c.amount,
        )
    )
    for key, account, asset, amount in rows:
        booked.setdefault(key, Counter())[(account, asset, int(amount))] += 1
    keys = set(conn.scalars(select(ledger_transactions.c.key)))
    for key in keys - set(booked):
        booked[key] = Counter()
    want = {key: _postings(t) for key, t in expected.transactions.items()}
    extra = set(booked) - set(want)
    missing = set(want) - set(booked)
    common = set(want) & set(booked)
    repeated = {k for k in common if booked[k] != want[k] and booked[k] > want[k]}
    wrong = {k for k in common if booked[k] != want[k]} - repeated
    _problem(problems, extra, "ledger transactions the rules do not give (double-booked)")
    _problem(problems, repeated, "ledger transactions with postings booked more than once")
    _problem(problems, missing, "ledger transactions missing")
    _problem(problems, wrong, "ledger transactions with other postings than the rules give")
    conflicts = conn.scalar(select(func.count()).select_from(ledger_conflicts)) or 0
    if conflicts:
        problems.append(f"{conflicts} ledger conflict(s) recorded")
    return {
        "double_booked": len(extra) + len(repeated),
        "ledger_missing": len(missing),
        "ledger_wrong": len(wrong) + conflicts,
    }


def _postings(transaction: Transaction) -> Postings:
    return Counter((p.account, p.asset, p.amount) for p in transaction.postings)


def _card_figures(conn: Any, expected: Expected, problems: list[str]) -> int:
    def figures(card: CardState | None) -> str:
        if card is None:
            return "no card"
        as_of = card.as_of.astimezone(UTC).isoformat()
        return (
            f"holder {card.customer_id}, balance {card.balance} as of {as_of}, "
            f"{card.points_spent} points spent, {card.events} events"
        )

    actual = {card.card_id: card for card in stores.all_cards(conn)}
    wrong = {
        card_id: f"{figures(actual.get(card_id))} instead of {figures(want)}"
        for card_id, want in expected.cards.items()
        if figures(actual.get(card_id)) != figures(want)
    }
    wrong.update({c: "not in the events" for c in set(actual) - set(expected.cards)})
    _problem(problems, set(wrong), "loyalty cards wrong", wrong)
    return len(wrong)


def _notification_figures(
    conn: Any, expected: Expected, received: Counter[Key], problems: list[str]
) -> dict[str, int]:
    rows = conn.execute(
        select(
            notifications_table.c.source_id,
            notifications_table.c.channel,
            notifications_table.c.recipient,
            notifications_table.c.status,
        )
    )
    in_db = {(source, channel, recipient): status for source, channel, recipient, status in rows}
    planned = expected.notifications
    duplicates = {key: n - 1 for key, n in received.items() if n > 1}
    missing = planned - set(received)
    unknown = {key for key in missing if in_db.get(key) == "sending"}
    _problem(problems, set(duplicates), "notifications received more than once")
    _problem(problems, missing - unknown, "notifications planned but never received", in_db)
    _problem(problems, set(received) - planned, "notifications received but not planned")
    _problem(problems, set(in_db) - planned, "notifications in the database but not planned")
    _problem(problems, planned - set(in_db), "notifications never planned in the database")
    return {
        "notifications_planned": len(planned),
        "notifications_received": len(planned & set(received)),
        "duplicate_notifications": sum(duplicates.values()),
        "unknown_sends": len(unknown),
    }


def _problem(
    problems: list[str],
    found: AbstractSet[Any],
    what: str,
    detail: Mapping[Any, Any] | None = None,
) -> None:
    if not found:
        return
    sample = sorted(found, key=str)[:5]
    shown = ", ".join(
        f"{item} ({detail[item]})" if detail and item in detail else str(item) for item in sample
    )
    more = f" and {len(found) - len(sample)} more" if len(found) > len(sample) else ""
    problems.append(f"{len(found)} {what}: {shown}{more}")


def _last_errors(workload: Workload) -> dict[str, str]:
    return {
        event_id: " / ".join(c.last_error or f"{c.attempts} attempts" for c in copies)
        for event_id, copies in workload.deliveries.items()
    }
