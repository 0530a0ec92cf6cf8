"""The HTTP edge: the webhook endpoint (receiver.delivery), health, readiness and metrics,
and what they share: the group-commit writer and the outbox dispatcher."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from receiver.admin import Cached, refusal, state_of
from receiver.config import ReceiverConfig
from receiver.delivery import RETRY_AFTER, DeliveryEndpoint
from receiver.limits import ByteBudget
from receiver.metrics import ReceiverMetrics
from receiver.outbox import Dispatcher, Publish
from receiver.store import EventWriter


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
    deliveries = DeliveryEndpoint(config, writer, metrics, ByteBudget(config.preauth_bytes))
    admin_token = config.admin_token
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
            Route("/webhooks/voucherify", deliveries, methods=["POST"]),
            Route("/webhooks/voucherify/{event_type:path}", deliveries, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    # A webhook is never redirected: a path that matches no route is a 404, not a 307.
    app.router.redirect_slashes = False
    return app


def _ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
