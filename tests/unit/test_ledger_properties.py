"""Properties of the posting rules over generated events (bookkeeping.md: "All three are
functions of the event log ... whatever the order and however often the events arrived")."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from models.journal import asset_totals
from models.ledger import Transaction, fold, post_redemption, post_rollback
from models.voucherify import RedemptionRollbackSucceeded, RedemptionSucceeded
from tests.support.payloads import parsed
from tests.unit.recorded import Json, redemption, rollback

USD = "USD"
KINDS = ("discount", "gift", "loyalty", "tier")
CAMPAIGNS = ("camp_a", "camp_b", None)


@dataclass(frozen=True)
class Order:
    """One order's redemption events (a single one, or a stack) and their rollbacks."""

    order_id: str
    amount: int
    applied: int
    """What the order's redemptions applied in all (a stack parent's own amount)."""
    events: tuple[tuple[Transaction, ...], ...]
    rolled_back: bool


def book(data: Json) -> tuple[Transaction, ...]:
    return post_redemption(parsed(RedemptionSucceeded, data), USD)


@st.composite
def orders(draw: st.DrawFn, index: int, *, rollbacks: bool = True) -> Order:
    order_id, amount = f"ord_{index}", draw(st.integers(0, 50_000))
    count = draw(st.integers(1, 3))
    parent = f"r_{index}_parent" if count > 1 or draw(st.booleans()) else None
    applied = draw(st.lists(st.integers(0, amount // count), min_size=count, max_size=count))
    payloads = []
    for child, own in enumerate(applied):
        kind = draw(st.sampled_from(KINDS))
        payloads.append(
            redemption(
                f"r_{index}_{child}",
                order_id=order_id,
                amount=amount,
                applied=own,
                kind="discount" if kind == "tier" else kind,
                campaign_id=draw(st.sampled_from(CAMPAIGNS)),
                voucher_id=f"v_{draw(st.integers(0, 2))}",
                tier_id=f"promo_{draw(st.integers(0, 2))}" if kind == "tier" else None,
                points=draw(st.integers(0, 5000)) if kind == "loyalty" else None,
                parent=parent,
            )
        )
    if parent is not None:
        payloads.append(
            redemption(
                parent, order_id=order_id, amount=amount, applied=sum(applied), kind="parent"
            )
        )
    events = [book(data) for data in payloads]
    rolled_back = rollbacks and draw(st.booleans())
    if rolled_back:
        status = draw(st.sampled_from(["PAID", "CANCELED"]))
        for data in payloads:
            rr = f"rr_{data['redemption']['id']}"
            event = parsed(RedemptionRollbackSucceeded, rollback(data, rr, order_status=status))
            events.append(post_rollback(event, book(data)))
    return Order(order_id, amount, sum(applied), tuple(events), rolled_back)


@st.composite
def event_logs(draw: st.DrawFn, *, rollbacks: bool = True) -> list[Order]:
    count = draw(st.integers(1, 4))
    return [draw(orders(index, rollbacks=rollbacks)) for index in range(count)]


def transactions_of(log: list[Order]) -> list[tuple[Transaction, ...]]:
    return [event for order in log for event in order.events]


@settings(deadline=None)
@given(event_logs())
def test_every_transaction_sums_to_zero_per_asset(log: list[Order]) -> None:
    for event in transactions_of(log):
        for transaction in event:
            assert set(asset_totals(transaction.postings).values()) == {0}


@settings(deadline=None)
@given(event_logs(), st.data())
def test_any_arrival_order_and_repetition_gives_the_same_balances(
    log: list[Order], data: st.DataObject
) -> None:
    events = transactions_of(log)
    repeated = data.draw(st.lists(st.sampled_from(events), max_size=len(events)))
    arrival = data.draw(st.permutations([*events, *repeated]))

    expected = fold(t for event in events for t in event)
    folded = fold(t for event in arrival for t in event)

    assert folded.conflicts == expected.conflicts == ()
    assert folded.balances() == expected.balances()


@settings(deadline=None)
@given(event_logs(rollbacks=False))
def test_an_order_is_charged_its_gross_once_and_each_discount_once(log: list[Order]) -> None:
    balances = fold(t for event in transactions_of(log) for t in event).balances()
    assert balances.get(("sales", USD), 0) == -sum(order.amount for order in log)
    for order in log:
        assert balances.get((f"order:{order.order_id}", USD), 0) == order.amount - order.applied
