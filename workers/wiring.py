"""What a worker process needs at hand, wired up once per process from the settings: its
database engine, the retry policy, the handlers' configuration, the processor, and the
notification channels (`workers.notification_channels`) its settings turn on, with their rate
limits."""

from __future__ import annotations

import os
from functools import cached_property

from sqlalchemy import Engine

from models.db.engine import make_engine
from workers.handlers.base import Config
from workers.notification_channels import EmailSender, Sender, WebhookSender
from workers.notification_sending import Pacing
from workers.processing import Processor, RetryPolicy
from workers.settings import Settings
from workers.templates import environment


class Runtime:
    """Holds one engine per process: a forked child must never reuse its parent's sockets."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._engine: Engine | None = None
        self._pid = 0

    @property
    def engine(self) -> Engine:
        if self._engine is None or self._pid != os.getpid():
            if self._engine is not None:
                self._engine.dispose(close=False)
            self._engine = make_engine(self.settings.database_url)
            self._pid = os.getpid()
        return self._engine

    @cached_property
    def policy(self) -> RetryPolicy:
        settings = self.settings
        return RetryPolicy(
            settings.max_attempts,
            settings.retry_backoff,
            settings.retry_backoff_max,
            settings.lease_expiry,
        )

    @cached_property
    def config(self) -> Config:
        settings = self.settings
        return Config(
            currency=settings.currency,
            templates=environment(settings.templates_dir),
            email=settings.smtp_url is not None,
            webhook=settings.notify_webhook_url is not None,
        )

    @property
    def processor(self) -> Processor:
        return Processor(self.engine, self.config, self.policy)

    @cached_property
    def pacing(self) -> Pacing:
        settings = self.settings
        return Pacing(
            {"email": settings.notify_email_rate, "webhook": settings.notify_webhook_rate}
        )

    @cached_property
    def senders(self) -> dict[str, Sender]:
        senders: dict[str, Sender] = {}
        if self.settings.smtp_url:
            senders["email"] = EmailSender(self.settings.smtp_url, self.settings.email_from)
        if self.settings.notify_webhook_url:
            senders["webhook"] = WebhookSender(self.settings.notify_webhook_url)
        return senders
