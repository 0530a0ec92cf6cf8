"""The loyalty balance rules: one state per card, folded from what events report about it.

The reported `balance` is a snapshot: the one with the newest source timestamp wins, so an
older event arriving late never overwrites a newer balance. `points_spent` and `events` are
sums. Inconsistent figures and negative balances flag the card; they never reject an event.
Every step is commutative and associative, so any arrival order gives the same state. That
each event is applied once is the caller's business (one run row per event and handler).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from models.voucherify import (
    PayloadError,
    RedemptionSucceeded,
    RewardRedemptionCompleted,
    Voucher,
    paid_points,
)


@dataclass(frozen=True)
class CardObservation:
    """What one event says about one loyalty card, and what it took from it."""

    card_id: str
    customer_id: str
    balance: int
    at: datetime
    """The event's source timestamp (`models.voucherify.source_timestamp`)."""
    source_id: str
    """The Voucherify object that reported it (`rewr_...`, `r_...`); breaks timestamp ties."""
    points_taken: int = 0
    points: int | None = None
    expired_points: int | None = None
    subtracted_points: int | None = None
    redeemed_points: int | None = None

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError(f"{self.source_id}: a source timestamp must be timezone-aware")
        if self.points_taken < 0:
            raise ValueError(f"{self.source_id}: negative points taken ({self.points_taken})")

    @property
    def order_key(self) -> tuple[datetime, str, int, str]:
        # Equal timestamps need a deterministic winner, or arrival order would pick one:
        # the source id, then (for one object reported twice) the values themselves.
        return (self.at, self.source_id, self.balance, self.customer_id)

    def flags(self) -> frozenset[str]:
        """Why this report makes the card suspect; empty when it is consistent."""
        found = set()
        if self.balance < 0:
            found.add(f"{self.source_id}: negative balance {self.balance}")
        # Without `redeemed_points` the figures cannot be checked; Voucherify leaves out
        # expired and subtracted points when there are none.
        if self.points is not None and self.redeemed_points is not None:
            expected = (
                self.points
                - (self.expired_points or 0)
                - (self.subtracted_points or 0)
                - self.redeemed_points
            )
            if expected != self.balance:
                found.add(
                    f"{self.source_id}: balance {self.balance} != points {self.points}"
                    f" - expired {self.expired_points or 0}"
                    f" - subtracted {self.subtracted_points or 0}"
                    f" - redeemed {self.redeemed_points} = {expected}"
                )
        return frozenset(found)


@dataclass(frozen=True)
class CardState:
    """One loyalty card (a voucher id) as the events seen so far describe it."""

    card_id: str
    customer_id: str
    balance: int
    as_of: datetime
    """The source timestamp of `balance`."""
    points_spent: int
    events: int
    flags: tuple[str, ...] = ()
    """Why the card is suspect, sorted; empty when it is not."""
    balance_source: str = ""
    """The Voucherify object whose report `balance` is."""

    @property
    def flagged(self) -> bool:
        return bool(self.flags)

    @property
    def order_key(self) -> tuple[datetime, str, int, str]:
        """The `CardObservation.order_key` of the report `balance` came from."""
        return (self.as_of, self.balance_source, self.balance, self.customer_id)


def apply_observation(state: CardState | None, observation: CardObservation) -> CardState:
    """The card's state once `observation` is seen; `None` is a card never seen before."""
    if state is None:
        return CardState(
            card_id=observation.card_id,
            customer_id=observation.customer_id,
            balance=observation.balance,
            as_of=observation.at.astimezone(UTC),
            points_spent=observation.points_taken,
            events=1,
            flags=tuple(sorted(observation.flags())),
            balance_source=observation.source_id,
        )
    if state.card_id != observation.card_id:
        raise ValueError(
            f"{observation.source_id} is about {observation.card_id}, not {state.card_id}"
        )
    counted = replace(
        state,
        points_spent=state.points_spent + observation.points_taken,
        events=state.events + 1,
        flags=tuple(sorted(set(state.flags) | observation.flags())),
    )
    if observation.order_key <= state.order_key:
        return counted
    # The holder follows the newest report too: a card handed to another customer shows
    # its new holder only from then on.
    return replace(
        counted,
        customer_id=observation.customer_id,
        balance=observation.balance,
        as_of=observation.at.astimezone(UTC),
        balance_source=observation.source_id,
    )


def fold_observations(observations: Iterable[CardObservation]) -> dict[str, CardState]:
    """Card id -> state after every observation, as a rebuild computes it."""
    states: dict[str, CardState] = {}
    for observation in observations:
        states[observation.card_id] = apply_observation(
            states.get(observation.card_id), observation
        )
    return states


def observe_reward_redemption(event: RewardRedemptionCompleted, at: datetime) -> CardObservation:
    """The card a reward was paid from: its reported figures and the reward's points."""
    return _observe(
        event.voucher,
        holders=(
            event.holder.id if event.holder else None,
            event.voucher.holder_id,
            event.customer.id if event.customer else None,
            event.reward_redemption.customer_id,
        ),
        at=at,
        source_id=event.reward_redemption.id,
        points_taken=event.points,
    )


def observe_redemption(event: RedemptionSucceeded, at: datetime) -> CardObservation | None:
    """A loyalty card paying for an order with `redemption.amount` points.

    None for any other redemption, a stack parent included.
    """
    voucher = event.voucher
    if voucher is None or voucher.kind != "loyalty":
        return None
    points = paid_points(event)
    return _observe(
        voucher,
        holders=(
            event.holder.id if event.holder else None,
            voucher.holder_id,
            event.customer.id if event.customer else None,
            event.redemption.customer_id,
        ),
        at=at,
        source_id=event.redemption.id,
        points_taken=points,
    )


def _observe(
    voucher: Voucher,
    *,
    holders: tuple[str | None, ...],
    at: datetime,
    source_id: str,
    points_taken: int,
) -> CardObservation:
    card = voucher.loyalty_card
    if card is None or card.balance is None:
        raise PayloadError.at("voucher.loyalty_card.balance", "field required (the card balance)")
    # The holder owns the card; the redeeming customer is the best evidence when the payload
    # names no holder.
    holder = next((candidate for candidate in holders if candidate), None)
    if holder is None:
        raise PayloadError.at("holder", "no holder or customer id for the loyalty card")
    return CardObservation(
        card_id=voucher.id,
        customer_id=holder,
        balance=card.balance,
        at=at,
        source_id=source_id,
        points_taken=points_taken,
        points=card.points,
        expired_points=card.expired_points,
        subtracted_points=card.subtracted_points,
        redeemed_points=voucher.redemption.redeemed_points if voucher.redemption else None,
    )
