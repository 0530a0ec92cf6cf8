"""Writing many rows at once, in the caller's transaction (a rebuild's bulk write)."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Json
from sqlalchemy import JSON, Connection, Table


def insert_rows(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Many rows at once, in the caller's transaction: PostgreSQL's COPY, else executemany."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(table.insert(), rows)
        return
    columns = list(rows[0])
    json_columns = {c.name for c in table.columns if isinstance(c.type, JSON)}
    raw = conn.connection.driver_connection
    assert raw is not None
    with (
        raw.cursor() as cursor,
        cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row([Json(row[c]) if c in json_columns else row[c] for c in columns])
