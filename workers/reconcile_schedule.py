"""Reconciliation as the settings configure it: run by `voucherhook reconcile`, and by the
workers on a schedule (`VOUCHERHOOK_RECONCILE_EVERY`), one worker at a time.

What a run does is `workers.reconcile`'s; here, where its credentials, campaigns and silence
threshold come from, and how the events it stores are processed (as `replay` does).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import Engine

from models.db import figures
from workers.processing import Processor, RetryPolicy
from workers.reconcile import Report, reconcile, resume_point
from workers.replay import replay
from workers.settings import Settings
from workers.voucherify_api import ApiError, VoucherifyApi
from workers.wiring import Runtime

log = structlog.get_logger(__name__)

RECENT = timedelta(minutes=5)
"""A scheduled run stops this long before now: deliveries still on their way arrive first."""
FIRST_SPAN = timedelta(days=1)
"""What the first scheduled run covers (Voucherify gives up on a delivery after about a day)."""
SCHEDULE = "reconcile_scheduled"
"""The figure a worker claims to run the schedule's next reconciliation (`models.db.figures`):
one worker at a time, once per VOUCHERHOOK_RECONCILE_EVERY between them."""


def api_for(settings: Settings) -> VoucherifyApi | None:
    """A client of Voucherify's API with the settings' credentials; None when they are unset."""
    credentials = settings.voucherify_credentials
    if credentials is None:
        return None
    app_id, token = credentials
    return VoucherifyApi(
        settings.voucherify_api_url, app_id, token, max_requests=settings.reconcile_max_requests
    )


def configured(
    engine: Engine,
    api: VoucherifyApi,
    settings: Settings,
    runtime: Runtime,
    since: datetime,
    until: datetime,
    *,
    dry_run: bool = False,
    tell: Callable[[str], None] = lambda _what: None,
) -> Report:
    """`reconcile` as the settings configure it, what is missing processed as `replay` does."""
    return reconcile(
        engine,
        api,
        since,
        until,
        campaigns=settings.reconcile_campaigns,
        silence_after=settings.silence_after,
        dry_run=dry_run,
        process=replaying(engine, runtime),
        tell=tell,
    )


def replaying(engine: Engine, runtime: Runtime) -> Callable[[list[str]], dict[str, str]]:
    """Processing of the events a run stored, as `replay` does it: their failures."""

    def process(ids: list[str]) -> dict[str, str]:
        processor = Processor(engine, runtime.config, RetryPolicy(max_attempts=1))
        summary = replay(
            engine,
            processor,
            ids,
            senders=runtime.senders,
            policy=runtime.policy,
            pacing=runtime.pacing,
        )
        return summary.failures

    return process


def scheduled(engine: Engine, settings: Settings, runtime: Runtime) -> int:
    """The workers' reconciliation: from where the last run stopped (the last `FIRST_SPAN`
    the first time) to `RECENT` ago, unless another worker ran it within the interval or is
    running it. How many objects were missing."""
    now = datetime.now(UTC)
    if settings.voucherify_credentials is None:
        return 0
    with engine.begin() as conn:
        figures.ensure(conn, SCHEDULE)
    with engine.begin() as conn:
        # Taken when claimed: the next run is due an interval from now, whatever this one does.
        if not figures.claim(
            conn, SCHEDULE, now - timedelta(seconds=settings.reconcile_every * 0.9)
        ):
            return 0
        figures.put(conn, SCHEDULE, 0, now)
    until = now - RECENT
    since = min(resume_point(engine) or until - FIRST_SPAN, until - timedelta(seconds=1))
    api = api_for(settings)
    assert api is not None  # the credentials are set
    try:
        with api:
            report = configured(engine, api, settings, runtime, since, until)
    except ApiError as exc:
        log.error("reconcile_failed", error=str(exc))
        return 0
    log.info(
        "reconciled",
        since=since.isoformat(),
        until=until.isoformat(),
        here=len(report.here),
        missing=len(report.missing),
        differing=len(report.differing),
        drifting=len(report.drift),
        stored=report.stored,
    )
    return len(report.missing)
