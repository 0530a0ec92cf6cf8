"""The front door against a real `voucherhook serve`: every attack of docs/security.md.

Before the signature is known good, work is linear in the body and memory is bounded; a
captured signed delivery re-posted any way makes no second row and no second effect; the URL
cannot re-type an event; the operators' endpoints need the admin token.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from models import metric_labels
from models.db.tables import events, ledger_transactions, notifications
from receiver.signature import HEADER, compact, sign
from tests.conftest import EventLog
from tests.support.payloads import REDEMPTION, REWARD_REDEMPTION, dumps, envelope, example_bytes
from tests.support.processes import (
    ADMIN,
    SECRET,
    Receiver,
    Worker,
    base_env,
    post,
    voucherhook,
    worker_env,
)
from tests.support.services import wait_for
from tests.support.sinks import HttpSink, SmtpSink

KEY = SECRET.encode()
ROLLBACK = "redemption.rollback.succeeded"
WRONG = "0" * 64  # a signature of the right shape that matches nothing


# --- work before authentication is linear and bounded ---------------------------------------


PATHOLOGICAL = {
    # Quadratic for a backtracking compaction: a string that never closes, full of quotes.
    "escaped quotes, unclosed": b'"' + b'\\"' * 900_000,
    "quotes only": b'"' * 1_900_000,
    "backslashes": b'"' + b"\\" * 1_900_000,
    "whitespace": b" \t\r\n" * 450_000,
    "nested": b"[" * 1_900_000,
}


def test_pathological_bodies_are_refused_while_healthz_answers_within_a_second(
    receiver: Receiver,
) -> None:
    answers: dict[str, int] = {}

    def send_all() -> None:
        for name, body in PATHOLOGICAL.items():
            answers[name] = post(receiver.webhook_url, body, WRONG).status_code
            # Signed, the same bodies are stored (quarantined) just as fast.
            answers[f"{name}, signed"] = post(
                receiver.webhook_url, body, sign(body, KEY)
            ).status_code

    sender = threading.Thread(target=send_all)
    sender.start()
    health: list[float] = []
    with httpx.Client(base_url=receiver.url, timeout=10) as client:
        while sender.is_alive():
            started = time.monotonic()
            assert client.get("/healthz").status_code == 200
            health.append(time.monotonic() - started)
            time.sleep(0.05)
    sender.join()

    assert {name: code for name, code in answers.items() if "signed" not in name} == {
        name: 401 for name in PATHOLOGICAL
    }
    assert {code for name, code in answers.items() if "signed" in name} <= {200, 202}
    assert len(health) >= 3
    assert max(health) < 1.0, sorted(health)[-5:]


def test_a_request_without_a_signature_is_refused_unread_and_its_connection_closed(
    receiver: Receiver,
) -> None:
    # A declared 1 GB body with no signature: the answer comes without a byte of it.
    import socket

    with socket.create_connection(("127.0.0.1", receiver.port), timeout=10) as sock:
        sock.sendall(
            b"POST /webhooks/voucherify HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n"
        )
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 401"), answer
    assert b"connection: close" in answer.lower()
    assert b"signature missing" in answer


def test_a_declared_oversized_body_is_413_before_it_is_read(receiver: Receiver) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", receiver.port), timeout=10) as sock:
        sock.sendall(
            b"POST /webhooks/voucherify HTTP/1.1\r\nHost: x\r\n"
            + f"{HEADER}: {WRONG}\r\nContent-Length: 1000000000\r\n\r\n".encode()
        )
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert b"VOUCHERHOOK_MAX_BODY_BYTES" in answer


def peak_rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    assert match, status
    return int(match.group(1))


def test_concurrent_large_unverified_bodies_hold_bounded_memory(
    postgres_url: str, redis_url: str, queue: str
) -> None:
    """300 clients at once, each sending 1.9 MiB (under the limit, no declared length) under a
    signature of the right shape, then holding the request open for three seconds before it
    ends: unbounded, the receiver holds 570 MiB at once. The budget for bodies not yet verified
    (32 MiB by default) keeps its peak within a few tens of MiB; the rest are told to retry."""
    receiver = Receiver(base_env(postgres_url, redis_url, VOUCHERHOOK_QUEUE=queue), "--no-worker")
    chunk = b"%x\r\n" % 65_536 + b"x" * 65_536 + b"\r\n"
    head = (
        b"POST /webhooks/voucherify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        + f"{HEADER}: {WRONG}\r\n\r\n".encode()
    )

    async def one() -> str:
        """Sends 1.9 MiB, waits, ends the body, unless answered first; the status it got."""
        reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
        answer = asyncio.create_task(reader.readline())
        try:
            writer.write(head)
            for _ in range(30):
                if answer.done():
                    break
                writer.write(chunk)
                await writer.drain()
            await asyncio.wait([answer], timeout=3)
            if not answer.done():
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except ConnectionError:
            pass  # answered and closed while we were still sending
        try:
            line = await asyncio.wait_for(answer, 60)
        except (ConnectionError, TimeoutError):
            line = b""
        writer.close()
        return line.split()[1].decode() if line.startswith(b"HTTP/1.1 ") else "cut off"

    async def flood() -> Counter[str]:
        return Counter(await asyncio.gather(*(one() for _ in range(300))))

    try:
        before = peak_rss_kb(receiver.pid)
        outcomes = asyncio.run(flood())
        after = peak_rss_kb(receiver.pid)
        assert httpx.get(f"{receiver.url}/healthz", timeout=5).status_code == 200
    finally:
        receiver.stop()

    growth_mib = (after - before) / 1024
    print(f"peak RSS {before // 1024} -> {after // 1024} MiB; answers {dict(outcomes)}")
    # A client still sending when its refusal comes may see the connection reset before it
    # reads the answer (TCP discards it): "cut off" are refusals too; on a loaded machine,
    # dozens of them. Nothing was accepted, some were read and refused, some turned away.
    assert set(outcomes) <= {"401", "503", "cut off"}, outcomes
    assert outcomes["401"] > 0 and outcomes["503"] > 0, outcomes
    assert growth_mib < 100, f"peak RSS grew by {growth_mib:.0f} MiB: {dict(outcomes)}"


# --- one signed delivery, one row, one set of effects ---------------------------------------


def variants(body: bytes) -> Iterator[tuple[str, bytes]]:
    """The same signed content with whitespace added, padded, or pretty-printed."""
    yield "leading and trailing whitespace", b" \n\t" + body + b"\r\n "
    yield "padded", body + b" " * 100_000
    yield "pretty-printed", json.dumps(json.loads(body), indent=4, ensure_ascii=False).encode()


PATHS = ["", "/x1", "/x2", "/a/b", f"/{REDEMPTION}", f"/{REWARD_REDEMPTION}", f"/{ROLLBACK}"]


@pytest.mark.parametrize("kind", ["raw rollback", "envelope", "not JSON", "unknown raw type"])
def test_a_captured_signed_delivery_reposted_any_way_makes_no_second_row(
    receiver: Receiver, event_log: EventLog, kind: str
) -> None:
    event_log.clear()
    if kind == "raw rollback":
        body, path = compact(example_bytes(ROLLBACK)), f"/{ROLLBACK}"
    elif kind == "envelope":
        body, path = compact(dumps(envelope(REDEMPTION))), ""
    elif kind == "not JSON":
        body, path = b'{"redemption":{"id":"r_1"},', f"/{REDEMPTION}"
    else:
        body, path = b'{"voucher":{"id":"v_1"}}', "/voucher.updated"
    signature = sign(body, KEY)
    first = post(receiver.webhook_url + path, body, signature)
    assert first.status_code == 202, first.text
    event_id = first.json()["event_id"]

    repeats = [(f"path {p!r}", p, body) for p in PATHS]
    if kind != "not JSON":
        repeats += [(name, p, variant) for name, variant in variants(body) for p in PATHS[:3]]
    else:
        repeats += [("padded", p, body + b"   \n") for p in PATHS[:3]]
    for name, repeat_path, repeat_body in repeats:
        again = post(receiver.webhook_url + repeat_path, repeat_body, signature)
        assert again.status_code == 200, (name, again.text)
        assert again.json() == {"status": "duplicate", "event_id": event_id}, name
    assert event_log.count() == 1


def test_a_rollback_retyped_by_the_url_books_nothing_and_sends_nothing(
    postgres_url: str,
    redis_url: str,
    queue: str,
    pg_log: EventLog,
    smtp: SmtpSink,
    webhook_sink: HttpSink,
) -> None:
    env = worker_env(
        postgres_url, redis_url, queue, SMTP_URL=smtp.url, NOTIFY_WEBHOOK_URL=webhook_sink.url
    )
    receiver, worker = Receiver(env, "--no-worker"), Worker(env)
    try:
        rollback = example_bytes(ROLLBACK)
        retyped = post(f"{receiver.webhook_url}/{REDEMPTION}", rollback, sign(rollback, KEY))
        # A genuine redemption beside it shows the worker books and notifies meanwhile.
        genuine = dumps(envelope(REDEMPTION))
        accepted = post(receiver.webhook_url, genuine, sign(genuine, KEY))
        assert accepted.status_code == 202, accepted.text
        genuine_id = accepted.json()["event_id"]
        wait_for(
            lambda: (
                pg_log.statuses().get(genuine_id) == "processed"
                and len(smtp.messages) >= 1
                and len(webhook_sink.requests) >= 1
            ),
            60,
            what="the genuine redemption processed and notified",
        )
        time.sleep(2)  # time for anything else the worker would do
    finally:
        worker.stop()
        receiver.stop()

    assert retyped.status_code == 202, retyped.text
    answer = retyped.json()
    assert answer["status"] == "quarantined"
    assert "the body is a redemption.rollback.succeeded payload" in answer["reason"]
    quarantined = answer["event_id"]
    assert pg_log.statuses()[quarantined] == "quarantined"
    with pg_log.engine.connect() as conn:
        booked_by = set(conn.scalars(select(ledger_transactions.c.event_id)))
        notified_for = set(conn.scalars(select(notifications.c.event_id)))
    assert booked_by == {genuine_id}
    assert notified_for == {genuine_id}
    assert len(smtp.messages) == 1 and len(webhook_sink.requests) == 1


# --- the operators' endpoints -----------------------------------------------------------------


def test_metrics_need_the_admin_token(receiver: Receiver) -> None:
    url = f"{receiver.url}/metrics"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}):
        refused = httpx.get(url, headers=headers)
        assert refused.status_code == 401, headers
        assert refused.headers["www-authenticate"] == "Bearer"
        assert "VOUCHERHOOK_ADMIN_TOKEN" in refused.json()["error"]
        assert "voucherhook_" not in refused.text
    allowed = httpx.get(url, headers=ADMIN)
    assert allowed.status_code == 200
    assert "voucherhook_events" in allowed.text


def test_without_an_admin_token_metrics_are_off_and_say_how_to_turn_them_on(
    postgres_url: str, redis_url: str, queue: str
) -> None:
    env = base_env(postgres_url, redis_url, VOUCHERHOOK_QUEUE=queue)
    del env["VOUCHERHOOK_ADMIN_TOKEN"]
    receiver = Receiver(env, "--no-worker")
    try:
        off = httpx.get(f"{receiver.url}/metrics", headers=ADMIN)
    finally:
        receiver.stop()
    assert off.status_code == 403
    assert off.json()["error"].startswith("/metrics is off: set VOUCHERHOOK_ADMIN_TOKEN")


def test_the_embedded_default_prints_a_token_that_opens_metrics(tmp_path: Path) -> None:
    env = base_env(f"sqlite:///{tmp_path / 'voucherhook.db'}", None)
    del env["VOUCHERHOOK_ADMIN_TOKEN"]
    receiver = Receiver(env, "--no-worker", cwd=tmp_path)
    try:
        wait_for(lambda: "Bearer " in receiver.output(), 10, what="the printed token")
        token = re.search(r"Bearer ([A-Za-z0-9_\-]+)", receiver.output())
        assert token
        opened = httpx.get(
            f"{receiver.url}/metrics", headers={"Authorization": f"Bearer {token.group(1)}"}
        )
        refused = httpx.get(f"{receiver.url}/metrics")
    finally:
        receiver.stop()
    assert opened.status_code == 200
    assert refused.status_code == 401


def test_refused_deliveries_cost_one_log_line_per_interval(
    postgres_url: str, redis_url: str, queue: str
) -> None:
    env = base_env(postgres_url, redis_url, VOUCHERHOOK_QUEUE=queue, VOUCHERHOOK_LOG_LEVEL="INFO")
    receiver = Receiver(env, "--no-worker")
    try:
        with httpx.Client() as client:
            for n in range(300):
                client.post(receiver.webhook_url, content=b"{}", headers={HEADER: f"{n:064x}"})
        time.sleep(0.5)
        logged = receiver.output().count("delivery_unauthorized")
    finally:
        receiver.stop()
    assert 1 <= logged <= 2, logged


def test_scrapes_and_readiness_flood_cost_the_database_little(
    receiver: Receiver, event_log: EventLog
) -> None:
    """200 concurrent scrapes and 200 readiness checks: readiness stays 200 throughout."""

    async def flood() -> list[int]:
        async with httpx.AsyncClient(base_url=receiver.url, timeout=30) as client:
            scrapes = [client.get("/metrics", headers=ADMIN) for _ in range(200)]
            probes = [client.get("/readyz") for _ in range(200)]
            answers = await asyncio.gather(*scrapes, *probes)
        return [answer.status_code for answer in answers]

    assert set(asyncio.run(flood())) == {200}


def test_counts_in_metrics_match_the_stored_events(receiver: Receiver, event_log: EventLog) -> None:
    event_log.clear()
    for _ in range(3):
        body = dumps(envelope(REDEMPTION))
        assert post(receiver.webhook_url, body, sign(body, KEY)).status_code == 202
    body = b"not json"
    assert post(receiver.webhook_url, body, sign(body, KEY)).status_code == 202
    time.sleep(1.1)  # the scrape is at most a second old
    text = httpx.get(f"{receiver.url}/metrics", headers=ADMIN).text
    with event_log.engine.connect() as conn:
        stored = conn.execute(
            select(events.c.type, events.c.status, func.count()).group_by(
                events.c.type, events.c.status
            )
        ).all()
    # A type without handlers, and no type at all, are counted as `other`: a sender never
    # makes a new series.
    for (label, status), count in metric_labels.fold_counts(stored).items():
        line = f'voucherhook_events{{status="{status}",type="{label}"}} {count}.0'
        assert line in text, (line, text)
    assert 'type="other"' in text


def test_a_delivery_quarantined_for_its_url_is_booked_once_retyped_by_an_operator(
    postgres_url: str, redis_url: str, queue: str, pg_log: EventLog
) -> None:
    env = worker_env(postgres_url, redis_url, queue)
    receiver, worker = Receiver(env, "--no-worker"), Worker(env)
    try:
        body = example_bytes(REDEMPTION)
        sent = post(f"{receiver.webhook_url}/{REWARD_REDEMPTION}", body, sign(body, KEY))
        assert sent.json()["status"] == "quarantined", sent.text
        event_id = sent.json()["event_id"]

        def retype(event_type: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                voucherhook("events", "retype", event_id, event_type),
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )

        wrong = retype(ROLLBACK)
        right = retype(REDEMPTION)
        again = retype(REDEMPTION)
        wait_for(lambda: pg_log.statuses().get(event_id) == "processed", 60, what="processed")
    finally:
        worker.stop()
        receiver.stop()

    assert wrong.returncode == 1
    assert wrong.stderr.startswith(f"voucherhook: event {event_id} cannot be {ROLLBACK}: ")
    assert right.returncode == 0, right.stderr
    assert right.stdout.startswith(f"event {event_id} is now {REDEMPTION}, pending")
    assert again.returncode == 1
    assert "is processed, not quarantined" in again.stderr or "is pending" in again.stderr
    with pg_log.engine.connect() as conn:
        assert set(conn.scalars(select(ledger_transactions.c.event_id))) == {event_id}


def test_retype_finds_a_hash_identity_made_over_the_compact_form(
    receiver: Receiver, event_log: EventLog, database_url: str, redis_url: str
) -> None:
    """Voucherify signs the compact form; a pretty body is stored as it came, under the hash
    of the form its signature matched. Retype recognises it all the same."""
    compact_body = b'{"voucher":{"id":"v_retype"}}'
    pretty = json.dumps(json.loads(compact_body), indent=2).encode()
    sent = post(f"{receiver.webhook_url}/{REDEMPTION}", pretty, sign(compact_body, KEY))
    assert sent.json()["status"] == "quarantined", sent.text
    event_id = sent.json()["event_id"]
    retyped = subprocess.run(
        voucherhook("events", "retype", event_id, "voucher.updated"),
        env=base_env(database_url, redis_url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert retyped.returncode == 0, retyped.stderr
    assert retyped.stdout.startswith(f"event {event_id} is now voucher.updated, ignored")
    assert event_log.statuses()[event_id] == "ignored"
