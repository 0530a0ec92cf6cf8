"""The one factory for database engines: same URL, same options, in every process."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

POSTGRES_BACKENDS = ("postgresql", "postgres")
"""`postgres://` is how Heroku-like platforms hand out their URLs; SQLAlchemy knows only
`postgresql://`."""


def engine_url(database_url: str) -> URL:
    """PostgreSQL (`postgresql://`, `postgres://`, with or without a driver) means psycopg 3;
    SQLite stays as it is."""
    url = make_url(database_url)
    if url.get_backend_name() in POSTGRES_BACKENDS:
        url = url.set(drivername="postgresql+psycopg")
    return url


def async_engine_url(database_url: str) -> URL:
    """The same database for an async engine: asyncpg, or aiosqlite."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return url.set(drivername="sqlite+aiosqlite")
    if url.get_backend_name() in POSTGRES_BACKENDS:
        return url.set(drivername="postgresql+asyncpg")
    return url


def make_engine(database_url: str, *, pool_size: int = 5, timeout: float = 5.0) -> Engine:
    url = engine_url(database_url)
    if url.get_backend_name() == "sqlite":
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": timeout},
            pool_pre_ping=False,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    seconds = max(1, int(timeout))
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_timeout=timeout,
        connect_args={
            "connect_timeout": seconds,
            # A cut network must fail a query in seconds, not after the kernel's TCP timeout.
            "tcp_user_timeout": seconds * 1000,
            "keepalives": 1,
            "keepalives_idle": seconds,
            "keepalives_interval": 1,
            "keepalives_count": 3,
        },
    )


def make_async_engine(
    database_url: str, *, pool_size: int = 4, timeout: float = 5.0
) -> AsyncEngine:
    """For the receiver's writer, which stores from the event loop: asyncpg or aiosqlite.

    No pre-ping (a round trip per checkout): the writer retries a statement that failed on a
    connection the server dropped.
    """
    url = async_engine_url(database_url)
    if url.get_backend_name() == "sqlite":
        engine = create_async_engine(url, connect_args={"timeout": timeout})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=timeout,
        connect_args={"timeout": timeout, "command_timeout": timeout},
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the worker read while the receiver writes; FULL makes every commit survive
    # a power cut too: an acknowledged event is never lost.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
