"""Configuration from the environment: defaults, and one clear line for what is wrong."""

from __future__ import annotations

import pytest

from models.db.engine import async_engine_url, engine_url
from workers.settings import ConfigError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "DATABASE_URL",
        "REDIS_URL",
        "VOUCHERIFY_WEBHOOK_SECRET",
        "PORT",
        "SMTP_URL",
        "NOTIFY_WEBHOOK_URL",
        "VOUCHERHOOK_CURRENCY",
        "VOUCHERHOOK_NOTIFY_WEBHOOK_RATE",
        "VOUCHERHOOK_NOTIFY_EMAIL_RATE",
    ):
        monkeypatch.delenv(name, raising=False)


def test_only_the_secret_is_needed_and_the_rest_is_the_embedded_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VOUCHERIFY_WEBHOOK_SECRET", "s")
    settings = load_settings()
    assert settings.database_url == "sqlite:///voucherhook.db"
    assert settings.embedded
    assert settings.broker_url == "sqla+sqlite:///voucherhook-broker.db"
    assert (settings.port, settings.currency) == (8000, "USD")


def test_missing_secret_names_the_variable_and_where_to_find_it() -> None:
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert str(error.value).startswith("VOUCHERIFY_WEBHOOK_SECRET is not set")
    assert "Webhooks" in str(error.value)


def test_several_secrets_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOUCHERIFY_WEBHOOK_SECRET", "old, new")
    assert load_settings().secrets == [b"old", b"new"]


def test_a_blank_secret_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOUCHERIFY_WEBHOOK_SECRET", " , ")
    with pytest.raises(ConfigError, match=r"^VOUCHERIFY_WEBHOOK_SECRET is empty"):
        load_settings()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DATABASE_URL", "mysql://x/y", "DATABASE_URL must start with sqlite:/// or postgresql://"),
        ("DATABASE_URL", "::nonsense", "DATABASE_URL is not a database URL"),
        ("REDIS_URL", "localhost:6379", "REDIS_URL must look like redis://host or rediss://host"),
        ("REDIS_URL", "redis://h:port/0", "REDIS_URL has a malformed port"),
        ("SMTP_URL", "http://mail", "SMTP_URL must look like smtp://host or smtps://host"),
        ("NOTIFY_WEBHOOK_URL", "hooks.slack", "NOTIFY_WEBHOOK_URL must look like http://host"),
        ("PORT", "eighty", "PORT"),
        ("VOUCHERHOOK_CURRENCY", "usd", "VOUCHERHOOK_CURRENCY must be a three-letter ISO 4217"),
    ],
)
def test_malformed_setting_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv("VOUCHERIFY_WEBHOOK_SECRET", "s")
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_postgres_and_redis_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOUCHERIFY_WEBHOOK_SECRET", STRONG_SECRET)
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@db:5432/voucherhook")
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/0")
    settings = load_settings()
    assert not settings.embedded
    assert settings.broker_url == "redis://cache:6379/0"


# Heroku-like platforms hand out `postgres://`; SQLAlchemy only knows `postgresql://`.
STRONG_SECRET = "9c4e1f7a2b6d8035e1f4"


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("postgres://app:p%40ss@db:5432/vh", "postgresql://app:p%40ss@db:5432/vh"),
        ("postgres+psycopg://app@db/vh", "postgresql+psycopg://app@db/vh"),
        ("postgresql://app@db/vh", "postgresql://app@db/vh"),
        (
            "postgresql+psycopg://app@db/vh?sslmode=require",
            "postgresql+psycopg://app@db/vh?sslmode=require",
        ),
        ("sqlite:///postgres.db", "sqlite:///postgres.db"),
    ],
)
def test_database_url_postgres_scheme_is_normalised(
    monkeypatch: pytest.MonkeyPatch, given: str, kept: str
) -> None:
    monkeypatch.setenv("VOUCHERIFY_WEBHOOK_SECRET", STRONG_SECRET)
    monkeypatch.setenv("DATABASE_URL", given)
    assert load_settings().database_url == kept


@pytest.mark.parametrize(
    "url",
    [
        "postgres://app:p%40ss@db:5432/vh",
        "postgresql://app:p%40ss@db:5432/vh",
        "postgresql+psycopg://app:p%40ss@db:5432/vh",
        "postgresql+asyncpg://app:p%40ss@db:5432/vh",
    ],
)
def test_every_postgres_url_gets_psycopg_sync_and_asyncpg_async(url: str) -> None:
    sync, asynchronous = engine_url(url), async_engine_url(url)
    assert sync.drivername == "postgresql+psycopg"
    assert asynchronous.drivername == "postgresql+asyncpg"
    for made in (sync, asynchronous):
        assert (made.username, made.password, made.host, made.port) == ("app", "p@ss", "db", 5432)
        assert made.database == "vh"


def test_sqlite_urls_keep_their_file_for_both_engines() -> None:
    assert engine_url("sqlite:///x.db").drivername == "sqlite"
    assert async_engine_url("sqlite:///x.db").drivername == "sqlite+aiosqlite"
    assert async_engine_url("sqlite:///x.db").database == "x.db"


@pytest.mark.parametrize("weak", ["change-me", "secret", "short-one", "aaaaaaaaaaaaaaaaaaaa"])
@pytest.mark.parametrize(
    "production",
    [{"REDIS_URL": "redis://cache:6379/0"}, {"DATABASE_URL": "postgresql://app@db/vh"}],
)
def test_a_guessable_webhook_secret_is_refused_in_production(
    monkeypatch: pytest.MonkeyPatch, weak: str, production: dict[str, str]
) -> None:
    monkeypatch.setenv("VOUCHERIFY_WEBHOOK_SECRET", f"{STRONG_SECRET},{weak}")
    for name, value in production.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert str(error.value).startswith("VOUCHERIFY_WEBHOOK_SECRET is too easy to guess")


def test_the_embedded_default_accepts_a_trial_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOUCHERIFY_WEBHOOK_SECRET", "change-me")
    assert load_settings().embedded


def test_admin_token_must_be_hard_to_guess(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOUCHERIFY_WEBHOOK_SECRET", STRONG_SECRET)
    monkeypatch.setenv("VOUCHERHOOK_ADMIN_TOKEN", "admin")
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert str(error.value).startswith("VOUCHERHOOK_ADMIN_TOKEN is too easy to guess")
    monkeypatch.setenv("VOUCHERHOOK_ADMIN_TOKEN", STRONG_SECRET)
    token = load_settings().admin_token
    assert token is not None and token.get_secret_value() == STRONG_SECRET


def test_the_preauth_budget_must_hold_one_largest_body(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOUCHERIFY_WEBHOOK_SECRET", STRONG_SECRET)
    monkeypatch.setenv("VOUCHERHOOK_MAX_BODY_BYTES", "4000000")
    monkeypatch.setenv("VOUCHERHOOK_PREAUTH_BYTES", "3000000")
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert str(error.value).startswith(
        "VOUCHERHOOK_PREAUTH_BYTES (3000000) is smaller than VOUCHERHOOK_MAX_BODY_BYTES"
    )


def test_notifications_default_to_one_webhook_and_ten_emails_a_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VOUCHERIFY_WEBHOOK_SECRET", "s")
    settings = load_settings()
    assert (settings.notify_webhook_rate, settings.notify_email_rate) == (1.0, 10.0)


def test_a_rate_limit_of_zero_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOUCHERIFY_WEBHOOK_SECRET", "s")
    monkeypatch.setenv("VOUCHERHOOK_NOTIFY_WEBHOOK_RATE", "0")
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert str(error.value).startswith("VOUCHERHOOK_NOTIFY_WEBHOOK_RATE ")
