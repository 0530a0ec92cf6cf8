"""Stored text is printed as it is: an event type, an error, a body or an account name with
square brackets (rich's markup) is shown literally by every command, never interpreted."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from models.db import notification_store
from models.db.eventlog import NewEvent, insert_new
from models.notifications import Message
from tests.support.processes import base_env, voucherhook
from tests.support.processing import process, store
from tests.unit import recorded
from tests.unit.recorded import REDEMPTION

TYPE = "x[/bold]"
ERROR = "[red]boom[/red] [/]"
BODY = '{"note": "[bold]loud[/bold] [/]"}'
CAMPAIGN = "camp_[/bold]"
CARD = "v_[/]card"
NOTE_ERROR = "[/bold] refused [i]"


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(voucherhook(*args), env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def bracketed(db: Engine, postgres_url: str, redis_url: str) -> dict[str, str]:
    """An event, a notification, a ledger account and a loyalty card whose stored text holds
    markup; the environment of a command that reads them."""
    event = NewEvent(
        id="ev_[bold]1[/bold]",
        type=TYPE,
        status="failed",
        received_at=datetime.now(UTC),
        body=BODY.encode(),
        headers={"x-note": "[/]"},
        remote_addr=None,
        delivery_id=None,
        error=ERROR,
    )
    with db.begin() as conn:
        insert_new(conn, [event])
        [seq] = notification_store.plan(
            conn, [(event.id, Message("email", "a@x.io", "s", "b", "src_[/]"))], event.received_at
        )
        notification_store.mark_failed(conn, seq, NOTE_ERROR, retry_at=None)
    paid = recorded.redemption(
        "r_markup",
        order_id="ord_markup",
        campaign_id=CAMPAIGN,
        kind="loyalty",
        voucher_id=CARD,
        points=40,
    )
    process(db, store(db, REDEMPTION, paid))
    return base_env(postgres_url, redis_url)


def test_events_list_shows_a_type_and_an_error_with_markup_literally(
    bracketed: dict[str, str],
) -> None:
    listed = cli(bracketed, "events", "list", "--status", "failed")
    assert listed.returncode == 0, listed.stderr
    assert TYPE in listed.stdout
    assert "ev_[bold]1[/bold]" in listed.stdout
    assert ERROR in listed.stdout


def test_events_show_prints_the_type_error_headers_and_body_literally(
    bracketed: dict[str, str],
) -> None:
    shown = cli(bracketed, "events", "show", "ev_[bold]1[/bold]")
    assert shown.returncode == 0, shown.stderr
    for text in (TYPE, ERROR, BODY, "x-note: [/]", NOTE_ERROR):
        assert text in shown.stdout


def test_notifications_list_shows_an_error_with_markup_literally(
    bracketed: dict[str, str],
) -> None:
    listed = cli(bracketed, "notifications", "list")
    assert listed.returncode == 0, listed.stderr
    assert NOTE_ERROR in listed.stdout
    assert "ev_[bold]1[/bold]" in listed.stdout


def test_ledger_balances_and_loyalty_show_ids_with_markup_literally(
    bracketed: dict[str, str],
) -> None:
    balances = cli(bracketed, "ledger", "balances")
    assert balances.returncode == 0, balances.stderr
    assert f"discount:{CAMPAIGN}" in balances.stdout
    assert f"loyalty:card:{CARD}" in balances.stdout
    card = cli(bracketed, "loyalty", CARD)
    assert card.returncode == 0, card.stderr
    assert CARD in card.stdout
    as_json = cli(bracketed, "loyalty", CARD, "--json")
    assert json.loads(as_json.stdout)["card_id"] == CARD
