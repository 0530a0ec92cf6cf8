"""What every command shares: its error type and how it reaches the database."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from models.db import schema
from models.db.engine import make_engine
from receiver.errors import first_line
from workers.settings import Settings


class CommandError(Exception):
    """A failure to report as one line, with a non-zero exit."""


def connect(settings: Settings) -> Engine:
    """An engine on a reachable database whose schema is current, or a CommandError."""
    engine = make_engine(settings.database_url)
    try:
        schema.check(engine)
    except SQLAlchemyError as exc:
        raise CommandError(db_error(settings, exc)) from None
    return engine


def db_error(settings: Settings, exc: Exception) -> str:
    return f"database {redacted(settings.database_url)} unavailable: {first_line(exc)}"


def redacted(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
