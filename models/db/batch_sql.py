"""Many rows in one statement, for the live path's batches (a rebuild's bulk write is COPY, in
`models.db.bulk_io`).

On PostgreSQL the rows travel as one JSON parameter, read back with `json_to_recordset`: one
statement, one plan and one round trip however many rows there are, where an executemany runs
a statement per row (and orjson writes the parameter far faster than the driver adapts arrays).
Other databases (SQLite) get the portable executemany.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from functools import cache
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    ColumnElement,
    Connection,
    Table,
    Text,
    TextClause,
    Update,
    bindparam,
    func,
    select,
    text,
)
from sqlalchemy.dialects import postgresql

from models.db.insert import insert


def insert_many(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    conflict: tuple[str, ...] | None = None,
    returning: str | None = None,
) -> list[Any]:
    """Insert rows (all with the same columns) in their order; with `conflict` (the columns of
    a unique index, or () for any), a row that conflicts is skipped, also one conflicting with
    an earlier row of `rows`. Answers the `returning` column of the rows inserted."""
    if not rows:
        return []
    if conn.dialect.name == "postgresql":
        statement = _insert_from_json(table, tuple(rows[0]), conflict, returning)
        result = conn.execute(statement, {"rows": as_json(rows)})
    else:
        stmt = insert(conn, table)
        if conflict is not None:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(conflict) or None)
        if returning is not None:
            stmt = stmt.returning(table.c[returning])
        result = conn.execute(stmt, list(rows))
    return list(result.scalars()) if returning is not None else []


def among(conn: Connection, column: ColumnElement[Any], values: Collection[Any]) -> Any:
    """`column IN (values)`; on PostgreSQL the values travel as one JSON parameter."""
    if conn.dialect.name == "postgresql":
        array = bindparam(None, as_json(list(values)), type_=Text).cast(JSON)
        return column.in_(select(func.json_array_elements_text(array)))
    return column.in_(list(values))


def rows_from(table: Table, columns: Sequence[str]) -> str:
    """`FROM … AS x(columns…, n)`: PostgreSQL rows from the JSON array parameter `rows` (made
    by `as_json`), typed as the columns of `table`; `x.n` is each row's position."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    types = ", ".join(f"{name} {table.c[name].type.compile(dialect=dialect)}" for name in columns)
    return (
        f"FROM ROWS FROM (json_to_recordset(CAST(:rows AS json)) AS ({types})) "
        f"WITH ORDINALITY AS x({', '.join(columns)}, n)"
    )


def as_json(rows: Sequence[Any]) -> str:
    return orjson.dumps(rows).decode()


@cache
def _insert_from_json(
    table: Table, columns: tuple[str, ...], conflict: tuple[str, ...] | None, returning: str | None
) -> TextClause:
    names = ", ".join(columns)
    sql = (
        f"INSERT INTO {table.name} ({names}) SELECT {names} {rows_from(table, columns)} ORDER BY n"
    )
    if conflict is not None:
        target = f" ({', '.join(conflict)})" if conflict else ""
        sql += f" ON CONFLICT{target} DO NOTHING"
    if returning is not None:
        sql += f" RETURNING {returning}"
    return text(sql)


def is_pending(table: Table) -> ColumnElement[bool]:
    """`status = 'pending'`, for a query that finds its rows by key: written so that no index
    on status can serve it. Otherwise PostgreSQL may read every pending row through such an
    index (the partial `ix_events_outbox`) and test each against the keys, whenever its
    statistics say few rows are pending: right after a backlog built up, or in a table not
    analyzed yet, a lease or a batch's update of 100 events read every event waiting."""
    return table.c.status.concat("") == "pending"


def lease_pending(
    conn: Connection,
    table: Table,
    key: ColumnElement[Any],
    ids: Sequence[Any],
    values: Mapping[str, Any],
) -> int:
    """Set `values` (a lease) on the pending rows of `table` among `ids` (by `key`) that no
    other transaction holds: a row locked by a batch settling it, or a sweep, is skipped, so
    a lease never waits for, nor deadlocks with, the work it covers. The rows set."""
    if not ids:
        return 0
    done = conn.execute(lease_statement(table, key, ids, values))
    return int(done.rowcount or 0)


def lease_statement(
    table: Table, key: ColumnElement[Any], ids: Sequence[Any], values: Mapping[str, Any]
) -> Update:
    """The statement of `lease_pending`: the rows found by `key`, pending ones kept."""
    held = (
        select(table.c.seq)
        .where(key.in_(list(ids)), is_pending(table))
        .with_for_update(skip_locked=True)
    )
    return table.update().where(table.c.seq.in_(held.scalar_subquery())).values(**values)
