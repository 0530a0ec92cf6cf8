"""The configuration every process reads from its environment, declared once.

Declaring the settings reads nothing; `load_settings()` is called by the entry points only, so a
missing or malformed value stops the program at start with one line naming it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it and says what to do."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    database_url: str = Field("sqlite:///voucherhook.db", alias="DATABASE_URL")
    redis_url: str | None = Field(None, alias="REDIS_URL")
    # Needed by the receiver and `send` only (load_settings(require_secret=True)).
    webhook_secrets: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, alias="VOUCHERIFY_WEBHOOK_SECRET"
    )
    currency: str = Field("USD", alias="VOUCHERHOOK_CURRENCY")
    host: str = Field("127.0.0.1", alias="VOUCHERHOOK_HOST")
    port: int = Field(8000, alias="PORT", ge=1, le=65535)
    smtp_url: str | None = Field(None, alias="SMTP_URL")
    notify_webhook_url: str | None = Field(None, alias="NOTIFY_WEBHOOK_URL")
    # Messages per second each channel takes, for the whole deployment (every worker and
    # replay together); more wait their turn, none is dropped. Slack's incoming webhooks take
    # about one a second; an SMTP relay or provider usually a few to a few dozen.
    notify_webhook_rate: float = Field(1.0, alias="VOUCHERHOOK_NOTIFY_WEBHOOK_RATE", gt=0)
    notify_email_rate: float = Field(10.0, alias="VOUCHERHOOK_NOTIFY_EMAIL_RATE", gt=0)
    max_body_bytes: int = Field(2 * 1024 * 1024, alias="VOUCHERHOOK_MAX_BODY_BYTES", ge=1024)
    # Bodies being read before their signature is checked, per web process, all together.
    preauth_bytes: int = Field(32 * 1024 * 1024, alias="VOUCHERHOOK_PREAUTH_BYTES", ge=1024)
    max_connections: int = Field(1000, alias="VOUCHERHOOK_MAX_CONNECTIONS", ge=1)
    admin_token: SecretStr | None = Field(None, alias="VOUCHERHOOK_ADMIN_TOKEN")
    body_timeout: float = Field(8.0, alias="VOUCHERHOOK_BODY_TIMEOUT", gt=0)
    store_timeout: float = Field(8.0, alias="VOUCHERHOOK_STORE_TIMEOUT", gt=0)
    queue: str = Field("voucherhook", alias="VOUCHERHOOK_QUEUE", pattern=r"^[A-Za-z0-9_.\-]+$")
    sweep_interval: float = Field(10.0, alias="VOUCHERHOOK_SWEEP_INTERVAL", gt=0)
    sweep_after: float = Field(30.0, alias="VOUCHERHOOK_SWEEP_AFTER", ge=0)
    redispatch_after: float = Field(300.0, alias="VOUCHERHOOK_REDISPATCH_AFTER", gt=0)
    # How long what a worker took stays its own without a renewal (renewed every third of it).
    lease_expiry: float = Field(15.0, alias="VOUCHERHOOK_LEASE_EXPIRY", ge=3)
    # Personal data of events older than this many days is redacted by the workers; 0: kept.
    retention_days: int = Field(0, alias="VOUCHERHOOK_RETENTION_DAYS")
    worker_concurrency: int = Field(2, alias="VOUCHERHOOK_WORKER_CONCURRENCY", ge=1)
    email_from: str = Field("voucherhook@localhost", alias="VOUCHERHOOK_EMAIL_FROM")
    templates_dir: Path | None = Field(None, alias="VOUCHERHOOK_TEMPLATES_DIR")
    max_attempts: int = Field(5, alias="VOUCHERHOOK_MAX_ATTEMPTS", ge=1)
    retry_backoff: float = Field(2.0, alias="VOUCHERHOOK_RETRY_BACKOFF", gt=0)
    retry_backoff_max: float = Field(300.0, alias="VOUCHERHOOK_RETRY_BACKOFF_MAX", gt=0)
    # The port of a worker's /metrics (0: none); the web processes serve theirs on PORT.
    worker_metrics_port: int = Field(9808, alias="VOUCHERHOOK_WORKER_METRICS_PORT", ge=0, le=65535)
    # Seconds without a new event that are unusual for this deployment: exported for the
    # alert rules (deploy/prometheus/alerts.yml), which page past it.
    quiet_alert_after: float = Field(21600.0, alias="VOUCHERHOOK_QUIET_ALERT_AFTER", gt=0)
    # Where the processes of one `serve` or `worker` command keep their metrics' counts (set
    # by the command itself when unset: see workers.metric_files).
    metrics_dir: str | None = Field(None, alias="PROMETHEUS_MULTIPROC_DIR")
    # auto: readable lines on a terminal, JSON (one object per line) otherwise.
    # Voucherify's API, read by `voucherhook reconcile`; off while the credentials are unset.
    voucherify_api_url: str = Field("https://api.voucherify.io", alias="VOUCHERIFY_API_URL")
    voucherify_app_id: str | None = Field(None, alias="VOUCHERIFY_APP_ID")
    voucherify_app_token: SecretStr | None = Field(None, alias="VOUCHERIFY_APP_TOKEN")
    # Requests one reconciliation may make (Voucherify's plans allow 100 to 2,000 a minute).
    reconcile_max_requests: int = Field(2000, alias="VOUCHERHOOK_RECONCILE_MAX_REQUESTS", ge=1)
    # Gift and loyalty campaigns (ids or names) whose transactions are always reconciled;
    # those of the cards a run's redemptions used are added.
    reconcile_campaigns: Annotated[list[str], NoDecode] = Field(
        default_factory=list, alias="VOUCHERHOOK_RECONCILE_CAMPAIGNS"
    )
    # Seconds between two reconciliations run by the workers (when the credentials are set).
    reconcile_every: float = Field(3600.0, alias="VOUCHERHOOK_RECONCILE_EVERY", gt=0)
    # Seconds without a delivery after which a reconciliation that finds objects missing says
    # the webhook is probably disabled (Voucherify disables it after a day of failures).
    silence_after: float = Field(3600.0, alias="VOUCHERHOOK_SILENCE_AFTER", gt=0)
    log_format: Literal["auto", "console", "json"] = Field("auto", alias="VOUCHERHOOK_LOG_FORMAT")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", alias="VOUCHERHOOK_LOG_LEVEL"
    )

    @property
    def voucherify_credentials(self) -> tuple[str, str] | None:
        """The API keys (`VOUCHERIFY_APP_ID`, `VOUCHERIFY_APP_TOKEN`), or None when either is
        unset: reconciliation is off."""
        token = self.voucherify_app_token.get_secret_value() if self.voucherify_app_token else ""
        return (self.voucherify_app_id, token) if self.voucherify_app_id and token else None

    @field_validator("reconcile_campaigns", mode="before")
    @classmethod
    def _split_campaigns(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("webhook_secrets", mode="before")
    @classmethod
    def _split_secrets(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [part.strip() for part in value.split(",") if part.strip()]
            if not parts:
                raise ValueError("is empty")
            return parts
        return value

    @field_validator("admin_token")
    @classmethod
    def _admin_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if _weak(value.get_secret_value()):
            raise ValueError(f"is too easy to guess: {STRONG_HINT}")
        return value

    @model_validator(mode="after")
    def _strong_secret_in_production(self) -> Settings:
        production = not self.embedded or not self.database_url.startswith("sqlite")
        if production and any(_weak(s.get_secret_value()) for s in self.webhook_secrets):
            raise ValueError(
                "VOUCHERIFY_WEBHOOK_SECRET is too easy to guess for a server database or "
                f"broker: use the secret Voucherify shows ({STRONG_HINT})"
            )
        return self

    @model_validator(mode="after")
    def _budget_holds_a_body(self) -> Settings:
        if self.preauth_bytes < self.max_body_bytes:
            raise ValueError(
                f"VOUCHERHOOK_PREAUTH_BYTES ({self.preauth_bytes}) is smaller than "
                f"VOUCHERHOOK_MAX_BODY_BYTES ({self.max_body_bytes}): a body between the two "
                "could never be read; raise VOUCHERHOOK_PREAUTH_BYTES"
            )
        return self

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError("is not a database URL") from None
        if url.get_backend_name() not in ("sqlite", "postgresql", "postgres"):
            raise ValueError("must start with sqlite:/// or postgresql://") from None
        if url.get_backend_name() == "postgres":  # as Heroku-like platforms hand it out
            value = "postgresql" + value.removeprefix("postgres")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        return _check_url(value, ("redis", "rediss"))

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: str | None) -> str | None:
        return _check_url(value, ("smtp", "smtps"))

    @field_validator("notify_webhook_url")
    @classmethod
    def _notify_url(cls, value: str | None) -> str | None:
        return _check_url(value, ("http", "https"))

    @field_validator("templates_dir")
    @classmethod
    def _templates_dir(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"{value} is not a directory")
        return value

    @field_validator("retention_days", mode="before")
    @classmethod
    def _retention_days(cls, value: object) -> object:
        text = str(value).strip() or "0"
        if not text.isdigit():
            raise ValueError(
                f"must be a whole number of days, not {value!r} (0 or unset: keep forever)"
            )
        return int(text)

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Z]{3}", value):
            raise ValueError("must be a three-letter ISO 4217 code such as USD")
        return value

    @property
    def secrets(self) -> list[bytes]:
        return [secret.get_secret_value().encode() for secret in self.webhook_secrets]

    @property
    def embedded(self) -> bool:
        """True when no broker server is configured: the broker lives in a local file."""
        return self.redis_url is None

    @property
    def broker_url(self) -> str:
        if self.redis_url:
            return self.redis_url
        return f"sqla+sqlite:///{self.embedded_broker_path}"

    @property
    def embedded_broker_path(self) -> Path:
        url = make_url(self.database_url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            db = Path(url.database)
            return db.with_name(f"{db.stem}-broker.db")
        return Path("voucherhook-broker.db")


STRONG_HINT = "at least 16 characters, e.g. from `openssl rand -hex 32`"
# Placeholders a README or a template hands out, even padded to a length that passes.
_PLACEHOLDERS = ("change-me", "changeme", "your-secret")


def _weak(secret: str) -> bool:
    """A secret a guess or a README could give away."""
    return (
        len(secret) < 16
        or len(set(secret)) < 6
        or any(word in secret.lower() for word in _PLACEHOLDERS)
    )


def _check_url(value: str | None, schemes: tuple[str, ...]) -> str | None:
    if value is None or value == "":
        return None
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        expected = " or ".join(f"{scheme}://host" for scheme in schemes)
        raise ValueError(f"must look like {expected}")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise ValueError("has a malformed port") from None
    return value


def load_settings(*, require_secret: bool = True) -> Settings:
    """Read the environment; raise ConfigError with one readable line on the first problem.
    `require_secret`: VOUCHERIFY_WEBHOOK_SECRET must be set (the receiver, `send`)."""
    try:
        settings = Settings()
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else "configuration"
        name = _ALIASES.get(name, name)
        if error["type"] == "missing":
            hint = _MISSING_HINTS.get(name, "set it in the environment")
            raise ConfigError(f"{name} is not set: {hint}") from None
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "literal_error":
            message = f"must be {error['ctx']['expected']}, not {error['input']!r}"
        if not error["loc"]:  # a rule across settings: the message names them itself
            raise ConfigError(message) from None
        raise ConfigError(f"{name} {message}") from None
    if require_secret and not settings.webhook_secrets:
        hint = _MISSING_HINTS["VOUCHERIFY_WEBHOOK_SECRET"]
        raise ConfigError(f"VOUCHERIFY_WEBHOOK_SECRET is not set: {hint}")
    return settings


_ALIASES = {name: str(field.alias) for name, field in Settings.model_fields.items() if field.alias}
_MISSING_HINTS = {
    "VOUCHERIFY_WEBHOOK_SECRET": (
        "set it to the webhook secret from Voucherify's Project settings → Webhooks "
        "(several, comma-separated, while rotating)"
    ),
}
