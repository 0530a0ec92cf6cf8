"""A rollback finds the rolled-back order's gross by the order id its payload carries: the
original redemption's `order` first, then the rollback's own view of the order."""

from __future__ import annotations

from datetime import UTC, datetime

from models.voucherify import RedemptionRollbackSucceeded, parse_payload
from tests.unit.recorded import REDEMPTION, ROLLBACK, Json, rollback, seed_redemption
from workers.books import MemoryBooks
from workers.handlers import ledger
from workers.handlers.base import Config, Job
from workers.templates import environment

ORDER = "ord_3VYCHwdV0YOOch2nm1RsTKNI"
CONFIG = Config(currency="USD", templates=environment(None), email=False, webhook=False)


def cancelled_without_order_ids() -> Json:
    """A rollback of a cancelled order whose only order id is the original redemption's."""
    body = rollback(seed_redemption(), "rr_only_inner_order", order_status="CANCELED")
    del body["order"]
    body["redemption_rollback"]["order"] = {"status": "CANCELED", "object": "order"}
    assert body["redemption"]["order"]["id"] == ORDER
    return body


def run(books: MemoryBooks, event_id: str, event_type: str, body: Json) -> str:
    payload = parse_payload(event_type, body)
    job = Job(books, event_id, event_type, payload, body, datetime.now(UTC), CONFIG)
    return ledger.handle(job).status


def balances(books: MemoryBooks) -> dict[tuple[str, str], int]:
    found: dict[tuple[str, str], int] = {}
    for postings in books.postings.values():
        for account, asset, amount in postings:
            found[account, asset] = found.get((account, asset), 0) + amount
    return {key: total for key, total in found.items() if total}


def test_the_order_id_is_the_original_redemptions_first() -> None:
    payload = parse_payload(ROLLBACK, cancelled_without_order_ids())
    assert isinstance(payload, RedemptionRollbackSucceeded)
    assert payload.order_cancelled
    assert payload.order_id == ORDER


def test_the_order_id_falls_back_to_the_rollbacks_order() -> None:
    body = rollback(seed_redemption(), "rr_outer_order", order_status="CANCELED")
    del body["redemption"]["order"]
    payload = parse_payload(ROLLBACK, body)
    assert isinstance(payload, RedemptionRollbackSucceeded)
    assert payload.order_id == ORDER


def test_a_cancelled_orders_gross_is_reversed_when_only_the_original_names_the_order() -> None:
    books = MemoryBooks()
    assert run(books, "evt_redemption", REDEMPTION, seed_redemption()) == "done"
    assert balances(books)[f"order:{ORDER}", "USD"] == 6000

    assert run(books, "evt_rollback", ROLLBACK, cancelled_without_order_ids()) == "done"

    assert f"order:{ORDER}:gross:reversal" in books.transactions
    assert balances(books) == {}
