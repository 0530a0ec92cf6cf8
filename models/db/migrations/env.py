"""Alembic environment: migrations run on the connection `models.db.schema` hands in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from models.db.tables import metadata

connection: Connection | None = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `voucherhook migrate`, which passes the connection")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
