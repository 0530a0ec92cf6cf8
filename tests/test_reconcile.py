"""`voucherhook reconcile` against a fake Voucherify API (`tests.support.fake_voucherify`, a
real server on loopback): what the webhooks missed is stored once, as its webhook would have
been, and booked by the handlers; a webhook arriving later changes nothing; a second run stores
nothing; a differing amount is reported and not booked; credentials and API faults get one
clear line."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from models.db.engine import make_engine
from models.db.tables import events, reconcile_runs
from receiver.state_metrics import DatabaseCollector
from tests.conftest import EventLog
from tests.support.fake_voucherify import FakeVoucherify
from tests.support.processes import Worker, base_env
from tests.support.processing import balances, ledger_keys, nonzero, process, store
from tests.support.services import wait_for
from tests.test_console import client_for, log_in, settings_for
from tests.test_operations import cli
from tests.unit import recorded
from tests.unit.recorded import REDEMPTION, Json

pytestmark = pytest.mark.timeout(300)

WINDOW = ("--since", "2024-01-01T00:00:00Z", "--until", "2025-01-01T00:00:00Z")
ROLLBACK = "redemption.rollback.succeeded"
LOYALTY = "voucher.loyalty_card.transaction.created"


def api_redemption(payload: Json) -> Json:
    """The object `GET /v1/redemptions` lists for the redemption this webhook payload tells."""
    item = copy.deepcopy(payload["redemption"])
    item.update(
        object="redemption",
        result="SUCCESS",
        status="SUCCEEDED",
        date=payload["created_at"],
        order=copy.deepcopy(payload["order"]),
        customer=copy.deepcopy(payload["customer"]),
        voucher=copy.deepcopy(payload.get("voucher")),
        promotion_tier=copy.deepcopy(payload.get("promotion_tier")),
    )
    return item


def api_rollback(payload: Json) -> Json:
    item = copy.deepcopy(payload["redemption_rollback"])
    item.update(customer=copy.deepcopy(payload.get("customer")), date=payload["created_at"])
    return item


@pytest.fixture
def fake() -> Iterator[FakeVoucherify]:
    with FakeVoucherify() as api:
        yield api


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    EventLog(engine).clear()
    yield engine
    engine.dispose()


def env_for(database_url: str, fake: FakeVoucherify, **extra: str) -> dict[str, str]:
    return base_env(
        database_url,
        None,
        VOUCHERIFY_API_URL=fake.url,
        VOUCHERIFY_APP_ID=fake.app_id,
        VOUCHERIFY_APP_TOKEN=fake.app_token,
        **extra,
    )


def reconcile(env: dict[str, str], *args: str) -> dict[str, Any]:
    result = cli(env, "reconcile", *WINDOW, "--json", *args)
    assert result.returncode == 0, result.stderr
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def test_a_missing_redemption_is_booked_once_and_its_late_webhook_changes_nothing(
    database_url: str, engine: Engine, fake: FakeVoucherify
) -> None:
    payload = recorded.redemption("r_rec_missing", order_id="ord_rec_missing", applied=1200)
    fake.redemptions.append(api_redemption(payload))
    env = env_for(database_url, fake)

    first = reconcile(env)
    keys = ledger_keys(engine)
    books = nonzero(balances(engine))
    second = reconcile(env)
    # The webhook arrives late: raw (the same identity, a duplicate), then in an envelope.
    raw_id = store(engine, REDEMPTION, payload)
    late = store(engine, REDEMPTION, recorded.envelope(REDEMPTION, payload))
    process(engine, raw_id, late)

    assert (first["missing"], first["here"], first["differing"]) == (1, 0, 0)
    assert first["stored"] == ["redemption.succeeded:r_rec_missing"]
    assert {"order:ord_rec_missing:gross", "redemption:r_rec_missing:discount"} <= keys
    assert books["order:ord_rec_missing", "USD"] == 7000 - 1200
    with engine.connect() as conn:
        stored = conn.execute(select(events).where(events.c.id == first["stored"][0])).one()
    assert stored.status == "processed"
    assert stored.headers == {"x-voucherhook-origin": "voucherify-api redemptions"}
    assert (second["missing"], second["here"], second["stored"]) == (0, 1, [])
    assert raw_id == first["stored"][0]
    assert ledger_keys(engine) == keys
    assert nonzero(balances(engine)) == books


def test_a_missing_rollback_reverses_its_original(
    database_url: str, engine: Engine, fake: FakeVoucherify
) -> None:
    original = recorded.redemption("r_rec_undone", order_id="ord_rec_undone", applied=900)
    process(engine, store(engine, REDEMPTION, original))
    before = balances(engine)[("order:ord_rec_undone", "USD")]
    undone = recorded.rollback(original, "rr_rec_undone")
    fake.redemptions += [api_redemption(original), api_rollback(undone)]

    found = reconcile(env_for(database_url, fake))

    assert (found["here"], found["missing"]) == (1, 1)
    assert found["stored"] == ["redemption.rollback.succeeded:rr_rec_undone"]
    assert any(key.startswith("rollback:rr_rec_undone") for key in ledger_keys(engine))
    # The discount is taken back: the order owes its gross again.
    assert (before, balances(engine)[("order:ord_rec_undone", "USD")]) == (7000 - 900, 7000)


def test_a_differing_amount_is_reported_with_both_sides_and_not_booked(
    database_url: str, engine: Engine, fake: FakeVoucherify
) -> None:
    payload = recorded.redemption("r_rec_differs", order_id="ord_rec_differs", applied=1000)
    process(engine, store(engine, REDEMPTION, payload))
    books = nonzero(balances(engine))
    told = api_redemption(payload)
    told["order"]["total_applied_discount_amount"] = 1500
    fake.redemptions.append(told)

    found = reconcile(env_for(database_url, fake))
    shown = cli(env_for(database_url, fake), "reconcile", *WINDOW)

    assert (found["differing"], found["missing"], found["stored"]) == (1, 0, [])
    assert found["differences"] == [
        {
            "id": "r_rec_differs",
            "event_type": REDEMPTION,
            "voucherify": ["ord_rec_differs", 1500],
            "stored": ["ord_rec_differs", 1000],
            "event_id": "redemption.succeeded:r_rec_differs",
        }
    ]
    assert nonzero(balances(engine)) == books
    assert "r_rec_differs: Voucherify (ord_rec_differs, 1500)" in shown.stdout


def test_a_missing_card_transaction_is_booked_and_the_card_s_drift_found(
    database_url: str, engine: Engine, fake: FakeVoucherify
) -> None:
    told = recorded.card_transaction(
        "vtx_rec_1", "v_rec_card", "POINTS_ACCRUAL", 120, 120, created_at="2024-07-01T10:00:00Z"
    )
    item = copy.deepcopy(told["transaction"])
    item["campaign_id"] = "camp_rec_loyalty"
    fake.transactions["camp_rec_loyalty"] = [item]
    # Voucherify's card has 30 more points than its transactions tell: one never listed.
    voucher = copy.deepcopy(told["voucher"])
    voucher.update(id="v_rec_card", type="LOYALTY_CARD")
    voucher["loyalty_card"] = {"points": 150, "balance": 150}
    fake.vouchers["v_rec_card"] = voucher
    env = env_for(database_url, fake, VOUCHERHOOK_RECONCILE_CAMPAIGNS="camp_rec_loyalty")

    found = reconcile(env)
    again = reconcile(env)
    card = json.loads(cli(env, "loyalty", "v_rec_card", "--json").stdout)

    assert found["stored"] == ["card.transaction:vtx_rec_1"]
    assert (again["missing"], again["stored"]) == (0, [])
    assert card["balance"] == 120
    assert card["ledger_balance"] == 120
    assert found["drift"] == [
        {
            "card_id": "v_rec_card",
            "kind": "loyalty",
            "voucherify_balance": 150,
            "ledger_balance": 120,
            "drift": 30,
        }
    ]
    assert card["voucherify_balance"] == 150
    # The second run read the campaign on from the first one's mark.
    listed = fake.requests_to("/v1/campaigns/camp_rec_loyalty/transactions")
    asked = [request.query.get("starting_after_id") for request in listed]
    assert asked[-1] == "vtx_rec_1"


def test_the_api_s_429_and_5xx_are_retried(
    database_url: str, engine: Engine, fake: FakeVoucherify
) -> None:
    payload = recorded.redemption("r_rec_retried", order_id="ord_rec_retried")
    fake.redemptions.append(api_redemption(payload))
    fake.fail_next(429, retry_after=1)
    fake.fail_next(503)

    found = reconcile(env_for(database_url, fake))

    assert found["stored"] == ["redemption.succeeded:r_rec_retried"]
    assert found["requests"] == 3


def test_without_credentials_one_line_names_the_settings(database_url: str) -> None:
    result = cli(base_env(database_url, None), "reconcile", *WINDOW)

    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "VOUCHERIFY_APP_ID" in result.stderr and "VOUCHERIFY_APP_TOKEN" in result.stderr


def test_refused_credentials_give_one_line_without_the_token(
    database_url: str, fake: FakeVoucherify
) -> None:
    wrong = "wrong-token-never-to-be-shown-123"
    env = {**env_for(database_url, fake), "VOUCHERIFY_APP_TOKEN": wrong}

    result = cli(env, "reconcile", *WINDOW)

    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "401" in result.stderr and "VOUCHERIFY_APP_TOKEN" in result.stderr
    assert wrong not in result.stderr + result.stdout


def test_a_dry_run_stores_nothing_and_a_run_resumes_from_the_last(
    database_url: str, engine: Engine, fake: FakeVoucherify
) -> None:
    payload = recorded.redemption("r_rec_dry", order_id="ord_rec_dry")
    fake.redemptions.append(api_redemption(payload))
    env = env_for(database_url, fake)

    dry = reconcile(env, "--dry-run")
    with engine.connect() as conn:
        stored = list(conn.scalars(select(events.c.id)))
        runs = list(conn.scalars(select(reconcile_runs.c.seq)))
    refused = cli(env, "reconcile", "--json")  # no --since, and no earlier run
    reconcile(env)
    resumed = cli(env, "reconcile", "--until", "2025-06-01T00:00:00Z", "--json")

    assert (dry["missing"], dry["stored"], stored, runs) == (1, [], [], [])
    assert dry["missing_ids"] == ["r_rec_dry"]
    assert refused.returncode != 0 and "--since" in refused.stderr
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["since"] == "2025-01-01T00:00:00+00:00"


def test_a_silence_is_told_by_an_error_line_a_metric_and_the_console(
    database_url: str, engine: Engine, fake: FakeVoucherify
) -> None:
    """Voucherify recorded a redemption and nothing ever arrived: the webhook is probably
    off."""
    fake.redemptions.append(api_redemption(recorded.redemption("r_rec_silent")))

    result = cli(env_for(database_url, fake), "reconcile", *WINDOW, "--json")
    settings = settings_for(engine)
    with client_for(settings, engine) as console:
        log_in(console)
        overview = console.get("/console/").text
    scraped = {
        sample.name: sample.value
        for family in DatabaseCollector(engine).collect()
        for sample in family.samples
    }

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["silent_since"] is not None
    logged = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    silent = [line for line in logged if line["event"] == "webhook_silent"]
    assert silent and silent[0]["level"] == "error", result.stderr
    assert "Re-enable it in Voucherify" in silent[0]["error"]
    assert scraped["voucherhook_webhook_silent"] == 1
    assert scraped["voucherhook_reconcile_last_run_timestamp_seconds"] > 0
    assert "Webhook probably disabled" in overview


def finished_runs(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(select(reconcile_runs).where(reconcile_runs.c.finished_at.is_not(None)))
        )


def test_the_worker_reconciles_the_last_day_by_itself_at_default_settings(
    postgres_url: str, redis_url: str, queue: str, fake: FakeVoucherify
) -> None:
    an_hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="milliseconds")
    payload = recorded.redemption("r_rec_scheduled", order_id="ord_rec_scheduled")
    payload["created_at"] = payload["redemption"]["date"] = an_hour_ago
    fake.redemptions.append(api_redemption(payload))
    engine = make_engine(postgres_url)
    EventLog(engine).clear()
    env = env_for(postgres_url, fake)
    env.update(REDIS_URL=redis_url, VOUCHERHOOK_QUEUE=queue)
    worker = Worker(env)
    try:
        wait_for(
            lambda: finished_runs(engine),
            90,
            what="the worker's first reconciliation (due a sweep interval after its start)",
        )
        runs = finished_runs(engine)
        keys = ledger_keys(engine)
    finally:
        worker.stop()
        engine.dispose()

    assert [(run.missing, run.error) for run in runs] == [(1, None)]
    assert "redemption:r_rec_scheduled:discount" in keys
    assert runs[0].until < datetime.now(UTC) - timedelta(minutes=4)  # deliveries come first
