"""`models.db.tables.UtcDateTime` binds a naive time as UTC: the database is not left to place
it (SQLite would read it as UTC, PostgreSQL in the session's zone)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import Column, Integer, MetaData, Table, create_engine, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from models.db.tables import UtcDateTime

NAIVE = datetime(2026, 3, 29, 1, 30)


def test_a_naive_time_is_bound_as_utc() -> None:
    bind = UtcDateTime().bind_processor(postgresql.psycopg.dialect())
    assert bind is not None
    bound = bind(NAIVE)
    assert bound == NAIVE.replace(tzinfo=UTC)
    assert bound.tzinfo is UTC


def test_an_aware_time_is_bound_in_utc() -> None:
    paris = timezone(timedelta(hours=2))
    bound = UtcDateTime().process_bind_param(NAIVE.replace(tzinfo=paris), sqlite.dialect())
    assert bound == NAIVE.replace(tzinfo=paris)
    assert bound.tzinfo is UTC


def test_a_naive_time_written_on_sqlite_reads_back_as_that_utc_time() -> None:
    times = Table(
        "times",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("at", UtcDateTime(), nullable=False),
    )
    engine = create_engine("sqlite://")
    try:
        with engine.begin() as conn:
            times.create(conn)
            conn.execute(insert(times), [{"id": 1, "at": NAIVE}])
            read = conn.scalar(select(times.c.at).where(times.c.id == 1))
            found = conn.scalar(select(times.c.id).where(times.c.at == NAIVE.replace(tzinfo=UTC)))
    finally:
        engine.dispose()
    assert read == NAIVE.replace(tzinfo=UTC)
    assert read.tzinfo is UTC
    assert found == 1
