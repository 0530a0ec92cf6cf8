"""Redaction (models.redaction): personal data out, and everything the books and the
notification keys read left exactly as it was."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.ledger import (
    post_card_transaction,
    post_redemption,
    post_reward_redemption,
    post_rollback,
)
from models.loyalty import movement_of
from models.redaction import (
    MARK,
    REDACTED,
    REDACTED_BODY,
    customer_values,
    is_redacted,
    mentions,
    redact,
    redact_body,
    redact_headers,
    redact_notification,
    scrub_text,
    search_terms,
)
from models.voucherify import (
    EVENT_MODELS,
    CardTransactionEvent,
    Payload,
    RedemptionRollbackSucceeded,
    parse_payload,
    source_timestamp,
)
from models.voucherify import RedemptionSucceeded as Redeemed
from models.voucherify import RewardRedemptionCompleted as Rewarded
from tests.support.payloads import FIXTURES, parsed
from tests.unit import recorded
from tests.unit.recorded import REDEMPTION, REWARD_REDEMPTION, ROLLBACK, Json

SEED_CUSTOMER = "cust_1g637SqVZnkdPNdAIZ7Ra879"
SEED_PERSONAL = ("Jane Doe", "jane@jane.io", "test_customer_id_2")


def body_of(data: Any) -> bytes:
    return json.dumps(data, indent=2).encode()


def redacted(data: Any) -> Any:
    return json.loads(redact_body(body_of(data)).body)


def person_strings(data: Any) -> set[str]:
    """The names, emails and source ids of every person object in a payload."""
    found: set[str] = set()

    def walk(value: Any, key: str | None) -> None:
        if isinstance(value, dict):
            is_person = key in ("customer", "holder", "referrer") or value.get("object") in (
                "customer",
                "user",
            )
            if is_person:
                for name in ("name", "email", "source_id", "phone"):
                    text = value.get(name)
                    if isinstance(text, str) and text and not text.startswith("<"):
                        found.add(text)
            for name, item in value.items():
                walk(item, name)
        elif isinstance(value, list):
            for item in value:
                walk(item, key)

    walk(data, None)
    return found


def every_payload() -> list[tuple[str | None, Json]]:
    """(event type if the rules know it, payload) for every recorded file and variants."""
    found: list[tuple[str | None, Json]] = []
    for path in sorted(FIXTURES.glob("*.json")):
        data = json.loads(path.read_text())
        event_type = path.stem if path.stem in EVENT_MODELS else None
        found.append((event_type, data))
    parent, children = recorded.stack()
    original = recorded.redemption("r_orig", order_id="ord_orig", points=None)
    rewarded = recorded.envelope(REWARD_REDEMPTION, recorded.seed_reward_redemption())
    found += [
        (REDEMPTION, recorded.redemption("r_gift", kind="gift", voucher_id="v_gift")),
        (REDEMPTION, recorded.redemption("r_card", kind="loyalty", points=40, voucher_id="v_c")),
        (REDEMPTION, recorded.redemption("r_tier", tier_id="promo_1")),
        (REDEMPTION, parent),
        *((REDEMPTION, child) for child in children),
        (REDEMPTION, original),
        (ROLLBACK, recorded.rollback(original, "rr_1", order_status="CANCELED")),
        (REWARD_REDEMPTION, rewarded),
        (REDEMPTION, recorded.envelope(REDEMPTION, recorded.seed_redemption())),
    ]
    return found


PAYLOADS = every_payload()


def _time(body: Json, payload: Payload) -> datetime:
    try:
        return source_timestamp(body, payload)
    except ValueError:
        return datetime(2024, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("event_type", "data"), PAYLOADS, ids=[str(n) for n in range(len(PAYLOADS))]
)
def test_no_person_s_name_email_or_source_id_is_left(event_type: str | None, data: Json) -> None:
    before = person_strings(data)
    text = redact_body(body_of(data)).body.decode()

    assert not [value for value in before if json.dumps(value) in text]
    assert "@" not in text


@pytest.mark.parametrize(
    ("event_type", "data"),
    [(t, d) for t, d in PAYLOADS if t is not None and t != ROLLBACK],
)
def test_what_the_ledger_the_cards_and_the_notification_keys_read_is_kept(
    event_type: str, data: Json
) -> None:
    payload = parse_payload(event_type, data)
    at = _time(data, payload)
    after = redacted(data)
    again = parse_payload(event_type, after)

    assert movement_of(event_type, again, after, "e") == movement_of(event_type, payload, data, "e")
    if isinstance(payload, Redeemed):
        assert isinstance(again, Redeemed)
        assert post_redemption(again, "USD") == post_redemption(payload, "USD")
        assert again.role == payload.role
        assert again.redemption.id == payload.redemption.id
    elif isinstance(payload, Rewarded):
        assert isinstance(again, Rewarded)
        assert post_reward_redemption(again) == post_reward_redemption(payload)
        assert again.reward_redemption.id == payload.reward_redemption.id
    elif isinstance(payload, CardTransactionEvent):
        assert isinstance(again, CardTransactionEvent)
        assert post_card_transaction(again, "USD") == post_card_transaction(payload, "USD")
    assert _time(after, again) == at
    # No address is left to notify, and no name to greet.
    for person in (getattr(again, "customer", None), getattr(again, "holder", None)):
        assert person is None or (person.email, person.name, person.source_id) == (None,) * 3


def test_a_rollback_reverses_the_same_postings_after_redaction() -> None:
    original = recorded.redemption("r_orig", order_id="ord_orig", kind="loyalty", points=30)
    rollback = recorded.rollback(original, "rr_orig", order_status="CANCELED")
    booked = post_redemption(parsed(Redeemed, original), "USD")

    before = post_rollback(parsed(RedemptionRollbackSucceeded, rollback), booked)
    after = post_rollback(parsed(RedemptionRollbackSucceeded, redacted(rollback)), booked)

    assert after == before != ()


def test_a_redacted_body_is_marked_and_redacting_it_again_changes_nothing() -> None:
    data = recorded.envelope(REDEMPTION, recorded.seed_redemption())
    once = redact_body(body_of(data))

    assert is_redacted(json.loads(once.body)) and not is_redacted(data)
    assert json.loads(once.body)[MARK] is True
    assert redact_body(once.body).body == once.body
    assert set(SEED_PERSONAL) <= once.removed


def test_strings_equal_to_a_removed_value_or_holding_an_email_go_but_ids_stay() -> None:
    data = recorded.seed_redemption()
    data["order"]["source_id"] = "jane@jane.io"
    data["order"]["items"][0]["source_id"] = "test_customer_id_2"
    data["order"]["note"] = "deliver to Jane Doe, call jane@jane.io or other@example.org"
    data["campaign"]["name"] = "jane doe"  # equal whatever the case
    data["redemption"]["customer_id"] = SEED_CUSTOMER

    after = redacted(data)

    assert after["order"]["source_id"] is None
    assert after["order"]["items"][0]["source_id"] is None
    assert after["order"]["note"] == f"deliver to {REDACTED}, call {REDACTED} or {REDACTED}"
    assert after["campaign"]["name"] is None
    assert after["customer"] == {
        "id": SEED_CUSTOMER,
        "name": None,
        "email": None,
        "source_id": None,
        "metadata": None,
        "object": "customer",
    }
    assert after["redemption"]["customer_id"] == SEED_CUSTOMER
    assert after["redemption"]["tracking_id"] is None
    assert after["order"]["metadata"] is None


def test_fields_personal_anywhere_go_wherever_they_are() -> None:
    data = {
        "type": "customer.updated",
        "data": {
            "order": {
                "id": "ord_1",
                "billing_address": {"line_1": "1 Main St", "city": "Springfield"},
                "shipping": {"phone": "+1 555 0100", "first_name": "Pat", "last_name": "Lee"},
            },
            "session": {"ip_address": "203.0.113.9", "user_agent": "Mozilla/5.0"},
            "participants": [{"object": "customer", "id": "cust_p", "birthdate": "1990-01-01"}],
            "user": {"id": "user_1", "email": "staff@shop.example", "name": "Staff Member"},
        },
    }

    after = redacted(data)["data"]

    assert after["order"] == {
        "id": "ord_1",
        "billing_address": None,
        "shipping": {"phone": None, "first_name": None, "last_name": None},
    }
    assert after["session"] == {"ip_address": None, "user_agent": None}
    assert after["participants"] == [{"object": "customer", "id": "cust_p", "birthdate": None}]
    assert after["user"] == {"id": "user_1", "email": None, "name": None}


def test_a_body_that_is_not_json_is_replaced_whole() -> None:
    done = redact_body(b"name=Jane Doe&email=jane@jane.io&customer=cust_1")

    assert (done.body, done.json) == (REDACTED_BODY, False)
    assert redact_body(b'["jane@jane.io", {"customer": {"id": "c", "name": "N"}}]').body == (
        f'["{REDACTED}",{{"customer":{{"id":"c","name":null}}}}]'.encode()
    )


def test_only_content_headers_are_kept() -> None:
    headers = {
        "content-type": "application/json",
        "Content-Length": "10",
        "user-agent": "Voucherify",
        "x-forwarded-for": "203.0.113.9",
        "x-real-ip": "203.0.113.9",
    }

    assert redact_headers(headers) == {"content-type": "application/json", "Content-Length": "10"}


def test_a_notification_loses_its_text_and_its_person_s_address_not_its_webhook() -> None:
    email = redact_notification(
        7, "email", "jane@jane.io", "You saved", "SMTPRecipientsRefused: jane@jane.io", ()
    )
    webhook = redact_notification(8, "webhook", "NOTIFY_WEBHOOK_URL", "", "timeout", ())

    assert (email.recipient, email.subject, email.body) == (
        f"{REDACTED[:-1]} #7]",
        REDACTED,
        REDACTED,
    )
    assert email.error == f"SMTPRecipientsRefused: {REDACTED}"
    assert (webhook.recipient, webhook.subject, webhook.body, webhook.error) == (
        "NOTIFY_WEBHOOK_URL",
        "",
        REDACTED,
        "timeout",
    )


def test_free_text_loses_emails_and_the_values_given() -> None:
    assert scrub_text(None) is None
    assert scrub_text("to Jane Doe at JANE@jane.io", ["Jane Doe"]) == f"to {REDACTED} at {REDACTED}"


def test_a_customer_is_found_by_id_and_by_the_emails_their_objects_hold() -> None:
    data = recorded.seed_redemption()
    body = body_of(data)

    values = customer_values(data, SEED_CUSTOMER)

    assert values == set(SEED_PERSONAL)
    assert search_terms(SEED_CUSTOMER, values) == sorted([SEED_CUSTOMER, "jane@jane.io"])
    assert mentions(body, SEED_CUSTOMER)
    assert not mentions(body, "cust_1g637SqVZnkdPNdAIZ7Ra87")  # a prefix is another id
    assert mentions(body_of({"note": "from JANE@JANE.IO"}), "cust_x", ["jane@jane.io"])
    assert mentions(b"garbage cust_1g637SqVZnkdPNdAIZ7Ra879\xff", SEED_CUSTOMER)
    assert not mentions(b"garbage cust_1g637SqVZnkdPNdAIZ7Ra8790", SEED_CUSTOMER)


# Properties over generated JSON --------------------------------------------------------------

KEYS = st.sampled_from(
    [
        "id",
        "order_id",
        "customer_id",
        "amount",
        "status",
        "created_at",
        "name",
        "email",
        "customer",
        "holder",
        "metadata",
        "note",
        "source_id",
        "items",
        "phone",
    ]
)
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.sampled_from(["Jane Doe", "jane@jane.io", "cust_1", "ord_1", "PAID", "x"]),
    st.text(max_size=12),
)
JSON = st.recursive(
    LEAVES,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=5)),
    max_leaves=30,
)


def _kept(value: Any, key: str | None = None, under_person: bool = False) -> list[object]:
    """The leaves redaction must keep: ids anywhere, and numbers and statuses outside people."""
    found: list[object] = []
    if isinstance(value, dict):
        person = key in ("customer", "holder")
        for name, item in value.items():
            if name in ("metadata", "phone", "email"):
                continue
            if (person or under_person) and name != "id":
                continue
            found += _kept(item, name, under_person or person)
    elif isinstance(value, list):
        for item in value:
            found += _kept(item, key, under_person)
    elif key in ("id", "order_id", "customer_id", "status", "created_at") or (
        isinstance(value, int) and not isinstance(value, bool)
    ):
        found.append((key, value))
    return found


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_redaction_keeps_ids_and_figures_and_is_idempotent(value: Any) -> None:
    done = redact(value).value

    assert _kept(done) == _kept(value)
    assert redact(done).value == done
    assert not [text for text in _loose(done) if "jane@jane.io" in text]


def _loose(value: Any, key: str | None = None) -> list[str]:
    """The strings outside the fields redaction protects (ids, statuses, times)."""
    if isinstance(value, dict):
        return [text for name, item in value.items() for text in _loose(item, name)]
    if isinstance(value, list):
        return [text for item in value for text in _loose(item, key)]
    protected = key in ("id", "order_id", "customer_id", "status", "created_at")
    return [value] if isinstance(value, str) and not protected else []


def test_the_fields_looked_for_elsewhere_are_the_personal_fields_but_those_left_out() -> None:
    from models import redaction

    assert redaction._NOT_LOOKED_FOR < redaction.PERSONAL_FIELDS
    assert "metadata" not in redaction._IDENTIFYING
    assert {"email", "name", "source_id", "tracking_id"} <= redaction._IDENTIFYING
