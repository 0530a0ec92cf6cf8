"""The Alembic migrations build exactly the schema the code declares, on both databases, and
an older schema upgrades with its rows kept."""

from __future__ import annotations

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
