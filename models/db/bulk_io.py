"""Reading and writing many rows at once, in the caller's transaction (a rebuild's bulk I/O).

On PostgreSQL rows are read in the binary protocol, straight from the driver (a stored body
arrives as its bytes, not as hex to decode), and written with COPY; other databases (SQLite)
get SQLAlchemy's portable execution. Row values are plain Python values either way.
"""

from __future__ import annotations

import io
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from functools import lru_cache
from itertools import islice
from typing import Any

from psycopg import Copy
from psycopg.copy import FileWriter
from psycopg.types.json import Json
from sqlalchemy import JSON, ColumnElement, Connection, Dialect, Executable, Table, delete, tuple_
from sqlalchemy.sql import ClauseElement

DELETE_CHUNK = 5000
"""Keys per DELETE: well below SQLite's limit on parameters in a statement."""


def fetch(conn: Connection, stmt: Executable, **params: Any) -> list[tuple[Any, ...]]:
    """Every row of a (small enough) result, with these values of its bound parameters."""
    if conn.dialect.name != "postgresql":
        return [tuple(row) for row in conn.execute(stmt, params).all()]
    sql, defaults = _compiled(stmt, conn.dialect)
    with _driver(conn).cursor(binary=True) as cursor:
        rows: list[tuple[Any, ...]] = cursor.execute(sql, {**defaults, **params}).fetchall()
        return rows


def stream(conn: Connection, stmt: Executable, size: int = 5000) -> Iterator[list[tuple[Any, ...]]]:
    """The rows of a large result in lists of up to `size`, read as they are consumed (on
    PostgreSQL through a server-side cursor of the caller's transaction)."""
    if conn.dialect.name != "postgresql":
        result = conn.execute(stmt)
        while rows := result.fetchmany(size):
            yield [tuple(row) for row in rows]
        return
    sql, params = _compiled(stmt, conn.dialect)
    with _driver(conn).cursor("voucherhook_bulk_stream", binary=True) as cursor:
        cursor.itersize = size
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(size):
            yield rows


def insert_rows(conn: Connection, table: Table, rows: Iterable[Mapping[str, Any]]) -> None:
    """Many rows with the same columns: PostgreSQL's COPY, else executemany."""
    rows = list(rows)
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(table.insert(), rows)
        return
    columns = list(rows[0])
    json_columns = {c.name for c in table.columns if isinstance(c.type, JSON)}
    with (
        _driver(conn).cursor() as cursor,
        cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row([Json(row[c]) if c in json_columns else row[c] for c in columns])


def copy_rows(conn: Connection, table: Table, rows: Iterable[Sequence[Any]]) -> None:
    """Many rows given as tuples of every column of `table`, in its order: PostgreSQL's COPY
    (values as they are, a JSON column's too), else executemany."""
    names = [column.name for column in table.columns]
    if not isinstance(rows, Sequence):
        rows = list(rows)
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(table.insert(), [dict(zip(names, row, strict=True)) for row in rows])
        return
    json_at = [n for n, column in enumerate(table.columns) if isinstance(column.type, JSON)]
    with (
        _driver(conn).cursor() as cursor,
        cursor.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy,
    ):
        if not json_at:
            for row in rows:
                copy.write_row(row)
            return
        for row in rows:
            values = list(row)
            for n in json_at:
                values[n] = Json(values[n])
            copy.write_row(values)


def copy_text(conn: Connection, rows: Iterable[Sequence[Any]]) -> bytes:
    """Rows in PostgreSQL's COPY text format, made by the driver on this side of the
    connection, sending nothing: where the rows are computed (another process), so that the
    connection writing them only passes the bytes on (`copy_encoded`)."""
    buffer = io.BytesIO()
    with _driver(conn).cursor() as cursor, Copy(cursor, writer=FileWriter(buffer)) as copy:
        for row in rows:
            copy.write_row(row)
    return buffer.getvalue()


def copy_encoded(conn: Connection, table: Table, data: bytes) -> None:
    """Rows of every column of `table`, in COPY's text format (`copy_text`)."""
    if not data:
        return
    names = ", ".join(column.name for column in table.columns)
    with (
        _driver(conn).cursor() as cursor,
        cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy,
    ):
        copy.write(data)


def delete_keys(
    conn: Connection, table: Table, key: tuple[str, ...], keys: Collection[tuple[Any, ...]]
) -> int:
    """Delete the rows whose `key` columns hold one of `keys` (tuples of values); how many."""
    column: ColumnElement[Any]
    if len(key) == 1:
        column, values = table.c[key[0]], [k[0] for k in keys]
    else:
        column, values = tuple_(*(table.c[name] for name in key)), list(keys)
    deleted, pending = 0, iter(values)
    while chunk := list(islice(pending, DELETE_CHUNK)):
        deleted += conn.execute(delete(table).where(column.in_(chunk))).rowcount
    return deleted


def _driver(conn: Connection) -> Any:
    driver = conn.connection.driver_connection
    assert driver is not None
    return driver


@lru_cache(maxsize=64)
def _compiled(stmt: Executable, dialect: Dialect) -> tuple[str, Mapping[str, Any]]:
    """The SQL text of a statement, and the values its parameters have by default: compiled
    once for a statement run again and again (a page after another)."""
    assert isinstance(stmt, ClauseElement)
    compiled = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    return str(compiled), compiled.params
