"""Card movements as Voucherify tells them, built from the published examples.

Every payload starts from a file in `tests/fixtures/voucherify/` (an event example, or a
transaction of the two list examples `GET /v1/loyalties/…/transactions` and
`GET /v1/vouchers/…/transactions`) with its ids and figures replaced: a `Move` (one change of
one card) gives the transaction and each event that can report it. `run` folds deliveries
through the real handlers on books, as the processing and the rebuild do.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from models.cards import Movement
from models.journal import Posting, Transaction
from models.loyalty import CardState
from models.notifications import Message
from models.routing import handlers_for
from models.voucherify import Payload, parse_payload
from models.voucherify.transactions import CardKind
from tests.support.processing import CONFIG
from tests.unit.recorded import REDEMPTION, REWARD_REDEMPTION, Json, recorded
from tests.unit.recorded import redemption as recorded_redemption
from workers.books import MemoryBooks
from workers.handlers import BY_NAME
from workers.handlers.base import Job
from workers.handlers.books import Books

LOYALTY_LIST = "get-v1-loyalty-transactions.response-example.json"
GIFT_LIST = "get-v1-vouchers-transactions.response-example.json"

TRANSACTION = "voucher.loyalty_card.transaction.created"
POINTS_ADDED = "voucher.loyalty_card.points_added"
POINTS_ADDED_COPY = "customer.voucher.loyalty_card.points_added"
POINTS_EXPIRED = "voucher.loyalty_card.points_expired"
PENDING_ACTIVATED = "voucher.loyalty_card.pending_points.activated"
GIFT_TRANSACTION = "voucher.gift.transaction.created"
BALANCE_ADDED = "voucher.gift.balance_added"
BALANCE_ADDED_COPY = "customer.voucher.gift.balance_added"
REWARDED = "customer.rewarded.loyalty_points"

_EXAMPLES = {
    TRANSACTION: "voucher.loyalty_card.transaction.created.json",
    POINTS_ADDED: "voucher.loyalty_card.points_added.json",
    POINTS_ADDED_COPY: "voucher.loyalty_card.points_added.json",
    POINTS_EXPIRED: "voucher.loyalty_card.points_expired.json",
    PENDING_ACTIVATED: "voucher.loyalty_card.pending_points.activated.json",
    GIFT_TRANSACTION: "voucher.gift.transaction.created.json",
    BALANCE_ADDED: "voucher.gift.balance_added.json",
    BALANCE_ADDED_COPY: "voucher.gift.balance_added.json",
    REWARDED: "customer.rewarded.loyalty_points.json",
}
"""The published example each event type is built from (a distribution copy from its
project event's)."""


def listed(name: str) -> list[Json]:
    """The transactions of a list example, oldest first (the API lists the newest first)."""
    data: list[Json] = recorded(name)["data"]
    return data[::-1]


def transfer_in(out: Json, *, vtx: str, after: int) -> Json:
    """The `POINTS_TRANSFER_IN` half of a `POINTS_TRANSFER_OUT` (no example has one): on the
    receiver (the OUT's `destination_voucher`), naming the donor in `source_voucher`."""
    receiver = out["details"]["destination_voucher"]
    balance = copy.deepcopy(out["details"]["balance"])
    balance.update(points=-balance["points"], balance=after, total=after)
    balance["related_object"] = {"id": receiver["id"], "type": "voucher"}
    donor = {key: receiver[key] for key in ("type", "campaign", "campaign_id")}
    donor.update(id=out["voucher_id"], code=None, loyalty_card=None)
    transaction = copy.deepcopy(out)
    transaction.update(
        id=vtx,
        voucher_id=receiver["id"],
        campaign_id=receiver["campaign_id"],
        type="POINTS_TRANSFER_IN",
        source_id=None,
        reason=None,
        related_transaction_id=out["id"],
        details={"balance": balance, "source_voucher": donor},
    )
    return transaction


def example_transaction(kind: str) -> Json:
    """A transaction of that type as a published example shows it."""
    for name in (LOYALTY_LIST, GIFT_LIST):
        for transaction in listed(name):
            if transaction["type"] == kind:
                return transaction
    if kind == "POINTS_EXPIRATION":
        expired: Json = recorded(_EXAMPLES[POINTS_EXPIRED])["transaction"]
        return expired
    if kind == "PENDING_POINTS_ACTIVATION":
        activated: Json = recorded(_EXAMPLES[PENDING_ACTIVATED])["transaction"]
        return activated
    if kind == "POINTS_TRANSFER_IN":
        out = example_transaction("POINTS_TRANSFER_OUT")
        return transfer_in(out, vtx=out["related_transaction_id"], after=1001)
    raise ValueError(f"no example of {kind}")


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def envelope(event_type: str, data: Json, event_id: str, created_at: str) -> Json:
    """The v2024-01-01 envelope around `data`, with its own event id and time."""
    return {"event": {"id": event_id, "type": event_type, "created_at": created_at}, "data": data}


@dataclass(frozen=True)
class Card:
    id: str
    kind: CardKind
    holder: str
    campaign: str

    @property
    def code(self) -> str:
        return f"CODE-{self.id.upper()}"

    @property
    def account(self) -> str:
        return f"loyalty:card:{self.id}" if self.kind == "loyalty" else f"giftcard:{self.id}"

    def person(self) -> Json:
        return {
            "id": self.holder,
            "name": f"Holder {self.holder}",
            "email": f"{self.holder}@example.com",
            "source_id": self.holder,
            "metadata": {},
            "object": "customer",
        }


@dataclass(frozen=True)
class Move:
    """One change of one card: its transaction and the objects around it, named by `ident`."""

    card: Card
    type: str
    change: int
    after: int
    at: datetime
    ident: str
    peer: Card | None = None
    """The other card of a transfer."""

    @property
    def vtx(self) -> str:
        return f"vtx_{self.ident}"

    @property
    def redemption_id(self) -> str:
        return f"r_{self.ident}"

    @property
    def order_id(self) -> str:
        return f"ord_{self.ident}"

    @property
    def customer_event(self) -> str:
        return f"evcus_{self.ident}"

    @property
    def key(self) -> str:
        """The movement's key (`models.loyalty.movement_key`)."""
        if self.type == "POINTS_REDEMPTION":
            return f"redemption:{self.redemption_id}:points"
        if self.type == "CREDITS_REDEMPTION":
            return f"redemption:{self.redemption_id}:discount"
        return f"transaction:{self.vtx}"

    @property
    def taken(self) -> int:
        return -self.change if self.type == "POINTS_REDEMPTION" else 0

    def balance(self) -> Json:
        """`details.balance` (`VoucherBalance`)."""
        what = "points" if self.card.kind == "loyalty" else "amount"
        return {
            "type": "loyalty_card" if self.card.kind == "loyalty" else "gift_voucher",
            "total": self.after,
            what: self.change,
            "object": "balance",
            "balance": self.after,
            "related_object": {"id": self.card.id, "type": "voucher"},
        }

    def transaction(self) -> Json:
        """The transaction, shaped as the published example of its type."""
        transaction = copy.deepcopy(example_transaction(self.type))
        transaction.update(
            id=self.vtx,
            voucher_id=self.card.id,
            campaign_id=self.card.campaign,
            created_at=iso(self.at),
            related_transaction_id=None,
        )
        details = transaction["details"]
        details["balance"] = {**details["balance"], **self.balance()}
        for name, value in (
            ("order", self.order_id),
            ("event", self.customer_event),
            ("redemption", self.redemption_id),
            ("pending_points", f"lopp_{self.ident}"),
        ):
            if details.get(name):
                details[name] = {**details[name], "id": value}
        for name in ("source_voucher", "destination_voucher"):
            if details.get(name):
                assert self.peer is not None, f"{self.type} needs its other card"
                details[name] = {**details[name], "id": self.peer.id, "code": self.peer.code}
        return transaction

    def voucher(self, example: Json) -> Json:
        """The card as an event shows it, after the move."""
        voucher = copy.deepcopy(example)
        card = self.card
        voucher.update(id=card.id, code=card.code, campaign_id=card.campaign, holder_id=card.holder)
        if card.kind == "loyalty":
            voucher.update(type="LOYALTY_CARD", gift=None)
            voucher["loyalty_card"] = {"points": self.after, "balance": self.after}
            voucher["redemption"] = {"quantity": None, "redeemed_quantity": 0, "redeemed_points": 0}
        else:
            voucher.update(type="GIFT_VOUCHER", loyalty_card=None)
            voucher["gift"] = {"amount": self.after, "balance": self.after}
        return voucher

    def data(self, event_type: str) -> Json:
        """The data of one event reporting this move, from that event's published example."""
        if event_type == REDEMPTION:
            return self._paid_with_points()
        if event_type == REWARD_REDEMPTION:
            return self._reward()
        data = recorded(_EXAMPLES[event_type])
        data["voucher"] = self.voucher(data["voucher"])
        if data.get("campaign"):
            data["campaign"]["id"] = self.card.campaign
        if event_type == REWARDED:
            return self._rewarded(data)
        # The people: the holder, named alike by every event of the card (the published
        # `voucher.gift.balance_added` names nobody, and renders its notice without a name).
        for role in ("holder", "customer"):
            data[role] = self.card.person()
        if event_type in (POINTS_ADDED, POINTS_ADDED_COPY, BALANCE_ADDED, BALANCE_ADDED_COPY):
            # These examples carry `details: null`: the top-level balance tells the change.
            data["balance"] = {**data["balance"], **self.balance()}
            data["transaction"] = {
                "id": self.vtx,
                "campaign_id": self.card.campaign,
                "type": self.type,
                "details": None,
                "created_at": iso(self.at),
            }
            return data
        transaction = self.transaction()
        data["transaction"] = transaction
        data["balance"] = {**(data.get("balance") or {}), **self.balance()}
        for name in ("order", "event", "pending_points"):
            ref = transaction["details"].get(name)
            if data.get(name) is not None:
                data[name] = {**data[name], "id": ref["id"]} if ref else None
        if event_type == POINTS_EXPIRED:
            data["points"] = -self.change
            data["buckets"] = []
        if event_type == TRANSACTION and self.type != "POINTS_ACCRUAL":
            data["earning_rule"] = None
        for name in ("source_voucher", "destination_voucher"):
            if name in data:
                ref = transaction["details"].get(name)
                data[name] = {"id": ref["id"], "code": ref["code"]} if ref else None
        return data

    def _rewarded(self, data: Json) -> Json:
        """`customer.rewarded.loyalty_points`: the accrual told without its transaction."""
        assert self.type == "POINTS_ACCRUAL"
        for role in ("holder", "customer"):
            data[role] = self.card.person()
        data["balance"] = {**data["balance"], **self.balance()}
        data["event"]["id"] = self.customer_event
        data["order"]["id"] = self.order_id
        return data

    def _paid_with_points(self) -> Json:
        """`redemption.succeeded`: the loyalty card paying `-change` points for an order."""
        assert self.type == "POINTS_REDEMPTION"
        data = recorded_redemption(
            self.redemption_id,
            order_id=self.order_id,
            amount=5000,
            applied=500,
            kind="loyalty",
            campaign_id=self.card.campaign,
            voucher_id=self.card.id,
            points=-self.change,
            created_at=iso(self.at),
        )
        data["voucher"] = data["redemption"]["voucher"] = self.voucher(data["voucher"])
        data["customer"] = data["redemption"]["customer"] = self.card.person()
        data["redemption"]["customer_id"] = self.card.holder
        return data

    def _reward(self) -> Json:
        """`customer.reward_redemptions.completed`: a reward paid by this points redemption."""
        assert self.type == "POINTS_REDEMPTION"
        data = recorded("customer.reward_redemptions.completed.json")
        data["voucher"] = self.voucher(data["voucher"])
        data["campaign"]["id"] = self.card.campaign
        for role in ("holder", "customer"):
            data[role] = self.card.person()
        data["reward_redemption"].update(
            id=f"rewr_{self.ident}",
            created_at=iso(self.at),
            updated_at=None,
            voucher_id=self.card.id,
            campaign_id=self.card.campaign,
            customer_id=self.card.holder,
            source_id=self.redemption_id,
            source_type="redemption",
        )
        data["reward_assignment"]["parameters"]["loyalty"]["points"] = -self.change
        data["source"] = {"id": self.redemption_id, "type": "redemption"}
        return data


@dataclass(frozen=True)
class Delivery:
    """One event as delivered: its type, body and identity, parsed once."""

    move: int
    """The index of the move it reports."""
    event_type: str
    body: Json = field(compare=False)
    event_id: str
    payload: Payload = field(compare=False)


def deliveries(moves: Sequence[Move], events: Sequence[Sequence[str]]) -> list[Delivery]:
    """Each move's events (`events[i]`: the types reporting `moves[i]`), in the moves' order,
    enveloped: event ids of their own, envelope times in the order the moves happened."""
    start = min((move.at for move in moves), default=datetime(2024, 1, 1, tzinfo=UTC))
    found = []
    for index, (move, types) in enumerate(zip(moves, events, strict=True)):
        for number, event_type in enumerate(types):
            created = start.timestamp() + index + number / 1000
            moment = iso(datetime.fromtimestamp(created, UTC))
            event_id = f"evt_{move.ident}_{number}"
            body = json.loads(
                json.dumps(envelope(event_type, move.data(event_type), event_id, moment))
            )
            found.append(
                Delivery(index, event_type, body, event_id, parse_payload(event_type, body))
            )
    return found


@dataclass
class Outcome:
    """What a run left: the books, and the notifications planned (the first of each object,
    channel and recipient, as the database keeps them)."""

    books: MemoryBooks
    planned: dict[tuple[str, str, str], Message] = field(default_factory=dict)

    def notifications(self) -> set[tuple[str, str, str, str, str]]:
        return {
            (m.source_id, m.channel, m.recipient, m.subject, m.body) for m in self.planned.values()
        }

    def balances(self) -> dict[tuple[str, str], int]:
        return balances(p for postings in self.books.postings.values() for p in postings)

    def transactions(self) -> list[Transaction]:
        return [
            Transaction(key, tuple(Posting(*p) for p in postings), self.books.transactions[key][2])
            for key, postings in self.books.postings.items()
        ]

    def movements(self, card_id: str) -> list[Movement]:
        return list(self.books.movements.get(card_id, {}).values())

    def cards(self) -> dict[str, CardState]:
        return dict(self.books.cards)


def balances(postings: Iterable[tuple[str, str, int]]) -> dict[tuple[str, str], int]:
    """(account, asset) -> balance, accounts at 0 left out."""
    found: dict[tuple[str, str], int] = {}
    for account, asset, amount in postings:
        found[(account, asset)] = found.get((account, asset), 0) + amount
    return {key: total for key, total in found.items() if total}


def handle(books: Books, delivery: Delivery, now: datetime) -> list[Message]:
    """Every handler of the event, in run order, in one job; the messages it planned."""
    job = Job(
        books, delivery.event_id, delivery.event_type, delivery.payload, delivery.body, now, CONFIG
    )
    for name in handlers_for(delivery.event_type):
        outcome = BY_NAME[name](job)
        assert outcome.status == "done", (delivery.event_id, name, outcome)
    return job.messages


def run(arrivals: Iterable[Delivery], outcome: Outcome | None = None) -> Outcome:
    """The deliveries folded in that order on books in memory (on `outcome`'s, to go on)."""
    outcome = outcome if outcome is not None else Outcome(MemoryBooks())
    now = datetime(2025, 1, 1, tzinfo=UTC)
    for delivery in arrivals:
        for message in handle(outcome.books, delivery, now):
            key = (message.source_id, message.channel, message.recipient)
            outcome.planned.setdefault(key, message)
    return outcome
