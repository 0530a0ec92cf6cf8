"""The HTTP edge: verify, store, answer. Nothing else happens before the answer."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from models.eventlog import NewEvent
from models.identity import identify
from models.settings import Settings
from receiver.metrics import ReceiverMetrics
from receiver.outbox import Dispatcher, Publish
from receiver.signature import HEADER, verify
from receiver.store import EventWriter, StoreUnavailable

log = structlog.get_logger(__name__)

# Headers kept with each event: what helps a person tell where a delivery came from.
KEPT_HEADERS = ("content-type", "content-length", "user-agent", "x-forwarded-for", HEADER)
RETRY_AFTER = "30"


class BodyTooLarge(Exception):
    pass


def create_app(
    settings: Settings,
    engine: Engine,
    writer_engine: AsyncEngine,
    publish: Publish,
    *,
    broker_check: Callable[[], str] | None = None,
) -> Starlette:
    """Build the receiver. `writer_engine` stores deliveries from the event loop; `engine`
    serves the rest (outbox, readiness, metrics) from threads. `publish` hands event ids to
    the broker; `broker_check` returns its state for /readyz ("ok" or a short reason)."""
    metrics = ReceiverMetrics(engine)
    dispatcher = Dispatcher(engine, publish, on_failure=metrics.dispatch_failures.inc)
    writer = EventWriter(writer_engine, dispatcher.submit)
    secrets = settings.secrets

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        dispatcher.start()
        await writer.start()
        # What was built at startup (Celery, SQLAlchemy, the app) lives as long as the
        # process: out of the collector's sight, a full collection stays short under load.
        gc.collect()
        gc.freeze()
        yield
        await writer.stop()
        await run_in_threadpool(dispatcher.stop)

    def answer(outcome: str, code: int, **body: Any) -> JSONResponse:
        metrics.deliveries.labels(outcome).inc()
        headers = {"Retry-After": RETRY_AFTER} if code == 503 else None
        return JSONResponse(body, status_code=code, headers=headers)

    async def receive(request: Request) -> Response:
        started = time.perf_counter()
        try:
            return await _receive(request)
        finally:
            metrics.receive_seconds.observe(time.perf_counter() - started)

    async def _receive(request: Request) -> Response:
        path_type: str | None = request.path_params.get("event_type")
        try:
            # A timeout scope, not wait_for: wait_for runs the read in a task of its own.
            async with asyncio.timeout(settings.body_timeout):
                body = await _read_body(request, settings.max_body_bytes)
        except BodyTooLarge:
            return answer(
                "too_large",
                413,
                status="rejected",
                error=f"body larger than {settings.max_body_bytes} bytes "
                "(raise VOUCHERHOOK_MAX_BODY_BYTES to accept it)",
            )
        except TimeoutError:
            return answer(
                "timeout",
                408,
                status="rejected",
                error=f"body not received within {settings.body_timeout:g}s",
            )
        signature = request.headers.get(HEADER)
        if not verify(body, signature, secrets):
            reason = "missing" if signature is None else "does not match"
            log.info("delivery_unauthorized", reason=reason, path=request.url.path)
            return answer(
                "unauthorized",
                401,
                status="rejected",
                error=f"signature {reason}: {HEADER} must be the HMAC-SHA256 of the body "
                "under VOUCHERIFY_WEBHOOK_SECRET",
            )
        verdict = identify(body, path_type)
        received_at = datetime.now(UTC)
        event = NewEvent(
            id=verdict.event_id,
            type=verdict.event_type,
            status=verdict.status,
            received_at=received_at,
            body=body,
            headers={k: v for k in KEPT_HEADERS if (v := request.headers.get(k)) is not None},
            remote_addr=request.client.host if request.client else None,
            delivery_id=verdict.delivery_id,
            error=verdict.reason,
            # Stamped as handed to the broker in the same insert, since publishing follows the
            # commit; a failed publish clears it. Only a crash in between leaves it stamped
            # but unpublished, and VOUCHERHOOK_REDISPATCH_AFTER then catches it.
            dispatched_at=received_at if verdict.status == "pending" else None,
        )
        try:
            new = await writer.store(event, settings.store_timeout)
        except StoreUnavailable as exc:
            return answer(
                "unavailable",
                503,
                status="unavailable",
                error=f"database unavailable ({exc}); retry later",
            )
        if not new:
            return answer("duplicate", 200, status="duplicate", event_id=event.id)
        if verdict.status == "quarantined":
            log.warning("delivery_quarantined", event_id=event.id, reason=verdict.reason)
            return answer(
                "quarantined", 202, status="quarantined", event_id=event.id, reason=verdict.reason
            )
        return answer(
            verdict.status if verdict.status == "ignored" else "accepted",
            202,
            status="accepted",
            event_id=event.id,
            type=event.type,
        )

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    def _database_state() -> str:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            return f"unavailable: {str(exc).splitlines()[0][:200]}"
        return "ok"

    async def readyz(_request: Request) -> Response:
        database = await run_in_threadpool(_database_state)
        broker = await run_in_threadpool(broker_check) if broker_check else "unknown"
        ready = database == "ok"
        return JSONResponse(
            {"status": "ready" if ready else "unavailable", "database": database, "broker": broker},
            status_code=200 if ready else 503,
            headers=None if ready else {"Retry-After": RETRY_AFTER},
        )

    async def metrics_endpoint(_request: Request) -> Response:
        payload = await run_in_threadpool(generate_latest, metrics.registry)
        return Response(payload, media_type=CONTENT_TYPE_LATEST)

    app = Starlette(
        routes=[
            Route("/webhooks/voucherify", receive, methods=["POST"]),
            Route("/webhooks/voucherify/{event_type:path}", receive, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    # A webhook is never redirected: a path that matches no route is a 404, not a 307.
    app.router.redirect_slashes = False
    return app


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)
