"""What a signed delivery is: type, identity, and whether it is processed, ignored or
quarantined (voucherify-webhooks.md, "Identity for deduplication, best first")."""

from __future__ import annotations

import hashlib
import json

from models.identity import RAW_KINDS, identify
from models.routing import HANDLERS
from tests.support.payloads import (
    REDEMPTION,
    REWARD_REDEMPTION,
    dumps,
    envelope,
    example_bytes,
)

ROLLBACK = "redemption.rollback.succeeded"


def test_project_envelope_is_identified_by_its_event_id() -> None:
    payload = envelope(REDEMPTION, event_id="evred_1")
    verdict = identify(dumps(payload))
    assert (verdict.event_id, verdict.event_type, verdict.status) == (
        "evred_1",
        REDEMPTION,
        "pending",
    )
    assert verdict.delivery_id == payload["id"]


def test_distribution_envelope_takes_its_type_from_the_event_not_the_users_name() -> None:
    payload = envelope(REWARD_REDEMPTION, event_id="evrw_1", distribution=True)
    assert payload["type"] == "My reward notification"
    verdict = identify(dumps(payload))
    assert verdict.event_type == REWARD_REDEMPTION
    assert verdict.event_id == "evrw_1"


def test_envelope_without_event_falls_back_to_its_send_out_id() -> None:
    payload = envelope(REDEMPTION)
    del payload["event"]
    verdict = identify(dumps(payload))
    assert verdict.event_id == payload["id"]
    assert verdict.event_type == REDEMPTION


def test_raw_redemption_is_identified_by_type_and_redemption_id() -> None:
    verdict = identify(example_bytes(REDEMPTION), REDEMPTION)
    assert verdict.event_id == "redemption.succeeded:r_0e2500291ae016adea"
    assert verdict.status == "pending"


def test_raw_reward_redemption_is_identified_by_its_rewr_id() -> None:
    verdict = identify(example_bytes(REWARD_REDEMPTION), REWARD_REDEMPTION)
    assert verdict.event_id == f"{REWARD_REDEMPTION}:rewr_N5xhKgV5tJBmJxrtb5YB7V3q"


def test_raw_rollback_is_identified_by_the_rollback_not_the_original() -> None:
    body = json.dumps({"redemption": {"id": "r_1"}, "redemption_rollback": {"id": "rr_9"}})
    verdict = identify(body.encode(), "redemption.rollback.succeeded")
    assert verdict.event_id == "redemption.rollback.succeeded:rr_9"


def test_raw_payload_without_known_object_is_identified_by_a_hash_of_the_body() -> None:
    body = b'{"voucher": {"code": "X"}}'
    verdict = identify(body, "voucher.updated")
    assert verdict.event_id == "sha256:" + hashlib.sha256(body).hexdigest()
    assert (verdict.event_type, verdict.status) == ("voucher.updated", "ignored")
    # The URL is not signed: another URL gives the same identity, so no second row.
    assert identify(body, "voucher.deleted").event_id == verdict.event_id


def test_unknown_event_type_is_ignored_not_refused() -> None:
    verdict = identify(dumps(envelope("voucher.published", {"voucher": {}})))
    assert verdict.status == "ignored"


def test_body_that_is_not_json_is_quarantined_under_a_hash() -> None:
    body = b"<html>oops</html>"
    verdict = identify(body, REDEMPTION)
    assert verdict.status == "quarantined"
    assert verdict.event_id == "sha256:" + hashlib.sha256(body).hexdigest()
    assert verdict.reason and "not JSON" in verdict.reason


def test_json_that_is_not_an_object_is_quarantined_saying_what_it_is() -> None:
    verdict = identify(b"[1]", REDEMPTION)
    assert verdict.status == "quarantined"
    assert verdict.reason == "body is JSON but not an object (an array)"


def test_deeply_nested_json_is_quarantined_not_a_crash() -> None:
    verdict = identify(b"[" * 100_000 + b"]" * 100_000, REDEMPTION)
    assert verdict.status == "quarantined"


def test_invalid_event_type_in_the_url_is_quarantined() -> None:
    verdict = identify(b"{}", "../../etc/passwd")
    assert verdict.status == "quarantined"
    assert verdict.reason and "URL" in verdict.reason
    assert verdict.event_id == "sha256:" + hashlib.sha256(b"{}").hexdigest()


def test_a_raw_rollback_sent_to_the_redemption_url_is_quarantined_under_its_own_identity() -> None:
    body = example_bytes(ROLLBACK)
    rightful = identify(body, ROLLBACK)
    assert (rightful.status, rightful.event_type) == ("pending", ROLLBACK)
    for path in (REDEMPTION, REWARD_REDEMPTION, "voucher.updated", "a/b", "x1"):
        verdict = identify(body, path)
        assert verdict.status == "quarantined", path
        assert verdict.event_id == rightful.event_id, path
    retyped = identify(body, REDEMPTION)
    assert retyped.reason == (
        "the URL says redemption.succeeded but the body is a redemption.rollback.succeeded "
        "payload: check the URL this distribution sends to"
    )


def test_a_raw_body_of_no_known_shape_sent_to_a_handled_type_is_quarantined() -> None:
    verdict = identify(b'{"voucher": {"id": "v_1"}}', REDEMPTION)
    assert verdict.status == "quarantined"
    assert verdict.reason and "no payload of a known kind" in verdict.reason


def test_a_distribution_look_alike_shares_the_identity_of_its_project_event() -> None:
    body = example_bytes(REDEMPTION)
    assert identify(body, "customer.redemption.succeeded").event_id == (
        identify(body, REDEMPTION).event_id
    )


def test_a_failed_redemption_is_never_a_succeeded_one() -> None:
    body = example_bytes("redemption.failed")
    assert identify(body, "redemption.failed").status == "ignored"
    assert identify(body, REDEMPTION).status == "quarantined"


def test_an_envelope_ignores_the_url_entirely() -> None:
    body = dumps(envelope(REDEMPTION, event_id="evred_7"))
    verdicts = {identify(body, path) for path in (None, REDEMPTION, ROLLBACK, "x1", "a/b")}
    assert len(verdicts) == 1
    assert verdicts.pop().event_type == REDEMPTION


def test_an_envelope_whose_data_contradicts_its_type_is_quarantined() -> None:
    data = json.loads(example_bytes(ROLLBACK))
    verdict = identify(dumps(envelope(REDEMPTION, data, event_id="evred_8")))
    assert (verdict.status, verdict.event_id) == ("quarantined", "evred_8")


def test_every_type_with_handlers_has_a_raw_shape() -> None:
    assert set(HANDLERS) <= set(RAW_KINDS)


def test_absurdly_long_event_id_is_replaced_by_its_hash() -> None:
    verdict = identify(dumps(envelope(REDEMPTION, event_id="e" * 5000)))
    assert verdict.event_id.startswith("sha256:")
    assert len(verdict.event_id) == 71


def test_a_transaction_carrying_its_redemption_as_context_is_not_that_redemption() -> None:
    body = json.dumps(
        {"transaction": {"id": "vtx_1"}, "redemption": {"id": "r_ctx"}, "voucher": {}}
    ).encode()
    verdict = identify(body, "voucher.gift.transaction.created")
    assert verdict.event_id == "card.transaction:vtx_1"
    assert verdict.status == "pending"
    # So the redemption itself, arriving later, is new, not a duplicate of the transaction.
    redemption = json.dumps({"redemption": {"id": "r_ctx"}}).encode()
    assert identify(redemption, REDEMPTION).event_id == "redemption.succeeded:r_ctx"


def test_one_transaction_raw_under_two_event_types_is_one_event() -> None:
    body = json.dumps({"transaction": {"id": "vtx_9", "type": "POINTS_ADDITION"}}).encode()
    added = identify(body, "voucher.loyalty_card.points_added")
    created = identify(body, "voucher.loyalty_card.transaction.created")
    copy = identify(body, "customer.voucher.loyalty_card.points_added")
    assert added.event_id == created.event_id == copy.event_id == "card.transaction:vtx_9"
    assert {added.status, created.status, copy.status} == {"pending"}


def test_a_transaction_sent_to_a_redemption_url_is_quarantined() -> None:
    body = json.dumps({"transaction": {"id": "vtx_9"}, "redemption": {"id": "r_1"}}).encode()
    verdict = identify(body, REDEMPTION)
    assert (verdict.status, verdict.event_id) == ("quarantined", "card.transaction:vtx_9")


def test_pending_points_are_told_added_or_canceled_by_the_sign_of_their_change() -> None:
    def pending(points: int) -> bytes:
        return json.dumps(
            {
                "pending_points": {"id": "lopp_1"},
                "voucher_pending_points_balance": {"points": points},
            }
        ).encode()

    added = identify(pending(5), "voucher.loyalty_card.pending_points.added")
    canceled = identify(pending(-5), "voucher.loyalty_card.pending_points.canceled")
    assert (added.event_id, added.status) == ("pending_points.added:lopp_1", "pending")
    assert (canceled.event_id, canceled.status) == ("pending_points.canceled:lopp_1", "pending")
    wrong = identify(pending(-5), "voucher.loyalty_card.pending_points.added")
    assert wrong.status == "quarantined"


def test_an_envelope_without_ids_is_identified_as_its_raw_payload_would_be() -> None:
    payload = envelope("customer.redemption.succeeded", json.loads(example_bytes(REDEMPTION)))
    del payload["event"]["id"], payload["id"]
    assert (
        identify(dumps(payload)).event_id
        == identify(example_bytes(REDEMPTION), REDEMPTION).event_id
    )
    payload["type"] = payload["event"]["type"] = ""
    assert not identify(dumps(payload)).event_id.startswith("None:")


def test_a_reward_redemption_state_is_read_in_either_spelling() -> None:
    for state in ("ROLLED BACK", "ROLLED_BACK", "rolled back"):
        body = json.dumps({"reward_redemption": {"id": "rewr_1", "state": state}}).encode()
        assert identify(body, "customer.reward_redemptions.rolledback").status == "ignored"
