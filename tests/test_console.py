"""The operator console through Starlette's TestClient, on the real PostgreSQL database: who
gets in (the token, the session cookie, CSRF), what the pages show, the events filters and
their keyset pages, replay, release and re-send. `tests/test_console_browser.py` drives the
same console in a real browser."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import Engine, select, update
from starlette.applications import Starlette
from starlette.testclient import TestClient

from models.console import EventFilter, activity_series
from models.db import console_queries, notification_store
from models.db.tables import events, notifications
from models.notifications import Message
from tests.support.console import PAGES
from tests.support.processes import ADMIN, ADMIN_TOKEN
from tests.support.processing import CONFIG, make_processor, store
from tests.support.sinks import HttpSink
from tests.unit import recorded
from workers.console.app import Activity, routes
from workers.console.auth import COOKIE, SESSION_SECONDS, Auth
from workers.handlers import BY_NAME
from workers.processing import Processor, RetryPolicy
from workers.settings import Settings

LOOPBACK = "http://127.0.0.1"
ACTIONS = [
    "/console/replay",
    "/console/notifications/release",
    "/console/notifications/resend",
    "/console/logout",
]


def settings_for(engine: Engine, **extra: str) -> Settings:
    values = {
        "DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "VOUCHERHOOK_ADMIN_TOKEN": ADMIN_TOKEN,
        **extra,
    }
    return Settings.model_validate(values)


def client_for(settings: Settings, engine: Engine, base: str = LOOPBACK) -> TestClient:
    return TestClient(Starlette(routes=routes(settings, engine)), base_url=base)


@pytest.fixture
def console(db: Engine) -> Iterator[TestClient]:
    with client_for(settings_for(db), db) as client:
        yield client


def log_in(client: TestClient) -> str:
    """Log in through the form; the CSRF token of the session."""
    answer = client.post("/console/login", data={"token": ADMIN_TOKEN, "next": "/console/"})
    assert answer.status_code == 200, answer.text  # followed the redirect to the overview
    return csrf_of(answer.text)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert found, "no CSRF field in the page"
    return found.group(1)


def redemption(n: int, *, code: str | None = None) -> dict[str, Any]:
    data = recorded.redemption(f"r_console_{n}", order_id=f"ord_console_{n}", applied=100 * n)
    data["voucher"]["code"] = code or f"SUMMER-{n:03d}"
    return data


def stored(db: Engine, count: int, *, process: bool = True) -> list[str]:
    ids = [store(db, recorded.REDEMPTION, redemption(n)) for n in range(1, count + 1)]
    if process:
        make_processor(db).process(ids)
    return ids


def sending_delivery(db: Engine, event_id: str, recipient: str = "NOTIFY_WEBHOOK_URL") -> int:
    """A webhook delivery a worker claimed and died sending: left `sending`."""
    message = Message("webhook", recipient, "", f"about {event_id}", f"src_{event_id}")
    with db.begin() as conn:
        (seq,) = notification_store.plan(conn, [(event_id, message)], datetime.now(UTC))
        assert notification_store.claim(conn, seq) is not None
    return seq


def status_of(db: Engine, seq: int) -> str:
    with db.connect() as conn:
        found: str = conn.scalar(select(notifications.c.status).where(notifications.c.seq == seq))
        return found


# Who gets in ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_a_page_answers_401_without_the_token_and_sends_a_browser_to_the_login_form(
    console: TestClient, path: str
) -> None:
    bare = console.get(path)
    assert bare.status_code == 401
    assert bare.headers["www-authenticate"] == "Bearer"
    assert "VOUCHERHOOK_ADMIN_TOKEN" in bare.json()["error"]
    wrong = console.get(path, headers={"Authorization": "Bearer " + "x" * len(ADMIN_TOKEN)})
    assert wrong.status_code == 401
    browser = console.get(path, headers={"Accept": "text/html"}, follow_redirects=False)
    assert browser.status_code == 303
    target = urlsplit(browser.headers["location"])
    assert target.path == "/console/login"
    assert parse_qs(target.query)["next"] == [path]
    assert console.get(path, headers=ADMIN).status_code in (200, 400, 404)


@pytest.mark.parametrize("path", ACTIONS)
def test_an_action_answers_401_without_the_token(console: TestClient, path: str) -> None:
    assert console.post(path, data={"id": "1"}).status_code == 401


def test_the_console_is_off_without_an_admin_token(db: Engine) -> None:
    settings = Settings.model_validate(
        {"DATABASE_URL": db.url.render_as_string(hide_password=False)}
    )
    with client_for(settings, db) as client:
        for path in ["/console/", "/console/login", "/console/events"]:
            answer = client.get(path, headers=ADMIN)
            assert answer.status_code == 403
            assert "set VOUCHERHOOK_ADMIN_TOKEN" in answer.json()["error"]
        assert client.post("/console/login", data={"token": "anything"}).status_code == 403


def test_logging_in_sets_an_http_only_strict_cookie_for_the_console_only(
    console: TestClient,
) -> None:
    answer = console.post(
        "/console/login",
        data={"token": ADMIN_TOKEN, "next": "/console/events?status=failed"},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/events?status=failed"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/console" in cookie
    assert f"Max-Age={SESSION_SECONDS}" in cookie
    assert "Secure" not in cookie  # plain http to loopback: a browser keeps it only so
    assert ADMIN_TOKEN not in cookie
    page = console.get("/console/events")
    assert page.status_code == 200
    assert "<h1>Events</h1>" in page.text


def test_over_https_the_cookie_is_secure_and_plain_http_elsewhere_is_refused(db: Engine) -> None:
    settings = settings_for(db)
    with client_for(settings, db, "https://console.example") as client:
        answer = client.post("/console/login", data={"token": ADMIN_TOKEN}, follow_redirects=False)
        assert answer.status_code == 303
        assert "Secure" in answer.headers["set-cookie"]
    with client_for(settings, db, "http://console.example") as client:
        answer = client.post("/console/login", data={"token": ADMIN_TOKEN}, follow_redirects=False)
        assert answer.status_code == 400
        assert "set-cookie" not in answer.headers
        assert "only over https, or over http on this machine" in answer.text


def test_a_wrong_token_at_the_login_form_is_refused_and_sets_no_cookie(console: TestClient) -> None:
    answer = console.post("/console/login", data={"token": ADMIN_TOKEN[:-1] + "?"})
    assert answer.status_code == 401
    assert "set-cookie" not in answer.headers
    assert "That is not the admin token" in answer.text
    assert console.get("/console/").status_code == 401


def test_after_logging_in_the_console_sends_nobody_to_another_site(console: TestClient) -> None:
    for target in ["https://evil.example/", "//evil.example/x", "/elsewhere", "/console\\@evil"]:
        answer = console.post(
            "/console/login", data={"token": ADMIN_TOKEN, "next": target}, follow_redirects=False
        )
        assert answer.headers["location"] == "/console/", target


def test_a_login_form_larger_than_4_kib_is_refused_unread(console: TestClient) -> None:
    answer = console.post("/console/login", content=b"token=" + b"a" * 10_000)
    assert answer.status_code == 413
    assert "set-cookie" not in answer.headers


def test_a_forged_or_expired_session_cookie_opens_nothing(console: TestClient) -> None:
    other = Auth("another_token_0123456789").new_session()
    expired = Auth(ADMIN_TOKEN).new_session(now=time.time() - SESSION_SECONDS - 60)
    valid = Auth(ADMIN_TOKEN).new_session()
    issued, nonce, mac = valid.split(".")
    tampered = f"{int(issued) + 1}.{nonce}.{mac}"
    for value in [other, expired, tampered, "garbage", "a.b.c"]:
        console.cookies.set(COOKIE, value, domain="127.0.0.1", path="/console")
        assert console.get("/console/").status_code == 401, value
    console.cookies.set(COOKIE, valid, domain="127.0.0.1", path="/console")
    assert console.get("/console/").status_code == 200


def test_an_action_without_the_sessions_csrf_token_changes_nothing(
    console: TestClient, db: Engine
) -> None:
    (event_id,) = stored(db, 1)
    seq = sending_delivery(db, event_id)
    csrf = log_in(console)
    for form in [{"id": str(seq)}, {"id": str(seq), "csrf": "0" * 64}]:
        refused = console.post("/console/notifications/release", data=form)
        assert refused.status_code == 403
        assert "CSRF token is missing or wrong: nothing was changed" in refused.text
        assert status_of(db, seq) == "sending"
    with client_for(settings_for(db), db) as other:  # another session's token is refused too
        foreign = log_in(other)
    assert foreign != csrf
    refused = console.post("/console/notifications/release", data={"id": str(seq), "csrf": foreign})
    assert refused.status_code == 403
    assert status_of(db, seq) == "sending"
    done = console.post("/console/notifications/release", data={"id": str(seq), "csrf": csrf})
    assert done.status_code == 200
    assert f"delivery {seq} released" in done.text
    assert status_of(db, seq) == "failed"


def test_a_script_with_the_bearer_token_needs_no_csrf_token(
    console: TestClient, db: Engine
) -> None:
    (event_id,) = stored(db, 1)
    seq = sending_delivery(db, event_id)
    answer = console.post("/console/notifications/release", data={"id": str(seq)}, headers=ADMIN)
    assert answer.status_code == 200
    assert status_of(db, seq) == "failed"


def test_every_answer_carries_the_security_headers(console: TestClient) -> None:
    for answer in [console.get("/console/login"), console.get("/console/events")]:
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert answer.headers["cache-control"] == "no-store"


# Pages ----------------------------------------------------------------------------------------


def test_the_event_page_shows_body_runs_postings_as_money_and_notifications(
    console: TestClient, db: Engine
) -> None:
    (event_id,) = stored(db, 1)
    page = console.get("/console/event", params={"id": event_id}, headers=ADMIN)
    assert page.status_code == 200
    text = page.text
    assert "&#34;code&#34;: &#34;SUMMER-001&#34;" in text  # pretty-printed, escaped
    assert "<strong>ledger</strong>" in text and "status-done" in text
    assert "redemption:r_console_1:discount" in text
    assert "1.00 USD" in text and "-1.00 USD" in text  # 100 minor units
    assert "order:ord_console_1:gross" in text and "70.00 USD" in text
    missing = console.get("/console/event", params={"id": "nope"}, headers=ADMIN)
    assert missing.status_code == 404 and "no event &#39;nope&#39;" in missing.text


def test_the_ledger_drills_down_to_an_accounts_postings_and_back_to_events(
    console: TestClient, db: Engine
) -> None:
    ids = stored(db, 3)
    ledger = console.get("/console/ledger", headers=ADMIN).text
    assert "-210.00 USD" in ledger  # sales: three orders of 70.00
    account = console.get("/console/ledger/account", params={"name": "sales"}, headers=ADMIN)
    assert account.status_code == 200
    for event_id in ids:
        assert f"/console/event?id={event_id.replace(':', '%3A')}" in account.text


def test_a_loyalty_card_shows_its_balance_over_time_and_its_movements(
    console: TestClient, db: Engine
) -> None:
    card = "v_console_card"
    moves = [("vtx_1", "POINTS_ACCRUAL", 100, 100), ("vtx_2", "POINTS_ACCRUAL", 50, 150)]
    ids = [
        store(
            db,
            "voucher.loyalty_card.transaction.created",
            recorded.card_transaction(
                vtx, card, kind, change, after, created_at=f"2024-07-2{n}T10:00:00.000Z"
            ),
        )
        for n, (vtx, kind, change, after) in enumerate(moves, start=4)
    ]
    make_processor(db).process(ids)
    listing = console.get("/console/cards", headers=ADMIN).text
    assert card in listing
    page = console.get("/console/card", params={"id": card}, headers=ADMIN)
    assert page.status_code == 200
    assert "150 points" in page.text
    assert "<svg" in page.text and "series-balance" in page.text
    assert "transaction:vtx_1" in page.text and "transaction:vtx_2" in page.text
    assert "(the books agree)" in page.text


def test_the_overview_counts_what_needs_attention(console: TestClient, db: Engine) -> None:
    ids = stored(db, 3)
    sending_delivery(db, ids[0])
    with db.begin() as conn:
        conn.execute(update(events).where(events.c.id == ids[1]).values(status="failed"))
    page = console.get("/console/", headers=ADMIN).text
    assert re.search(r"<strong>1</strong> failed events", page)
    assert re.search(r"<strong>1</strong> deliveries stuck", page)
    assert page.count("<svg") == 2
    assert "3 received, 2 processed, 1 failed" in page


def test_between_two_whole_counts_the_activity_counts_the_new_events(db: Engine) -> None:
    chart = Activity(60, 180, "events per minute")
    stored(db, 3)
    with db.connect() as conn:
        _window, counted = chart.counts(conn, datetime.now(UTC))
        assert sum(n for _b, _s, n in counted) == 3
        stored(db, 5)  # two more, received after that count
        later = datetime.now(UTC) + timedelta(seconds=1)
        window, counted = chart.counts(conn, later)
        whole = console_queries.activity(conn, window)
    assert activity_series(counted, window) == activity_series(whole, window)
    assert activity_series(counted, window)[1]["received"] == 5


# Filters and pages ----------------------------------------------------------------------------


def listed(page: str) -> list[str]:
    return re.findall(r'<a class="mono" href="/console/event\?id=[^"]*">([^<]*)</a>', page)


def test_the_search_finds_an_event_by_voucher_code_order_or_customer(
    console: TestClient, db: Engine
) -> None:
    ids = stored(db, 12)
    found = console.get("/console/events", params={"q": "SUMMER-007"}, headers=ADMIN).text
    assert listed(found) == [ids[6]]
    by_order = console.get("/console/events", params={"q": "ord_console_11"}, headers=ADMIN)
    assert listed(by_order.text) == [ids[10]]
    by_customer = console.get(
        "/console/events", params={"q": "cust_1g637SqVZnkdPNdAIZ7Ra879"}, headers=ADMIN
    )
    assert listed(by_customer.text) == list(reversed(ids))
    by_id = console.get("/console/events", params={"q": ids[3]}, headers=ADMIN)
    assert listed(by_id.text) == [ids[3]]


def test_the_filters_by_type_status_and_time_narrow_the_list(
    console: TestClient, db: Engine
) -> None:
    ids = stored(db, 6)
    with db.begin() as conn:
        conn.execute(update(events).where(events.c.id.in_(ids[:2])).values(status="failed"))
        conn.execute(
            update(events)
            .where(events.c.id == ids[0])
            .values(received_at=datetime.now(UTC) - timedelta(days=2))
        )
    get = lambda **params: listed(console.get("/console/events", params=params, headers=ADMIN).text)  # noqa: E731
    assert get(status="failed") == [ids[1], ids[0]]
    assert get(type=recorded.REDEMPTION, status="processed") == list(reversed(ids[2:]))
    since = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert get(status="failed", since=since) == [ids[1]]
    assert get(until=since) == [ids[0]]
    assert get(type="voucher.deleted") == []
    bad = console.get("/console/events", params={"since": "yesterday"}, headers=ADMIN)
    assert bad.status_code == 400 and "since &#39;yesterday&#39; is not a date or time" in bad.text
    bad = console.get("/console/events", params={"status": "lost"}, headers=ADMIN)
    assert bad.status_code == 400 and "status &#39;lost&#39; is not one of" in bad.text


def test_following_the_pages_shows_every_event_once_newest_first_and_back(
    console: TestClient, db: Engine
) -> None:
    ids = stored(db, 120, process=False)
    seen: list[str] = []
    pages = 0
    path: str | None = "/console/events"
    newer_links = []
    while path:
        page = console.get(path, headers=ADMIN).text
        seen += listed(page)
        pages += 1
        older = re.search(r'rel="next" href="([^"]*)"', page)
        newer = re.search(r'rel="prev" href="([^"]*)"', page)
        newer_links.append(newer.group(1).replace("&amp;", "&") if newer else None)
        path = older.group(1).replace("&amp;", "&") if older else None
    assert seen == list(reversed(ids))
    assert pages == 3
    assert newer_links[0] is None
    back = console.get(newer_links[2], headers=ADMIN).text  # the last page's "newer"
    assert listed(back) == list(reversed(ids))[50:100]


def test_a_search_reads_a_bounded_stretch_and_continues_where_it_stopped(db: Engine) -> None:
    ids = stored(db, 30, process=False)
    chosen = EventFilter(q="SUMMER-00")  # SUMMER-001 … SUMMER-009
    found: list[str] = []
    before = None
    stretches = 0
    with db.connect() as conn:
        while True:
            page = console_queries.events_page(conn, chosen, before=before, limit=4, scan=5)
            found += [row.id for row in page.rows]
            stretches += 1
            if page.older is None:
                break
            before = page.older
    assert found == list(reversed(ids[:9]))
    assert stretches >= 30 // 5  # never more than 5 bodies read per request


# Replay, release, re-send ---------------------------------------------------------------------


def test_replaying_failed_events_previews_then_runs_them_on_confirmation(
    console: TestClient, db: Engine
) -> None:
    ids = stored(db, 4, process=False)
    once = RetryPolicy(max_attempts=1)
    Processor(db, CONFIG, once, {**BY_NAME, "ledger": _broken}).process(ids[:3])
    make_processor(db).process(ids[3:])
    assert _statuses(db, ids) == ["failed"] * 3 + ["processed"]
    csrf = log_in(console)
    preview = console.get("/console/replay", params={"status": "failed"})
    assert preview.status_code == 200
    assert "3</strong> event(s) selected" in preview.text
    assert "voucherhook replay --status failed --dry-run" in preview.text
    assert re.search(r"<td>ledger[^<]*</td>", preview.text)
    stale = console.post(
        "/console/replay", data={"status": "failed", "expected": "2", "csrf": csrf}
    )
    assert stale.status_code == 409 and "the selection changed since the preview" in stale.text
    assert _statuses(db, ids[:3]) == ["failed"] * 3
    done = console.post("/console/replay", data={"status": "failed", "expected": "3", "csrf": csrf})
    assert done.status_code == 200
    assert "selected 3, re-run 3, unchanged 0, failed 0" in done.text
    assert _statuses(db, ids) == ["processed"] * 4


def test_a_replay_must_choose_its_events(console: TestClient) -> None:
    for params in [{}, {"q": "SUMMER"}]:
        answer = console.get("/console/replay", params=params, headers=ADMIN)
        assert answer.status_code == 400


def test_resending_a_released_delivery_sends_it_once(db: Engine, webhook_sink: HttpSink) -> None:
    settings = settings_for(db, NOTIFY_WEBHOOK_URL=webhook_sink.url)
    (event_id,) = stored(db, 1)
    seq = sending_delivery(db, event_id)
    with client_for(settings, db) as client:
        refused = client.post("/console/notifications/resend", data={"id": str(seq)}, headers=ADMIN)
        assert refused.status_code == 409 and "only a failed delivery is sent again" in refused.text
        client.post("/console/notifications/release", data={"id": str(seq)}, headers=ADMIN)
        sent = client.post("/console/notifications/resend", data={"id": str(seq)}, headers=ADMIN)
        assert sent.status_code == 200 and f"delivery {seq}: sent" in sent.text
        again = client.post("/console/notifications/resend", data={"id": str(seq)}, headers=ADMIN)
        assert again.status_code == 409
    assert status_of(db, seq) == "sent"
    assert [r["text"] for r in webhook_sink.requests] == [f"about {event_id}"]


def test_the_notifications_page_lists_deliveries_by_status(console: TestClient, db: Engine) -> None:
    ids = stored(db, 2)
    stuck = sending_delivery(db, ids[0])
    page = console.get("/console/notifications", params={"status": "sending"}, headers=ADMIN)
    assert f'id="n{stuck}"' in page.text and "Release</button>" in page.text
    assert "sending (1)" in page.text
    assert console.get("/console/notifications?status=x", headers=ADMIN).status_code == 400


def _broken(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError("the ledger is down for the test")


def _statuses(db: Engine, ids: list[str]) -> list[str]:
    with db.connect() as conn:
        found = dict(conn.execute(select(events.c.id, events.c.status)).all())
    return [found[i] for i in ids]
