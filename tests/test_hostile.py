"""Hostile input against a real running receiver, over real HTTP.

Property-based fuzzing (PostgreSQL; 10,000 deliveries in all) of bodies, signature headers and
event-type paths, then one named case per known way to abuse a webhook endpoint. Whatever
arrives: no 5xx while the database is up, nothing unsigned is stored, every 2xx is one of the
documented JSON answers, and the process stays up and answers.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from models.db import schema
from models.db.engine import make_engine
from models.db.tables import events
from receiver.signature import HEADER, compact, sign
from tests.conftest import EventLog
from tests.support import hostile, services
from tests.support.hostile import KEY, SUCCESS_STATUSES, WEBHOOK_PATH, Delivery
from tests.support.payloads import REDEMPTION, dumps, envelope
from tests.support.processes import Receiver, base_env, voucherhook
from tests.support.services import wait_for

# 4 fuzz tests x 2,500 examples: 10,000 deliveries.
FUZZ_EXAMPLES = 2_500
FUZZ_SETTINGS = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class FuzzTarget:
    """A receiver on a PostgreSQL database of its own, and the tally of what it answered."""

    def __init__(self, receiver: Receiver, engine: Engine) -> None:
        self.receiver = receiver
        self.engine = engine
        self.client = httpx.Client(base_url=receiver.url, timeout=20)
        self.sent = 0
        self.answers: Counter[int] = Counter()
        self.signed_bodies: set[bytes] = set()

    def deliver(self, delivery: Delivery) -> httpx.Response:
        response = self.client.post(delivery.path, content=delivery.body, headers=delivery.headers)
        self.sent += 1
        if delivery.signature_valid:
            self.signed_bodies.add(delivery.body)
        self.answers[response.status_code] += 1
        check_answer(delivery, response)
        return response


def check_answer(delivery: Delivery, response: httpx.Response) -> None:
    """The invariants every single answer must hold."""
    context = f"{delivery!r} -> {response.status_code} {response.text[:300]}"
    assert response.status_code < 500, context
    routed = response.status_code not in (404, 405)
    if delivery.signature_valid:
        assert response.status_code in (200, 202) or not routed, context
    else:
        assert response.status_code in (401, 404, 405), context
    if response.is_success:
        answer = response.json()
        assert answer["status"] in SUCCESS_STATUSES, context
        assert answer["event_id"], context
        assert (response.status_code == 200) == (answer["status"] == "duplicate"), context


@pytest.fixture(scope="module")
def fuzz() -> Iterator[FuzzTarget]:
    services.check_redis()
    queue = f"vh-test-{uuid.uuid4().hex[:10]}"
    with services.postgres_database() as url:
        engine = make_engine(url)
        schema.upgrade(engine)
        receiver = Receiver(
            base_env(url, services.REDIS_URL, VOUCHERHOOK_QUEUE=queue), "--no-worker"
        )
        target = FuzzTarget(receiver, engine)
        try:
            yield target
        finally:
            target.client.close()
            receiver.stop()
            engine.dispose()
            redis.Redis.from_url(services.REDIS_URL).delete(queue)


def signed_headers(body: bytes, **extra: str) -> dict[str, str]:
    return {HEADER: sign(body, KEY), **extra}


# --- fuzzing ------------------------------------------------------------------------------


@FUZZ_SETTINGS
@given(delivery=hostile.deliveries())
def test_fuzz_any_delivery(fuzz: FuzzTarget, delivery: Delivery) -> None:
    fuzz.deliver(delivery)


@FUZZ_SETTINGS
@given(delivery=hostile.deliveries(hostile.envelopes() | hostile.raw_payloads()))
def test_fuzz_envelopes_and_raw_payloads(fuzz: FuzzTarget, delivery: Delivery) -> None:
    fuzz.deliver(delivery)


@FUZZ_SETTINGS
@given(delivery=hostile.deliveries(st.binary(max_size=2_000) | hostile.jsonish()))
def test_fuzz_bytes_and_broken_json(fuzz: FuzzTarget, delivery: Delivery) -> None:
    fuzz.deliver(delivery)


@FUZZ_SETTINGS
@given(data=st.data(), body=hostile.envelopes())
def test_fuzz_invalid_signatures_store_nothing(
    fuzz: FuzzTarget, data: st.DataObject, body: bytes
) -> None:
    delivery = data.draw(hostile.deliveries(st.just(body)))
    before = EventLog(fuzz.engine).count()
    response = fuzz.deliver(delivery)
    if not delivery.signature_valid:
        assert EventLog(fuzz.engine).count() == before, response.text
    else:
        grew = EventLog(fuzz.engine).count() - before
        assert grew == (1 if response.status_code == 202 else 0), response.text


@settings(FUZZ_SETTINGS, max_examples=300)
@given(data=st.data(), content=hostile.envelopes() | hostile.raw_payloads())
def test_fuzz_a_captured_delivery_reposted_any_way_makes_no_second_row(
    fuzz: FuzzTarget, data: st.DataObject, content: bytes
) -> None:
    """Whatever path, whitespace or padding a signed delivery is re-posted with, it is the
    same event: one row, and every repeat a duplicate of it."""
    body = compact(content)
    signature = sign(body, KEY).encode()
    # A path the client normalises away (`/webhooks/voucherify/..`) reaches no route: a 404
    # that stores nothing, which check_answer allows.
    first = fuzz.deliver(Delivery(data.draw(hostile.event_type_paths()), body, {HEADER: signature}))
    if first.status_code in (404, 405):
        first = fuzz.deliver(Delivery(WEBHOOK_PATH, body, {HEADER: signature}))
    assert first.status_code in (200, 202), first.text
    event_id = first.json()["event_id"]
    before = EventLog(fuzz.engine).count()
    for _ in range(3):
        path = data.draw(hostile.event_type_paths())
        again = fuzz.deliver(Delivery(path, data.draw(hostile.respaced(body)), {HEADER: signature}))
        if again.status_code in (404, 405):
            continue
        assert again.status_code == 200, again.text
        assert again.json() == {"status": "duplicate", "event_id": event_id}
    assert EventLog(fuzz.engine).count() == before


def test_after_the_fuzz_only_signed_bodies_are_stored_and_the_receiver_answers(
    fuzz: FuzzTarget,
) -> None:
    if fuzz.sent < 4 * FUZZ_EXAMPLES:
        pytest.skip("runs after the fuzz tests of this module")
    with fuzz.engine.connect() as conn:
        rows = conn.execute(select(events.c.id, events.c.body, events.c.headers)).all()
    unsigned = [row.id for row in rows if row.body not in fuzz.signed_bodies]
    assert unsigned == []
    assert not [row.id for row in rows if HEADER in row.headers]  # no signature is kept
    # Every 202 stored exactly one row, and nothing else stored any.
    assert len(rows) == fuzz.answers[202], fuzz.answers
    # Both paths were exercised in earnest.
    signed = fuzz.answers[202] + fuzz.answers[200]
    assert signed > fuzz.sent // 4 and fuzz.answers[401] > fuzz.sent // 4, fuzz.answers
    print(f"fuzz: {fuzz.sent} deliveries, answers {dict(fuzz.answers)}")
    assert fuzz.receiver.process.poll() is None
    assert fuzz.client.get("/healthz").status_code == 200
    assert fuzz.client.get("/readyz").status_code == 200


# --- named cases, on both backends --------------------------------------------------------


def deliver_signed(
    receiver: Receiver, body: bytes, path: str = "", **headers: str
) -> httpx.Response:
    return httpx.post(
        f"{receiver.webhook_url}{path}",
        content=body,
        headers=signed_headers(body, **headers),
        timeout=60,
    )


def assert_stored_once(event_log: EventLog, response: httpx.Response, body: bytes) -> str:
    assert response.status_code == 202, response.text
    event_id: str = response.json()["event_id"]
    stored = event_log.get(event_id)
    assert stored is not None
    assert stored["body"] == body
    return event_id


def test_deeply_nested_json_is_quarantined_not_a_crash(
    receiver: Receiver, event_log: EventLog
) -> None:
    body = b"[" * 100_000 + str(uuid.uuid4()).encode()

    response = deliver_signed(receiver, body)

    assert_stored_once(event_log, response, body)
    assert response.json()["status"] == "quarantined"
    assert httpx.get(f"{receiver.url}/healthz").status_code == 200


def test_deeply_nested_json_inside_an_envelope_is_stored(
    receiver: Receiver, event_log: EventLog
) -> None:
    payload = envelope(REDEMPTION)
    text = dumps(payload)
    body = text[:-1] + b', "deep": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"

    response = deliver_signed(receiver, body)

    assert_stored_once(event_log, response, body)
    assert response.json()["status"] in ("accepted", "quarantined")


def test_ten_thousand_digit_number_is_stored_and_answered_2xx(
    receiver: Receiver, event_log: EventLog
) -> None:
    payload = envelope(REDEMPTION)
    body = dumps(payload)[:-1] + b', "huge": ' + b"9" * 10_000 + b"}"

    response = deliver_signed(receiver, body)

    # json.loads refuses integers over 4,300 digits: the event is quarantined, not lost.
    assert_stored_once(event_log, response, body)
    assert response.json()["status"] in ("accepted", "quarantined")


def test_a_string_of_nearly_the_size_limit_is_accepted_and_stored_byte_for_byte(
    receiver: Receiver, event_log: EventLog
) -> None:
    payload = envelope(REDEMPTION)
    payload["data"]["note"] = "é" + "x" * (2 * 1024 * 1024 - 20_000)
    body = dumps(payload)

    response = deliver_signed(receiver, body)

    assert_stored_once(event_log, response, body)
    assert response.json()["status"] == "accepted"
    assert response.json()["event_id"] == payload["event"]["id"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (
            b'{"data": {}, "event": {"id": "ev_\xff\xfe", "type": "redemption.succeeded"}}',
            "quarantined",
        ),
        (
            b'{"data": {}, "event": {"id": "ev_\xc0\xaf", "type": "redemption.succeeded"}}',
            "quarantined",
        ),
        # json.loads reads bytes with surrogatepass: an encoded surrogate is JSON to it; the id,
        # not printable, is replaced by its hash.
        (
            b'{"data": {"redemption": {"id": "r_1"}}, '
            b'"event": {"id": "ev_\xed\xa0\x80", "type": "redemption.succeeded"}}',
            "accepted",
        ),
        (
            b'{"data": {}, "type": "redemption.succeeded", "event": {"id": "ev_", "type": "\xff"}}',
            "quarantined",
        ),
    ],
    ids=["invalid-bytes", "overlong", "encoded-surrogate", "in-the-type"],
)
def test_invalid_utf8_is_stored_and_answered_2xx(
    receiver: Receiver, event_log: EventLog, body: bytes, status: str
) -> None:
    body = body.replace(b"ev_", f"ev_{uuid.uuid4().hex[:8]}".encode())

    response = deliver_signed(receiver, body)

    assert_stored_once(event_log, response, body)
    assert response.json()["status"] == status


def test_duplicate_keys_give_one_deterministic_identity(
    receiver: Receiver, event_log: EventLog
) -> None:
    first_id, second_id = (f"ev_{uuid.uuid4().hex[:12]}" for _ in range(2))
    body = (
        b'{"data": {}, "type": "redemption.succeeded", '
        b'"event": {"id": "' + first_id.encode() + b'", "type": "redemption.succeeded"}, '
        b'"event": {"id": "' + second_id.encode() + b'", "type": "redemption.succeeded"}}'
    )
    before = event_log.count()

    first = deliver_signed(receiver, body)
    again = deliver_signed(receiver, body)

    assert_stored_once(event_log, first, body)
    assert first.json()["event_id"] in (first_id, second_id)
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate", "event_id": first.json()["event_id"]}
    assert event_log.count() == before + 1


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "\xe9/\xff"],
    ids=["none", "text", "form", "multipart", "latin1"],
)
def test_content_type_does_not_matter(
    receiver: Receiver, event_log: EventLog, content_type: str | None
) -> None:
    body = dumps(envelope(REDEMPTION))
    headers: dict[str, str | bytes] = {HEADER: sign(body, KEY)}
    if content_type is not None:
        headers["content-type"] = content_type.encode("latin-1")

    response = httpx.post(receiver.webhook_url, content=body, headers=headers, timeout=15)

    assert_stored_once(event_log, response, body)
    assert response.json()["status"] == "accepted"


def test_empty_body_signed_is_quarantined_and_unsigned_is_401(
    receiver: Receiver, event_log: EventLog
) -> None:
    unsigned = httpx.post(receiver.webhook_url, content=b"", timeout=15)
    response = deliver_signed(receiver, b"", f"/{REDEMPTION}")

    assert unsigned.status_code == 401
    assert response.status_code in (200, 202)  # the empty body may have come before
    assert response.json()["status"] in ("quarantined", "duplicate")
    stored = event_log.get(response.json()["event_id"])
    assert stored is not None and stored["body"] == b"" and stored["status"] == "quarantined"


@pytest.mark.parametrize(
    "signature",
    [
        "right-length-wrong",
        "upper-hex-of-other-body",
        "non-hex-right-length",
        "non-ascii-right-length",
        "one-short",
        "one-long",
    ],
)
def test_signature_of_the_right_shape_but_wrong_is_401(
    receiver: Receiver, event_log: EventLog, signature: str
) -> None:
    body = dumps(envelope(REDEMPTION))
    good = sign(body, KEY)
    value = {
        "right-length-wrong": good[:-1] + ("0" if good[-1] != "0" else "1"),
        "upper-hex-of-other-body": sign(body + b" ", b"other").upper(),
        "non-hex-right-length": "g" * 64,
        "non-ascii-right-length": good[:-1] + "\xe9",
        "one-short": good[:-1],
        "one-long": good + "0",
    }[signature]
    before = event_log.count()

    response = httpx.post(
        receiver.webhook_url,
        content=body,
        headers={HEADER: value.encode("latin-1")},
        timeout=15,
    )

    assert response.status_code == 401
    assert response.json()["status"] == "rejected"
    assert event_log.count() == before


def test_malformed_http_is_refused_and_the_receiver_stays_up(receiver: Receiver) -> None:
    body = b"{}"
    sig = sign(body, KEY).encode()
    requests = [
        b"POST /webhooks/voucherify/\xff\xfe HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
        + HEADER.encode()
        + b": "
        + sig
        + b"\r\n\r\n{}",
        b"POST /webhooks/voucherify/a b HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
        b"POST /webhooks/voucherify HTTP/1.1\r\nHost: x\r\nuser-agent: \x01\x7f\r\n"
        b"Content-Length: 2\r\n\r\n{}",
        b"POST /webhooks/voucherify HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n{}",
        b"POST /webhooks/voucherify HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
        b"Content-Length: 3\r\n\r\n{}",
        b"POST /webhooks/voucherify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\n{}\r\n0\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)),
    ]
    for request in requests:
        head = raw_exchange(receiver.port, request)
        status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else 0
        assert status < 500, (request, head)

    assert httpx.get(f"{receiver.url}/healthz", timeout=5).status_code == 200


def raw_exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        try:
            return sock.recv(4096)
        except (ConnectionResetError, TimeoutError):
            return b""


# --- the body limit, the body timeout, the secret -----------------------------------------


@pytest.fixture(scope="module")
def small_limit(database_url: str) -> Iterator[Receiver]:
    queue = f"vh-test-{uuid.uuid4().hex[:10]}"
    env = base_env(
        database_url, services.REDIS_URL, VOUCHERHOOK_QUEUE=queue, VOUCHERHOOK_MAX_BODY_BYTES="4096"
    )
    process = Receiver(env, "--no-worker")
    yield process
    process.stop()
    redis.Redis.from_url(services.REDIS_URL).delete(queue)


def padded_to(size: int) -> bytes:
    head = dumps(envelope(REDEMPTION, {"redemption": {"id": f"r_{uuid.uuid4().hex}"}}))
    body = head[:-1] + b', "pad": "'
    body += b"x" * (size - len(body) - 2) + b'"}'
    assert len(body) == size
    return body


def test_body_exactly_at_the_limit_is_accepted(small_limit: Receiver, event_log: EventLog) -> None:
    body = padded_to(4096)

    response = deliver_signed(small_limit, body)

    assert_stored_once(event_log, response, body)
    assert response.json()["status"] == "accepted"


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_one_byte_over_the_limit_is_413_and_not_stored(
    small_limit: Receiver, event_log: EventLog, framing: str
) -> None:
    body = padded_to(4097)
    before = event_log.count()
    content: bytes | Iterator[bytes] = body
    if framing == "chunked":
        content = iter([body[:1000], body[1000:]])  # no Content-Length: the stream is counted

    response = httpx.post(
        small_limit.webhook_url, content=content, headers=signed_headers(body), timeout=15
    )

    assert response.status_code == 413
    assert "VOUCHERHOOK_MAX_BODY_BYTES" in response.json()["error"]
    assert event_log.count() == before


@pytest.fixture(scope="module")
def short_body_timeout() -> Iterator[Receiver]:
    queue = f"vh-test-{uuid.uuid4().hex[:10]}"
    with services.postgres_database() as url:
        engine = make_engine(url)
        schema.upgrade(engine)
        engine.dispose()
        env = base_env(
            url, services.REDIS_URL, VOUCHERHOOK_QUEUE=queue, VOUCHERHOOK_BODY_TIMEOUT="2"
        )
        process = Receiver(env, "--no-worker")
        yield process
        process.stop()
    redis.Redis.from_url(services.REDIS_URL).delete(queue)


def test_a_slow_client_gets_408_and_others_are_served_meanwhile(
    short_body_timeout: Receiver,
) -> None:
    receiver = short_body_timeout
    answer: list[bytes] = []
    elapsed: list[float] = []

    def trickle() -> None:
        with socket.create_connection(("127.0.0.1", receiver.port), timeout=15) as sock:
            sock.sendall(
                b"POST /webhooks/voucherify HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                b"Content-Type: application/json\r\n" + f"{HEADER}: {'0' * 64}\r\n\r\n".encode()
                # A signature of the right shape: only then is the body read at all.
            )
            started = time.monotonic()
            sock.setblocking(False)
            for _ in range(40):  # 20 s of trickling at most
                try:
                    sock.send(b" ")
                except OSError:
                    break
                time.sleep(0.5)
                try:
                    data = sock.recv(4096)
                except BlockingIOError:
                    continue
                elapsed.append(time.monotonic() - started)
                # The headers and the body may come in separate packets: read to the end.
                sock.setblocking(True)
                try:
                    while chunk := sock.recv(4096):
                        data += chunk
                except ConnectionResetError:
                    # The refusal closes the connection; a trickled byte that arrived after
                    # it makes the server's side reset it. The answer was read before.
                    pass
                answer.append(data)
                break

    slow = threading.Thread(target=trickle)
    slow.start()
    served = []
    with httpx.Client(base_url=receiver.url, timeout=5) as client:
        while slow.is_alive():
            started = time.monotonic()
            body = dumps(envelope(REDEMPTION))
            response = client.post(WEBHOOK_PATH, content=body, headers=signed_headers(body))
            served.append((response.status_code, time.monotonic() - started))
            time.sleep(0.1)
    slow.join()

    assert answer and answer[0].startswith(b"HTTP/1.1 408"), answer
    _head, _, body = answer[0].partition(b"\r\n\r\n")
    assert not body or b"not received within 2s" in body, answer  # unless the reset cut it
    assert elapsed and elapsed[0] < 2 + 1.5
    assert len(served) >= 5
    assert all(code == 202 and seconds < 1 for code, seconds in served), served


@pytest.fixture
def one_body_budget(database_url: str) -> Iterator[Receiver]:
    """A receiver whose bytes for unverified bodies hold exactly one body of the largest size."""
    queue = f"vh-test-{uuid.uuid4().hex[:10]}"
    env = base_env(
        database_url,
        services.REDIS_URL,
        VOUCHERHOOK_QUEUE=queue,
        VOUCHERHOOK_MAX_BODY_BYTES="4096",
        VOUCHERHOOK_PREAUTH_BYTES="4096",
    )
    process = Receiver(env, "--no-worker")
    yield process
    process.stop()
    redis.Redis.from_url(services.REDIS_URL).delete(queue)


def test_a_client_that_leaves_mid_body_is_not_answered_and_releases_its_bytes(
    one_body_budget: Receiver, event_log: EventLog
) -> None:
    """Headers and part of a body, then the connection closes: nothing is stored, nothing is
    logged as an error, and the bytes it held are given back: the budget holds one body, so
    a signed body of the full size is accepted once the abandoned ones are gone."""
    receiver = one_body_budget
    before = event_log.count()
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", receiver.port), timeout=10) as sock:
            sock.sendall(
                b"POST /webhooks/voucherify HTTP/1.1\r\nHost: x\r\nContent-Length: 4096\r\n"
                + f"{HEADER}: {'0' * 64}\r\n\r\n".encode()
                + b"{" * 100
            )
    body = padded_to(4096)
    answers: list[int] = []

    def accepted() -> bool:
        response = httpx.post(receiver.webhook_url, content=body, headers=signed_headers(body))
        answers.append(response.status_code)
        return response.status_code == 202

    wait_for(accepted, 10, what="a full-size body accepted after the abandoned ones")
    assert set(answers) <= {202, 503}, answers  # busy only while one was still being closed
    assert event_log.count() == before + 1
    assert "Traceback" not in receiver.output()


DISTINCT_SECRET = "whsec_Hostile_Canary_7f3a9c2e51"


def test_the_secret_appears_in_no_log_line_or_answer(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    queue = f"vh-test-{uuid.uuid4().hex[:10]}"
    with services.postgres_database() as url:
        engine = make_engine(url)
        schema.upgrade(engine)
        engine.dispose()
        env = base_env(
            url,
            services.REDIS_URL,
            VOUCHERHOOK_QUEUE=queue,
            VOUCHERHOOK_LOG_LEVEL="DEBUG",
            VOUCHERHOOK_MAX_BODY_BYTES="2048",
            VOUCHERHOOK_BODY_TIMEOUT="1",
            VOUCHERIFY_WEBHOOK_SECRET=f"old_secret_canary_0001, {DISTINCT_SECRET}",
        )
        process = Receiver(env, "--no-worker")
        texts: list[str] = []
        try:
            key = DISTINCT_SECRET.encode()
            with httpx.Client(base_url=process.url, timeout=15) as client:
                body = dumps(envelope(REDEMPTION, {"redemption": {"id": "r_canary"}}))
                attempts = [
                    (WEBHOOK_PATH, body, {}),  # missing signature
                    (WEBHOOK_PATH, body, {HEADER: "0" * 64}),  # wrong
                    (WEBHOOK_PATH, body, {HEADER: sign(body, b"whsec_other")}),
                    (WEBHOOK_PATH, body, {HEADER: DISTINCT_SECRET}),  # the secret as signature
                    (WEBHOOK_PATH, b"x" * 3000, {HEADER: sign(b"x" * 3000, key)}),  # 413
                    (WEBHOOK_PATH, b"not json", {HEADER: sign(b"not json", key)}),  # quarantined
                    (f"{WEBHOOK_PATH}/%ff", b"[1]", {HEADER: sign(b"[1]", key)}),
                    (WEBHOOK_PATH, body, {HEADER: sign(body, key)}),  # accepted
                    (WEBHOOK_PATH, body, {HEADER: sign(body, key)}),  # duplicate
                    # A database error (see the NUL test below): must not leak either.
                    (f"{WEBHOOK_PATH}/a%00", b"{}", {HEADER: sign(b"{}", key)}),
                ]
                for path, content, headers in attempts:
                    response = client.post(path, content=content, headers=headers)
                    texts.append(f"{response.status_code} {response.headers} {response.text}")
                for path in ("/healthz", "/readyz", "/metrics", WEBHOOK_PATH, "/nowhere"):
                    response = client.get(path)
                    texts.append(f"{response.status_code} {response.headers} {response.text}")
            texts.append(
                raw_exchange(
                    process.port,
                    b"POST /webhooks/voucherify HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{",
                ).decode("latin-1")
            )
            time.sleep(1.5)  # the body timeout elapses, and its answer is logged
        finally:
            process.stop()
        texts.append(process.output())

        # A bad setting beside the secret: the one line naming it must not quote the secret.
        bad = dict(env, VOUCHERHOOK_MAX_BODY_BYTES="12")
        failed = subprocess.run(
            voucherhook("serve", "--no-worker"), env=bad, capture_output=True, text=True, timeout=60
        )
        assert failed.returncode != 0
        texts.append(failed.stdout + failed.stderr)
    redis.Redis.from_url(services.REDIS_URL).delete(queue)

    answered = {text.split(" ", 1)[0] for text in texts}
    assert {"401", "413", "202", "200", "404", "405"} <= answered, answered
    assert "delivery_unauthorized" in texts[-2] and "delivery_quarantined" in texts[-2]
    for text in texts:
        assert DISTINCT_SECRET not in text
        assert "Hostile_Canary" not in text
        assert "old_secret_canary" not in text


# --- once failures, kept as regressions ---


def test_signed_delivery_with_nul_in_the_url_type_is_stored_on_postgresql(
    fuzz: FuzzTarget,
) -> None:
    body = b'{"n": "' + uuid.uuid4().hex.encode() + b'"}'

    response = fuzz.client.post(
        f"{WEBHOOK_PATH}/redemption.succeeded%00", content=body, headers=signed_headers(body)
    )

    assert response.status_code == 202, response.text
    assert response.json()["status"] == "quarantined"


def test_one_bad_delivery_does_not_fail_the_others_in_its_batch(fuzz: FuzzTarget) -> None:
    async def round_of_deliveries() -> list[int]:
        async with httpx.AsyncClient(base_url=fuzz.receiver.url, timeout=20) as client:
            bodies = [dumps(envelope(REDEMPTION)) for _ in range(40)]
            valid = [
                client.post(WEBHOOK_PATH, content=body, headers=signed_headers(body))
                for body in bodies
            ]
            poison = b'{"poison": "' + uuid.uuid4().hex.encode() + b'"}'
            bad = client.post(
                f"{WEBHOOK_PATH}/x%00", content=poison, headers=signed_headers(poison)
            )
            answers = await asyncio.gather(*valid[:20], bad, *valid[20:])
            return [answer.status_code for index, answer in enumerate(answers) if index != 20]

    codes = [code for _ in range(3) for code in asyncio.run(round_of_deliveries())]

    assert set(codes) == {202}, Counter(codes)
