"""The INSERT that can say ON CONFLICT DO NOTHING, for the database at hand."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def insert(conn: Connection | str, table: Table) -> Any:
    """PostgreSQL's or SQLite's INSERT for `table`; `conn` may be a dialect name."""
    name = conn if isinstance(conn, str) else conn.dialect.name
    dialect: Any = postgresql if name == "postgresql" else sqlite
    return dialect.insert(table)
