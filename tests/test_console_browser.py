"""The operator console in a real headless Chromium (Debian's `chromium`, driven by
Playwright), against `voucherhook serve` on the embedded default, as a newcomer runs it: the
console URL it prints logs in; an event is found by its voucher code, replayed after a fix
and seen processed, a whole failed set replayed, a stuck delivery released and re-sent; no
page opens without the token, and a form without the session's CSRF token changes nothing.

Every page visited is saved as a screenshot in `artifacts/console/` (gitignored)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from sqlalchemy import select, update

from models.db.engine import make_engine
from models.db.tables import events, notifications
from receiver.signature import HEADER, sign
from tests.support.console import PAGES
from tests.support.payloads import REPO, dumps
from tests.support.processes import SECRET, SINK_RATES, Receiver, base_env
from tests.support.services import wait_for
from tests.support.sinks import Sinks, running_sinks
from tests.unit import recorded
from tests.unit.recorded import REDEMPTION
from workers.templates import BUILT_IN

ARTIFACTS = REPO / "artifacts" / "console"
BROKEN = "Redemption {{ redemption_id }}: discount {{ savings }}.\n"  # `saved`, misspelt
CARD = "v_browser_card"


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("chromium is not installed: `apt-get install -y chromium` (.ci/run does)")
    return found


class Served:
    """`voucherhook serve` on the embedded default, with the console URL it printed."""

    def __init__(self, root: Path, sinks: Sinks) -> None:
        self.templates = root / "templates" / "webhook" / f"{REDEMPTION}.j2"
        self.templates.parent.mkdir(parents=True)
        self.templates.write_text(BROKEN)
        database = f"sqlite:///{root / 'voucherhook.db'}"
        env = base_env(
            database,
            None,
            SMTP_URL=sinks.smtp.url,
            NOTIFY_WEBHOOK_URL=sinks.webhook.url,
            VOUCHERHOOK_TEMPLATES_DIR=str(root / "templates"),
            # A template error is not a payload error: without this it is retried a while.
            VOUCHERHOOK_MAX_ATTEMPTS="1",
            VOUCHERHOOK_SWEEP_INTERVAL="0.5",
            **SINK_RATES,
        )
        del env["VOUCHERHOOK_ADMIN_TOKEN"]  # the embedded default makes one and prints it
        self.receiver = Receiver(env, cwd=root)
        self.engine = make_engine(database)
        wait_for(lambda: "open the console:" in self.receiver.output(), 30, what="console URL")
        found = re.search(r"open the console: (\S+)", self.receiver.output())
        assert found is not None
        self.login_url = found.group(1)
        self.base = self.receiver.url

    def post(self, event_type: str, payload: dict[str, Any]) -> str:
        body = dumps(payload)
        answer = httpx.post(
            f"{self.receiver.webhook_url}/{event_type}",
            content=body,
            headers={HEADER: sign(body, SECRET.encode())},
            timeout=30,
        )
        assert answer.status_code == 202, answer.text
        event_id: str = answer.json()["event_id"]
        return event_id

    def statuses(self, ids: list[str]) -> list[str]:
        with self.engine.connect() as conn:
            found = dict(conn.execute(select(events.c.id, events.c.status)).all())
        return [found.get(i, "missing") for i in ids]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Sinks]]:
    with running_sinks() as sinks:
        server = Served(tmp_path_factory.mktemp("console"), sinks)
        try:
            yield server, sinks
        finally:
            server.receiver.stop()
            server.engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium(),
            args=["--no-sandbox"],
            timeout=120_000,  # a loaded machine starts a browser slowly
        )
        yield launched
        launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    fresh = browser.new_context(viewport={"width": 1280, "height": 900})
    yield fresh
    fresh.close()


def shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5000, f"{path} is nearly empty"
    return path


def test_a_newcomer_opens_the_console_finds_replays_and_releases(
    served: tuple[Served, Sinks], context: BrowserContext
) -> None:
    server, sinks = served
    codes = [f"SUMMER-{n:03d}" for n in range(1, 4)]
    ids = []
    for n, code in enumerate(codes, start=1):
        data = recorded.redemption(f"r_browser_{n}", order_id=f"ord_browser_{n}", applied=500 * n)
        data["voucher"]["code"] = code
        ids.append(server.post(REDEMPTION, data))
    card_event = server.post(
        "voucher.loyalty_card.transaction.created",
        recorded.card_transaction("vtx_browser_1", CARD, "POINTS_ACCRUAL", 120, 120),
    )
    wait_for(
        lambda: server.statuses([*ids, card_event]) == ["failed"] * 3 + ["processed"],
        60,
        what="three failed redemptions and a processed card transaction",
    )

    page = context.new_page()
    # The URL `serve` printed logs in and lands on the overview, the token gone from the URL.
    page.goto(server.login_url)
    page.wait_for_url(f"{server.base}/console/")
    assert "token" not in page.url
    expect(page.locator("h1")).to_have_text("Overview")
    expect(page.locator(".tile", has_text="failed events")).to_contain_text("3")
    shot(page, "01-overview")

    # Find one event by its voucher code, open it: failed, with the template's error.
    page.click("header nav a:text-is('Events')")
    page.fill("input[name=q]", "SUMMER-002")
    page.click("button:has-text('Filter')")
    rows = page.locator("table.events tbody tr")
    expect(rows).to_have_count(1)
    shot(page, "02-events-search")
    rows.locator("a").first.click()
    expect(page.locator("h1")).to_have_text(ids[1])
    expect(page.locator(".status").first).to_have_text("failed")
    expect(page.locator("details.run[open]")).to_contain_text("'savings' is undefined")
    expect(page.locator("pre.body")).to_contain_text('"code": "SUMMER-002"')
    expect(page.locator("main")).to_contain_text("10.00 USD")  # the discount, as money
    shot(page, "03-event-failed")

    # Fix the template, replay it: a dry run first, then the confirmation.
    server.templates.write_text((BUILT_IN / "webhook" / f"{REDEMPTION}.j2").read_text())
    page.click("text=Replay…")
    expect(page.locator("main")).to_contain_text("A dry run: nothing has changed yet")
    expect(page.locator("table")).to_contain_text("notifications")
    assert server.statuses(ids) == ["failed"] * 3
    shot(page, "04-replay-preview")
    page.click("button:has-text('Replay 1 event(s)')")
    expect(page.locator("p.notice")).to_contain_text("re-run 1, unchanged 0, failed 0")
    shot(page, "05-replayed")
    page.locator("table a", has_text=ids[1]).click()
    expect(page.locator(".status").first).to_have_text("processed")
    assert server.statuses(ids) == ["failed", "processed", "failed"]

    # The rest of the failed set, from the filtered list.
    page.goto(f"{server.base}/console/events?status=failed")
    page.click("text=Replay these…")
    expect(page.locator("h1")).to_contain_text("Replay failed events")
    expect(page.locator("main")).to_contain_text("2 event(s) selected")
    page.click("button:has-text('Replay 2 event(s)')")
    expect(page.locator("p.notice")).to_contain_text("selected 2, re-run 2")
    assert server.statuses(ids) == ["processed"] * 3

    # A delivery a worker died sending: released, then re-sent once.
    wait_for(lambda: len(sinks.webhook.requests) >= 3, 30, what="the three webhooks sent")
    with server.engine.begin() as conn:
        seq = conn.scalar(
            select(notifications.c.seq).where(
                notifications.c.event_id == ids[0], notifications.c.channel == "webhook"
            )
        )
        conn.execute(
            update(notifications)
            .where(notifications.c.seq == seq)
            .values(status="sending", sent_at=None)
        )
    sent_before = len(sinks.webhook.requests)
    page.click("header nav a:text-is('Notifications')")
    page.click("a:has-text('sending (1)')")
    row = page.locator(f"tr#n{seq}")
    expect(row).to_contain_text("sending")
    shot(page, "06-notifications-sending")
    row.locator("button:has-text('Release')").click()
    expect(page.locator("p.notice")).to_contain_text(f"delivery {seq} released")
    page.click("a:has-text('failed (1)')")
    page.locator(f"tr#n{seq} button:has-text('Re-send')").click()
    expect(page.locator("p.notice")).to_contain_text(f"delivery {seq}: sent")
    assert len(sinks.webhook.requests) == sent_before + 1
    shot(page, "07-notifications-resent")

    # The books: the ledger, an account's postings back to their events, a card.
    page.click("header nav a:text-is('Ledger')")
    expect(page.locator("main")).to_contain_text("-210.00 USD")  # sales: three orders of 70.00
    shot(page, "08-ledger")
    page.click("a:text-is('sales')")
    expect(page.locator("table")).to_contain_text(ids[2])
    shot(page, "09-account")
    page.click("header nav a:text-is('Cards')")
    page.click(f"text={CARD}")
    expect(page.locator("dl.record")).to_contain_text("120 points")
    expect(page.locator("svg.chart")).to_be_visible()
    shot(page, "10-card")

    # On a phone.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{server.base}/console/")
    shot(page, "11-overview-phone")
    page.goto(f"{server.base}/console/event?id={ids[0]}")
    shot(page, "12-event-phone")

    page.set_viewport_size({"width": 1280, "height": 900})
    page.click("button:has-text('Log out')")
    page.wait_for_url(re.compile(r".*/console/login$"))
    page.goto(f"{server.base}/console/events")
    expect(page.locator("h1")).to_have_text("Log in")


def test_without_the_token_every_page_leads_to_the_login_form(
    served: tuple[Served, Sinks], context: BrowserContext
) -> None:
    server, _sinks = served
    page = context.new_page()
    for path in PAGES:
        page.goto(server.base + path)
        expect(page.locator("h1")).to_have_text("Log in")
        assert page.url.startswith(f"{server.base}/console/login?next="), page.url
        assert context.request.get(server.base + path).status == 401  # a script: 401
    shot(page, "00-login")
    page.fill("input[name=token]", "not-the-token-at-all")
    page.click("button:has-text('Log in')")
    expect(page.locator("p.notice")).to_contain_text("That is not the admin token")


def test_a_form_without_the_sessions_csrf_token_is_refused(
    served: tuple[Served, Sinks], context: BrowserContext
) -> None:
    server, _sinks = served
    page = context.new_page()
    page.goto(server.login_url)
    page.wait_for_url(f"{server.base}/console/")
    # The session cookie goes along (the request shares the browser's cookies), no CSRF token.
    refused = context.request.post(f"{server.base}/console/notifications/release", form={"id": "1"})
    assert refused.status == 403
    assert "CSRF token is missing or wrong: nothing was changed" in refused.text()
    with_token = context.request.post(
        f"{server.base}/console/replay", form={"status": "failed", "expected": "0", "csrf": "0"}
    )
    assert with_token.status == 403
