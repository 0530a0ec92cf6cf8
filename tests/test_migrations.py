"""The Alembic migrations build exactly the schema the code declares, on both databases, and
an older schema upgrades with its rows kept."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from models.db import schema
from models.db.engine import make_engine
from models.db.tables import metadata
from tests.support.services import postgres_database
from tests.unit import recorded
from workers.handlers.base import Config as HandlerConfig
from workers.rebuild import rebuild
from workers.templates import environment


@pytest.fixture(params=["postgresql", "sqlite"])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'migrations.db'}")
        yield engine
        engine.dispose()
        return
    with postgres_database() as url:
        engine = make_engine(url)
        yield engine
        engine.dispose()


def migrate_to(engine: Engine, revision: str) -> None:
    schema.upgrade(engine, revision)


def test_the_newest_revision_read_from_the_files_is_alembics() -> None:
    config = Config()
    config.set_main_option("script_location", str(schema.MIGRATIONS))
    script = ScriptDirectory.from_config(config)
    assert schema.head() == script.get_current_head()


def test_the_migrations_give_the_schema_the_code_declares(empty_engine: Engine) -> None:
    before, after = schema.upgrade(empty_engine)
    assert (before, after) == (None, schema.head())
    with empty_engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    assert differences == []


def test_a_notification_planned_before_due_times_is_due_when_it_was_planned(
    empty_engine: Engine,
) -> None:
    migrate_to(empty_engine, "0002")
    planned = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    with empty_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO notifications (event_id, source_id, channel, recipient, status, "
                "body, created_at) VALUES ('e1', 'r_1', 'email', 'a@example.com', 'pending', "
                "'hello', :at)"
            ),
            {"at": planned},
        )
    schema.upgrade(empty_engine)
    with empty_engine.connect() as conn:
        due = conn.scalar(text("SELECT due_at FROM notifications WHERE source_id = 'r_1'"))
    if isinstance(due, str):  # SQLite gives the stored text back
        due = datetime.fromisoformat(due)
    assert due.replace(tzinfo=due.tzinfo or UTC) == planned


def test_0004_and_0005_clean_and_count_what_was_stored_before(empty_engine: Engine) -> None:
    migrate_to(empty_engine, "0003")
    at = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    with empty_engine.begin() as conn:
        for n, (status, headers) in enumerate(
            [
                ("processed", '{"x-voucherify-signature": "ab", "user-agent": "V"}'),
                ("processed", "{}"),
                ("pending", '{"x-voucherify-signature": "cd"}'),
            ]
        ):
            conn.execute(
                text(
                    "INSERT INTO events (id, type, status, received_at, body, headers) "
                    "VALUES (:id, 'redemption.succeeded', :status, :at, :body, :headers)"
                ),
                {"id": f"e{n}", "status": status, "at": at, "body": b"{}", "headers": headers},
            )
        # One object notified to two webhook URLs: the setting changed in between.
        for url in ("https://hooks.example/old", "https://hooks.example/new"):
            conn.execute(
                text(
                    "INSERT INTO notifications (event_id, source_id, channel, recipient, "
                    "status, body, created_at, due_at) VALUES ('e0', 'r_1', 'webhook', :url, "
                    "'sent', 'hi', :at, :at)"
                ),
                {"url": url, "at": at},
            )
    schema.upgrade(empty_engine)
    with empty_engine.connect() as conn:
        headers = conn.scalars(text("SELECT headers FROM events ORDER BY id")).all()
        recipients = conn.scalars(text("SELECT recipient FROM notifications ORDER BY seq")).all()
        counts = conn.execute(
            text("SELECT status, sum(n) FROM event_counts GROUP BY status ORDER BY status")
        ).all()
    assert all("x-voucherify-signature" not in str(h) for h in headers), headers
    assert "user-agent" in str(headers[0])
    assert recipients[0] == "NOTIFY_WEBHOOK_URL"
    assert recipients[1].startswith("NOTIFY_WEBHOOK_URL #")
    assert [(status, int(n)) for status, n in counts] == [("pending", 1), ("processed", 2)]


def test_0006_moves_what_was_booked_so_that_a_rebuild_writes_nothing(
    empty_engine: Engine,
) -> None:
    """Books as the earlier rules left them (a reward booked apart from the redemption that
    paid for it, counting its points twice; a rollback's points with its money; movements by
    source id): after the upgrade they are what a rebuild computes."""
    migrate_to(empty_engine, "0005")
    at = datetime(2024, 5, 13, 12, 0, tzinfo=UTC)
    paid = recorded.redemption("r_card", order_id="ord_c", applied=800, kind="loyalty", points=40)
    paid["voucher"]["id"] = "v_card"
    seed = recorded.seed_reward_redemption()
    twice = recorded.seed_reward_redemption()
    twice["reward_redemption"].update(id="rewr_twice", source_id="r_card")
    twice["voucher"]["id"] = "v_card"
    twice["reward_assignment"]["parameters"]["loyalty"]["points"] = 40
    twice["voucher"]["loyalty_card"]["balance"] = paid["voucher"]["loyalty_card"]["balance"]
    undone = recorded.rollback(paid, "rr_card")
    card, seed_card = "loyalty:card:v_card", "loyalty:card:v_p7NP2qmQaMXsNHzb9ujPVjqgDJzJ2ccQ"
    old_books = {
        # key: (event, memo, postings), as the earlier rules booked them
        "order:ord_c:gross": (
            "e1",
            "gross of order ord_c",
            [("order:ord_c", "USD", 7000), ("sales", "USD", -7000)],
        ),
        "redemption:r_card:discount": (
            "e1",
            f"r_card applied 800 to order ord_c (discount:{paid['voucher']['campaign_id']})",
            [
                (f"discount:{paid['voucher']['campaign_id']}", "USD", 800),
                ("order:ord_c", "USD", -800),
            ],
        ),
        "redemption:r_card:points": (
            "e1",
            "r_card paid 40 points from card v_card",
            [("loyalty:payments", "POINTS", 40), (card, "POINTS", -40)],
        ),
        "reward_redemption:rewr_N5xhKgV5tJBmJxrtb5YB7V3q": (
            "e2",
            "rewr_N5xhKgV5tJBmJxrtb5YB7V3q: 100 points from card v_p7NP2qmQaMXsNHzb9ujPVjqgDJzJ2ccQ"
            " for reward rew_UtRGHxt98jwCzodkskxQ7KLp",
            [
                ("loyalty:rewards:rew_UtRGHxt98jwCzodkskxQ7KLp", "POINTS", 100),
                (seed_card, "POINTS", -100),
            ],
        ),
        "reward_redemption:rewr_twice": (
            "e3",
            "rewr_twice: 40 points from card v_card for reward rew_UtRGHxt98jwCzodkskxQ7KLp",
            [("loyalty:rewards:rew_UtRGHxt98jwCzodkskxQ7KLp", "POINTS", 40), (card, "POINTS", -40)],
        ),
        "rollback:rr_card": (
            "e4",
            "rr_card reverses r_card: redemption:r_card:discount, redemption:r_card:points",
            [
                (f"discount:{paid['voucher']['campaign_id']}", "USD", -800),
                ("order:ord_c", "USD", 800),
                ("loyalty:payments", "POINTS", -40),
                (card, "POINTS", 40),
            ],
        ),
    }
    logged = [
        ("e1", "redemption.succeeded", paid, ("ledger", "loyalty", "notifications")),
        (
            "e2",
            "customer.reward_redemptions.completed",
            seed,
            ("ledger", "loyalty", "notifications"),
        ),
        (
            "e3",
            "customer.reward_redemptions.completed",
            twice,
            ("ledger", "loyalty", "notifications"),
        ),
        ("e4", "redemption.rollback.succeeded", undone, ("ledger",)),
    ]
    with empty_engine.begin() as conn:
        for event_id, event_type, data, handlers in logged:
            conn.execute(
                text(
                    "INSERT INTO events (id, type, status, received_at, body, headers) "
                    "VALUES (:id, :type, 'processed', :at, :body, '{}')"
                ),
                {"id": event_id, "type": event_type, "at": at, "body": json.dumps(data).encode()},
            )
            for handler in handlers:
                conn.execute(
                    text(
                        "INSERT INTO handler_runs (event_id, handler, status, attempts, "
                        "updated_at) VALUES (:id, :handler, 'done', 1, :at)"
                    ),
                    {"id": event_id, "handler": handler, "at": at},
                )
        for key, (event_id, memo, postings) in old_books.items():
            conn.execute(
                text(
                    "INSERT INTO ledger_transactions (key, event_id, digest, memo, booked_at) "
                    "VALUES (:key, :event_id, :digest, :memo, :at)"
                ),
                {
                    "key": key,
                    "event_id": event_id,
                    "digest": hashlib.sha256(json.dumps(sorted(postings)).encode()).hexdigest(),
                    "memo": memo,
                    "at": at,
                },
            )
            for account, asset, amount in postings:
                conn.execute(
                    text(
                        "INSERT INTO ledger_postings (transaction_key, account, asset, amount) "
                        "VALUES (:key, :account, :asset, :amount)"
                    ),
                    {"key": key, "account": account, "asset": asset, "amount": amount},
                )
        conn.execute(
            text(
                "INSERT INTO ledger_redemptions (redemption_id, role, parent_id, order_id, "
                "applied_amount, event_id) VALUES ('r_card', 'plain', NULL, 'ord_c', 800, 'e1')"
            )
        )
        for source, card_id, event_id, points in (
            ("r_card", "v_card", "e1", 40),
            ("rewr_N5xhKgV5tJBmJxrtb5YB7V3q", seed["voucher"]["id"], "e2", 100),
            ("rewr_twice", "v_card", "e3", 40),
        ):
            conn.execute(
                text(
                    "INSERT INTO loyalty_movements (source_id, card_id, event_id, points_taken) "
                    "VALUES (:source, :card, :event, :points)"
                ),
                {"source": source, "card": card_id, "event": event_id, "points": points},
            )
            conn.execute(
                text(
                    "INSERT INTO loyalty_cards (card_id, customer_id, balance, as_of, "
                    "balance_source, points_spent, events, flags, updated_at) VALUES (:card, "
                    "'c', 1, :at, :source, :points, 1, '[]', :at) ON CONFLICT DO NOTHING"
                ),
                {"card": card_id, "at": at, "source": source, "points": points},
            )

    schema.upgrade(empty_engine)

    with empty_engine.connect() as conn:
        keys = set(conn.scalars(text("SELECT key FROM ledger_transactions")))
        accounts = set(conn.scalars(text("SELECT DISTINCT account FROM ledger_postings")))
        spent = conn.scalar(text("SELECT points_spent FROM loyalty_cards WHERE card_id = 'v_card'"))
    assert "reward_redemption:rewr_twice" not in keys  # counted twice before
    assert {"redemption:r_0ebe369389d0528f1f:points", "rollback:rr_card:points"} <= keys
    assert not any(account.startswith("loyalty:rewards:") for account in accounts)
    assert spent == 40
    config = HandlerConfig(currency="USD", templates=environment(), email=False, webhook=False)
    assert rebuild(empty_engine, config).written == 0
