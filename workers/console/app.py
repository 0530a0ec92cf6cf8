"""The console's routes under /console, its login and its overview.

A `Console` holds what the pages share in one web process: the admin token's `Auth`, an engine
of its own (two connections: the console never takes the receiver's), and, for the actions
that run handlers or send, the workers' `Runtime`, used by one action at a time.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from models.charts import line_chart
from models.console import Window, activity_series, window_labels
from models.db import console_queries, reconcile_store
from models.db.engine import make_engine
from receiver.admin import Cached
from workers.console import actions, books, events, notifications
from workers.console.auth import (
    LOGIN_BODY_BYTES,
    PREFIX,
    Access,
    Auth,
    BodyTooLarge,
    cookie_is_secure,
    end_session,
    read_form,
    safe_next,
    set_session,
)
from workers.console.web import HERE, SecurityHeaders, action, error, page, render
from workers.settings import Settings
from workers.wiring import Runtime

RECOUNT = 300.0
"""Seconds between two counts of a chart's whole window; in between, only the buckets since
the last count are counted again (a week of events at 1M a week takes a second to count)."""


class Activity:
    """One chart's counts by bucket and status: the whole window at most every RECOUNT
    seconds, and at every refresh the buckets since that count, which replace its own."""

    def __init__(self, width: int, buckets: int, title: str) -> None:
        self.width = width
        self.buckets = buckets
        self.title = title
        self._counted: list[tuple[int, str, int]] = []
        self._at: datetime | None = None

    def counts(self, conn: Any, now: datetime) -> tuple[Window, list[tuple[int, str, int]]]:
        window = Window(now, self.width, self.buckets)
        if self._at is None or (now - self._at).total_seconds() >= RECOUNT:
            self._counted = console_queries.activity(conn, window)
            self._at = now
            return window, self._counted
        # From the bucket the last count ended in (it was still filling) to now.
        since = int((now - self._at).total_seconds()) // self.width + 2
        recent = Window(now, self.width, min(since, self.buckets))
        first = recent.first_bucket()
        kept = [row for row in self._counted if row[0] < first]
        return window, kept + console_queries.activity(conn, recent)


WINDOWS = (
    # (seconds per point, points, title)
    (60, 180, "events received per minute, last 3 hours"),
    (3600, 168, "events received per hour, last 7 days"),
)


class Console:
    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        token = settings.admin_token.get_secret_value() if settings.admin_token else None
        self.auth = Auth(token)
        self.engine = engine or make_engine(settings.database_url, pool_size=2)
        self.currency = settings.currency
        self.acting = threading.Lock()
        """One action that runs handlers or sends at a time: they share the Runtime's senders."""
        self.overview = Cached(self._overview, ttl=10.0)
        self.activity = [Activity(*shape) for shape in WINDOWS]

    @cached_property
    def runtime(self) -> Runtime:
        return Runtime(self.settings)

    def _overview(self) -> dict[str, Any]:
        now = datetime.now(UTC)
        charts = []
        with self.engine.connect() as conn:
            for chart in self.activity:
                window, counted = chart.counts(conn, now)
                series, totals = activity_series(counted, window)
                title = chart.title
                svg = line_chart(
                    series,
                    x_range=(0, window.buckets - 1),
                    x_labels=window_labels(window),
                    title=title,
                )
                charts.append({"title": title, "svg": svg, "totals": totals})
            attention = console_queries.attention(conn)
            reconciled = reconcile_store.last_run(conn)
        return {"now": now, "charts": charts, "attention": attention, "reconciled": reconciled}


def routes(settings: Settings, engine: Engine | None = None) -> list[BaseRoute]:
    """The routes `voucherhook serve` adds to the receiver: /console and everything under it."""
    console = Console(settings, engine)
    auth = console.auth

    async def login_form(request: Request) -> Response:
        if auth.token is None:
            return auth.refused(request)
        return render(request, "login.html", None, next=safe_next(request.query_params.get("next")))

    async def login(request: Request) -> Response:
        if auth.token is None:
            return auth.refused(request)
        try:
            form = await read_form(request, LOGIN_BODY_BYTES)
        except BodyTooLarge:
            return error(request, None, 413, f"a login form is at most {LOGIN_BODY_BYTES} bytes")
        target = safe_next(form.get("next"))
        secure = cookie_is_secure(request)
        if secure is None:
            return error(
                request,
                None,
                400,
                "the console logs in only over https, or over http on this machine "
                "(127.0.0.1, ::1, localhost): the token would cross the network in clear. Put "
                "a TLS proxy in front (with FORWARDED_ALLOW_IPS naming it, so that uvicorn "
                "trusts its X-Forwarded-Proto), open an SSH tunnel to 127.0.0.1, or use "
                "`Authorization: Bearer` from a script",
            )
        if not auth.token_matches(form.get("token", "").strip()):
            return render(
                request,
                "login.html",
                None,
                http_status=401,
                next=target,
                message="That is not the admin token (VOUCHERHOOK_ADMIN_TOKEN).",
            )
        response = RedirectResponse(target, status_code=303)
        set_session(response, auth.new_session(), secure=secure)
        return response

    async def logout(request: Request, _access: Access, _form: dict[str, str]) -> Response:
        response = RedirectResponse(f"{PREFIX}/login", status_code=303)
        end_session(response)
        return response

    async def overview(request: Request, access: Access) -> Response:
        shown = await console.overview.get()
        return render(request, "overview.html", access, **shown)

    async def to_console(_request: Request) -> Response:
        return RedirectResponse(f"{PREFIX}/", status_code=307)

    inner = [
        Route("/", page(auth, overview), methods=["GET"]),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", action(auth, logout), methods=["POST"]),
        *events.routes(console),
        *actions.routes(console),
        *books.routes(console),
        *notifications.routes(console),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    app = Starlette(routes=inner)
    app.router.redirect_slashes = False
    return [
        Route(PREFIX, to_console, methods=["GET"]),
        Mount(PREFIX, app=SecurityHeaders(app)),
    ]
