"""How one batch of events gets into the database, in one transaction: the writer's last step.

PostgreSQL takes the whole batch as one `INSERT … SELECT … FROM unnest(…)` on asyncpg itself
(models.db.eventlog.INSERT_NEW_UNNEST): one statement, prepared once per connection, is its own
transaction, so a batch costs one round trip and one commit, and no SQLAlchemy work per row.
Its connections compress bodies with lz4 where the server can (eventlog.PREFER_LZ4).
Other databases (SQLite) go through SQLAlchemy's executemany in an explicit transaction.
"""

from __future__ import annotations

import contextlib
from typing import Any, Protocol

import asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from models.db import eventlog
from models.db.eventlog import NewEvent


class Inserter(Protocol):
    async def insert(self, batch: list[NewEvent]) -> set[str]:
        """Insert `batch` (ids unique in it) and commit; return the ids that were new."""

    async def close(self) -> None: ...


def inserter_for(engine: AsyncEngine) -> Inserter:
    """One per writer task: the PostgreSQL one keeps a connection of its own."""
    if engine.dialect.name == "postgresql" and engine.dialect.driver == "asyncpg":
        return AsyncpgInserter(engine)
    return SqlAlchemyInserter(engine)


class SqlAlchemyInserter:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._statement = eventlog.insert_new_statement(engine.dialect.name)

    async def insert(self, batch: list[NewEvent]) -> set[str]:
        rows = [event.row() for event in batch]
        for attempt in (1, 2):
            try:
                async with self._engine.begin() as conn:
                    result = await conn.execute(self._statement, rows)
                    return {row[0] for row in result}
            except DBAPIError as exc:
                # A connection the server dropped fails its first statement (there is no
                # pre-ping); the batch is tried once more on a fresh connection.
                if attempt == 2 or not exc.connection_invalidated:
                    raise
        raise AssertionError("unreachable")

    async def close(self) -> None:
        pass


class AsyncpgInserter:
    """Holds one pooled connection between batches; a failure other than the server refusing
    the statement discards it, and the next batch checks out a fresh one."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._connection: AsyncConnection | None = None
        self._driver: Any = None  # the asyncpg connection inside it

    async def insert(self, batch: list[NewEvent]) -> set[str]:
        columns = eventlog.insert_new_columns(batch)
        for attempt in (1, 2):
            driver = await self._checkout()
            try:
                rows = await driver.fetch(eventlog.INSERT_NEW_UNNEST, *columns)
            except Exception as exc:
                dropped = driver.is_closed()
                if dropped or not isinstance(exc, asyncpg.PostgresError):
                    await self._discard()
                # A connection the server dropped fails its first statement (there is no
                # pre-ping); the batch is tried once more on a fresh connection.
                if attempt == 2 or not dropped:
                    raise
                continue
            return {row[0] for row in rows}
        raise AssertionError("unreachable")

    async def close(self) -> None:
        connection, self._connection, self._driver = self._connection, None, None
        if connection is not None:
            await connection.close()

    async def _checkout(self) -> Any:
        if self._driver is None:
            connection = await self._engine.connect()
            try:
                raw = await connection.get_raw_connection()
                await _prefer_lz4(raw.driver_connection)
            except BaseException:
                await connection.close()
                raise
            self._connection, self._driver = connection, raw.driver_connection
        return self._driver

    async def _discard(self) -> None:
        connection, driver = self._connection, self._driver
        self._connection, self._driver = None, None
        if connection is not None:
            driver.terminate()  # at once: a graceful close would wait on a cut network
            await connection.invalidate()
            await connection.close()


async def _prefer_lz4(driver: Any) -> None:
    # Refused before PostgreSQL 14, or by a server built without lz4: bodies stay pglz.
    with contextlib.suppress(asyncpg.PostgresError):
        await driver.execute(eventlog.PREFER_LZ4)
