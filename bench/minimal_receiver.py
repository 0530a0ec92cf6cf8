"""The least a receiver must do per delivery, for `bench.receiver --minimal`: where the ceiling is.

A bare ASGI app under uvicorn (the receiver's settings) that checks the HMAC, parses the body
with orjson and takes `event.id` and `event.type` from it, queues the event for two group-commit
writers that insert batches with the receiver's own statement (`INSERT_NEW_UNNEST`, one commit
per batch, lz4 bodies), and answers 202 once the batch holding the event is committed.

Nothing else: no identity rules, size limits, byte budget, body timeout, store timeout, error
handling, metrics, logging or outbox. It is not a receiver anyone should run; it shows how fast
the parts every receiver needs (uvicorn, the HMAC, the JSON parse, asyncpg and PostgreSQL) go on
this machine, so that the rest of the receiver's cost can be told apart.

Run by the benchmark as: uvicorn bench.minimal_receiver:app (DATABASE_URL and
VOUCHERIFY_WEBHOOK_SECRET from the environment).
"""

from __future__ import annotations

import asyncio
import hmac
import os
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from models.db.eventlog import INSERT_NEW_UNNEST, PREFER_LZ4

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Pending = tuple[str, str, datetime, bytes, asyncio.Future[None]]

SECRET = os.environ.get("VOUCHERIFY_WEBHOOK_SECRET", "").encode()
DSN = os.environ.get("DATABASE_URL", "").replace("postgresql+asyncpg://", "postgresql://")
WRITERS = 2
JSON = (b"content-type", b"application/json")

_queue: asyncio.Queue[Pending] | None = None
_writers: list[asyncio.Task[None]] = []


async def _write() -> None:
    assert _queue is not None
    conn = await asyncpg.connect(DSN)
    await conn.execute(PREFER_LZ4)
    while True:
        batch = [await _queue.get()]
        while not _queue.empty():
            batch.append(_queue.get_nowait())
        n = len(batch)
        at = [p[2] for p in batch]
        none: list[None] = [None] * n
        await conn.fetch(
            INSERT_NEW_UNNEST,
            [p[0] for p in batch], [p[1] for p in batch], ["pending"] * n, at,
            [p[3] for p in batch], ["{}"] * n, none, none, none, at,
        )  # fmt: skip
        for pending in batch:
            pending[4].set_result(None)


async def _answer(send: Send, status: int, body: bytes) -> None:
    headers = [JSON, (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
    global _queue
    if scope["type"] == "lifespan":
        while (await receive())["type"] == "lifespan.startup":
            _queue = asyncio.Queue()
            _writers.extend(asyncio.create_task(_write()) for _ in range(WRITERS))
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["method"] == "GET":  # /healthz, for the benchmark's start-up wait
        await _answer(send, 200, b'{"status":"ok"}')
        return
    given = b""
    for name, value in scope["headers"]:
        if name == b"x-voucherify-signature":
            given = value
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    wanted = hmac.digest(SECRET, body, "sha256").hex().encode()
    if not hmac.compare_digest(wanted, given):
        await _answer(send, 401, b'{"status":"rejected"}')
        return
    event = orjson.loads(body)["event"]
    event_id, event_type = event["id"], event["type"]
    assert _queue is not None
    committed = asyncio.get_running_loop().create_future()
    _queue.put_nowait((event_id, event_type, datetime.now(UTC), body, committed))
    await committed
    answer = {"status": "accepted", "event_id": event_id, "type": event_type}
    await _answer(send, 202, orjson.dumps(answer))
