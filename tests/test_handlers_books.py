"""The ledger and loyalty handlers on both books they are given (`workers.books`): in memory,
as a rebuild runs them, and in PostgreSQL, as the processing runs them. Every scenario runs on
each and must leave the same ledger balances, the same cards and the same notes.

The handlers are called as the processing calls them (`workers.handlers.BY_NAME`, in the run
order of `models.routing`), one event per transaction; a rollback held for its original is run
again once the original releases it, as the worker does when it publishes the released event.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine

from models.identity import identify
from models.loyalty import CardState
from models.routing import LEDGER, handlers_for
from models.voucherify import parse_payload
from tests.support import processing
from tests.support.processing import CONFIG, Balances, nonzero
from tests.unit import recorded
from tests.unit.recorded import REDEMPTION, REWARD_REDEMPTION, ROLLBACK, Json
from workers.books import MemoryBooks, SqlBooks
from workers.handlers import BY_NAME
from workers.handlers.base import Job
from workers.handlers.books import Books
from workers.rebuild import FOLDED

SEED_ORDER = "ord_3VYCHwdV0YOOch2nm1RsTKNI"
SEED_CAMPAIGN = "camp_kwMyXFKquedx8FzXNpVPN7QU"
SEED_CARD = "v_p7NP2qmQaMXsNHzb9ujPVjqgDJzJ2ccQ"
SEED_HOLDER = "cust_2myfc5acSBgoMV72R5tyTBc8"
REWARD = "rew_UtRGHxt98jwCzodkskxQ7KLp"
STACK_ORDER = recorded.STACK_ORDER
STACK_PARENT = recorded.STACK_PARENT

SEED_BALANCES = {
    (f"order:{SEED_ORDER}", "USD"): 6000,
    ("sales", "USD"): -7000,
    (f"discount:{SEED_CAMPAIGN}", "USD"): 1000,
}
REWARD_BALANCES = {
    ("loyalty:payments", "POINTS"): 100,
    (f"loyalty:card:{SEED_CARD}", "POINTS"): -100,
}
STACK_BALANCES = {
    (f"order:{STACK_ORDER}", "USD"): 10000 - 1000 - 500,
    ("sales", "USD"): -10000,
    ("discount:camp_stack_A", "USD"): 1000,
    ("discount:camp_stack_B", "USD"): 500,
}


class Ledger:
    """Handlers run on one kind of books, event by event; what the books then hold."""

    def __init__(self, engine: Engine | None) -> None:
        self.engine = engine
        self.memory = MemoryBooks()
        self.held: dict[str, Job] = {}
        self.notes: dict[str, dict[str, str | None]] = {}
        """Event id -> handler name -> the note of its last outcome."""

    @contextmanager
    def books(self) -> Iterator[tuple[Books, list[str]]]:
        """The books for one transaction, and the held events its commit releases."""
        released: list[str] = []
        if self.engine is None:
            yield self.memory, released
            return
        with self.engine.begin() as conn:
            books = SqlBooks(conn)
            yield books, released
            books.flush()
            released.extend(books.released)

    def receive(self, event_type: str, data: Json) -> str:
        """Run the event's handlers in one transaction, then the rollbacks it released."""
        body: dict[str, Any] = json.loads(json.dumps(data))
        event_id = identify(json.dumps(body).encode(), event_type).event_id
        payload = parse_payload(event_type, body)
        with self.books() as (books, released):
            job = Job(books, event_id, event_type, payload, body, datetime.now(UTC), CONFIG)
            for name in handlers_for(event_type):
                if name not in FOLDED:  # the handlers that keep their effects in the books
                    continue
                outcome = BY_NAME[name](job)
                self.notes.setdefault(event_id, {})[name] = outcome.note
                if outcome.status == "held":
                    self.held[event_id] = job
        for held_id in [*job.released, *released]:
            self._release(held_id)
        return event_id

    def _release(self, event_id: str) -> None:
        waiting = self.held.pop(event_id)
        with self.books() as (books, released):
            job = Job(
                books,
                waiting.event_id,
                waiting.event_type,
                waiting.payload,
                waiting.body,
                datetime.now(UTC),
                CONFIG,
            )
            outcome = BY_NAME[LEDGER.name](job)
            self.notes[event_id][LEDGER.name] = outcome.note
        assert outcome.status == "done" and not released

    def note(self, event_id: str, handler: str = LEDGER.name) -> str | None:
        return self.notes[event_id][handler]

    def balances(self) -> Balances:
        if self.engine is None:
            found: Balances = {}
            for postings in self.memory.postings.values():
                for account, asset, amount in postings:
                    found[(account, asset)] = found.get((account, asset), 0) + amount
            return nonzero(found)
        return nonzero(processing.balances(self.engine))

    def cards(self) -> dict[str, CardState]:
        if self.engine is None:
            return dict(self.memory.cards)
        return {state.card_id: state for state in processing.cards(self.engine)}

    def card(self, card_id: str) -> CardState:
        return self.cards()[card_id]


@pytest.fixture(params=["memory", "postgresql"])
def ledger(request: pytest.FixtureRequest) -> Ledger:
    if request.param == "memory":
        return Ledger(None)
    return Ledger(request.getfixturevalue("db"))


def card_redemption(r_id: str = "r_card", points: int = 40) -> Json:
    return recorded.redemption(
        r_id, order_id=f"ord_{r_id}", kind="loyalty", points=points, voucher_id="v_card"
    )


# Redemptions and reward redemptions ----------------------------------------------------------


def test_a_redemption_books_the_order_gross_and_the_discount(ledger: Ledger) -> None:
    event_id = ledger.receive(REDEMPTION, recorded.seed_redemption())
    assert ledger.balances() == SEED_BALANCES
    assert ledger.cards() == {}
    assert ledger.notes[event_id] == {"ledger": None, "loyalty": "no card involved"}


def test_a_loyalty_card_redemption_books_its_points_and_updates_the_card(ledger: Ledger) -> None:
    ledger.receive(REDEMPTION, card_redemption(points=40))
    assert ledger.balances()[("loyalty:card:v_card", "POINTS")] == -40
    state = ledger.card("v_card")
    assert (state.balance, state.points_spent, state.events, state.flags) == (500, 40, 1, ())


def test_a_reward_redemption_moves_points_and_keeps_the_reported_balance(ledger: Ledger) -> None:
    ledger.receive(REWARD_REDEMPTION, recorded.seed_reward_redemption())
    assert ledger.balances() == REWARD_BALANCES
    state = ledger.card(SEED_CARD)
    assert (state.balance, state.points_spent, state.customer_id) == (70, 100, SEED_HOLDER)
    assert (state.events, state.flags) == (1, ())


# Rollbacks -----------------------------------------------------------------------------------


@pytest.mark.parametrize("rollback_first", [False, True], ids=["in order", "rollback first"])
def test_a_rollback_reverses_its_original_in_either_arrival_order(
    ledger: Ledger, rollback_first: bool
) -> None:
    original = card_redemption("r_rolled", points=30)
    arrivals = [(REDEMPTION, original), (ROLLBACK, recorded.rollback(original, "rr_1"))]
    ids = [ledger.receive(t, data) for t, data in (arrivals[::-1] if rollback_first else arrivals)]
    rollback_id = ids[0] if rollback_first else ids[1]

    assert ledger.balances() == {("sales", "USD"): -7000, ("order:ord_r_rolled", "USD"): 7000}
    assert ledger.note(rollback_id) is None  # held first, then done
    assert ledger.held == {}


def test_a_rollback_waits_for_its_original(ledger: Ledger) -> None:
    original = recorded.seed_redemption()
    rollback_id = ledger.receive(ROLLBACK, recorded.rollback(original, "rr_1"))
    assert list(ledger.held) == [rollback_id]
    assert ledger.note(rollback_id) == (
        f"held: waiting for the original redemption {original['redemption']['id']}"
    )
    assert ledger.balances() == {}


# Stacks --------------------------------------------------------------------------------------

STACK_MEMBERS = ("child 1", "child 2", "parent")


def stack_members() -> dict[str, Json]:
    parent, (child_1, child_2) = recorded.stack()
    return {"child 1": child_1, "child 2": child_2, "parent": parent}


@pytest.mark.parametrize("arrival", list(itertools.permutations(STACK_MEMBERS)), ids="-".join)
def test_a_stack_books_each_child_once_and_its_last_member_notes_that_it_matches(
    ledger: Ledger, arrival: tuple[str, ...]
) -> None:
    members = stack_members()
    ids = [ledger.receive(REDEMPTION, members[name]) for name in arrival]
    assert ledger.balances() == STACK_BALANCES
    assert ledger.note(ids[-1]) == (
        f"stack {STACK_PARENT}: 2 children booked 1500, parent applied 1500: matches"
    )


def test_a_stack_child_delivered_twice_counts_once(ledger: Ledger) -> None:
    members = stack_members()
    for name in ("child 1", "child 2", "parent"):
        ledger.receive(REDEMPTION, members[name])
    again = ledger.receive(REDEMPTION, recorded.envelope(REDEMPTION, members["child 1"]))
    assert ledger.balances() == STACK_BALANCES
    assert ledger.note(again) == (
        f"stack {STACK_PARENT}: 2 children booked 1500, parent applied 1500: matches"
    )


def test_a_stack_note_tells_a_missing_child_and_a_parent_not_seen_yet(ledger: Ledger) -> None:
    members = stack_members()
    child = ledger.receive(REDEMPTION, members["child 2"])
    assert ledger.note(child) == (
        f"stack {STACK_PARENT}: 1 children booked 500, parent not seen yet"
    )
    parent = ledger.receive(REDEMPTION, members["parent"])
    assert ledger.note(parent) == (
        f"stack {STACK_PARENT}: 1 children booked 500, parent applied 1500: differs by 1000"
    )


# Duplicates ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "data"),
    [(REDEMPTION, card_redemption()), (REWARD_REDEMPTION, recorded.seed_reward_redemption())],
    ids=["redemption", "reward redemption"],
)
def test_one_voucherify_object_delivered_raw_and_in_an_envelope_counts_once(
    ledger: Ledger, event_type: str, data: Json
) -> None:
    ledger.receive(event_type, data)
    once = ledger.balances(), ledger.cards()
    again = ledger.receive(event_type, recorded.envelope(event_type, data))
    assert (ledger.balances(), ledger.cards()) == once
    [state] = once[1].values()
    assert state.events == 1
    note = ledger.note(again, "loyalty")
    assert note is not None and note.endswith(f" already applied to {state.card_id}")


# Both books at once --------------------------------------------------------------------------


def test_the_books_in_memory_and_in_postgresql_agree_on_every_scenario(db: Engine) -> None:
    members = stack_members()
    original = card_redemption("r_rolled", points=30)
    events = [
        (REDEMPTION, recorded.seed_redemption()),
        (REWARD_REDEMPTION, recorded.seed_reward_redemption()),
        (ROLLBACK, recorded.rollback(original, "rr_1")),
        (REDEMPTION, members["child 2"]),
        (REDEMPTION, card_redemption("r_card", points=40)),
        (REDEMPTION, original),
        (REDEMPTION, members["parent"]),
        (REDEMPTION, recorded.envelope(REDEMPTION, card_redemption("r_card", points=40))),
        (REDEMPTION, members["child 1"]),
    ]
    memory, sql = Ledger(None), Ledger(db)
    for event_type, data in events:
        memory.receive(event_type, data)
        sql.receive(event_type, data)
    assert memory.balances() == sql.balances() != {}
    assert memory.cards() == sql.cards() != {}
    assert memory.notes == sql.notes
