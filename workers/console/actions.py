"""Replay from the console: one event, or every event of a filter ("all 37 failed since
09:00"), first as a dry run that says what would run, then on confirmation.

The selection and the replay are `voucherhook replay`'s own (`workers.commands.replay`'s
`eventlog.select_events`, `workers.replay`). The confirmation carries the number of events the
preview showed: if the selection changed meanwhile, nothing runs and the new preview is shown.
A replay runs in the web process, as the command does, so one action replays at most
MAX_REPLAY events; the preview gives the command for more.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

from starlette.datastructures import ImmutableMultiDict
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from models.console import EventFilter, FilterError, read_filter
from models.db import eventlog
from workers.console.auth import Access
from workers.console.web import action, error, in_thread, page, render
from workers.processing import Processor, RetryPolicy
from workers.replay import Summary, pending_work, replay

if TYPE_CHECKING:
    from workers.console.app import Console

MAX_REPLAY = 200
"""Events one console action replays: the request waits for them (and for their
notifications, at the channels' rate limits)."""
SHOWN = 100


def routes(console: Console) -> list[BaseRoute]:
    async def preview(request: Request, access: Access) -> Response:
        try:
            chosen = _chosen(request.query_params)
        except FilterError as exc:
            return error(request, access, 400, str(exc))
        return render(request, "replay.html", access, **await in_thread(_preview, console, chosen))

    async def confirm(request: Request, access: Access, form: dict[str, str]) -> Response:
        try:
            chosen = _chosen(ImmutableMultiDict(form))
        except FilterError as exc:
            return error(request, access, 400, str(exc))
        expected = form.get("expected", "")
        shown = await in_thread(_preview, console, chosen)
        if not expected.isdigit() or int(expected) != shown["count"]:
            shown["changed"] = expected
            return render(request, "replay.html", access, http_status=409, **shown)
        if not shown["runnable"]:
            return render(request, "replay.html", access, http_status=409, **shown)
        ids = [row.id for row in shown["rows"]]
        summary = await in_thread(_replay, console, ids, notify=form.get("notify") == "1")
        after = await in_thread(_statuses, console, ids)
        return render(request, "replayed.html", access, chosen=chosen, summary=summary, after=after)

    return [
        Route("/replay", page(console.auth, preview), methods=["GET"]),
        Route("/replay", action(console.auth, confirm), methods=["POST"]),
    ]


class Chosen:
    """One event (`id`), or the events of a filter `replay` can select by itself."""

    def __init__(self, event_id: str | None, chosen: EventFilter) -> None:
        self.event_id = event_id
        self.filter = chosen

    def describe(self) -> str:
        return f"event {self.event_id}" if self.event_id else self.filter.describe()

    def fields(self) -> dict[str, str]:
        """The hidden fields that choose the same events again."""
        if self.event_id:
            return {"id": self.event_id}
        values = {
            "type": self.filter.type,
            "status": self.filter.status,
            "since": self.filter.since.isoformat() if self.filter.since else None,
            "until": self.filter.until.isoformat() if self.filter.until else None,
        }
        return {k: v for k, v in values.items() if v}

    def command(self) -> str:
        """The same replay on the command line."""
        words = ["voucherhook", "replay"]
        for name, value in self.fields().items():
            words += ["--event-id" if name == "id" else f"--{name}", value]
        return shlex.join(words)


def _chosen(params: Any) -> Chosen:
    event_id = params.get("id") or None
    if event_id is not None:
        if len(event_id) > 255:
            raise FilterError("id is longer than any event id")
        return Chosen(event_id, EventFilter())
    chosen = read_filter(params)
    if chosen.q:
        raise FilterError(
            "a replay selects by type, status and receipt time, not by a search: remove q, "
            "or replay the events found one by one"
        )
    if not chosen.replayable:
        raise FilterError(
            "choose the events to replay: an id, or at least one of type, status, since, until"
        )
    return Chosen(None, chosen)


def _preview(console: Console, chosen: Chosen) -> dict[str, Any]:
    with console.engine.connect() as conn:
        f = chosen.filter
        rows = eventlog.select_events(
            conn,
            ids=[chosen.event_id] if chosen.event_id else (),
            event_type=f.type,
            status=f.status,
            since=f.since,
            until=f.until,
            limit=MAX_REPLAY + 1,
        )
    count = len(rows)
    work = pending_work(console.engine, [row.id for row in rows[:SHOWN]]) if rows else {}
    return {
        "chosen": chosen,
        "rows": rows,
        "count": count,
        "too_many": count > MAX_REPLAY,
        "limit": MAX_REPLAY,
        "work": work,
        "shown": rows[:SHOWN],
        "runnable": 0 < count <= MAX_REPLAY,
    }


def _replay(console: Console, ids: list[str], *, notify: bool) -> Summary:
    runtime = console.runtime
    with console.acting:
        # As `voucherhook replay`: a person asking now gets one attempt, reported, not retried.
        processor = Processor(console.engine, runtime.config, RetryPolicy(max_attempts=1))
        return replay(
            console.engine,
            processor,
            ids,
            senders=runtime.senders,
            policy=runtime.policy,
            pacing=runtime.pacing,
            notify=notify,
        )


def _statuses(console: Console, ids: list[str]) -> list[Any]:
    with console.engine.connect() as conn:
        return eventlog.select_events(conn, ids=ids)
