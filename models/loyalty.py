"""The card rules: which movement an event reports, and one loyalty card's state.

Pure. An event that moves a card (a transaction, a loyalty card paying, a reward redemption)
gives a `models.cards.Movement`; the card's state is a function of the movements seen and of
the flags their payloads raise:

- `balance`, `as_of`, `balance_source` and the holder come from the newest movement by the
  chain's order (`models.cards.newest`): an older event arriving late never overwrites a
  newer balance, and equal times are settled by the chain, never by an id;
- `points_spent` and `events` count each movement once, whichever of its events came;
- inconsistent figures and negative balances flag the card; they never reject an event.

So any arrival order, and any repetition, gives the same state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from models.cards import (
    RANK_REDEMPTION,
    RANK_REWARD,
    RANK_TRANSACTION,
    RANK_TRANSACTION_COPY,
    Movement,
    better,
    newest,
)
from models.voucherify import (
    CardTransactionEvent,
    Payload,
    PayloadError,
    RedemptionSucceeded,
    RewardRedemptionCompleted,
    Voucher,
    paid_points,
    parse_timestamp,
    source_timestamp,
)
from models.voucherify import is_envelope as _is_envelope


@dataclass(frozen=True)
class CardState:
    """One loyalty card (a voucher id) as the movements seen so far describe it."""

    card_id: str
    customer_id: str
    balance: int
    as_of: datetime
    """The time of the movement `balance` is the balance after."""
    points_spent: int
    events: int
    """How many movements of the card were seen (each once, however many events told it)."""
    flags: tuple[str, ...] = ()
    """Why the card is suspect, sorted; empty when it is not."""
    balance_source: str = ""
    """The key of the movement whose balance after is `balance`."""

    @property
    def flagged(self) -> bool:
        return bool(self.flags)


def card_state(
    previous: CardState | None,
    movement: Movement,
    *,
    first: bool,
    latest: Movement,
    flags: Iterable[str] = (),
) -> CardState:
    """The card's state once `movement` is seen. `first`: no report of this movement was seen
    before; `latest`: the card's newest movement now (`models.cards.newest`)."""
    if previous is not None and previous.card_id != movement.card_id:
        raise ValueError(f"{movement.key} is about {movement.card_id}, not {previous.card_id}")
    spent = previous.points_spent if previous else 0
    counted = previous.events if previous else 0
    return CardState(
        card_id=movement.card_id,
        # The holder follows the newest movement: a card handed to another customer shows its
        # new holder only from then on. A movement that names nobody keeps the known one.
        customer_id=latest.customer_id or (previous.customer_id if previous else ""),
        balance=latest.after,
        as_of=latest.at.astimezone(UTC),
        points_spent=spent + (movement.taken if first else 0),
        events=counted + (1 if first else 0),
        flags=tuple(sorted(set(previous.flags if previous else ()) | set(flags))),
        balance_source=latest.key,
    )


def fold_cards(reports: Iterable[tuple[Movement, Iterable[str]]]) -> dict[str, CardState]:
    """Loyalty card id -> state after every report (a movement and its payload's flags), in
    any order: what the handlers compute, folded at once."""
    kept: dict[str, dict[str, Movement]] = {}
    flags: dict[str, set[str]] = {}
    for movement, raised in reports:
        if movement.kind != "loyalty":
            continue
        movements = kept.setdefault(movement.card_id, {})
        if better(movements.get(movement.key), movement):
            movements[movement.key] = movement
        flags.setdefault(movement.card_id, set()).update(raised)
    states = {}
    for card_id, movements in kept.items():
        latest = newest(list(movements.values()))
        assert latest is not None
        state = None
        for movement in sorted(movements.values(), key=lambda m: m.key):
            state = card_state(state, movement, first=True, latest=latest)
        assert state is not None
        states[card_id] = replace(state, flags=tuple(sorted(flags[card_id])))
    return states


def movement_of(
    event_type: str, payload: Payload, body: Mapping[str, Any], event_id: str
) -> Movement | None:
    """The movement of a card an event reports; None when it moves no card."""
    if isinstance(payload, CardTransactionEvent):
        return _transaction(event_type, payload, body, event_id)
    if isinstance(payload, RewardRedemptionCompleted):
        return _reward(payload, body, event_id)
    if isinstance(payload, RedemptionSucceeded):
        return _redemption(payload, body, event_id)
    return None


def movement_key(payload: CardTransactionEvent) -> str:
    """The Voucherify object a transaction is about: its redemption or rollback (whose other
    events move the card too), else the transaction itself."""
    transaction, details = payload.transaction, payload.details
    redemption = details.redemption.id if details.redemption else None
    rollback = details.rollback.id if details.rollback else None
    if transaction.type == "POINTS_REDEMPTION" and redemption:
        return f"redemption:{redemption}:points"
    if transaction.type == "CREDITS_REDEMPTION" and redemption:
        return f"redemption:{redemption}:discount"
    if transaction.type == "POINTS_REFUND" and rollback:
        return f"rollback:{rollback}:points"
    if transaction.type == "CREDITS_REFUND" and rollback:
        return f"rollback:{rollback}"
    return f"transaction:{transaction.id}"


def reward_movement_key(event: RewardRedemptionCompleted) -> str:
    """A reward paid with points is a redemption of the card (`reward_redemption.source_id`):
    keyed by it, so that its `redemption.succeeded` and `POINTS_REDEMPTION` are the same
    movement. An older payload without the redemption is keyed by the reward redemption."""
    source = event.reward_redemption.source_id
    if source and (event.reward_redemption.source_type or "redemption") == "redemption":
        return f"redemption:{source}:points"
    return f"reward_redemption:{event.reward_redemption.id}"


def snapshot_flags(payload: Payload, movement: Movement) -> frozenset[str]:
    """Why this report makes the card suspect: a negative balance, or the card's figures
    (points - expired - subtracted - redeemed) disagreeing with its balance."""
    found = set()
    if movement.after < 0:
        found.add(f"{movement.key}: negative balance {movement.after}")
    voucher = _voucher(payload)
    card = voucher.loyalty_card if voucher else None
    redeemed = voucher.redemption.redeemed_points if voucher and voucher.redemption else None
    # Without `redeemed_points` the figures cannot be checked; Voucherify leaves out expired
    # and subtracted points when there are none. A transaction's own snapshot of the card
    # is checked the same way.
    if (
        card is not None
        and card.points is not None
        and card.balance is not None
        and redeemed is not None
    ):
        expected = (
            card.points - (card.expired_points or 0) - (card.subtracted_points or 0) - redeemed
        )
        if expected != card.balance:
            found.add(
                f"{movement.key}: balance {card.balance} != points {card.points}"
                f" - expired {card.expired_points or 0}"
                f" - subtracted {card.subtracted_points or 0}"
                f" - redeemed {redeemed} = {expected}"
            )
    return frozenset(found)


def envelope_time(body: Mapping[str, Any]) -> datetime | None:
    """The envelope's `event.created_at`: the last tie-break between equal times."""
    if not _is_envelope(body):
        return None
    event = body.get("event")
    value = event.get("created_at") if isinstance(event, Mapping) else None
    try:
        return parse_timestamp(value) if value is not None else None
    except ValueError:
        return None


def _transaction(
    event_type: str, payload: CardTransactionEvent, body: Mapping[str, Any], event_id: str
) -> Movement:
    at = payload.occurred_at
    assert at is not None  # problems() requires it
    rank = (
        RANK_TRANSACTION if event_type.endswith(".transaction.created") else RANK_TRANSACTION_COPY
    )
    return Movement(
        card_id=payload.card_id,
        kind=payload.kind,
        key=movement_key(payload),
        type=payload.transaction.type,
        change=payload.change,
        after=payload.after,
        at=at,
        envelope_at=envelope_time(body),
        rank=rank,
        customer_id=_holder(payload.voucher, payload.holder, payload.customer),
        event_id=event_id,
    )


def _reward(event: RewardRedemptionCompleted, body: Mapping[str, Any], event_id: str) -> Movement:
    card = event.voucher.loyalty_card
    if card is None or card.balance is None:
        raise PayloadError.at("voucher.loyalty_card.balance", "field required (the card balance)")
    holder = _holder(event.voucher, event.holder, event.customer) or (
        event.reward_redemption.customer_id or ""
    )
    if not holder:
        raise PayloadError.at("holder", "no holder or customer id for the loyalty card")
    return Movement(
        card_id=event.voucher.id,
        kind="loyalty",
        key=reward_movement_key(event),
        type="POINTS_REDEMPTION",
        change=-event.points,
        after=card.balance,
        at=source_timestamp(body, event),
        envelope_at=envelope_time(body),
        rank=RANK_REWARD,
        customer_id=holder,
        event_id=event_id,
    )


def _redemption(
    event: RedemptionSucceeded, body: Mapping[str, Any], event_id: str
) -> Movement | None:
    """A loyalty card paying `redemption.amount` points, or a gift card spending credit; None
    for any other redemption (a stack parent included)."""
    voucher = event.voucher
    if voucher is None or voucher.kind == "discount":
        return None
    holder = _holder(voucher, event.holder, event.customer) or (event.redemption.customer_id or "")
    if voucher.kind == "loyalty":
        card = voucher.loyalty_card
        if card is None or card.balance is None:
            raise PayloadError.at(
                "voucher.loyalty_card.balance", "field required (the card balance)"
            )
        if not holder:
            raise PayloadError.at("holder", "no holder or customer id for the loyalty card")
        key, kind, change, after = (
            f"redemption:{event.redemption.id}:points",
            "POINTS_REDEMPTION",
            -paid_points(event),
            card.balance,
        )
    else:
        gift = voucher.gift
        if gift is None or gift.balance is None or event.order is None:
            return None  # the card's balance after it is not told: nothing to chain
        key, kind, change, after = (
            f"redemption:{event.redemption.id}:discount",
            "CREDITS_REDEMPTION",
            -event.order.total_applied_discount_amount,
            gift.balance,
        )
    return Movement(
        card_id=voucher.id,
        kind=voucher.kind,
        key=key,
        type=kind,
        change=change,
        after=after,
        at=source_timestamp(body, event),
        envelope_at=envelope_time(body),
        rank=RANK_REDEMPTION,
        customer_id=holder,
        event_id=event_id,
    )


def _holder(voucher: Voucher | None, *people: Any) -> str:
    """The card's holder: the holder named, the voucher's holder, then the customer."""
    candidates = [
        people[0].id if people and people[0] is not None else None,
        voucher.holder_id if voucher else None,
        *(person.id for person in people[1:] if person is not None),
    ]
    return next((candidate for candidate in candidates if candidate), "")


def _voucher(payload: Payload) -> Voucher | None:
    if isinstance(payload, (CardTransactionEvent, RewardRedemptionCompleted, RedemptionSucceeded)):
        return payload.voucher
    return None
