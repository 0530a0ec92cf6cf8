"""The receiver's contract (interface.md), on PostgreSQL and on SQLite, over real HTTP."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from receiver.signature import HEADER, compact, sign
from tests.conftest import EventLog
from tests.support.payloads import REDEMPTION, REWARD_REDEMPTION, dumps, envelope, example_bytes
from tests.support.processes import ADMIN, SECRET, Receiver, post

KEY = SECRET.encode()


def signed(url: str, body: bytes) -> httpx.Response:
    return post(url, body, sign(body, KEY), **{"content-type": "application/json"})


@pytest.mark.parametrize("event_type", [REDEMPTION, REWARD_REDEMPTION])
def test_raw_example_is_accepted_and_stored_byte_for_byte(
    receiver: Receiver, event_log: EventLog, event_type: str
) -> None:
    body = example_bytes(event_type)
    event_log.clear()

    response = signed(f"{receiver.webhook_url}/{event_type}", body)

    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["status"] == "accepted"
    stored = event_log.get(answer["event_id"])
    assert stored is not None
    assert stored["body"] == body
    assert stored["type"] == event_type
    assert stored["status"] == "pending"
    # The signature is not kept: with the body it would be a delivery anyone could replay.
    assert HEADER not in stored["headers"]  # type: ignore[operator]
    assert stored["remote_addr"] == "127.0.0.1"


def test_raw_identity_is_the_type_and_the_object_id(receiver: Receiver) -> None:
    answer = signed(f"{receiver.webhook_url}/{REWARD_REDEMPTION}", example_bytes(REWARD_REDEMPTION))
    assert answer.json()["event_id"] == f"{REWARD_REDEMPTION}:rewr_N5xhKgV5tJBmJxrtb5YB7V3q"


@pytest.mark.parametrize("event_type", [REDEMPTION, REWARD_REDEMPTION])
def test_enveloped_example_is_accepted_under_its_event_id(
    receiver: Receiver, event_log: EventLog, event_type: str
) -> None:
    payload = envelope(event_type, distribution=event_type == REWARD_REDEMPTION)
    body = dumps(payload, pretty=True)

    response = signed(receiver.webhook_url, body)

    assert response.status_code == 202, response.text
    assert response.json()["event_id"] == payload["event"]["id"]
    stored = event_log.get(payload["event"]["id"])
    assert stored is not None
    assert stored["body"] == body
    # A distribution's top-level type is the user's own name; the real one is event.type.
    assert stored["type"] == event_type
    assert stored["delivery_id"] == payload["id"]


def test_same_event_again_is_a_duplicate_and_stores_nothing(
    receiver: Receiver, event_log: EventLog
) -> None:
    body = dumps(envelope(REDEMPTION))
    first = signed(receiver.webhook_url, body)
    before = event_log.count()

    again = signed(receiver.webhook_url, body)

    assert first.status_code == 202
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate", "event_id": first.json()["event_id"]}
    assert event_log.count() == before


def test_a_retry_with_a_new_delivery_id_is_still_the_same_event(receiver: Receiver) -> None:
    payload = envelope(REDEMPTION)
    first = signed(receiver.webhook_url, dumps(payload))
    payload["id"] = "whs_another_send_out"

    again = signed(receiver.webhook_url, dumps(payload))

    assert (first.status_code, again.status_code) == (202, 200)


@pytest.mark.parametrize(
    "signature",
    [None, "", "0" * 64, sign(b"something else", KEY), sign(b"x", b"wrong secret"), "not-hex"],
    ids=["missing", "empty", "zeros", "other-body", "wrong-secret", "malformed"],
)
def test_bad_signature_is_401_and_nothing_is_stored(
    receiver: Receiver, event_log: EventLog, signature: str | None
) -> None:
    body = dumps(envelope(REDEMPTION))
    if signature and signature.startswith("wrong"):
        signature = sign(body, b"wrong secret")
    before = event_log.count()

    response = post(receiver.webhook_url, body, signature)

    assert response.status_code == 401
    assert HEADER in response.json()["error"]
    assert event_log.count() == before


def test_tampered_body_is_401_and_nothing_is_stored(
    receiver: Receiver, event_log: EventLog
) -> None:
    body = dumps(envelope(REDEMPTION))
    signature = sign(body, KEY)
    tampered = body.replace(b'"amount": 7000', b'"amount": 1')
    assert tampered != body
    before = event_log.count()

    response = post(receiver.webhook_url, tampered, signature)

    assert response.status_code == 401
    assert event_log.count() == before


def test_body_signed_in_its_compacted_form_is_accepted(
    receiver: Receiver, event_log: EventLog
) -> None:
    pretty = dumps(envelope(REDEMPTION), pretty=True)
    signature = sign(compact(pretty), KEY)
    assert signature != sign(pretty, KEY)

    response = post(receiver.webhook_url, pretty, signature)

    assert response.status_code == 202, response.text
    stored = event_log.get(response.json()["event_id"])
    assert stored is not None and stored["body"] == pretty


def test_oversized_body_is_413_and_not_stored(receiver: Receiver, event_log: EventLog) -> None:
    body = b'{"pad": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    before = event_log.count()

    response = signed(receiver.webhook_url, body)

    assert response.status_code == 413
    assert "VOUCHERHOOK_MAX_BODY_BYTES" in response.json()["error"]
    assert event_log.count() == before


def test_unknown_event_type_is_accepted_and_stored_as_ignored(
    receiver: Receiver, event_log: EventLog
) -> None:
    payload = envelope("voucher.published", {"voucher": {"id": "v_1"}})

    response = signed(receiver.webhook_url, dumps(payload))

    assert response.status_code == 202
    assert response.json()["status"] == "accepted"
    stored = event_log.get(payload["event"]["id"])
    assert stored is not None and stored["status"] == "ignored"


@pytest.mark.parametrize(
    "body",
    [b"not json at all", b"[1, 2, 3]", b'"a string"', b"\xff\xfe{"],
    ids=["text", "array", "string", "invalid-utf8"],
)
def test_signed_body_that_is_not_a_json_object_is_quarantined(
    receiver: Receiver, event_log: EventLog, body: bytes
) -> None:
    response = signed(f"{receiver.webhook_url}/{REDEMPTION}", body)

    assert response.status_code == 202
    answer = response.json()
    assert answer["status"] == "quarantined"
    stored = event_log.get(answer["event_id"])
    assert stored is not None
    assert stored["status"] == "quarantined"
    assert stored["body"] == body
    assert stored["error"]


def test_raw_payload_without_a_type_in_the_url_is_quarantined_with_the_reason(
    receiver: Receiver,
) -> None:
    response = signed(receiver.webhook_url, example_bytes(REDEMPTION))

    assert response.status_code == 202
    assert response.json()["status"] == "quarantined"
    assert "/webhooks/voucherify/{event_type}" in response.json()["reason"]


def test_old_and_new_secret_are_both_accepted_during_a_rotation(
    database_url: str, event_log: EventLog, redis_url: str, queue: str
) -> None:
    from tests.support.processes import base_env

    env = base_env(database_url, redis_url, VOUCHERHOOK_QUEUE=queue)
    env["VOUCHERIFY_WEBHOOK_SECRET"] = "old-secret-4f1a9c07e2, new-secret-8b3d6e51a0"
    rotating = Receiver(env, "--no-worker")
    try:
        answers = []
        for secret in (
            b"old-secret-4f1a9c07e2",
            b"new-secret-8b3d6e51a0",
            b"third-secret-27c9d4e1",
        ):
            body = dumps(envelope(REDEMPTION))
            answers.append(post(rotating.webhook_url, body, sign(body, secret)).status_code)
    finally:
        rotating.stop()
    assert answers == [202, 202, 401]


def test_fifty_concurrent_deliveries_of_one_event_store_one_row(
    receiver: Receiver, event_log: EventLog
) -> None:
    payload = envelope(REDEMPTION)
    body = dumps(payload)
    headers = {HEADER: sign(body, KEY), "content-type": "application/json"}

    async def deliver_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(
                *(
                    client.post(receiver.webhook_url, content=body, headers=headers)
                    for _ in range(50)
                )
            )

    responses = asyncio.run(deliver_all())

    codes = sorted(response.status_code for response in responses)
    assert codes == [200] * 49 + [202]
    assert {response.json()["event_id"] for response in responses} == {payload["event"]["id"]}
    with event_log.engine.connect() as conn:
        from sqlalchemy import func, select

        from models.db.tables import events

        rows = conn.scalar(
            select(func.count()).select_from(events).where(events.c.id == payload["event"]["id"])
        )
    assert rows == 1


def test_concurrent_deliveries_are_each_committed_before_their_answer(
    receiver: Receiver, event_log: EventLog
) -> None:
    """Many deliveries at once share commits; each one's row is already visible from another
    connection the moment its 202 arrives, and every one is stored."""
    payloads = [envelope(REDEMPTION) for _ in range(200)]
    missing_at_answer: list[str] = []

    async def deliver(client: httpx.AsyncClient, payload: dict[str, Any]) -> int:
        body = dumps(payload)
        headers = {HEADER: sign(body, KEY), "content-type": "application/json"}
        response = await client.post(receiver.webhook_url, content=body, headers=headers)
        event_id = response.json()["event_id"]
        if await asyncio.to_thread(event_log.get, event_id) is None:
            missing_at_answer.append(event_id)
        return response.status_code

    async def deliver_all() -> list[int]:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            return await asyncio.gather(*(deliver(client, p) for p in payloads))

    codes = asyncio.run(deliver_all())

    assert codes == [202] * len(payloads)
    assert missing_at_answer == []
    stored = [event_log.get(p["event"]["id"]) for p in payloads]
    assert all(row is not None for row in stored)


def test_health_readiness_and_metrics(receiver: Receiver) -> None:
    signed(receiver.webhook_url, dumps(envelope(REDEMPTION)))
    post(receiver.webhook_url, b"{}", "0" * 64)

    assert httpx.get(f"{receiver.url}/healthz").status_code == 200
    ready = httpx.get(f"{receiver.url}/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "database": "ok", "broker": "ok"}
    metrics = httpx.get(f"{receiver.url}/metrics", headers=ADMIN).text
    assert 'voucherhook_deliveries_total{outcome="accepted"}' in metrics
    assert 'voucherhook_deliveries_total{outcome="unauthorized"}' in metrics
    assert "voucherhook_database_up 1.0" in metrics
    assert 'voucherhook_events{status="pending",type="redemption.succeeded"}' in metrics
    assert "voucherhook_backlog_events" in metrics


def test_answers_are_json(receiver: Receiver) -> None:
    response = post(receiver.webhook_url, b"{}")
    assert response.headers["content-type"] == "application/json"
    assert json.loads(response.text)["status"] == "rejected"
