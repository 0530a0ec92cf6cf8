"""Builds the receiver for uvicorn, wired to the database and the Celery broker."""

from __future__ import annotations

from models.db.engine import make_async_engine, make_engine
from receiver.app import Front, create_app
from receiver.config import ReceiverConfig
from workers import logs
from workers.celery_app import check_broker, make_celery, publisher
from workers.console import app as console
from workers.settings import load_settings


def app_from_env() -> Front:
    """uvicorn's factory: each web process reads the environment and builds its own app."""
    settings = load_settings()
    logs.configure(settings.log_level, settings.log_format)
    timeout = settings.store_timeout / 2
    engine = make_engine(settings.database_url, pool_size=2, timeout=timeout)
    # Readiness has a connection of its own: no amount of other work can starve it.
    probe_engine = make_engine(settings.database_url, pool_size=1, timeout=timeout)
    writer_engine = make_async_engine(settings.database_url, timeout=timeout)
    celery = make_celery(settings, fail_fast=True)
    config = ReceiverConfig(
        secrets=settings.secrets,
        admin_token=settings.admin_token.get_secret_value() if settings.admin_token else None,
        max_body_bytes=settings.max_body_bytes,
        preauth_bytes=settings.preauth_bytes,
        body_timeout=settings.body_timeout,
        store_timeout=settings.store_timeout,
        metrics_dir=settings.metrics_dir,
        quiet_after=settings.quiet_alert_after,
    )
    return create_app(
        config,
        engine,
        writer_engine,
        publisher(celery, settings.queue),
        probe_engine=probe_engine,
        broker_check=lambda: check_broker(celery),
        routes=console.routes(settings),
    )
