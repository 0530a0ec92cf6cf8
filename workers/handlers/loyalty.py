"""Loyalty handler: apply what an event says about a card, under the card's row lock."""

from __future__ import annotations

from models.loyalty import (
    CardObservation,
    apply_observation,
    observe_redemption,
    observe_reward_redemption,
)
from models.voucherify import RedemptionSucceeded, RewardRedemptionCompleted, source_timestamp
from workers.handlers.base import Job, Outcome


def handle(job: Job) -> Outcome:
    observation = _observe(job)
    if observation is None:
        return Outcome(note="no loyalty card involved")
    books = job.books
    # The same Voucherify object reported by a second delivery (another webhook, say) is
    # the same fact: it must not take its points twice.
    if not books.first_sighting(
        observation.source_id, observation.card_id, job.event_id, observation.points_taken
    ):
        return Outcome(note=f"{observation.source_id} already applied to {observation.card_id}")
    state = books.load_card(observation.card_id)
    if state is None:
        if books.insert_card(apply_observation(None, observation), job.now):
            return Outcome()
        # Another worker created the card meanwhile; its row is committed and lockable now.
        state = books.load_card(observation.card_id)
    books.save_card(apply_observation(state, observation), job.now)
    return Outcome()


def _observe(job: Job) -> CardObservation | None:
    payload = job.payload
    if isinstance(payload, RewardRedemptionCompleted):
        return observe_reward_redemption(payload, source_timestamp(job.body, payload))
    is_card = isinstance(payload, RedemptionSucceeded) and (
        payload.voucher is not None and payload.voucher.kind == "loyalty"
    )
    if isinstance(payload, RedemptionSucceeded) and is_card:
        # Only a card's balance needs the event's time: other redemptions may lack one.
        return observe_redemption(payload, source_timestamp(job.body, payload))
    return None
