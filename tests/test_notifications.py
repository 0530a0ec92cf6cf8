"""Notifications against real peers (an SMTP server and an HTTP endpoint on loopback) and real
PostgreSQL: one plain address or no email, a Message-ID stable across attempts, the webhook's
URL read at send time and printed nowhere, and failed sends that name no address."""

from __future__ import annotations

import json
import re
import socketserver
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from models.db import notification_budget, notification_store, schema
from models.db.engine import make_engine
from models.db.tables import notification_budget as budget_table
from models.notifications import NOT_ONE_ADDRESS, WEBHOOK_RECIPIENT, Message
from tests.support.processes import base_env, voucherhook
from tests.support.processing import notifications, store
from tests.support.services import free_port, postgres_database
from tests.support.sinks import HttpSink, SmtpSink
from tests.unit import recorded
from tests.unit.recorded import REDEMPTION
from workers.handlers.base import Config
from workers.notification_channels import EmailSender, SendError, WebhookSender, message_id
from workers.notification_sending import _claim, deliver_all
from workers.processing import Processor, RetryPolicy
from workers.templates import environment

POLICY = RetryPolicy(max_attempts=3, backoff=0.01, backoff_max=0.01)
SOURCE = "r_0e2500291ae016adea"  # the seed redemption's id


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(voucherhook(*args), env=env, capture_output=True, text=True, timeout=120)


def plan(engine: Engine, data: dict[str, Any], *, webhook_url: str | None) -> tuple[str, list[int]]:
    """Store and process one redemption as a worker does; its id and planned deliveries."""
    event_id = store(engine, REDEMPTION, data)
    config = Config("USD", environment(None), email=True, webhook=webhook_url is not None)
    follow = Processor(engine, config, POLICY).process([event_id])
    return event_id, follow.notifications


def stored_text(engine: Engine, event_id: str) -> str:
    """Every stored field of the event's deliveries, as one text to search."""
    return json.dumps([dict(row._mapping) for row in notifications(engine, event_id)], default=str)


# One plain address ------------------------------------------------------------------------------


def test_a_customer_email_of_two_addresses_reaches_nobody_and_events_show_says_why(
    db: Engine, postgres_url: str, smtp: SmtpSink, webhook_sink: HttpSink
) -> None:
    shown = {}
    for n, email in enumerate(["a@x.io, b@y.io", "a@x.io\nb@y.io", "Eve <a@x.io>"]):
        data = recorded.redemption(f"r_two_{n}", order_id=f"ord_two_{n}")
        data["customer"]["email"] = email
        event_id, planned = plan(db, data, webhook_url=webhook_sink.url)
        senders = {
            "email": EmailSender(smtp.url, "voucherhook@localhost"),
            "webhook": WebhookSender(webhook_sink.url),
        }
        assert [d.result for d in deliver_all(db, senders, planned, POLICY)] == ["sent"]
        assert [row.channel for row in notifications(db, event_id)] == ["webhook"]
        shown[event_id] = cli(base_env(postgres_url, None), "events", "show", event_id)

    assert smtp.messages == []
    assert len(webhook_sink.requests) == 3
    for result in shown.values():
        assert result.returncode == 0, result.stderr
        assert f"notifications: done after 1 attempt(s) — 1 notification(s); {NOT_ONE_ADDRESS}" in (
            result.stdout
        )


def test_a_delivery_planned_to_several_addresses_fails_at_once_and_is_never_sent(
    db: Engine, smtp: SmtpSink
) -> None:
    """A row planned before addresses were checked: the sender refuses it, for good."""
    event_id = store(db, REDEMPTION, recorded.seed_redemption())
    planned = Message("email", "a@x.io,\r\n b@y.io", "Subject", "Body", SOURCE)
    with db.begin() as conn:
        ids = notification_store.plan(conn, [(event_id, planned)], datetime.now(UTC))

    senders = {"email": EmailSender(smtp.url, "voucherhook@localhost")}
    [done] = deliver_all(db, senders, ids, POLICY)

    assert done.result == "failed"
    [row] = notifications(db, event_id)
    assert (row.status, row.attempts) == ("failed", 1)
    assert row.error.startswith("Undeliverable: not sent: the recipient is not one plain address")
    assert "a@x.io" not in row.error and "b@y.io" not in row.error
    assert smtp.messages == [] and smtp.refused_messages == []


# A stable Message-ID ----------------------------------------------------------------------------


def test_the_message_id_comes_from_the_delivery_key_and_is_the_same_on_every_attempt(
    db: Engine,
) -> None:
    smtp = SmtpSink(refuse=1)
    smtp.start()
    try:
        event_id, planned = plan(db, recorded.seed_redemption(), webhook_url=None)
        sender = EmailSender(smtp.url, "Shop <orders@shop.example>")
        first = deliver_all(db, {"email": sender}, planned, POLICY)
        again = deliver_all(db, {"email": sender}, planned, POLICY)
        # Another process, the same key: the same Message-ID.
        other = EmailSender(smtp.url, "Shop <orders@shop.example>")
        other.send("jane@jane.io", "Subject", "Body", f"{SOURCE}:email")
        other.close()
    finally:
        smtp.stop()

    assert [d.result for d in first + again] == ["retry", "sent"]
    expected = message_id(f"{SOURCE}:email", "shop.example")
    assert expected.startswith("<") and expected.endswith("@shop.example>")
    assert len(expected) == len("<@shop.example>") + 32
    [refused] = smtp.refused_messages
    assert [m["Message-ID"] for m in (refused, *smtp.messages)] == [expected] * 3
    assert [row.attempts for row in notifications(db, event_id)] == [2]


# The webhook's URL, read at send time and printed nowhere ---------------------------------------


def test_webhook_deliveries_name_the_setting_post_to_the_current_url_and_print_it_nowhere(
    db: Engine, postgres_url: str, smtp: SmtpSink, webhook_sink: HttpSink
) -> None:
    """Planned while NOTIFY_WEBHOOK_URL pointed nowhere (a worker path, `replay`), then sent by
    `replay --notify` after the URL was rotated to the sink."""
    old_url = f"http://127.0.0.1:{free_port()}/services/T000/B000/old-secret-token"
    event_id = store(db, REDEMPTION, recorded.seed_redemption())
    env = base_env(postgres_url, None, SMTP_URL=smtp.url)

    failing = cli({**env, "NOTIFY_WEBHOOK_URL": old_url}, "replay", "--event-id", event_id)
    [row] = [r for r in notifications(db, event_id) if r.channel == "webhook"]
    rotated = {**env, "NOTIFY_WEBHOOK_URL": webhook_sink.url}
    sent = cli(rotated, "replay", "--notify", "--event-id", event_id)
    outputs = [
        cli(rotated, "notifications", "list"),
        cli(rotated, "notifications", "list", "--json"),
        cli(rotated, "events", "show", event_id),
        cli(rotated, "events", "show", event_id, "--json"),
    ]

    assert failing.returncode == 0, failing.stderr
    assert row.recipient == WEBHOOK_RECIPIENT
    assert row.error.startswith("SendError: the operations webhook could not be reached (")
    assert row.error.endswith("): check NOTIFY_WEBHOOK_URL and the network")
    assert sent.returncode == 0, sent.stderr
    assert "notifications sent 1" in sent.stdout
    assert len(webhook_sink.requests) == 1
    assert webhook_sink.keys == {f"{SOURCE}:webhook": 1}
    [listed] = [n for n in json.loads(outputs[1].stdout) if n["channel"] == "webhook"]
    assert (listed["recipient"], listed["status"]) == (WEBHOOK_RECIPIENT, "sent")
    assert f"webhook to {WEBHOOK_RECIPIENT}: sent" in outputs[2].stdout
    printed = [failing.stdout, failing.stderr, sent.stdout, sent.stderr]
    printed += [r.stdout + r.stderr for r in outputs]
    for url in (old_url, webhook_sink.url):
        for secret in (url, "old-secret-token", "/hooks/ops"):
            assert not any(secret in text for text in printed), secret
            assert secret not in stored_text(db, event_id)


def test_a_webhook_unreachable_or_answering_an_error_is_reported_without_its_url() -> None:
    closed = f"http://127.0.0.1:{free_port()}/services/T000/B000/secret-token"
    with pytest.raises(SendError) as unreachable:
        WebhookSender(closed).send(WEBHOOK_RECIPIENT, "", "text", "key")
    gone = HttpSink(status=404)
    gone.start()
    try:
        with pytest.raises(SendError) as refused:
            WebhookSender(gone.url).send(WEBHOOK_RECIPIENT, "", "text", "key")
    finally:
        gone.stop()

    assert str(unreachable.value).startswith(
        "the operations webhook could not be reached (ConnectionRefusedError: "
    )
    assert str(unreachable.value).endswith("check NOTIFY_WEBHOOK_URL and the network")
    assert str(refused.value) == (
        "the operations webhook answered 404 Not Found: check NOTIFY_WEBHOOK_URL"
    )
    for error in (str(unreachable.value), str(refused.value)):
        assert "127.0.0.1" not in error and "/hooks" not in error and "secret" not in error


def test_a_webhook_is_posted_through_the_proxy_the_environment_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HTTP_PROXY (or ALL_PROXY) set and the host not in NO_PROXY: the post goes to the proxy,
    which is asked for the webhook's URL."""
    proxy = HttpSink()
    proxy.start()
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
    try:
        sender = WebhookSender("http://hooks.example.invalid/services/T000/B000/secret-token")
        sender.send(WEBHOOK_RECIPIENT, "", "through the proxy", "key-proxy")
        monkeypatch.setenv("NO_PROXY", "hooks.example.invalid")
        with pytest.raises(SendError, match="could not be reached"):  # no proxy, no such host
            WebhookSender("http://hooks.example.invalid/x").send(WEBHOOK_RECIPIENT, "", "t", "k")
    finally:
        proxy.stop()
    assert proxy.requests == [{"text": "through the proxy"}]
    assert proxy.keys == {"key-proxy": 1}


def test_a_webhook_connection_closed_by_the_server_while_idle_is_not_used_again() -> None:
    """The sender keeps connections alive between posts; one the server closed while it was
    idle (its keep-alive timeout, without a `Connection: close`) is replaced before the next
    post, which arrives instead of failing. Each carries the sender's name, and credentials
    written in the URL as HTTP Basic authentication."""
    bodies: list[Any] = []
    heads: list[bytes] = []

    class AnswerOnceThenClose(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            data = b""
            while b"\r\n\r\n" not in data:
                data += self.request.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            found = re.search(rb"(?i)content-length: *(\d+)", head)
            assert found is not None
            while len(body) < int(found.group(1)):
                body += self.request.recv(65536)
            bodies.append(json.loads(body))
            heads.append(head)
            self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), AnswerOnceThenClose)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        sender = WebhookSender(f"http://ops:s%40cret@127.0.0.1:{port}/hooks/ops?channel=x")
        for n in range(3):
            sender.send(WEBHOOK_RECIPIENT, "", f"post {n}", f"key-{n}")
            time.sleep(0.1)  # idle: the server's close arrives
        sender.close()
    finally:
        server.shutdown()
        server.server_close()
    assert bodies == [{"text": f"post {n}"} for n in range(3)]
    for head in heads:
        assert head.startswith(b"POST /hooks/ops?channel=x HTTP/1.1\r\n")
        assert b"\r\nAuthorization: Basic b3BzOnNAY3JldA==" in head  # ops:s@cret
        assert b"\r\nUser-Agent: voucherhook/" in head


# Failed sends name no address --------------------------------------------------------------------


def test_a_recipient_refused_by_the_smtp_server_is_not_named_in_the_error_or_the_logs(
    db: Engine, postgres_url: str
) -> None:
    smtp = SmtpSink(refuse_to={"jane@jane.io"})
    smtp.start()
    try:
        event_id = store(db, REDEMPTION, recorded.seed_redemption())
        env = base_env(postgres_url, None, SMTP_URL=smtp.url)
        replayed = cli(env, "replay", "--event-id", event_id)
        listed = cli(env, "notifications", "list", "--json")
        with pytest.raises(SendError) as direct:
            sender = EmailSender(smtp.url, "voucherhook@localhost")
            sender.send("jane@jane.io", "Subject", "Body", f"{SOURCE}:email")
    finally:
        smtp.stop()

    assert smtp.messages == []
    assert replayed.returncode == 0, replayed.stderr
    assert "1 notification(s) refused" in replayed.stdout  # the failure is told...
    assert "jane@jane.io" not in replayed.stderr + replayed.stdout  # ...without the address
    [row] = notifications(db, event_id)
    assert (row.channel, row.status) == ("email", "pending")  # to be retried
    assert row.error == (
        "SendError: the SMTP server refused the recipient (550 5.1.1 (address withheld): "
        "Recipient address rejected: User unknown): check the customer's email in Voucherify"
    )
    assert str(direct.value) == row.error.removeprefix("SendError: ")
    [note] = json.loads(listed.stdout)
    assert note["error"] == row.error


# Claiming ---------------------------------------------------------------------------------------


def test_a_claim_takes_at_most_its_limit_on_a_table_postgresql_has_no_statistics_of() -> None:
    """On a table never analysed PostgreSQL runs a `LIMIT … SKIP LOCKED` subquery of an UPDATE
    again for every row the update looks at, each run taking the next rows: a fresh database,
    since the tests' shared one has statistics once autovacuum has been by."""
    with postgres_database() as url:
        engine = make_engine(url)
        try:
            schema.upgrade(engine)
            event_id = store(engine, REDEMPTION, recorded.redemption("r_claim_limit"))
            now = datetime.now(UTC)
            messages = [
                (event_id, Message("webhook", WEBHOOK_RECIPIENT, "s", "b", f"r_claim_{n}"))
                for n in range(100)
            ]
            with engine.begin() as conn:
                planned = notification_store.plan(conn, messages, now)
            with engine.begin() as conn:
                first = notification_store.claim_due(conn, "webhook", 16, due_by=now)
            with engine.begin() as conn:
                second = notification_store.claim_due(conn, "webhook", 16, ids=planned[:20])
            with engine.connect() as conn:
                states = notification_store.statuses(conn, planned)
        finally:
            engine.dispose()

    assert [row.seq for row in first] == planned[:16]
    assert [row.seq for row in second] == planned[16:20]
    assert sorted(seq for seq, status in states.items() if status == "sending") == planned[:20]


def test_a_claim_takes_only_the_slots_the_budget_has_and_puts_back_the_rest_as_it_was(
    db: Engine,
) -> None:
    """Another process has spent the budget to 0.2 s ahead: at 4 a second, one slot is left
    within the quarter of a second a sender may wait, of the two a free budget gives. The
    delivery claimed beyond it is back to `pending`, its attempt not counted, in the same
    transaction; the others were never touched."""
    event_id = store(db, REDEMPTION, recorded.redemption("r_claim_budget"))
    messages = [
        (event_id, Message("webhook", WEBHOOK_RECIPIENT, "s", "b", f"r_budget_{n}"))
        for n in range(5)
    ]
    with db.begin() as conn:
        planned = notification_store.plan(conn, messages, datetime.now(UTC))
        notification_budget.lock(conn, "webhook")
        ahead = datetime.now(UTC) + timedelta(seconds=0.2)
        notification_budget.spend(conn, "webhook", ahead)
    with db.begin() as conn:
        claim = _claim(conn, "webhook", 4.0, 32, None)
    with db.connect() as conn:
        rows = {row.seq: row for row in notification_store.for_event(conn, event_id)}
        next_at = conn.scalar(select(budget_table.c.next_at))

    assert [row.seq for row in claim.rows] == planned[:1]
    assert claim.slots == [ahead]
    assert claim.more
    assert [rows[seq].status for seq in planned] == ["sending"] + ["pending"] * 4
    assert [rows[seq].attempts for seq in planned] == [1, 0, 0, 0, 0]
    assert next_at == ahead + timedelta(seconds=0.25)
