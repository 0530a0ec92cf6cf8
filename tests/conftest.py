"""Fixtures: real PostgreSQL, real Redis, real receiver and worker processes."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from hypothesis import settings as hypothesis_settings
from sqlalchemy import Engine, delete, func, select

from models.db import schema
from models.db.engine import make_engine
from models.db.tables import events, metadata
from tests.support import services
from tests.support.processes import Receiver, base_env
from tests.support.sinks import HttpSink, Sinks, SmtpSink, running_sinks

# CI runs the same generated cases every time, so a red build can be reproduced; run the
# suite without CI set to let Hypothesis explore new ones.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated database on the test PostgreSQL server, for the whole run."""
    with services.postgres_database() as url:
        engine = make_engine(url)
        schema.upgrade(engine)
        engine.dispose()
        yield url


@pytest.fixture(scope="session")
def engine(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url)
    yield engine
    engine.dispose()


@pytest.fixture
def db(engine: Engine) -> Engine:
    """The engine, on a database emptied of every event and everything computed from them."""
    EventLog(engine).clear()
    return engine


@pytest.fixture
def pg_log(db: Engine) -> EventLog:
    """The emptied PostgreSQL database, read the way a test checks it."""
    return EventLog(db)


@pytest.fixture(scope="session")
def redis_url() -> str:
    services.check_redis()
    return services.REDIS_URL


@pytest.fixture
def queue(redis_url: str) -> Iterator[str]:
    """A queue of its own, so tests never consume each other's messages."""
    name = f"vh-test-{uuid.uuid4().hex[:10]}"
    yield name
    redis.Redis.from_url(redis_url).delete(name)


class EventLog:
    """Reads the events table the way a test wants to check it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(events)) or 0)

    def get(self, event_id: str) -> dict[str, object] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(events).where(events.c.id == event_id)).mappings().first()
            return dict(row) if row else None

    def statuses(self) -> dict[str, str]:
        with self.engine.connect() as conn:
            return {
                row.id: row.status for row in conn.execute(select(events.c.id, events.c.status))
            }

    def clear(self) -> None:
        """Empty every table: the event log and everything computed from it."""
        with self.engine.begin() as conn:
            for table in reversed(metadata.sorted_tables):
                conn.execute(delete(table))


@pytest.fixture(params=["postgresql", "sqlite"], scope="module")
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Every receiver test runs on PostgreSQL and on the embedded SQLite file."""
    if request.param == "postgresql":
        with services.postgres_database() as url:
            engine = make_engine(url)
            schema.upgrade(engine)
            engine.dispose()
            yield url
    else:
        path: Path = tmp_path_factory.mktemp("sqlite") / "voucherhook.db"
        url = f"sqlite:///{path}"
        engine = make_engine(url)
        schema.upgrade(engine)
        engine.dispose()
        yield url


@pytest.fixture(scope="module")
def event_log(database_url: str) -> Iterator[EventLog]:
    engine = make_engine(database_url)
    yield EventLog(engine)
    engine.dispose()


@pytest.fixture(scope="module")
def receiver(database_url: str) -> Iterator[Receiver]:
    """The receiver alone, publishing to a queue nobody consumes."""
    services.check_redis()
    queue = f"vh-test-{uuid.uuid4().hex[:10]}"
    env = base_env(database_url, services.REDIS_URL, VOUCHERHOOK_QUEUE=queue)
    process = Receiver(env, "--no-worker")
    yield process
    process.stop()
    redis.Redis.from_url(services.REDIS_URL).delete(queue)


@pytest.fixture
def redis_server() -> Iterator[services.RedisServer]:
    """A Redis server of its own, on a free port, that the test may stop and start."""
    server = services.RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    """A real SMTP server on loopback; what it received is in `.messages`."""
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def webhook_sink() -> Iterator[HttpSink]:
    """A real HTTP endpoint on loopback; what it received is in `.requests`."""
    sink = HttpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def sinks() -> Iterator[Sinks]:
    """A real HTTP endpoint and SMTP server for the workers' notifications."""
    with running_sinks() as sinks:
        yield sinks
