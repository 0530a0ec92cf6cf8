"""Reading Voucherify payloads (voucherify-webhooks.md, "Payload facts"): lenient where
Voucherify is, strict about what the rules need, and clear about what is wrong."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from models.voucherify import (
    PayloadError,
    RedemptionRollbackSucceeded,
    RedemptionSucceeded,
    RewardRedemptionCompleted,
    event_data,
    load_json,
    parse_payload,
    parse_timestamp,
    source_timestamp,
)
from tests.support.payloads import parsed
from tests.unit.recorded import (
    REDEMPTION,
    REWARD_REDEMPTION,
    ROLLBACK,
    envelope,
    redemption,
    rollback,
    seed_redemption,
    seed_reward_redemption,
    stack,
)


def test_seed_redemption_gives_what_the_ledger_books() -> None:
    event = parsed(RedemptionSucceeded, seed_redemption())
    assert event.order is not None
    assert (event.order.id, event.order.amount) == ("ord_3VYCHwdV0YOOch2nm1RsTKNI", 7000)
    assert event.order.total_applied_discount_amount == 1000
    assert event.campaign is not None and event.campaign.id == "camp_kwMyXFKquedx8FzXNpVPN7QU"
    assert event.voucher is not None and event.voucher.kind == "discount"
    assert event.redemption.id == "r_0e2500291ae016adea"
    assert (event.redemption.result, event.redemption.status) == ("SUCCESS", "SUCCEEDED")


def test_seed_reward_redemption_gives_card_reward_and_points() -> None:
    event = parsed(RewardRedemptionCompleted, seed_reward_redemption())
    assert event.voucher.id == "v_p7NP2qmQaMXsNHzb9ujPVjqgDJzJ2ccQ"
    assert event.voucher.loyalty_card is not None and event.voucher.loyalty_card.balance == 70
    assert event.voucher.redemption is not None
    assert event.voucher.redemption.redeemed_points == 200
    assert (event.reward.id, event.reward.name) == (
        "rew_UtRGHxt98jwCzodkskxQ7KLp",
        "10% discount coupon",
    )
    assert event.reward.voucher is not None and event.reward.voucher.code == "tKSTdVk2"
    assert event.points == 100
    assert event.reward_redemption.id == "rewr_N5xhKgV5tJBmJxrtb5YB7V3q"


def test_malformed_timestamps_of_the_published_example_are_normalised() -> None:
    event = parsed(RewardRedemptionCompleted, seed_reward_redemption())
    # "2024-05-13T12: 26: 06.250Z" in the example
    assert event.reward_redemption.created_at == datetime(2024, 5, 13, 12, 26, 6, 250000, UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-15T12:20:38.636Z", datetime(2024, 1, 15, 12, 20, 38, 636000, UTC)),
        ("2024-01-15T12:20:38.635000Z", datetime(2024, 1, 15, 12, 20, 38, 635000, UTC)),
        ("2024-05-13T10: 24: 01.084Z", datetime(2024, 5, 13, 10, 24, 1, 84000, UTC)),
        ("2023-05-30", datetime(2023, 5, 30, tzinfo=UTC)),
        ("2024-01-15T13:20:38+01:00", datetime(2024, 1, 15, 12, 20, 38, tzinfo=UTC)),
        ("2024-01-15T12:20:38", datetime(2024, 1, 15, 12, 20, 38, tzinfo=UTC)),
    ],
)
def test_timestamps_of_every_known_shape_read_as_utc(text: str, expected: datetime) -> None:
    assert parse_timestamp(text) == expected
    assert parse_timestamp(text).tzinfo == UTC


def test_an_envelope_and_its_raw_data_parse_alike() -> None:
    raw = seed_redemption()
    wrapped = envelope(REDEMPTION, seed_redemption())
    assert event_data(wrapped) == raw
    assert parsed(RedemptionSucceeded, wrapped) == parsed(RedemptionSucceeded, raw)


def test_unknown_fields_are_ignored() -> None:
    data = seed_redemption()
    data["brand_new_field"] = {"anything": [1, 2]}
    data["order"]["another_new_field"] = "x"
    assert parsed(RedemptionSucceeded, data) == parsed(RedemptionSucceeded, seed_redemption())


def test_objects_the_docs_say_may_be_null_may_be_null() -> None:
    data = seed_redemption()
    data.update(holder=None, promotion_tier=None, customer={"id": "c", "email": None})
    data["voucher"]["campaign_id"] = None
    event = parsed(RedemptionSucceeded, data)
    assert event.customer is not None and event.customer.email is None

    data.update(order=None, voucher=None, customer=None)
    data["redemption"]["order"] = None
    assert parsed(RedemptionSucceeded, data).order is None


def test_the_order_inside_the_redemption_serves_when_the_top_level_one_is_null() -> None:
    data = seed_redemption()
    data["order"] = None
    event = parsed(RedemptionSucceeded, data)
    assert event.order is not None and event.order.id == "ord_3VYCHwdV0YOOch2nm1RsTKNI"


def test_status_spellings_are_read_as_one() -> None:
    event = parsed(RedemptionRollbackSucceeded, rollback(seed_redemption(), "rr_1"))
    assert event.redemption is not None and event.redemption.status == "ROLLED_BACK"


def test_a_missing_amount_is_named_by_its_path() -> None:
    data = seed_redemption()
    del data["order"]["amount"]
    with pytest.raises(PayloadError) as caught:
        parsed(RedemptionSucceeded, data)
    assert str(caught.value) == "order.amount: field required"
    assert caught.value.problems == (("order.amount", "field required"),)


def test_money_must_be_an_integer() -> None:
    data = seed_redemption()
    data["order"]["total_applied_discount_amount"] = "1000"
    with pytest.raises(PayloadError, match=r"order\.total_applied_discount_amount: input should"):
        parsed(RedemptionSucceeded, data)


def test_an_integral_float_is_still_an_integer_amount() -> None:
    data = seed_redemption()
    data["order"]["amount"] = 7000.0
    event = parsed(RedemptionSucceeded, data)
    assert event.order is not None and event.order.amount == 7000


def test_money_cannot_be_negative() -> None:
    data = seed_redemption()
    data["order"]["amount"] = -7000
    with pytest.raises(PayloadError, match=r"^order\.amount: input should be greater than"):
        parsed(RedemptionSucceeded, data)


def test_every_problem_is_reported_at_once() -> None:
    data = seed_redemption()
    del data["order"]["amount"]
    del data["redemption"]["id"]
    with pytest.raises(PayloadError) as caught:
        parsed(RedemptionSucceeded, data)
    assert {path for path, _ in caught.value.problems} == {"order.amount", "redemption.id"}


def test_reward_points_are_required() -> None:
    data = seed_reward_redemption()
    del data["reward_assignment"]["parameters"]["loyalty"]["points"]
    with pytest.raises(
        PayloadError, match=r"^reward_assignment\.parameters\.loyalty\.points: field"
    ):
        parsed(RewardRedemptionCompleted, data)


def test_an_unusable_timestamp_is_named() -> None:
    data = seed_reward_redemption()
    data["reward_redemption"]["created_at"] = "yesterday"
    with pytest.raises(PayloadError, match=r"^reward_redemption\.created_at: not an ISO 8601"):
        parsed(RewardRedemptionCompleted, data)


def test_a_body_that_is_not_an_object_is_refused_clearly() -> None:
    with pytest.raises(PayloadError, match=r"^\(payload\): not a JSON object"):
        load_json(b"[1, 2]")
    with pytest.raises(PayloadError, match=r"^\(payload\): not JSON"):
        load_json(b"{oops")


def test_parse_payload_picks_the_model_of_the_event_type() -> None:
    assert isinstance(parse_payload(REDEMPTION, seed_redemption()), RedemptionSucceeded)
    with pytest.raises(PayloadError) as caught:
        parse_payload(REWARD_REDEMPTION, seed_redemption())
    assert caught.value.event_type == REWARD_REDEMPTION


def test_an_event_type_without_a_model_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="no payload model"):
        parse_payload("voucher.created", seed_redemption())


def test_stack_roles_are_told_apart() -> None:
    parent, children = stack()
    assert parsed(RedemptionSucceeded, seed_redemption()).role == "single"
    assert parsed(RedemptionSucceeded, parent).role == "parent"
    assert {parsed(RedemptionSucceeded, child).role for child in children} == {"child"}


def test_a_redemption_naming_neither_redeemable_nor_being_a_parent_is_refused() -> None:
    data = redemption("r_odd", kind="parent", parent="r_other")
    with pytest.raises(PayloadError, match=r"^redemption\.redemption: names a parent"):
        parsed(RedemptionSucceeded, data)


def test_a_failed_redemption_is_not_a_succeeded_one() -> None:
    data = seed_redemption()
    data["redemption"]["result"] = "FAILURE"
    with pytest.raises(PayloadError, match=r"^redemption\.result"):
        parsed(RedemptionSucceeded, data)


def test_voucher_kind_comes_from_its_type_then_its_sub_objects() -> None:
    gift = parsed(RedemptionSucceeded, redemption("r_g", kind="gift")).voucher
    card = parsed(RedemptionSucceeded, redemption("r_l", kind="loyalty", points=50)).voucher
    assert gift is not None and card is not None
    assert (gift.kind, card.kind) == ("gift", "loyalty")
    untyped = redemption("r_u", kind="gift")
    del untyped["voucher"]["type"]
    voucher = parsed(RedemptionSucceeded, untyped).voucher
    assert voucher is not None and voucher.kind == "gift"


def test_source_timestamp_of_a_raw_redemption_is_its_created_at() -> None:
    body = seed_redemption()
    assert source_timestamp(body, parsed(RedemptionSucceeded, body)) == datetime(
        2024, 1, 15, 12, 20, 38, 636000, UTC
    )


def test_source_timestamp_of_a_reward_redemption_is_when_it_completed() -> None:
    body = seed_reward_redemption()
    at = source_timestamp(body, parsed(RewardRedemptionCompleted, body))
    assert at == datetime(2024, 5, 13, 12, 26, 6, 250000, UTC)
    body["reward_redemption"]["updated_at"] = "2024-05-13T12:27:00.000Z"
    assert source_timestamp(body, parsed(RewardRedemptionCompleted, body)).minute == 27


def test_source_timestamp_falls_back_to_the_envelope() -> None:
    data = seed_redemption()
    del data["created_at"]
    del data["redemption"]["date"]
    body = envelope(REDEMPTION, data, created_at="2024-02-01T00:00:00.123456Z")
    assert source_timestamp(body, parsed(RedemptionSucceeded, body)) == datetime(
        2024, 2, 1, 0, 0, 0, 123456, UTC
    )
    with pytest.raises(PayloadError, match="no usable source timestamp"):
        source_timestamp(data, parsed(RedemptionSucceeded, data))


def test_rollback_names_its_original_and_whether_the_order_was_cancelled() -> None:
    kept = parsed(RedemptionRollbackSucceeded, rollback(seed_redemption(), "rr_1"))
    cancelled = parsed(
        RedemptionRollbackSucceeded, rollback(seed_redemption(), "rr_2", order_status="CANCELED")
    )
    assert kept.original_id == "r_0e2500291ae016adea"
    assert kept.redemption_rollback.id == "rr_1"
    assert (kept.order_cancelled, cancelled.order_cancelled) == (False, True)
    assert parse_payload(ROLLBACK, rollback(seed_redemption(), "rr_3")) is not None


def test_a_rollback_contradicting_its_original_is_refused() -> None:
    data = rollback(seed_redemption(), "rr_1")
    data["redemption_rollback"]["redemption"] = "r_someone_else"
    with pytest.raises(PayloadError, match=r"^redemption_rollback\.redemption: r_someone_else"):
        parsed(RedemptionRollbackSucceeded, data)


def test_a_rollback_without_any_original_is_refused() -> None:
    data = rollback(seed_redemption(), "rr_1")
    data["redemption"] = None
    del data["redemption_rollback"]["redemption"]
    with pytest.raises(PayloadError, match=r"^redemption_rollback\.redemption: field required"):
        parsed(RedemptionRollbackSucceeded, data)
