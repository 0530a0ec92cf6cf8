"""Create or upgrade the schema with Alembic, and tell whether it is current.

Telling needs no Alembic: the newest revision is read from the migration files' headers and
the database's from its `alembic_version` table, so a read-only command starts without
importing Alembic; only `upgrade` does.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from sqlalchemy import Engine, inspect, text

MIGRATIONS = Path(__file__).parent / "migrations"
# `revision = "0005"` (either quote, as Alembic's template or a formatter writes it) or None.
_REVISION = re.compile(r"""^(down_revision|revision) = (?:["']([^"']*)["']|None)$""", re.M)


class SchemaError(Exception):
    """The database schema is missing or older than this code."""


@cache
def head() -> str | None:
    """The revision no other revision builds on."""
    revisions: dict[str, str | None] = {}
    for path in (MIGRATIONS / "versions").glob("*.py"):
        found = dict((name, value or None) for name, value in _REVISION.findall(path.read_text()))
        if found.get("revision"):
            revisions[found["revision"]] = found.get("down_revision")
    built_on = set(revisions.values())
    heads = [revision for revision in revisions if revision not in built_on]
    if len(heads) != 1:
        raise SchemaError(f"the migrations have {len(heads)} heads, not one: {sorted(heads)}")
    return heads[0]


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Bring the schema to `revision` (the newest by default); return (before, after)."""
    from alembic import command
    from alembic.config import Config

    before = current(engine)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
    return before, current(engine)


def check(engine: Engine) -> None:
    """Raise SchemaError when the schema is not at the newest revision."""
    found, wanted = current(engine), head()
    if found != wanted:
        state = "has no schema" if found is None else f"is at revision {found}"
        raise SchemaError(
            f"the database {state}, this code needs {wanted}: run `voucherhook migrate`"
        )
