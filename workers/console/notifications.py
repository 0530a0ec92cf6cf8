"""Notifications: deliveries by status; releasing one a dead worker left `sending`, and
re-sending one that failed (`voucherhook notifications release` and `replay --notify`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from models.console import FilterError, read_cursor
from models.db import console_books, console_queries, notification_store
from models.statuses import NOTIFICATION_STATUSES
from workers.commands.notifications import RELEASED
from workers.console.auth import PREFIX, Access
from workers.console.web import action, error, in_thread, page, render
from workers.notification_sending import deliver_all

if TYPE_CHECKING:
    from workers.console.app import Console

PAGE = 50


def routes(console: Console) -> list[BaseRoute]:
    async def listing(request: Request, access: Access) -> Response:
        status = request.query_params.get("status") or None
        if status is not None and status not in NOTIFICATION_STATUSES:
            return error(
                request, access, 400, f"status must be one of {', '.join(NOTIFICATION_STATUSES)}"
            )
        try:
            before = read_cursor(request.query_params.get("before"), "before")
        except FilterError as exc:
            return error(request, access, 400, str(exc))
        counts, rows = await in_thread(_listing, console, status, before)
        return render(
            request,
            "notifications.html",
            access,
            status=status,
            statuses=NOTIFICATION_STATUSES,
            counts=counts,
            counted=console_queries.COUNTED,
            rows=rows,
            older=rows[-1].seq if len(rows) == PAGE else None,
            done=request.query_params.get("done"),
        )

    async def release(request: Request, access: Access, form: dict[str, str]) -> Response:
        seq = _id(form)
        if seq is None:
            return error(request, access, 400, "give the delivery's id (a number)")
        outcome = await in_thread(_release, console, seq)
        if outcome is not None:
            return error(request, access, 409, outcome)
        return _back(
            f"delivery {seq} released: now failed, re-send it once you know it did not arrive"
        )

    async def resend(request: Request, access: Access, form: dict[str, str]) -> Response:
        seq = _id(form)
        if seq is None:
            return error(request, access, 400, "give the delivery's id (a number)")
        outcome = await in_thread(_resend, console, seq)
        if outcome.startswith("refused: "):
            return error(request, access, 409, outcome.removeprefix("refused: "))
        return _back(f"delivery {seq}: {outcome}")

    return [
        Route("/notifications", page(console.auth, listing), methods=["GET"]),
        Route("/notifications/release", action(console.auth, release), methods=["POST"]),
        Route("/notifications/resend", action(console.auth, resend), methods=["POST"]),
    ]


def _id(form: dict[str, str]) -> int | None:
    value = form.get("id", "")
    return int(value) if value.isdigit() and len(value) < 19 else None


def _back(message: str) -> Response:
    from urllib.parse import urlencode

    return RedirectResponse(f"{PREFIX}/notifications?{urlencode({'done': message})}", 303)


def _listing(
    console: Console, status: str | None, before: int | None
) -> tuple[dict[str, int], list[Any]]:
    with console.engine.connect() as conn:
        counts = console_queries.delivery_counts(conn)
        rows = console_books.notifications_page(conn, status=status, before=before, limit=PAGE)
    return counts, rows


def _unless(conn: Connection, seq: int, status: str) -> str | None:
    """None when delivery `seq` is in `status`, else what it is instead."""
    found = notification_store.statuses(conn, [seq]).get(seq)
    if found == status:
        return None
    return f"delivery {seq} " + ("does not exist" if found is None else f"is {found}")


def _release(console: Console, seq: int) -> str | None:
    """As `voucherhook notifications release`: only a delivery left `sending`; None when
    released, else why not."""
    with console.engine.begin() as conn:
        wrong = _unless(conn, seq, "sending")
        if wrong:
            return (
                f"released nothing: {wrong}; only a delivery left `sending` by a worker that "
                "died mid-send can be released"
            )
        notification_store.release(conn, [seq], RELEASED)
    return None


def _resend(console: Console, seq: int) -> str:
    """A failed delivery sent again now (at its channel's rate), as `replay --notify` does:
    what became of it, or `refused: …`."""
    runtime = console.runtime
    with console.acting:
        with console.engine.begin() as conn:
            wrong = _unless(conn, seq, "failed")
            if wrong:
                return (
                    f"refused: {wrong}; only a failed delivery is sent again (a `sending` one "
                    "is released first, once you know it did not arrive; a sent one never is)"
                )
            if not notification_store.retry_deliveries(conn, [seq], datetime.now(UTC)):
                return f"refused: delivery {seq} was redacted: it has nothing left to send"
        done = deliver_all(console.engine, runtime.senders, [seq], runtime.policy, runtime.pacing)
    result = done[0]
    if result.result == "sent":
        return "sent"
    return f"{result.result}" + (f": {result.error}" if result.error else "")
