"""The baseline of performance.md: a bare Starlette app that verifies the HMAC and inserts the
body with one INSERT (and so one commit) per request, then answers 202.

PostgreSQL through an asyncpg pool; SQLite through one connection in one thread (WAL,
synchronous=FULL, like the receiver's embedded default). The table must exist (see
`bench.receiver`). Served by uvicorn with one process, log level warning, no access log.

Usage: BENCH_SECRET=… python -m bench.baseline --database postgresql://…|sqlite:///… --port P
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import os
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import asyncpg  # type: ignore[import-untyped]
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

HEADER = "x-voucherify-signature"
TABLE = "baseline_events"
INSERT_PG = f"INSERT INTO {TABLE} (body) VALUES ($1)"
INSERT_SQLITE = f"INSERT INTO {TABLE} (body) VALUES (?)"
PG_POOL_SIZE = 10  # asyncpg's default

Store = Callable[[bytes], Awaitable[None]]


@asynccontextmanager
async def postgres_store(dsn: str) -> AsyncIterator[Store]:
    async with asyncpg.create_pool(dsn, min_size=PG_POOL_SIZE, max_size=PG_POOL_SIZE) as pool:

        async def store(body: bytes) -> None:
            await pool.execute(INSERT_PG, body)

        yield store


@asynccontextmanager
async def sqlite_store(path: str) -> AsyncIterator[Store]:
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
    connection = sqlite3.connect(path, check_same_thread=False, timeout=8)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")

    def insert(body: bytes) -> None:
        with connection:  # one transaction, one commit
            connection.execute(INSERT_SQLITE, (body,))

    async def store(body: bytes) -> None:
        await asyncio.get_running_loop().run_in_executor(executor, insert, body)

    try:
        yield store
    finally:
        executor.shutdown(wait=True)
        connection.close()


def create_app(database: str, secret: bytes) -> Starlette:
    stores: list[Store] = []

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if database.startswith("sqlite:///"):
            opened = sqlite_store(database.removeprefix("sqlite:///"))
        else:
            opened = postgres_store(database)
        async with opened as store:
            stores.append(store)
            yield

    async def receive(request: Request) -> Response:
        body = await request.body()
        expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get(HEADER, "")):
            return JSONResponse({"status": "rejected"}, status_code=401)
        await stores[0](body)
        return JSONResponse({"status": "accepted"}, status_code=202)

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/webhooks/voucherify", receive, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description="Baseline webhook app for the benchmark.")
    parser.add_argument("--database", required=True, help="postgresql://… or sqlite:///path")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    secret = os.environ.get("BENCH_SECRET", "").encode()
    if not secret:
        print("baseline: BENCH_SECRET is not set", file=sys.stderr)
        return 2
    uvicorn.run(
        create_app(args.database, secret),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
