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

from models.db.eventlog import NewEvent
from models.identity import Identified, identify
from receiver.admin import Cached, refusal, state_of
from receiver.config import ReceiverConfig
from receiver.limits import ByteBudget, Throttled
from receiver.metrics import ReceiverMetrics
from receiver.outbox import Dispatcher, Publish
from receiver.signature import HEADER, parse_header, signed_form
from receiver.store import EventWriter, StoreUnavailable

log = structlog.get_logger(__name__)

# Headers kept with each event: what helps a person tell where a delivery came from. Never
# the signature: with the body it would be a delivery anyone reading a backup could replay.
KEPT_HEADERS = ("content-type", "content-length", "user-agent", "x-forwarded-for")
RETRY_AFTER = "30"
# Bodies up to this size are verified on the event loop (well under a millisecond); larger
# ones in a thread, so one large body never holds up the other requests.
INLINE_BYTES = 64 * 1024
# A refusal before or instead of reading the body ends the connection: nothing unread is
# drained, and the client cannot keep a refused connection busy.
CLOSE = {"Connection": "close"}


class BodyTooLarge(Exception):
    pass


class Busy(Exception):
    """The bytes allowed for unauthenticated bodies are all in use."""


def create_app(
    config: ReceiverConfig,
    engine: Engine,
    writer_engine: AsyncEngine,
    publish: Publish,
    *,
    probe_engine: Engine | None = None,
    broker_check: Callable[[], None] | None = None,
) -> Starlette:
    """Build the receiver. `writer_engine` stores deliveries from the event loop; `engine`
    serves the rest (outbox, metrics) from threads; `probe_engine` (default `engine`) answers
    /readyz. `publish` hands event ids to the broker; `broker_check` raises when it is down."""
    metrics = ReceiverMetrics(engine)
    dispatcher = Dispatcher(engine, publish, on_failure=metrics.dispatch_failures.inc)
    writer = EventWriter(writer_engine, dispatcher.submit)
    secrets = config.secrets
    admin_token = config.admin_token
    budget = ByteBudget(config.preauth_bytes)
    log_unauthorized = Throttled(lambda **fields: log.info("delivery_unauthorized", **fields))
    probe = probe_engine or engine
    database_state = Cached(state_of("database", lambda: _ping(probe)))
    broker_state = Cached(state_of("broker", broker_check)) if broker_check else None
    scrape = Cached(lambda: generate_latest(metrics.registry))

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

    def answer(
        outcome: str, code: int, headers: dict[str, str] | None = None, **body: Any
    ) -> JSONResponse:
        metrics.deliveries.labels(outcome).inc()
        if code == 503:
            headers = {**(headers or {}), "Retry-After": RETRY_AFTER}
        return JSONResponse(body, status_code=code, headers=headers)

    def unauthorized(request: Request, reason: str) -> JSONResponse:
        log_unauthorized(reason=reason, path=request.url.path[:200])
        return answer(
            "unauthorized",
            401,
            CLOSE,
            status="rejected",
            error=f"signature {reason}: {HEADER} must be the HMAC-SHA256 of the body "
            "under VOUCHERIFY_WEBHOOK_SECRET",
        )

    def too_large() -> JSONResponse:
        return answer(
            "too_large",
            413,
            CLOSE,
            status="rejected",
            error=f"body larger than {config.max_body_bytes} bytes "
            "(raise VOUCHERHOOK_MAX_BODY_BYTES to accept it)",
        )

    async def receive(request: Request) -> Response:
        started = time.perf_counter()
        try:
            return await _receive(request)
        finally:
            metrics.receive_seconds.observe(time.perf_counter() - started)

    async def _receive(request: Request) -> Response:
        # Nothing is read before the header could be a signature and the size is allowed.
        header = request.headers.get(HEADER)
        given = parse_header(header)
        if given is None:
            return unauthorized(request, "missing" if header is None else "malformed")
        declared = _declared_length(request)
        if declared is not None and declared > config.max_body_bytes:
            return too_large()
        reader = _BodyReader(budget, config.max_body_bytes)
        try:
            # A timeout scope, not wait_for: wait_for runs the read in a task of its own.
            async with asyncio.timeout(config.body_timeout):
                body = await reader.read(request, declared)
            if len(body) <= INLINE_BYTES:
                verdict = _check(body, given, secrets, request.path_params)
            else:
                verdict = await run_in_threadpool(_check, body, given, secrets, request.path_params)
        except BodyTooLarge:
            return too_large()
        except Busy:
            return answer(
                "busy",
                503,
                CLOSE,
                status="unavailable",
                error="too many large requests at once; retry later",
            )
        except TimeoutError:
            return answer(
                "timeout",
                408,
                CLOSE,
                status="rejected",
                error=f"body not received within {config.body_timeout:g}s",
            )
        finally:
            reader.release()
        if verdict is None:
            return unauthorized(request, "does not match")
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
            new = await writer.store(event, config.store_timeout)
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

    async def readyz(_request: Request) -> Response:
        database = await database_state.get()
        broker = await broker_state.get() if broker_state else "unknown"
        ready = database == "ok"
        return JSONResponse(
            {"status": "ready" if ready else "unavailable", "database": database, "broker": broker},
            status_code=200 if ready else 503,
            headers=None if ready else {"Retry-After": RETRY_AFTER},
        )

    async def metrics_endpoint(request: Request) -> Response:
        if (refused := refusal(admin_token, request)) is not None:
            return refused
        return Response(await scrape.get(), media_type=CONTENT_TYPE_LATEST)

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


def _check(
    body: bytes, given: bytes, secrets: list[bytes], path_params: dict[str, Any]
) -> Identified | None:
    """Verify, then identify by the signed bytes; None when the signature does not match."""
    signed = signed_form(body, given, secrets)
    if signed is None:
        return None
    return identify(signed, path_params.get("event_type"))


def _declared_length(request: Request) -> int | None:
    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit() or len(declared) > 18:
        return None
    return int(declared)


def _ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


class _BodyReader:
    """Reads one body within the size limit, holding its bytes against the shared budget
    (the declared length up front, else chunk by chunk) until `release`."""

    def __init__(self, budget: ByteBudget, limit: int) -> None:
        self._budget = budget
        self._limit = limit
        self._held = 0

    async def read(self, request: Request, declared: int | None) -> bytes:
        if declared is not None:
            self._take(declared)
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self._limit:
                raise BodyTooLarge
            if size > self._held:
                self._take(size - self._held)
            chunks.append(chunk)
        return b"".join(chunks)

    def _take(self, size: int) -> None:
        if not self._budget.take(size):
            raise Busy
        self._held += size

    def release(self) -> None:
        self._budget.give(self._held)
        self._held = 0
