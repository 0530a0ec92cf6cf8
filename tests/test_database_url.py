"""A `postgres://` URL, as Heroku-like platforms hand it out, reaches the real server through
both engines: psycopg for the workers and the commands, asyncpg for the receiver's writer."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from models.db.engine import make_async_engine, make_engine
from tests.support.services import POSTGRES_URL
from workers.settings import load_settings


def postgres_scheme(url: str) -> str:
    """`postgresql://user@127.0.0.1:5432/test` (or with a driver) as `postgres://…`."""
    scheme, rest = url.split("://", 1)
    assert scheme.startswith("postgresql"), url
    return f"postgres://{rest}"


def test_a_postgres_url_connects_with_both_engines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOUCHERIFY_WEBHOOK_SECRET", "9c4e1f7a2b6d8035e1f4")
    monkeypatch.setenv("DATABASE_URL", postgres_scheme(POSTGRES_URL))
    monkeypatch.delenv("REDIS_URL", raising=False)
    database_url = load_settings().database_url
    assert database_url.startswith("postgresql://")

    for url in (database_url, postgres_scheme(POSTGRES_URL)):
        engine = make_engine(url)
        try:
            with engine.connect() as conn:
                assert conn.dialect.driver == "psycopg"
                assert conn.scalar(text("SELECT 1")) == 1
        finally:
            engine.dispose()
        assert asyncio.run(_select_one(url)) == ("asyncpg", 1)


async def _select_one(url: str) -> tuple[str, int | None]:
    engine = make_async_engine(url)
    try:
        async with engine.connect() as conn:
            return conn.dialect.driver, await conn.scalar(text("SELECT 1"))
    finally:
        await engine.dispose()
