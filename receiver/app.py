"""The HTTP edge: the webhook endpoint (receiver.delivery), health, readiness and metrics,
and what they share: the group-commit writer and the outbox dispatcher."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from receiver.admin import Cached, refusal, state_of
from receiver.config import ReceiverConfig
from receiver.delivery import RETRY_AFTER, DeliveryEndpoint, Receive, Scope, Send
from receiver.limits import ByteBudget
from receiver.metrics import ReceiverMetrics
from receiver.outbox import Dispatcher, Publish
from receiver.store import EventWriter

WEBHOOK_PATH = "/webhooks/voucherify"
WEBHOOK_PREFIX = WEBHOOK_PATH + "/"


def create_app(
    config: ReceiverConfig,
    engine: Engine,
    writer_engine: AsyncEngine,
    publish: Publish,
    *,
    probe_engine: Engine | None = None,
    broker_check: Callable[[], None] | None = None,
    routes: Sequence[BaseRoute] = (),
) -> Front:
    """Build the receiver. `writer_engine` stores deliveries from the event loop; `engine`
    serves the rest (outbox, metrics) from threads; `probe_engine` (default `engine`) answers
    /readyz. `publish` hands event ids to the broker; `broker_check` raises when it is down.
    `routes` are served beside the receiver's own (the operator console)."""
    metrics = ReceiverMetrics(
        engine, metrics_dir=config.metrics_dir, quiet_after=config.quiet_after
    )
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
        deliveries.counts.flush()
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
        deliveries.counts.flush()  # this process's last second, the others' are in their files
        return Response(await scrape.get(), media_type=CONTENT_TYPE_LATEST)

    app = Starlette(
        routes=[
            Route(WEBHOOK_PATH, deliveries, methods=["POST"]),
            Route(WEBHOOK_PREFIX + "{event_type:path}", deliveries, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            *routes,
        ],
        lifespan=lifespan,
    )
    # A webhook is never redirected: a path that matches no route is a 404, not a 307.
    app.router.redirect_slashes = False
    return Front(app, deliveries)


class Front:
    """Sends a POST to the webhook path straight to its endpoint, and everything else
    (health, readiness, metrics, lifespan, 404 and 405) through Starlette.

    Starlette's middleware and router cost a delivery about as much as verifying its signature
    (docs/performance.md). The routes above still list the endpoint, and match the same paths:
    `{event_type:path}` is whatever follows the slash. An exception escaping the endpoint is
    logged by uvicorn, which answers 500, as Starlette's error middleware would.
    """

    def __init__(self, app: Starlette, deliveries: DeliveryEndpoint) -> None:
        self.app = app
        self._deliveries = deliveries

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and not scope.get("root_path")  # served under a prefix: Starlette strips it
            # Starlette's route patterns treat a line feed specially: leave such paths to it.
            and "\n" not in (path := scope["path"])
        ):
            if path == WEBHOOK_PATH:
                scope["path_params"] = {}
                return await self._deliveries(scope, receive, send)
            if path.startswith(WEBHOOK_PREFIX):
                scope["path_params"] = {"event_type": path[len(WEBHOOK_PREFIX) :]}
                return await self._deliveries(scope, receive, send)
        await self.app(scope, receive, send)


def _ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
