"""Ledger handler: book an event's transactions once, hold rollbacks for their original."""

from __future__ import annotations

from models.journal import Transaction
from models.ledger import (
    Redemption,
    post_card_transaction,
    post_redemption,
    post_reward_redemption,
    post_rollback,
)
from models.voucherify import (
    CardTransactionEvent,
    RedemptionRollbackSucceeded,
    RedemptionSucceeded,
    RewardRedemptionCompleted,
)
from workers.handlers.base import Job, LedgerConflict, Outcome, PermanentError


def handle(job: Job) -> Outcome:
    payload = job.payload
    if isinstance(payload, RedemptionSucceeded):
        return _redemption(job, payload)
    if isinstance(payload, RewardRedemptionCompleted):
        _book(job, post_reward_redemption(payload))
        return Outcome()
    if isinstance(payload, RedemptionRollbackSucceeded):
        return _rollback(job, payload)
    if isinstance(payload, CardTransactionEvent):
        _book(job, post_card_transaction(payload, job.config.currency))
        return Outcome()
    raise PermanentError(f"the ledger has no rule for {job.event_type}")


def _redemption(job: Job, payload: RedemptionSucceeded) -> Outcome:
    books = job.books
    try:
        transactions = post_redemption(payload, job.config.currency)
    except ValueError as exc:
        raise PermanentError(str(exc)) from exc
    _book(job, transactions)
    books.lock_redemption(payload.redemption.id)
    role = payload.role if payload.role != "single" else "plain"
    order = payload.order
    released = books.note_redemption(
        Redemption(
            payload.redemption.id,
            role=role,
            parent_id=payload.redemption.redemption if role == "child" else None,
            order_id=order.id if order else None,
            applied=order.total_applied_discount_amount if order else 0,
            event_id=job.event_id,
        )
    )
    job.released.extend(released)
    parent_id = payload.redemption.id if role == "parent" else payload.redemption.redemption
    if role in ("parent", "child") and parent_id:
        return Outcome(note=books.stack(parent_id).describe())
    return Outcome()


def _rollback(job: Job, payload: RedemptionRollbackSucceeded) -> Outcome:
    original_id = payload.original_id
    books = job.books
    books.lock_redemption(original_id)
    if not books.redemption_seen(original_id):
        books.hold(original_id, job.event_id)
        return Outcome("held", f"held: waiting for the original redemption {original_id}")
    original = books.transactions_of_redemption(original_id, payload.order_id)
    try:
        transactions = post_rollback(payload, original)
    except ValueError as exc:
        raise PermanentError(str(exc)) from exc
    _book(job, transactions)
    return Outcome()


def _book(job: Job, transactions: tuple[Transaction, ...]) -> None:
    for transaction in transactions:
        if job.books.book(transaction, job.event_id, job.now) == "conflict":
            raise LedgerConflict(transaction)
