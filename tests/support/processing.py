"""Driving the Processor directly against a real database: store events as the receiver does,
process them as a worker task does, and read back what the stores hold."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Table, func, select

from models.db import card_store, ledger_store, notification_store, run_store
from models.db.eventlog import NewEvent, insert_new
from models.db.tables import ledger_transactions
from models.identity import identify
from models.loyalty import CardState
from models.statuses import EventStatus
from tests.conftest import EventLog
from tests.support import stores
from workers.handlers import BY_NAME, loyalty
from workers.handlers.base import Config, Handle, Job, Outcome
from workers.processing import Processor, RetryPolicy
from workers.templates import environment

USD = "USD"
CONFIG = Config(currency=USD, templates=environment(None), email=True, webhook=True)
POLICY = RetryPolicy(max_attempts=3, backoff=0.01, backoff_max=0.01)

Balances = dict[tuple[str, str], int]


def make_processor(engine: Engine, handlers: Mapping[str, Handle] = BY_NAME) -> Processor:
    """A Processor built as `workers.wiring.Runtime.processor` builds one."""
    return Processor(engine, CONFIG, POLICY, handlers)


@dataclass
class FlakyLoyalty:
    """The loyalty handler behind a switch: a dependency that is down, then back."""

    down: bool = True
    calls: int = 0

    def __call__(self, job: Job) -> Outcome:
        self.calls += 1
        if self.down:
            raise RuntimeError("card lock timed out")
        return loyalty.handle(job)


def store(engine: Engine, event_type: str, payload: Mapping[str, Any]) -> str:
    """Store a delivery as the receiver does (identity from `identify`, status pending); its id.

    Storing the same identity again is a no-op, as for a duplicate delivery."""
    event = received(json.dumps(payload).encode(), event_type, datetime.now(UTC))
    with engine.begin() as conn:
        insert_new(conn, [event])
    return event.id


def received(
    body: bytes, event_type: str, at: datetime, status: EventStatus = "pending"
) -> NewEvent:
    """The row the receiver stores for this body posted to `event_type`'s URL at `at` (with
    its identity from `identify`), in `status`."""
    identified = identify(body, event_type)
    assert identified.status == "pending", identified
    return NewEvent(
        id=identified.event_id,
        type=identified.event_type,
        status=status,
        received_at=at,
        body=body,
        headers={},
        remote_addr=None,
        delivery_id=identified.delivery_id,
        error=None,
    )


def balances(engine: Engine) -> Balances:
    """(account, asset) -> balance, for every account with postings."""
    with engine.connect() as conn:
        return {(account, asset): total for account, asset, total in ledger_store.balances(conn)}


def nonzero(found: Balances) -> Balances:
    return {key: total for key, total in found.items() if total}


def ledger_keys(engine: Engine, event_id: str | None = None) -> set[str]:
    """The keys booked (by one event, or by all)."""
    stmt = select(ledger_transactions.c.key)
    if event_id is not None:
        stmt = stmt.where(ledger_transactions.c.event_id == event_id)
    with engine.connect() as conn:
        return set(conn.scalars(stmt))


def count(engine: Engine, table: Table) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table)) or 0)


def card(engine: Engine, card_id: str) -> CardState | None:
    with engine.connect() as conn:
        return card_store.get(conn, card_id)


def cards(engine: Engine) -> list[CardState]:
    with engine.connect() as conn:
        return stores.all_cards(conn)


def runs(engine: Engine, event_id: str) -> dict[str, Any]:
    """Handler name -> its run row."""
    with engine.connect() as conn:
        return {row.handler: row for row in run_store.for_event(conn, event_id)}


def notifications(engine: Engine, event_id: str) -> list[Any]:
    with engine.connect() as conn:
        return notification_store.for_event(conn, event_id)


def event(engine: Engine, event_id: str) -> dict[str, Any]:
    row = EventLog(engine).get(event_id)
    assert row is not None, f"{event_id} is not stored"
    return row


def process(engine: Engine, *event_ids: str) -> None:
    """One task processing these events; what it would publish is dropped."""
    make_processor(engine).process(list(event_ids))
